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
use crate::probe_site;

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
    /// What the Writer's methods jump to through their `dyn PlaintextSink` (optional):
    /// `<ConnectionCommon<T> as PlaintextSink>::write` and `write_vectored`.
    SinkWrite,
    SinkWriteVectored,
}

impl RustlsFunction {
    pub const ALL: [RustlsFunction; 11] = [
        Self::Write,
        Self::WriteVectored,
        Self::Read,
        Self::FirstChunk,
        Self::Consume,
        Self::IsFull,
        Self::ReadTls,
        Self::WriteTls,
        Self::IoState,
        Self::SinkWrite,
        Self::SinkWriteVectored,
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
            Self::SinkWrite => {
                "<rustls::conn::ConnectionCommon<T> as rustls::conn::connection::PlaintextSink>::write"
            }
            Self::SinkWriteVectored => {
                "<rustls::conn::ConnectionCommon<T> as rustls::conn::connection::PlaintextSink>::write_vectored"
            }
        }
    }

    /// The register holding the Reader or Writer whose first word the probe reads, if any.
    fn object_register(self) -> Option<Register> {
        match self {
            Self::Write | Self::WriteVectored | Self::Read | Self::Consume => Some(Register::RDI),
            // The result is returned through RDI: the Reader comes second.
            Self::FirstChunk => Some(Register::RSI),
            Self::IsFull
            | Self::ReadTls
            | Self::WriteTls
            | Self::IoState
            | Self::SinkWrite
            | Self::SinkWriteVectored => None,
        }
    }

    /// The Writer method whose calls this function takes, reached through its vtable.
    fn sink_of(self) -> Option<RustlsFunction> {
        match self {
            Self::SinkWrite => Some(Self::Write),
            Self::SinkWriteVectored => Some(Self::WriteVectored),
            _ => None,
        }
    }
}

/// One probe point (file offset): a function's entry, or a cheaper site with the same
/// registers (see `probe_site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RustlsProbe {
    pub function: RustlsFunction,
    pub offset: u64,
    /// `consume` probed after it loaded its Reader's first word (the buffer) into the
    /// Reader's register.
    pub first_word_loaded: bool,
    /// The kernel single-steps the probed instruction: a second trap on every hit.
    pub single_stepped: bool,
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
    let thunk = |f: RustlsFunction| {
        found.get(&f).is_some_and(|ranges| {
            ranges.iter().all(|range| {
                bytes_at(data, file, range.clone())
                    .is_some_and(|code| jumps_through_vtable(code, range.start))
            })
        })
    };
    let mut probes = Vec::new();
    for (function, ranges) in &found {
        let replaced = replaced(&found, *function, thunk);
        for range in ranges {
            // Checked even when replaced: a Writer method's code shows where its sink's
            // arguments are.
            let probe = probe(data, file, *function, range.clone())?;
            if !replaced {
                probes.push(probe);
            }
        }
    }
    Ok(probes)
}

/// Instructions of a Writer method before its jump through the vtable, at most.
const THUNK_LEN: usize = 8;

/// Whether a Writer method only jumps through its vtable: straight-line code, no call,
/// then a jump through a register or memory. Every call of it then reaches a sink method.
fn jumps_through_vtable(code: &[u8], address: u64) -> bool {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    for instruction in decoder.into_iter().take(THUNK_LEN) {
        match instruction.flow_control() {
            iced_x86::FlowControl::Next if instruction.code() != Code::INVALID => {}
            iced_x86::FlowControl::IndirectBranch => return true,
            _ => return false,
        }
    }
    false
}

/// Whether `function` goes unprobed because the other of a Writer method and its sink is
/// probed instead: the sink when the program has one beside each copy of the Writer method
/// (a program linking several rustls versions has one of each per version) and `thunk`
/// says the Writer method only jumps to it.
fn replaced(
    found: &HashMap<RustlsFunction, Vec<Range<u64>>>,
    function: RustlsFunction,
    thunk: impl Fn(RustlsFunction) -> bool,
) -> bool {
    let copies = |f: RustlsFunction| found.get(&f).map_or(0, Vec::len);
    let sink_used = |writer: RustlsFunction, sink: RustlsFunction| {
        copies(sink) > 0 && copies(sink) == copies(writer) && thunk(writer)
    };
    match function.sink_of() {
        Some(writer) => !sink_used(writer, function),
        None => RustlsFunction::ALL
            .iter()
            .any(|&sink| sink.sink_of() == Some(function) && sink_used(function, sink)),
    }
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
    // Entry and return probes alike: see probe_site for why the entry may move.
    let consume_site = (function == RustlsFunction::Consume)
        .then(|| loads_own_object(code, range.start))
        .flatten();
    let site = consume_site.unwrap_or_else(|| {
        probe_site::cheap_entry(code, range.start, &probe_site::ARGUMENT_REGISTERS)
    });
    let at_site = site
        .checked_sub(range.start)
        .and_then(|skip| usize::try_from(skip).ok())
        .and_then(|skip| code.get(skip..));
    Ok(RustlsProbe {
        function,
        offset: file_offset(file, site).ok_or(Unhookable::Code(name))?,
        first_word_loaded: consume_site.is_some(),
        single_stepped: !at_site.is_some_and(|code| probe_site::emulated_at(code, site)),
    })
}

/// The site after a first instruction `mov rdi, [rdi]` (consume's tail call to its buffer's
/// method loads that buffer in place) when the next one is emulated and falls on no branch
/// target: there RDI holds the Reader's first word, everything else is as at the entry.
fn loads_own_object(code: &[u8], address: u64) -> Option<u64> {
    let load = Decoder::with_ip(64, code, address, DecoderOptions::NONE).decode();
    let own_first_word = load.code() == Code::Mov_r64_rm64
        && load.op0_register() == Register::RDI
        && load.op1_kind() == OpKind::Memory
        && load.memory_base() == Register::RDI
        && load.memory_index() == Register::None
        && load.memory_displacement64() == 0;
    if !own_first_word {
        return None;
    }
    probe_site::emulated_second(code, address)
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

    /// Writer::write: mov rax,[rdi]; mov rcx,[rdi+8]; mov rcx,[rcx+0x18]; mov rdi,rax; jmp rcx
    const WRITER_WRITE: [u8; 16] = [
        0x48, 0x8b, 0x07, 0x48, 0x8b, 0x4f, 0x08, 0x48, 0x8b, 0x49, 0x18, 0x48, 0x89, 0xc7, 0xff,
        0xe1,
    ];

    #[test]
    fn finds_the_object_load() {
        assert!(loads_first_word(&WRITER_WRITE, 0x1000, Register::RDI));
        assert!(!loads_first_word(&WRITER_WRITE, 0x1000, Register::RSI));
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
    fn consume_is_probed_after_it_loads_its_buffer() {
        // mov rdi,[rdi]; jmp rel32
        let consume = [0x48, 0x8b, 0x3f, 0xe9, 0x38, 0x53, 0, 0];
        assert_eq!(loads_own_object(&consume, 0x1000), Some(0x1003));
        // mov rdi,[rdi+8]; jmp rel32: another field, not the Reader's first word.
        let other = [0x48, 0x8b, 0x7f, 0x08, 0xe9, 0x38, 0x53, 0, 0];
        assert_eq!(loads_own_object(&other, 0x1000), None);
        // mov rdi,[rdi]; mov rax,rsi: nothing emulated after the load.
        assert_eq!(
            loads_own_object(&[0x48, 0x8b, 0x3f, 0x48, 0x89, 0xf0], 0),
            None
        );
    }

    #[test]
    fn writer_methods_move_to_their_sinks_only_when_each_has_one() {
        use RustlsFunction::*;
        let with = |pairs: &[(RustlsFunction, usize)]| -> HashMap<_, Vec<Range<u64>>> {
            pairs.iter().map(|&(f, n)| (f, vec![0..1; n])).collect()
        };
        let thunks = |_| true;
        let both = with(&[(Write, 1), (SinkWrite, 1), (WriteVectored, 1), (IsFull, 1)]);
        assert!(replaced(&both, Write, thunks));
        assert!(!replaced(&both, SinkWrite, thunks));
        // No sink for write_vectored: the Writer's method stays.
        assert!(!replaced(&both, WriteVectored, thunks));
        assert!(!replaced(&both, IsFull, thunks));
        // Two rustls versions, one sink: both Writer copies stay, the sink goes.
        let two = with(&[(Write, 2), (SinkWrite, 1)]);
        assert!(!replaced(&two, Write, thunks));
        assert!(replaced(&two, SinkWrite, thunks));
        // A Writer method with a body of its own (the sink inlined into it) stays.
        assert!(!replaced(&both, Write, |_| false));
        assert!(replaced(&both, SinkWrite, |_| false));
    }

    #[test]
    fn a_writer_method_that_only_jumps_through_its_vtable_is_a_thunk() {
        assert!(jumps_through_vtable(&WRITER_WRITE, 0x1000));
        // mov rax,[rdi]; call rel32; ret: a body of its own.
        let body = [0x48, 0x8b, 0x07, 0xe8, 0, 0, 0, 0, 0xc3];
        assert!(!jumps_through_vtable(&body, 0x1000));
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
