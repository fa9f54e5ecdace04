//! Loading (verifying) the backend's BTF tracepoint programs at once, one thread each:
//! the verifier spends most of the start on the two largest (seconds on a busy machine),
//! and each program's verification is independent of the others'.

use aya::programs::{BtfTracePoint, Program};
use aya::{Btf, Ebpf};

use crate::backend::Backend;
use crate::loader::{attach_error, CaptureError};
use crate::timing::timed;

/// Loads every BTF tracepoint program of `backend`, in parallel; the first refusal, in the
/// backend's order, is the error.
pub(crate) fn load_btf_tracepoints(
    ebpf: &mut Ebpf,
    backend: Backend,
    btf: &Btf,
) -> Result<(), CaptureError> {
    let mut programs: Vec<Option<&mut Program>> =
        backend.tracepoints().iter().map(|_| None).collect();
    for (name, program) in ebpf.programs_mut() {
        if let Some(at) = backend.tracepoints().iter().position(|&(p, _)| p == name) {
            programs[at] = Some(program);
        }
    }
    let jobs = backend
        .tracepoints()
        .iter()
        .zip(programs)
        .map(|(&(program, event), found)| {
            let found = found.ok_or(CaptureError::MissingProgram(program))?;
            Ok((program, event, found))
        })
        .collect::<Result<Vec<_>, CaptureError>>()?;
    std::thread::scope(|scope| {
        let running: Vec<_> = jobs
            .into_iter()
            .map(|(program, event, found)| {
                let load = move || load_one(program, event, found, btf);
                std::thread::Builder::new()
                    .name("verify".into())
                    .spawn_scoped(scope, load)
            })
            .collect();
        running.into_iter().try_for_each(|thread| match thread {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(err) => Err(CaptureError::Threads(err.to_string())),
        })
    })
}

fn load_one(
    program: &'static str,
    event: &'static str,
    found: &mut Program,
    btf: &Btf,
) -> Result<(), CaptureError> {
    let tracepoint: &mut BtfTracePoint = found
        .try_into()
        .map_err(|e| attach_error(program, "tp_btf", event, e))?;
    timed(program, || tracepoint.load(event, btf))
        .map_err(|e| attach_error(program, "tp_btf", event, e))
}
