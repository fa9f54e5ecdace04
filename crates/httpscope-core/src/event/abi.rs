//! Rust mirrors of `httpscope.h`, the structs the BPF programs write.
//!
//! Keep in sync with crates/httpscope-capture/bpf/httpscope.h: the asserts
//! below and the `_Static_assert`s in the BPF C pin the same sizes.

use std::mem::{offset_of, size_of};

pub const MAX_PORTS: usize = 16;
pub const MAX_CAPTURE: u32 = 32768;
pub const COMM_LEN: usize = 16;
pub const ADDR_LEN: usize = 16;
/// `conn_open_event.fd` when the socket backend could not tell the fd.
pub const FD_UNKNOWN: u32 = u32::MAX;

pub const EVENT_KIND_DATA: u32 = 1;
pub const EVENT_KIND_CONN_OPEN: u32 = 2;
pub const EVENT_KIND_CONN_CLOSE: u32 = 3;
pub const EVENT_KIND_PROCESS_EXIT: u32 = 4;

/// `binary_event.reason` (the loader's own ring buffer, not the event stream).
pub const BINARY_EXEC: u32 = 1;
pub const BINARY_LIBRARIES: u32 = 2;

/// A process exec'd or loaded libraries: it may hold TLS code not hooked yet.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawBinaryEvent {
    pub tgid: u32,
    pub reason: u32,
}

const _: () = assert!(size_of::<RawBinaryEvent>() == 8);

pub const DIRECTION_SEND: u8 = 0;
pub const DIRECTION_RECV: u8 = 1;

pub const DATA_FLAG_NOT_CAPTURED: u8 = 1;
pub const DATA_FLAG_TRUNCATED: u8 = 2;
/// TLS plaintext from a TLS library call: its own per-direction stream.
pub const DATA_FLAG_TLS: u8 = 4;
/// The bytes after the captured prefix were left out on purpose by the capture budget: the
/// kernel framed them as HTTP body beyond the body limit.
pub const DATA_FLAG_ELIDED: u8 = 8;

pub const ORIGIN_ACCEPT: u16 = 1;
pub const ORIGIN_CONNECT: u16 = 2;
pub const ORIGIN_EXISTING: u16 = 3;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

#[repr(C)]
pub struct RawEventHeader {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub reserved: u32,
    pub ts_ns: u64,
    pub conn_id: u64,
}

#[repr(C)]
pub struct RawDataEvent {
    pub header: RawEventHeader,
    pub stream_offset: u64,
    pub len: u64,
    pub captured_len: u32,
    pub syscall: u16,
    pub direction: u8,
    pub flags: u8,
}

#[repr(C)]
pub struct RawConnOpenEvent {
    pub header: RawEventHeader,
    pub fd: u32,
    pub family: u16,
    pub origin: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub reserved: u32,
    pub local_addr: [u8; ADDR_LEN],
    pub remote_addr: [u8; ADDR_LEN],
    pub comm: [u8; COMM_LEN],
    /// Appended: event files written before it end at `comm`.
    pub cgroup_id: u64,
}

#[repr(C)]
pub struct RawConnCloseEvent {
    pub header: RawEventHeader,
    pub sent_bytes: u64,
    pub recv_bytes: u64,
}

const _: () = assert!(size_of::<RawEventHeader>() == 32);
const _: () = assert!(size_of::<RawDataEvent>() == 56);
const _: () = assert!(offset_of!(RawDataEvent, captured_len) == 48);
const _: () = assert!(offset_of!(RawDataEvent, flags) == 55);
const _: () = assert!(size_of::<RawConnOpenEvent>() == 104);
const _: () = assert!(offset_of!(RawConnOpenEvent, cgroup_id) == 96);
const _: () = assert!(offset_of!(RawConnOpenEvent, local_addr) == 48);
const _: () = assert!(size_of::<RawConnCloseEvent>() == 48);

/// Per-CPU kernel counters, in `enum httpscope_stat` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelStat {
    EventsSubmitted = 0,
    DataEventsDropped = 1,
    DataBytesDropped = 2,
    ControlEventsDropped = 3,
    SyscallsTruncated = 4,
    BytesNotCopied = 5,
    PeeksIgnored = 6,
    ConnTableFull = 7,
    CallTableFull = 8,
    FdLookupFailed = 9,
    ConnsOpened = 10,
    SyscallsTraced = 11,
    TlsCallsTraced = 12,
    CiphertextSuppressed = 13,
    TlsFdUnknown = 14,
    HookedSyscalls = 15,
    BudgetFallbacks = 16,
    BytesElided = 17,
    ConnsWatched = 18,
    ConnsFiltered = 19,
    ConnsNotHttp = 20,
    ConnsSilent = 21,
    NestedTlsCalls = 22,
}

const _: () = assert!(KernelStat::NestedTlsCalls as usize + 1 == KernelStat::COUNT);

impl KernelStat {
    /// `STAT_COUNT`: the size of the kernel's counter array.
    pub const COUNT: usize = 23;
    pub const ALL: [KernelStat; Self::COUNT] = [
        KernelStat::EventsSubmitted,
        KernelStat::DataEventsDropped,
        KernelStat::DataBytesDropped,
        KernelStat::ControlEventsDropped,
        KernelStat::SyscallsTruncated,
        KernelStat::BytesNotCopied,
        KernelStat::PeeksIgnored,
        KernelStat::ConnTableFull,
        KernelStat::CallTableFull,
        KernelStat::FdLookupFailed,
        KernelStat::ConnsOpened,
        KernelStat::SyscallsTraced,
        KernelStat::TlsCallsTraced,
        KernelStat::CiphertextSuppressed,
        KernelStat::TlsFdUnknown,
        KernelStat::HookedSyscalls,
        KernelStat::BudgetFallbacks,
        KernelStat::BytesElided,
        KernelStat::ConnsWatched,
        KernelStat::ConnsFiltered,
        KernelStat::ConnsNotHttp,
        KernelStat::ConnsSilent,
        KernelStat::NestedTlsCalls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelStat::EventsSubmitted => "events_submitted",
            KernelStat::DataEventsDropped => "data_events_dropped",
            KernelStat::DataBytesDropped => "data_bytes_dropped",
            KernelStat::ControlEventsDropped => "control_events_dropped",
            KernelStat::SyscallsTruncated => "syscalls_truncated",
            KernelStat::BytesNotCopied => "bytes_not_copied",
            KernelStat::PeeksIgnored => "peeks_ignored",
            KernelStat::ConnTableFull => "conn_table_full",
            KernelStat::CallTableFull => "call_table_full",
            KernelStat::FdLookupFailed => "fd_lookup_failed",
            KernelStat::ConnsOpened => "conns_opened",
            KernelStat::SyscallsTraced => "syscalls_traced",
            KernelStat::TlsCallsTraced => "tls_calls_traced",
            KernelStat::CiphertextSuppressed => "ciphertext_suppressed",
            KernelStat::TlsFdUnknown => "tls_fd_unknown",
            KernelStat::HookedSyscalls => "hooked_syscalls",
            KernelStat::BudgetFallbacks => "budget_fallbacks",
            KernelStat::BytesElided => "bytes_elided",
            KernelStat::ConnsWatched => "conns_watched",
            KernelStat::ConnsFiltered => "conns_filtered",
            KernelStat::ConnsNotHttp => "conns_not_http",
            KernelStat::ConnsSilent => "conns_silent",
            KernelStat::NestedTlsCalls => "nested_tls_calls",
        }
    }
}
