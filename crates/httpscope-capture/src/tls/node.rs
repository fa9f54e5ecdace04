//! Node.js: where the TLSWrap functions that give Node's SSL objects their connection lie
//! (see `bpf/node_tls.bpf.h` for why these four), in a node executable or in `libnode.so`
//! (Debian's `nodejs`, which exports them). Found by their mangled names in the symbol
//! tables, with the non-virtual thunks (`_ZThn<N>_…`) through which virtual calls arrive,
//! each probed with the `this` adjustment its name states.

use std::path::Path;

use object::{Object, ObjectSymbol};

use crate::elf::ElfFile;

/// `node::crypto::TLSWrap::OnStreamAlloc(size_t)`: entry (cookie: `this` adjustment).
const STREAM_ALLOC: &str = "_ZN4node6crypto7TLSWrap13OnStreamAllocEm";
/// `node::crypto::TLSWrap::OnStreamRead(ssize_t, const uv_buf_t&)`: entry and return.
const STREAM_READ: &str = "_ZN4node6crypto7TLSWrap12OnStreamReadElRK8uv_buf_t";
/// `node::crypto::TLSWrap::ClearIn()` / `ClearOut()`: entry (cookie: the function's size).
const CLEAR_IN: &str = "_ZN4node6crypto7TLSWrap7ClearInEv";
const CLEAR_OUT: &str = "_ZN4node6crypto7TLSWrap8ClearOutEv";

/// Which program a Node probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFunction {
    StreamAlloc,
    StreamRead,
    ClearIn,
    ClearOut,
}

/// One probe: a function (or thunk) entry by file offset, with its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProbe {
    pub function: NodeFunction,
    pub offset: u64,
    pub cookie: u64,
}

/// What a Node executable or libnode holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBinary {
    /// It defines SSL_write (OpenSSL built in); else it links a shared libssl.
    pub openssl_built_in: bool,
    pub probes: Vec<NodeProbe>,
}

/// Errors finding the TLSWrap functions in a file.
#[derive(Debug, thiserror::Error)]
pub enum NodeInspectError {
    #[error("cannot read {0}")]
    Read(String),
    #[error("not an ELF file: {0}")]
    Elf(String),
    #[error("{0} is missing")]
    Missing(&'static str),
}

/// The probes for a Node executable's (or libnode's) TLSWrap, one symbol-table read.
pub fn inspect(path: &Path) -> Result<NodeBinary, NodeInspectError> {
    let elf = ElfFile::open(path).map_err(|e| NodeInspectError::Read(e.to_string()))?;
    let file = object::File::parse(elf.data()).map_err(|e| NodeInspectError::Elf(e.to_string()))?;
    let mut probes = Vec::new();
    let mut openssl_built_in = false;
    for symbol in file.symbols().chain(file.dynamic_symbols()) {
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        openssl_built_in |= name == "SSL_write";
        let Some((function, cookie)) = probe_of(name, symbol.size()) else {
            continue;
        };
        let Some(offset) = crate::elf::file_offset(&file, symbol.address()) else {
            continue;
        };
        let probe = NodeProbe {
            function,
            offset,
            cookie,
        };
        // .symtab and .dynsym name the same functions.
        if !probes.contains(&probe) {
            probes.push(probe);
        }
    }
    for (function, name) in [
        (NodeFunction::StreamAlloc, STREAM_ALLOC),
        (NodeFunction::StreamRead, STREAM_READ),
        (NodeFunction::ClearIn, CLEAR_IN),
        (NodeFunction::ClearOut, CLEAR_OUT),
    ] {
        if !probes.iter().any(|p| p.function == function) {
            return Err(NodeInspectError::Missing(name));
        }
    }
    Ok(NodeBinary {
        openssl_built_in,
        probes,
    })
}

/// The probe a symbol takes: one of the functions (ClearIn/ClearOut only as themselves: the
/// cookie is the size), or a non-virtual thunk to OnStreamAlloc/OnStreamRead.
fn probe_of(name: &str, size: u64) -> Option<(NodeFunction, u64)> {
    match name {
        STREAM_ALLOC => return Some((NodeFunction::StreamAlloc, 0)),
        STREAM_READ => return Some((NodeFunction::StreamRead, 0)),
        CLEAR_IN => return (size > 0).then_some((NodeFunction::ClearIn, size)),
        CLEAR_OUT => return (size > 0).then_some((NodeFunction::ClearOut, size)),
        _ => {}
    }
    // Itanium C++ ABI: _ZThn<N>_<encoding> adjusts `this` by -N, then runs <encoding>.
    let (adjustment, target) = name.strip_prefix("_ZThn")?.split_once('_')?;
    let adjustment: u64 = adjustment.parse().ok()?;
    let function = match target {
        t if STREAM_ALLOC.strip_prefix("_Z") == Some(t) => NodeFunction::StreamAlloc,
        t if STREAM_READ.strip_prefix("_Z") == Some(t) => NodeFunction::StreamRead,
        _ => return None,
    };
    Some((function, adjustment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_thunk_adjustments_from_mangled_names() {
        assert_eq!(
            probe_of("_ZThn120_N4node6crypto7TLSWrap13OnStreamAllocEm", 79),
            Some((NodeFunction::StreamAlloc, 120))
        );
        assert_eq!(
            probe_of(
                "_ZThn120_N4node6crypto7TLSWrap12OnStreamReadElRK8uv_buf_t",
                9
            ),
            Some((NodeFunction::StreamRead, 120))
        );
        assert_eq!(
            probe_of(CLEAR_OUT, 0x62a),
            Some((NodeFunction::ClearOut, 0x62a))
        );
        assert_eq!(probe_of(CLEAR_OUT, 0), None);
        assert_eq!(
            probe_of(
                "_ZThn56_N4node6crypto7TLSWrap7DoWriteEPNS_9WriteWrapEP8uv_buf_tmP11uv_stream_s",
                9
            ),
            None
        );
        assert_eq!(
            probe_of("_ZThnx_N4node6crypto7TLSWrap13OnStreamAllocEm", 9),
            None
        );
    }
}
