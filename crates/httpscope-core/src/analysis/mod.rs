//! Endpoint analysis for `httpscope top` and `httpscope stats`: an
//! [`EndpointTable`] fed live through [`EndpointSink`] or offline from files.

mod histogram;
mod observation;
mod sink;
mod table;

#[cfg(test)]
mod tests;

pub use histogram::{latency_buckets, LatencyBucket};
pub use observation::{parse_rfc3339_ns, Observation};
pub use sink::{EndpointSink, SharedTable};
pub use table::{
    EndpointKey, EndpointStats, EndpointTable, ExchangeView, MessageView, LATEST_EXCHANGES,
    MAX_ENDPOINTS, OTHER_ROUTES, RATE_WINDOW_SECS,
};
