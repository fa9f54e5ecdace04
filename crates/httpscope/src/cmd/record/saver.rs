//! `--save-events`: the raw kernel events of a live capture, in the file
//! `httpscope replay` reads.

use std::fs::File;
use std::io::BufWriter;

use anyhow::Context;
use httpscope_core::event::{trimmed, KernelCounters};
use httpscope_core::eventlog::{EventFileHeader, EventFileWriter, FORMAT_VERSION};

use crate::cli::RecordArgs;
use crate::output::create_private;

pub(crate) struct EventSaver {
    writer: EventFileWriter<BufWriter<File>>,
}

impl EventSaver {
    /// The event file `--save-events` names, if it does (mode 0600: it holds the
    /// captured bytes unredacted).
    pub(crate) fn create(
        args: &RecordArgs,
        wall_clock_offset_ns: i64,
    ) -> anyhow::Result<Option<Self>> {
        let Some(path) = &args.save_events else {
            return Ok(None);
        };
        let file = create_private(path, "event file")?;
        let header = EventFileHeader {
            format_version: FORMAT_VERSION,
            wall_clock_offset_ns,
            ports: args.watched_ports(),
            capture_bytes: args.capture_bytes,
            recorded_by: format!("httpscope {}", env!("CARGO_PKG_VERSION")),
        };
        let writer = EventFileWriter::new(BufWriter::new(file), &header)?;
        Ok(Some(Self { writer }))
    }

    /// One ring-buffer record, without the unused tail of its reservation.
    pub(crate) fn write(&mut self, raw: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_event(trimmed(raw))
            .context("writing the event file")
    }

    /// Ends the file with the kernel's counters, as last read.
    pub(crate) fn finish(mut self, counters: &KernelCounters) -> anyhow::Result<()> {
        self.writer.write_counters(counters)?;
        self.writer.flush()?;
        Ok(())
    }
}
