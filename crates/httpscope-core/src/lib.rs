//! httpscope's pure pipeline: kernel events in, HTTP records out. Needs no root.
//!
//! events (decode) → conn (table) → http (reassembly, parsing, pairing) →
//! record (with its route) → sink (files, summary, …). `eventlog` records and replays events.

pub mod analysis;
pub mod cgroup;
pub mod conn;
pub mod direction;
pub mod event;
pub mod eventlog;
pub mod format;
pub mod http;
pub mod pipeline;
pub mod record;
pub mod redact;
pub mod route;
pub mod sink;
pub mod stats;
