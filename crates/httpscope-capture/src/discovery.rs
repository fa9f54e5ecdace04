//! The scan of what runs now for TLS stacks to hook, on a thread of its own: it reads
//! whole executables (up to a second on a busy machine) while the verifier works on the
//! socket programs.

use std::collections::HashSet;
use std::thread::JoinHandle;

use crate::timing::timed;
use crate::tls::{self, FileId, TlsTarget};

/// What the scan found, and every file it looked at (hooked or not).
pub(crate) struct Found {
    pub targets: Vec<TlsTarget>,
    pub seen: HashSet<FileId>,
}

/// A scan under way (or done, when no thread could start).
pub(crate) enum Discovery {
    Running(JoinHandle<Found>),
    Done(Found),
}

impl Discovery {
    /// Starts the scan: every TLS library and executable of running processes not in
    /// `seen`, or with `pid` only what that process runs (its executable and libraries).
    pub(crate) fn start(pid: Option<u32>, seen: HashSet<FileId>) -> Self {
        let theirs = seen.clone();
        let spawned = std::thread::Builder::new()
            .name("tls-scan".into())
            .spawn(move || scan(pid, theirs));
        match spawned {
            Ok(thread) => Discovery::Running(thread),
            Err(err) => {
                tracing::debug!(%err, "scanning for TLS stacks on this thread");
                Discovery::Done(scan(pid, seen))
            }
        }
    }

    /// Waits for the scan to end.
    pub(crate) fn finish(self) -> Found {
        match self {
            Discovery::Running(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Discovery::Done(found) => found,
        }
    }
}

fn scan(pid: Option<u32>, mut seen: HashSet<FileId>) -> Found {
    let targets = match pid {
        Some(pid) => {
            let executable =
                tls::executable_of(pid, &mut seen).and_then(|path| tls::classify_executable(&path));
            let mut targets = tls::libraries_of(pid, &mut seen);
            targets.extend(executable);
            targets
        }
        None => {
            let mut targets = timed("TLS libraries found", || tls::find_libraries(&mut seen));
            targets.extend(timed("TLS executables found", || {
                tls::find_executables(&mut seen)
            }));
            targets
        }
    };
    Found { targets, seen }
}
