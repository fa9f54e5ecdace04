//! Rust programs that link rustls 0.23: its plaintext and record functions, found by
//! demangled name (hash left off) in `.symtab`, and checked in their machine code to take
//! the arguments where `bpf/rustls.bpf.h` reads them.
//!
//! What a build must keep for this: its symbols (`strip = false`, the release default;
//! only debuginfo may go), and the functions below as functions. Fat LTO can inline some of
//! them into their callers: such a binary, like a stripped one, is reported as "rustls
//! found, not hookable" and its connections are counted (`tls_conns`), never guessed.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use object::{Architecture, Object, ObjectSymbol, ReadRef, SymbolKind};
use thiserror::Error;

use crate::elf::{bytes_at, file_offset, ElfFile};

/// A string of rustls's reader (its unexpected-EOF error), in every build that reads
/// plaintext, stripped or not: how a rustls program is recognised before parsing it.
pub const MARKER: &[u8] = b"peer closed connection without sending TLS close_notify";

/// The functions hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RustlsFunction {
    /// `Writer::write(&mut self, buf)`: plaintext in.
    Write,
    /// `Writer::write_vectored(&mut self, bufs)`.
    WriteVectored,
    /// `Reader::read(&mut self, buf)`: plaintext out (rustls::Stream, ureq).
    Read,
    /// `Reader::into_first_chunk(self)` and `BufRead::consume`: plaintext out (tokio-rustls).
    FirstChunk,
    Consume,
    /// read_tls's `received_plaintext.is_full()`, then its socket read.
    IsFull,
    ReadTls,
    /// write_tls's `sendable_tls.write_to(wr)`, its socket write.
    WriteTls,
    /// The end of `process_new_packets` (optional: it lets a moved connection keep its
    /// binding).
    IoState,
}

impl RustlsFunction {
    pub const ALL: [RustlsFunction; 9] = [
        Self::Write,
        Self::WriteVectored,
        Self::Read,
        Self::FirstChunk,
        Self::Consume,
        Self::IsFull,
        Self::ReadTls,
        Self::WriteTls,
        Self::IoState,
    ];

    /// The demangled name without its hash.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Write => "<rustls::conn::connection::Writer as std::io::Write>::write",
            Self::WriteVectored => {
                "<rustls::conn::connection::Writer as std::io::Write>::write_vectored"
            }
            Self::Read => "<rustls::conn::connection::Reader as std::io::Read>::read",
            Self::FirstChunk => "rustls::conn::connection::Reader::into_first_chunk",
            Self::Consume => "<rustls::conn::connection::Reader as std::io::BufRead>::consume",
            Self::IsFull => "rustls::vecbuf::ChunkVecBuffer::is_full",
            Self::ReadTls => "rustls::msgs::deframer::buffers::DeframerVecBuffer::read",
            Self::WriteTls => "rustls::vecbuf::ChunkVecBuffer::write_to",
            Self::IoState => "rustls::common_state::CommonState::current_io_state",
        }
    }

    /// The register holding the Reader or Writer whose first word the probe reads, if any.
    fn object_register(self) -> Option<Register> {
        match self {
            Self::Write | Self::WriteVectored | Self::Read | Self::Consume => Some(Register::RDI),
            // The result is returned through RDI: the Reader comes second.
            Self::FirstChunk => Some(Register::RSI),
            Self::IsFull | Self::ReadTls | Self::WriteTls | Self::IoState => None,
        }
    }
}

/// One probe point: a function's entry (file offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RustlsProbe {
    pub function: RustlsFunction,
    pub offset: u64,
}

/// Why a rustls program cannot be hooked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unhookable {
    #[error("stripped")]
    Stripped,
    /// The function named is not one of its own (LTO inlined it into its callers).
    #[error("inlined")]
    Inlined(&'static str),
    #[error("{0}: arguments not where rustls 0.23 passes them")]
    Code(&'static str),
    #[error("{0} binaries are not supported (x86-64 only)")]
    Architecture(String),
}

/// A program that links rustls: its probes, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustlsBinary {
    pub probes: Result<Vec<RustlsProbe>, Unhookable>,
}

#[derive(Debug, Error)]
pub enum RustlsInspectError {
    #[error("reading: {0}")]
    Read(#[from] std::io::Error),
    #[error("not an ELF file: {0}")]
    Elf(#[from] object::Error),
}

/// Inspects the program at `path`, which mentions [`MARKER`].
pub fn inspect(path: &Path) -> Result<RustlsBinary, RustlsInspectError> {
    let elf = ElfFile::open(path)?;
    let file = object::File::parse(elf.data())?;
    Ok(RustlsBinary {
        probes: probes(elf.data(), &file),
    })
}

fn probes<'d, R: ReadRef<'d>>(
    data: R,
    file: &object::File<'d, R>,
) -> Result<Vec<RustlsProbe>, Unhookable> {
    if file.architecture() != Architecture::X86_64 {
        return Err(Unhookable::Architecture(format!(
            "{:?}",
            file.architecture()
        )));
    }
    if file.symbols().next().is_none() {
        return Err(Unhookable::Stripped);
    }
    let found = functions(file);
    let missing = |f: RustlsFunction| (!found.contains_key(&f)).then_some(f.symbol());
    let reader = if found.contains_key(&RustlsFunction::Read) {
        None
    } else {
        missing(RustlsFunction::FirstChunk).or(missing(RustlsFunction::Consume))
    };
    let required = [
        RustlsFunction::Write,
        RustlsFunction::IsFull,
        RustlsFunction::ReadTls,
        RustlsFunction::WriteTls,
    ];
    if let Some(name) = required.into_iter().find_map(missing).or(reader) {
        return Err(Unhookable::Inlined(name));
    }
    let mut probes = Vec::new();
    for (function, ranges) in found {
        for range in ranges {
            probes.push(probe(data, file, function, range)?);
        }
    }
    Ok(probes)
}

/// The address ranges of each hooked function defined in `.symtab` (a program may hold
/// several copies, one per rustls version it links).
fn functions<'d, R: ReadRef<'d>>(
    file: &object::File<'d, R>,
) -> HashMap<RustlsFunction, Vec<Range<u64>>> {
    let mut found: HashMap<RustlsFunction, Vec<Range<u64>>> = HashMap::new();
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || symbol.size() == 0 || symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        // Cheap filter before demangling every symbol of a large program.
        if !name.contains("rustls") {
            continue;
        }
        let demangled = format!("{:#}", rustc_demangle::demangle(name));
        if let Some(&function) = RustlsFunction::ALL.iter().find(|f| f.symbol() == demangled) {
            let start = symbol.address();
            found
                .entry(function)
                .or_default()
                .push(start..start + symbol.size());
        }
    }
    found
}

fn probe<'d, R: ReadRef<'d>>(
    data: R,
    file: &object::File<'d, R>,
    function: RustlsFunction,
    range: Range<u64>,
) -> Result<RustlsProbe, Unhookable> {
    let name = function.symbol();
    let code = bytes_at(data, file, range.clone()).ok_or(Unhookable::Code(name))?;
    if let Some(register) = function.object_register() {
        if !loads_first_word(code, range.start, register) {
            return Err(Unhookable::Code(name));
        }
    }
    Ok(RustlsProbe {
        function,
        offset: file_offset(file, range.start).ok_or(Unhookable::Code(name))?,
    })
}

/// Instructions looked at from a function's entry for its argument's first load.
const ARGUMENT_WINDOW: usize = 12;

/// Whether the function, entered with a pointer in `register`, reads the 8 bytes that
/// pointer points at (the Reader's or Writer's first field) before anything overwrites
/// the pointer or leaves straight-line code: it does take its object in that register.
fn loads_first_word(code: &[u8], address: u64, register: Register) -> bool {
    let mut holders = vec![register];
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    for instruction in decoder.into_iter().take(ARGUMENT_WINDOW) {
        if instruction.code() == Code::INVALID || instruction.is_invalid() {
            return false;
        }
        let memory_source = instruction.op_count() == 2
            && instruction.op1_kind() == OpKind::Memory
            && instruction.memory_index() == Register::None
            && instruction.memory_displacement64() == 0
            && holders.contains(&instruction.memory_base());
        if instruction.mnemonic() == Mnemonic::Mov
            && memory_source
            && instruction.op0_register().size() == 8
        {
            return true;
        }
        match instruction.mnemonic() {
            Mnemonic::Mov
                if instruction.op1_kind() == OpKind::Register
                    && holders.contains(&instruction.op1_register()) =>
            {
                holders.push(instruction.op0_register());
                continue;
            }
            Mnemonic::Push | Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Endbr64 => continue,
            _ if instruction.flow_control() != iced_x86::FlowControl::Next => return false,
            _ => {}
        }
        if instruction.op0_kind() == OpKind::Register {
            let written = instruction.op0_register().full_register();
            holders.retain(|&r| r.full_register() != written);
            if holders.is_empty() {
                return false;
            }
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_object_load() {
        // Writer::write: mov rax,[rdi]; mov rcx,[rdi+8]; mov rcx,[rcx+0x18]; mov rdi,rax; jmp rcx
        let write = [
            0x48, 0x8b, 0x07, 0x48, 0x8b, 0x4f, 0x08, 0x48, 0x8b, 0x49, 0x18, 0x48, 0x89, 0xc7,
            0xff, 0xe1,
        ];
        assert!(loads_first_word(&write, 0x1000, Register::RDI));
        assert!(!loads_first_word(&write, 0x1000, Register::RSI));
        // Reader::read: push r14; push rbx; push rax; mov r14,rdx; mov rbx,rdi; mov rdi,[rdi]
        let read = [
            0x41, 0x56, 0x53, 0x50, 0x49, 0x89, 0xd6, 0x48, 0x89, 0xfb, 0x48, 0x8b, 0x3f,
        ];
        assert!(loads_first_word(&read, 0x1000, Register::RDI));
        // into_first_chunk: push rbx; mov rax,[rsi]
        assert!(loads_first_word(
            &[0x53, 0x48, 0x8b, 0x06],
            0,
            Register::RSI
        ));
        // The pointer overwritten first (xor edi,edi; mov rax,[rdi]): not the argument.
        assert!(!loads_first_word(
            &[0x31, 0xff, 0x48, 0x8b, 0x07],
            0,
            Register::RDI
        ));
        // A branch before any load: not straight-line, refused.
        assert!(!loads_first_word(
            &[0xeb, 0x00, 0x48, 0x8b, 0x07],
            0,
            Register::RDI
        ));
    }

    #[test]
    fn a_program_without_rustls_is_not_hookable() {
        let data = std::fs::read("/proc/self/exe").unwrap();
        let file = object::File::parse(&*data).unwrap();
        assert_eq!(
            probes(&*data, &file),
            Err(Unhookable::Inlined(RustlsFunction::Write.symbol()))
        );
    }
}
