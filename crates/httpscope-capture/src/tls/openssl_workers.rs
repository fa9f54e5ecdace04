//! Where OpenSSL's read and write probes go, chosen by what a probe hit costs.
//!
//! On x86-64 the kernel either emulates the probed instruction in the trap handler (a push
//! of a register, a nop, a relative call or jump) or runs it out of line with a single-step,
//! which is a second trap. Measured on the development VM with a counting uprobe: 0.6–0.9 µs
//! per hit on a `push`, 11–17 µs on `sub $0x18,%rsp`, `lea`, `endbr64` or `ret`; a return
//! probe adds about 0.1 µs to its entry probe. Debian's libssl 3.0 begins `SSL_read` and
//! `SSL_write` with `sub $0x18,%rsp` and the `_ex` functions with `sub $8,%rsp`: every TLS
//! call paid a single-step.
//!
//! All four are thin wrappers around one worker per direction (`ssl_read_internal`,
//! `ssl_write_internal`: static, no symbol) that takes exactly `SSL_read_ex`'s (or
//! `SSL_write_ex`'s) arguments, returns 1 on success and stores the byte count through its
//! fourth argument. When the machine code shows it — `SSL_read_ex` calls a function `W`
//! with nothing before the call but stack adjustment (so `W` gets its very arguments),
//! `SSL_read` calls the same `W`, and `W` begins with a push (after an optional `endbr64`,
//! which leaves the stack alone) — the `_ex` probes go on `W`'s push, entry and return, and
//! the four exported functions are not probed: one cheap pair per call, whichever of them
//! the program calls. Anything else keeps the probes on the exported functions.
//!
//! Node.js with a shared libssl binds an SSL object by who called `SSL_read`/`SSL_write`
//! (`bpf/node_tls.bpf.h`), a frame above the worker. So the worker probe also learns where
//! `SSL_read`'s (`SSL_write`'s) call to it returns and how far that wrapper moved the stack
//! pointer before the call: when the worker's return address is that site, the wrapper's
//! own return address is found at a fixed distance above it. The loader packs both into the
//! probe's cookie (`OPENSSL_WORKER_COOKIE_*` in `bpf/httpscope.h`).

use std::path::Path;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, Register};
use object::{Object, ObjectSymbol, ReadRef};

use crate::elf::{bytes_at, file_offset, ElfFile};

/// Bytes of a wrapper decoded at most when looking for its call to the worker.
const WRAPPER_BYTES: u64 = 128;
/// Instructions of a wrapper before its call to the worker, at most.
const WRAPPER_PROLOGUE: usize = 8;
/// Instructions of `SSL_read`/`SSL_write` before their call to the worker, at most.
const PLAIN_WRAPPER_PROLOGUE: usize = 16;

/// One worker: where its probes go, and what its cookie tells the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpensslWorker {
    /// File offset of the worker's first push: the `_ex` entry probe and the return probe.
    pub offset: u64,
    /// The plain wrapper's (`SSL_read`'s or `SSL_write`'s) call, seen from the probe.
    pub plain_caller: Option<WrapperCall>,
}

/// How a wrapper calls its worker: what the worker's probe finds on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapperCall {
    /// The probed instruction's address minus the call's return address (same file).
    pub probe_minus_return_site: i32,
    /// Bytes the wrapper pushed or reserved before the call: its own return address is
    /// that far above the worker's.
    pub frame: u16,
}

impl OpensslWorker {
    /// The worker probe's attach cookie (`OPENSSL_WORKER_COOKIE_*` in `bpf/httpscope.h`):
    /// bit 63 says the plain caller is known, bits 32..48 its frame, bits 0..32 the delta.
    pub fn cookie(&self) -> u64 {
        self.plain_caller.map_or(0, |call| {
            1 << 63 | u64::from(call.frame) << 32 | u64::from(call.probe_minus_return_site as u32)
        })
    }
}

/// OpenSSL's read and write workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpensslWorkers {
    pub read: OpensslWorker,
    pub write: OpensslWorker,
}

/// The workers of the OpenSSL in the ELF file at `path`, when its code has the shape above.
pub fn find(path: &Path) -> Option<OpensslWorkers> {
    let elf = ElfFile::open(path).ok()?;
    find_in(elf.data())
}

fn find_in<'d, R: ReadRef<'d>>(data: R) -> Option<OpensslWorkers> {
    let file = object::File::parse(data).ok()?;
    if file.architecture() != object::Architecture::X86_64 {
        return None;
    }
    let code_of = |name: &str| -> Option<(u64, &'d [u8])> {
        let symbol = file
            .dynamic_symbols()
            .chain(file.symbols())
            .find(|s| s.name_bytes().is_ok_and(|n| n == name.as_bytes()) && s.address() != 0)?;
        let len = match symbol.size() {
            0 => WRAPPER_BYTES,
            size => size.min(WRAPPER_BYTES),
        };
        let address = symbol.address();
        Some((address, bytes_at(data, &file, address..address + len)?))
    };
    let worker = |ex_name: &str, plain_name: &str| -> Option<OpensslWorker> {
        let (ex_address, ex_code) = code_of(ex_name)?;
        let target = forwarded_call(ex_code, ex_address)?;
        let (plain_address, plain_code) = code_of(plain_name)?;
        if first_call(plain_code, plain_address)? != target {
            return None;
        }
        let head = bytes_at(data, &file, target..target + 16)?;
        let probe = push_at_entry(head, target)?;
        let plain_caller =
            wrapper_call(plain_code, plain_address, target).and_then(|(return_site, frame)| {
                Some(WrapperCall {
                    probe_minus_return_site: i32::try_from(
                        i128::from(probe) - i128::from(return_site),
                    )
                    .ok()?,
                    frame,
                })
            });
        Some(OpensslWorker {
            offset: file_offset(&file, probe)?,
            plain_caller,
        })
    };
    Some(OpensslWorkers {
        read: worker("SSL_read_ex", "SSL_read")?,
        write: worker("SSL_write_ex", "SSL_write")?,
    })
}

/// The target of the first call in `code` when everything before it only moves the stack
/// pointer (`endbr64`, pushes, `sub rsp, imm`): the callee receives the caller's arguments
/// untouched.
fn forwarded_call(code: &[u8], address: u64) -> Option<u64> {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    for instruction in decoder.into_iter().take(WRAPPER_PROLOGUE) {
        if instruction.code() == Code::Call_rel32_64 {
            return Some(instruction.near_branch_target());
        }
        if !only_moves_stack(&instruction) {
            return None;
        }
    }
    None
}

fn only_moves_stack(instruction: &Instruction) -> bool {
    match instruction.code() {
        Code::Endbr64 | Code::Push_r64 => true,
        Code::Sub_rm64_imm8 | Code::Sub_rm64_imm32 => instruction.op0_register() == Register::RSP,
        _ => false,
    }
}

/// The return address and stack depth of `code`'s first call, to `target`, when every
/// instruction before it either leaves the stack pointer alone or is a push or a
/// `sub rsp, imm` (anything else: None).
fn wrapper_call(code: &[u8], address: u64, target: u64) -> Option<(u64, u16)> {
    let mut frame: u64 = 0;
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    for instruction in decoder.into_iter().take(PLAIN_WRAPPER_PROLOGUE) {
        match instruction.code() {
            Code::Call_rel32_64 if instruction.near_branch_target() == target => {
                return Some((instruction.next_ip(), u16::try_from(frame).ok()?));
            }
            Code::Push_r64 => frame += 8,
            Code::Sub_rm64_imm8 | Code::Sub_rm64_imm32
                if instruction.op0_register() == Register::RSP =>
            {
                frame = frame.checked_add(instruction.immediate64())?;
            }
            _ if leaves_stack_pointer(&instruction) => {}
            _ => return None,
        }
    }
    None
}

/// Instructions a wrapper may run before its call without moving the stack pointer: moves,
/// arithmetic and tests into other registers or memory, and conditional jumps (whose taken
/// path skips the call). Anything else, pops and calls included, is refused.
fn leaves_stack_pointer(instruction: &Instruction) -> bool {
    use Mnemonic::*;
    let writes_register = matches!(
        instruction.mnemonic(),
        Mov | Movsxd | Movzx | Movsx | Lea | Xor | And | Or | Add | Sub
    );
    if writes_register {
        return !matches!(
            instruction.op0_register(),
            Register::RSP | Register::ESP | Register::SP
        );
    }
    matches!(
        instruction.mnemonic(),
        Endbr64
            | Nop
            | Test
            | Cmp
            | Je
            | Jne
            | Js
            | Jns
            | Jl
            | Jle
            | Jg
            | Jge
            | Jb
            | Jbe
            | Ja
            | Jae
    )
}

/// The target of the first direct call in `code`.
fn first_call(code: &[u8], address: u64) -> Option<u64> {
    Decoder::with_ip(64, code, address, DecoderOptions::NONE)
        .into_iter()
        .take_while(|instruction| instruction.code() != Code::INVALID)
        .find(|instruction| instruction.code() == Code::Call_rel32_64)
        .map(|instruction| instruction.near_branch_target())
}

/// The address of a function's first instruction when it is a push of a register, or of
/// the push right after a leading `endbr64`; None when the function starts otherwise.
fn push_at_entry(code: &[u8], address: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = decoder.decode();
    if instruction.mnemonic() == Mnemonic::Endbr64 {
        instruction = decoder.decode();
    }
    (instruction.code() == Code::Push_r64).then_some(instruction.ip())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `sub rsp, 8; call rel32` at 0x1000 (Debian's SSL_read_ex shape), calling 0x2000.
    fn wrapper_at_0x1000() -> Vec<u8> {
        let mut code = vec![0x48, 0x83, 0xec, 0x08, 0xe8];
        code.extend_from_slice(&(0x2000_i32 - 0x1009).to_le_bytes());
        code.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08, 0xc3]);
        code
    }

    #[test]
    fn a_wrapper_that_forwards_its_arguments_names_its_worker() {
        assert_eq!(forwarded_call(&wrapper_at_0x1000(), 0x1000), Some(0x2000));
    }

    #[test]
    fn a_wrapper_that_changes_an_argument_first_is_refused() {
        // mov r8, rcx; xor ecx, ecx; call (OpenSSL 3.3's SSL_write_ex adds a flags argument).
        let mut code = vec![0x49, 0x89, 0xc8, 0x31, 0xc9, 0xe8];
        code.extend_from_slice(&(0x2000_i32 - 0x100a).to_le_bytes());
        assert_eq!(forwarded_call(&code, 0x1000), None);
    }

    #[test]
    fn the_worker_must_start_with_a_push() {
        // push r13; push r12
        assert_eq!(
            push_at_entry(&[0x41, 0x55, 0x41, 0x54], 0x2000),
            Some(0x2000)
        );
        // endbr64; push rbp
        assert_eq!(
            push_at_entry(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55], 0x2000),
            Some(0x2004)
        );
        // sub rsp, 0x18
        assert_eq!(push_at_entry(&[0x48, 0x83, 0xec, 0x18], 0x2000), None);
    }

    #[test]
    fn the_plain_wrappers_frame_at_its_call_is_measured() {
        // Debian's SSL_read: sub rsp,0x18; mov rax,fs:0x28; mov [rsp+8],rax; xor eax,eax;
        // test edx,edx; js +0x2f; mov rcx,rsp; movsxd rdx,edx; call 0x2000
        let mut code = vec![
            0x48, 0x83, 0xec, 0x18, 0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00, 0x48,
            0x89, 0x44, 0x24, 0x08, 0x31, 0xc0, 0x85, 0xd2, 0x78, 0x2f, 0x48, 0x89, 0xe1, 0x48,
            0x63, 0xd2, 0xe8,
        ];
        code.extend_from_slice(&(0x2000_i32 - 0x1023).to_le_bytes());
        assert_eq!(wrapper_call(&code, 0x1000, 0x2000), Some((0x1023, 0x18)));
        // push rbx; sub rsp,0x10; call 0x2000
        let mut code = vec![0x53, 0x48, 0x83, 0xec, 0x10, 0xe8];
        code.extend_from_slice(&(0x2000_i32 - 0x100a).to_le_bytes());
        assert_eq!(wrapper_call(&code, 0x1000, 0x2000), Some((0x100a, 0x18)));
        // Another target, or `mov rsp, rbp` first: not measured.
        assert_eq!(wrapper_call(&code, 0x1000, 0x3000), None);
        let mut code = vec![0x48, 0x89, 0xec, 0xe8];
        code.extend_from_slice(&(0x2000_i32 - 0x1008).to_le_bytes());
        assert_eq!(wrapper_call(&code, 0x1000, 0x2000), None);
    }

    #[test]
    fn the_worker_cookie_packs_the_callers_call() {
        let worker = OpensslWorker {
            offset: 0x35290,
            plain_caller: Some(WrapperCall {
                probe_minus_return_site: -0x1c3,
                frame: 0x18,
            }),
        };
        assert_eq!(worker.cookie(), 1 << 63 | 0x18 << 32 | 0xffff_fe3d);
        let unknown = OpensslWorker {
            plain_caller: None,
            ..worker
        };
        assert_eq!(unknown.cookie(), 0);
    }

    #[test]
    fn the_first_call_is_found_past_other_instructions() {
        // sub rsp,0x18; mov rcx,rsp; movsxd rdx,edx; call 0x2000
        let mut code = vec![
            0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0xe1, 0x48, 0x63, 0xd2, 0xe8,
        ];
        code.extend_from_slice(&(0x2000_i32 - 0x100f).to_le_bytes());
        assert_eq!(first_call(&code, 0x1000), Some(0x2000));
    }
}
