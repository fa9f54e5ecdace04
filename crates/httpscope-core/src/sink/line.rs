//! A sink writing one text line per HTTP message to a file or stdout.

use std::io::Write;

use super::{Sink, SinkError};
use crate::format::{json, logfmt, Timestamps};
use crate::record::ExchangeRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Logfmt,
    Json,
}

/// Buffers whole lines and writes them with `write_all`, so no line is ever split.
pub struct LineSink<W: Write> {
    out: W,
    format: LineFormat,
    pending: Vec<u8>,
    timestamps: Timestamps,
}

/// Pending bytes that trigger a write before the periodic flush.
const WRITE_THRESHOLD: usize = 64 * 1024;

impl<W: Write> LineSink<W> {
    pub fn new(out: W, format: LineFormat) -> Self {
        Self {
            out,
            format,
            pending: Vec::with_capacity(WRITE_THRESHOLD * 2),
            timestamps: Timestamps::default(),
        }
    }

    fn write_pending(&mut self) -> Result<(), SinkError> {
        if !self.pending.is_empty() {
            let result = self.out.write_all(&self.pending);
            self.pending.clear();
            result?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for LineSink<W> {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        match self.format {
            LineFormat::Logfmt => {
                logfmt::write_line(record, &mut self.timestamps, &mut self.pending)
            }
            LineFormat::Json => json::write_line(record, &mut self.pending),
        }
        if self.pending.len() >= WRITE_THRESHOLD {
            self.write_pending()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.write_pending()?;
        self.out.flush()?;
        Ok(())
    }
}
