//! Counters of what was captured, lost and not understood, kernel and userspace.

use serde::Serialize;

pub use crate::event::KernelCounters;
use crate::http::ParseCounters;

/// What the userspace pipeline saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineCounters {
    pub events: u64,
    pub decode_errors: u64,
    pub data_bytes: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    /// Closed by us: idle too long, or over the connection limit.
    pub connections_evicted: u64,
    /// Data for a connection whose open event never arrived.
    pub connections_without_open: u64,
    pub records: u64,
    /// Connections that speak HTTP/2 (decoded like HTTP/1).
    pub connections_http2: u64,
    /// Connections on a watched port that turned out not to be HTTP.
    pub connections_tls: u64,
    pub connections_other: u64,
}

/// Everything counted during one capture or replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kernel: KernelCounters,
    pub pipeline: PipelineCounters,
    pub parse: ParseCounters,
}
