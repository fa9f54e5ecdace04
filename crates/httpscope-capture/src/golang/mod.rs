//! Go programs with `crypto/tls`: where to put the uprobes on the entries of
//! `(*tls.Conn).Write`, `(*tls.Conn).Read` and `handshakeContext`, and on every return
//! instruction of `Read`; and the cookie that tells the BPF program how to find the fd.
//! Symbols come from `.symtab`, or from `.gopclntab` in stripped binaries.

mod buildinfo;
mod code;
mod layout;
mod pclntab;

use std::ops::Range;
use std::path::Path;

use object::{Architecture, Object, ObjectSection, ObjectSymbol, ReadRef};
use thiserror::Error;

use crate::elf::{bytes_at, file_offset, ElfFile};

pub use buildinfo::GoVersion;
pub use layout::{GoLayout, LAYOUTS};

/// Functions hooked: the plaintext calls, and the handshake that precedes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoTlsFunction {
    Write,
    Read,
    Handshake,
}

impl GoTlsFunction {
    pub const ALL: [GoTlsFunction; 3] = [Self::Write, Self::Read, Self::Handshake];

    pub fn symbol(self) -> &'static str {
        match self {
            Self::Write => "crypto/tls.(*Conn).Write",
            Self::Read => "crypto/tls.(*Conn).Read",
            Self::Handshake => "crypto/tls.(*Conn).handshakeContext",
        }
    }
}

/// `net.(*TCPConn).Close`: the first method of the `net.Conn` itab of a `*net.TCPConn`.
const TCP_CONN_CLOSE: &str = "net.(*TCPConn).Close";

/// Where one hooked function's probes go (file offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoProbes {
    pub function: GoTlsFunction,
    /// The first instruction after the stack-growth check (the arguments are still in
    /// their registers; a call that grows its stack passes here once, not twice).
    pub entry: u64,
    /// Entry probe cookie (`GO_COOKIE_*` in `httpscope.h`).
    pub cookie: u64,
    /// Every return instruction (Read only: Write and the handshake need only their entry).
    pub returns: Vec<u64>,
}

/// A Go binary whose `crypto/tls` can be hooked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsBinary {
    /// `go1.19.8`.
    pub version: String,
    /// No `.symtab`: functions were found through `.gopclntab`.
    pub stripped: bool,
    /// The version is newer than the offset table: its newest row is assumed.
    pub layout_assumed: bool,
    pub probes: Vec<GoProbes>,
}

#[derive(Debug, Error)]
pub enum GoInspectError {
    #[error("reading: {0}")]
    Read(#[from] std::io::Error),
    #[error("not an ELF file: {0}")]
    Elf(#[from] object::Error),
    #[error("not a Go program (no .go.buildinfo)")]
    NotGo,
    #[error("does not use crypto/tls")]
    NoTls,
    #[error("{0} binaries are not supported (x86-64 only)")]
    Architecture(String),
    #[error("Go version {0} is not supported (Go 1.18 or later)")]
    Version(String),
    #[error("{0} not found")]
    Symbol(&'static str),
    #[error("{0}: machine code does not decode")]
    Code(&'static str),
    #[error("{0}: address outside the file's sections")]
    Address(&'static str),
}

/// Inspects the Go binary at `path`, reading only the parts it needs (a Go binary can be
/// hundreds of MB).
pub fn inspect(path: &Path) -> Result<GoTlsBinary, GoInspectError> {
    let elf = ElfFile::open(path)?;
    inspect_data(elf.data())
}

fn inspect_data<'d, R: ReadRef<'d>>(data: R) -> Result<GoTlsBinary, GoInspectError> {
    let file = object::File::parse(data)?;
    let buildinfo = file
        .section_by_name(".go.buildinfo")
        .and_then(|s| s.data().ok())
        .ok_or(GoInspectError::NotGo)?;
    let version = buildinfo::version_string(buildinfo).ok_or(GoInspectError::NotGo)?;
    if file.architecture() != Architecture::X86_64 {
        return Err(GoInspectError::Architecture(format!(
            "{:?}",
            file.architecture()
        )));
    }
    let unsupported = || GoInspectError::Version(version.to_owned());
    let parsed = buildinfo::parse_version(version).ok_or_else(unsupported)?;
    let (layout, known) = layout::layout_for(parsed).ok_or_else(unsupported)?;

    let symbols = Symbols::of(&file)?;
    let close = symbols.range(TCP_CONN_CLOSE)?;
    let mut probes = Vec::new();
    for function in GoTlsFunction::ALL {
        let name = function.symbol();
        let range = match symbols.range(name) {
            Ok(range) => range,
            Err(_) if function != GoTlsFunction::Write => continue,
            Err(_) => return Err(GoInspectError::NoTls),
        };
        let code = bytes_at(data, &file, range.clone()).ok_or(GoInspectError::Address(name))?;
        let body = code::after_stack_check(code, range.start);
        let returns = if function != GoTlsFunction::Read {
            Vec::new()
        } else {
            let found =
                code::return_addresses(code, range.start).ok_or(GoInspectError::Code(name))?;
            found
                .into_iter()
                .map(|a| file_offset(&file, a).ok_or(GoInspectError::Address(name)))
                .collect::<Result<_, _>>()?
        };
        if function == GoTlsFunction::Read && returns.is_empty() {
            return Err(GoInspectError::Code(name));
        }
        probes.push(GoProbes {
            function,
            entry: file_offset(&file, body).ok_or(GoInspectError::Address(name))?,
            cookie: layout::entry_cookie(layout, body, close.start)
                .ok_or(GoInspectError::Address(TCP_CONN_CLOSE))?,
            returns,
        });
    }
    if !probes.iter().any(|p| p.function == GoTlsFunction::Read) {
        return Err(GoInspectError::Symbol(GoTlsFunction::Read.symbol()));
    }
    Ok(GoTlsBinary {
        version: version.to_owned(),
        stripped: symbols.from_pclntab,
        layout_assumed: !known,
        probes,
    })
}

/// Function address ranges, from `.symtab` or else `.gopclntab`.
struct Symbols<'d, 'f, R: ReadRef<'d>> {
    file: &'f object::File<'d, R>,
    pclntab: Option<pclntab::Pclntab<'d>>,
    from_pclntab: bool,
}

impl<'d, 'f, R: ReadRef<'d>> Symbols<'d, 'f, R> {
    fn of(file: &'f object::File<'d, R>) -> Result<Self, GoInspectError> {
        let has_symtab = file.symbols().next().is_some();
        let pclntab = if has_symtab {
            None
        } else {
            let data = file
                .section_by_name(".gopclntab")
                .and_then(|s| s.data().ok())
                .ok_or(GoInspectError::Symbol(".gopclntab"))?;
            let text = file.section_by_name(".text").map_or(0, |s| s.address());
            Some(pclntab::Pclntab::parse(data, text).ok_or(GoInspectError::Symbol(".gopclntab"))?)
        };
        Ok(Self {
            file,
            from_pclntab: pclntab.is_some(),
            pclntab,
        })
    }

    fn range(&self, name: &'static str) -> Result<Range<u64>, GoInspectError> {
        let found = match &self.pclntab {
            Some(table) => table.find(name),
            None => self
                .file
                .symbols()
                .find(|s| s.name_bytes().is_ok_and(|n| n == name.as_bytes()))
                .filter(|s| s.size() > 0)
                .map(|s| s.address()..s.address() + s.size()),
        };
        found.ok_or(GoInspectError::Symbol(name))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_go() {
        assert!(matches!(
            inspect(Path::new("/proc/self/exe")),
            Err(GoInspectError::NotGo)
        ));
        assert!(matches!(
            inspect_data(&b"not an elf"[..]),
            Err(GoInspectError::Elf(_))
        ));
    }
}
