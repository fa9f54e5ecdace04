//! Kernel events: their binary layout and a decoder that never trusts a length.

pub mod abi;
mod decode;
pub mod encode;

pub use decode::{decode, trimmed, DecodeError};

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use abi::KernelStat;

use crate::direction::Direction;

/// One record from the kernel, borrowing its payload from the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent<'a> {
    Data(DataEvent<'a>),
    ConnOpen(ConnOpenEvent),
    ConnClose(ConnCloseEvent),
    ProcessExit(ProcessExitEvent),
}

/// Fields every event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub tgid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub conn_id: u64,
}

/// The bytes of one socket syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEvent<'a> {
    pub header: EventHeader,
    pub stream_offset: u64,
    /// Bytes the syscall really moved; `data` may hold fewer.
    pub len: u64,
    pub syscall: Syscall,
    pub direction: Direction,
    /// The bytes never passed through a user buffer (sendfile, splice).
    pub not_captured: bool,
    /// The bytes after `data` were left out on purpose (the capture budget): the kernel framed
    /// them as HTTP body beyond the body limit.
    pub elided: bool,
    /// TLS plaintext from a TLS library call; offsets count the plaintext stream.
    pub tls: bool,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnOpenEvent {
    pub header: EventHeader,
    pub fd: u32,
    pub origin: ConnOrigin,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub comm: String,
    /// The opening task's cgroup v2 id; 0 when unknown (older event files).
    pub cgroup_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnCloseEvent {
    pub header: EventHeader,
    pub sent_bytes: u64,
    pub recv_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExitEvent {
    pub header: EventHeader,
}

/// How the kernel first saw a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOrigin {
    Accept,
    Connect,
    /// Open before capture started: its first bytes may be mid-message.
    Existing,
}

/// The syscall that moved a data event's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Syscall {
    Read = 1,
    Write = 2,
    Readv = 3,
    Writev = 4,
    Sendto = 5,
    Recvfrom = 6,
    Sendmsg = 7,
    Recvmsg = 8,
    Sendfile = 9,
    Splice = 10,
    Sendmmsg = 11,
    Recvmmsg = 12,
    SslRead = 13,
    SslWrite = 14,
    /// An io_uring request (socket backend): its bytes are not copied.
    IoUring = 15,
    /// A socket call from another path (socket backend): its bytes are not copied.
    Other = 16,
    /// Go's `crypto/tls.(*Conn).Read` / `Write`.
    GoTlsRead = 17,
    GoTlsWrite = 18,
    /// GnuTLS's `gnutls_record_recv` / `gnutls_record_send`.
    GnutlsRecv = 19,
    GnutlsSend = 20,
    /// OpenSSL's `SSL_read` / `SSL_write` on an SSL object of Node.js's TLSWrap.
    NodeSslRead = 21,
    NodeSslWrite = 22,
    /// rustls's `Reader::read` (or `BufRead::consume`) / `Writer::write(_vectored)`.
    RustlsRead = 23,
    RustlsWrite = 24,
}

impl Syscall {
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Read => "read",
            Syscall::Write => "write",
            Syscall::Readv => "readv",
            Syscall::Writev => "writev",
            Syscall::Sendto => "sendto",
            Syscall::Recvfrom => "recvfrom",
            Syscall::Sendmsg => "sendmsg",
            Syscall::Recvmsg => "recvmsg",
            Syscall::Sendfile => "sendfile",
            Syscall::Splice => "splice",
            Syscall::Sendmmsg => "sendmmsg",
            Syscall::Recvmmsg => "recvmmsg",
            Syscall::SslRead => "SSL_read",
            Syscall::SslWrite => "SSL_write",
            Syscall::IoUring => "io_uring",
            Syscall::Other => "other",
            Syscall::GoTlsRead => "tls.(*Conn).Read",
            Syscall::GoTlsWrite => "tls.(*Conn).Write",
            Syscall::GnutlsRecv => "gnutls_record_recv",
            Syscall::GnutlsSend => "gnutls_record_send",
            Syscall::NodeSslRead => "SSL_read (node)",
            Syscall::NodeSslWrite => "SSL_write (node)",
            Syscall::RustlsRead => "rustls Reader",
            Syscall::RustlsWrite => "rustls Writer",
        }
    }

    /// The TLS library whose call this was; `None` for socket syscalls.
    pub fn tls_lib(self) -> Option<TlsLib> {
        match self {
            Syscall::SslRead | Syscall::SslWrite => Some(TlsLib::Openssl),
            Syscall::GoTlsRead | Syscall::GoTlsWrite => Some(TlsLib::Go),
            Syscall::GnutlsRecv | Syscall::GnutlsSend => Some(TlsLib::Gnutls),
            Syscall::NodeSslRead | Syscall::NodeSslWrite => Some(TlsLib::Node),
            Syscall::RustlsRead | Syscall::RustlsWrite => Some(TlsLib::Rustls),
            _ => None,
        }
    }

    fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            1 => Syscall::Read,
            2 => Syscall::Write,
            3 => Syscall::Readv,
            4 => Syscall::Writev,
            5 => Syscall::Sendto,
            6 => Syscall::Recvfrom,
            7 => Syscall::Sendmsg,
            8 => Syscall::Recvmsg,
            9 => Syscall::Sendfile,
            10 => Syscall::Splice,
            11 => Syscall::Sendmmsg,
            12 => Syscall::Recvmmsg,
            13 => Syscall::SslRead,
            14 => Syscall::SslWrite,
            15 => Syscall::IoUring,
            16 => Syscall::Other,
            17 => Syscall::GoTlsRead,
            18 => Syscall::GoTlsWrite,
            19 => Syscall::GnutlsRecv,
            20 => Syscall::GnutlsSend,
            21 => Syscall::NodeSslRead,
            22 => Syscall::NodeSslWrite,
            23 => Syscall::RustlsRead,
            24 => Syscall::RustlsWrite,
            _ => return None,
        })
    }
}

/// The TLS library a connection's plaintext came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsLib {
    Openssl,
    Go,
    Gnutls,
    /// Node.js's TLSWrap (OpenSSL through memory BIOs).
    Node,
    /// rustls, the pure-Rust TLS library.
    Rustls,
}

impl TlsLib {
    pub const ALL: [TlsLib; 5] = [
        TlsLib::Openssl,
        TlsLib::Go,
        TlsLib::Gnutls,
        TlsLib::Node,
        TlsLib::Rustls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsLib::Openssl => "openssl",
            TlsLib::Go => "go",
            TlsLib::Gnutls => "gnutls",
            TlsLib::Node => "node",
            TlsLib::Rustls => "rustls",
        }
    }

    /// The read or write call of this library (the id its data records carry).
    pub fn call(self, direction: Direction) -> Syscall {
        let send = direction == Direction::Send;
        match self {
            TlsLib::Openssl if send => Syscall::SslWrite,
            TlsLib::Openssl => Syscall::SslRead,
            TlsLib::Go if send => Syscall::GoTlsWrite,
            TlsLib::Go => Syscall::GoTlsRead,
            TlsLib::Gnutls if send => Syscall::GnutlsSend,
            TlsLib::Gnutls => Syscall::GnutlsRecv,
            TlsLib::Node if send => Syscall::NodeSslWrite,
            TlsLib::Node => Syscall::NodeSslRead,
            TlsLib::Rustls if send => Syscall::RustlsWrite,
            TlsLib::Rustls => Syscall::RustlsRead,
        }
    }
}

/// Unspecified address, for connections whose open event was lost.
pub fn unknown_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0)
}

/// Totals of the kernel's per-CPU counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    /// Files saved before a counter existed hold fewer values: the rest read as 0.
    #[serde(deserialize_with = "counters_prefix")]
    pub values: [u64; KernelStat::COUNT],
}

impl KernelCounters {
    pub fn get(&self, stat: KernelStat) -> u64 {
        self.values.get(stat as usize).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KernelStat::ALL
            .iter()
            .map(|&stat| (stat.name(), self.get(stat)))
    }

    /// Events the kernel could not hand to us.
    pub fn dropped_events(&self) -> u64 {
        self.get(KernelStat::DataEventsDropped) + self.get(KernelStat::ControlEventsDropped)
    }

    /// Watched connections the kernel stopped looking at, by reason: (name, count).
    /// `no_slot` counts attempts (a socket tried again on its next call counts again).
    pub fn conns_skipped(&self) -> [(&'static str, u64); 4] {
        [
            ("filtered", self.get(KernelStat::ConnsFiltered)),
            ("not_http", self.get(KernelStat::ConnsNotHttp)),
            ("silent", self.get(KernelStat::ConnsSilent)),
            ("no_slot", self.get(KernelStat::ConnTableFull)),
        ]
    }

    /// Watched connections neither reported nor skipped: still open when the counters were
    /// read. Negative would mean a connection counted twice.
    pub fn conns_open(&self) -> i64 {
        let watched = self.get(KernelStat::ConnsWatched);
        let settled = self.get(KernelStat::ConnsOpened)
            + self.get(KernelStat::ConnsFiltered)
            + self.get(KernelStat::ConnsNotHttp)
            + self.get(KernelStat::ConnsSilent);
        i64::try_from(watched).unwrap_or(i64::MAX) - i64::try_from(settled).unwrap_or(i64::MAX)
    }
}

fn counters_prefix<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<[u64; KernelStat::COUNT], D::Error> {
    let saved = Vec::<u64>::deserialize(deserializer)?;
    let mut values = [0; KernelStat::COUNT];
    for (value, saved) in values.iter_mut().zip(saved) {
        *value = saved;
    }
    Ok(values)
}
