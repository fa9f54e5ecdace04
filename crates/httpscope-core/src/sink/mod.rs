//! Sinks: where finished HTTP records go (files, summaries; later metrics, OTLP, pcap, TUI).

mod line;
mod summary;

pub use line::{LineFormat, LineSink};
pub use summary::{EndpointSummary, SummarySink};

use std::io;

use thiserror::Error;

use crate::record::ExchangeRecord;
use crate::stats::Report;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("writing output: {0}")]
    Io(#[from] io::Error),
}

/// A consumer of records. Called on the capture thread: keep `record` cheap.
pub trait Sink {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError>;

    /// Make everything recorded so far visible (called about once a second).
    fn flush(&mut self) -> Result<(), SinkError>;

    /// Capture is over: write anything final.
    fn finish(&mut self, report: &Report) -> Result<(), SinkError> {
        let _ = report;
        self.flush()
    }
}
