//! Endpoint analysis for `httpscope top`, `stats` and `report`: an [`EndpointTable`]
//! (or the report's [`ReportData`]) fed live through [`EndpointSink`] or offline from files.

mod histogram;
mod observation;
mod report;
mod sink;
mod table;

#[cfg(test)]
mod tests;

pub use histogram::{all_latency_buckets, latency_buckets, LatencyBucket};
pub use observation::{parse_rfc3339_ns, Observation};
pub use report::{Binned, ReportData, Series, SlowExchange, SLOWEST};
pub use sink::{EndpointSink, Observer, SharedTable};
pub use table::{
    is_failure, EndpointKey, EndpointStats, EndpointTable, ExchangeView, MessageView, HISTORY_SECS,
    LATEST_EXCHANGES, MAX_ENDPOINTS, OTHER_ROUTES, RATE_WINDOW_SECS,
};
