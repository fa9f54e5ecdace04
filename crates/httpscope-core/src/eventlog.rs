//! Event files: raw kernel records saved while capturing, read back for replay.
//!
//! Layout: 16-byte magic, u32 header length, JSON [`EventFileHeader`], then
//! records of `[u8 kind][u32 length][bytes]`, little-endian. Records hold the
//! kernel's bytes untouched, so replay exercises the same decoder as capture.

use std::io::{self, BufReader, BufWriter, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::stats::KernelCounters;

pub const MAGIC: &[u8; 16] = b"HTTPSCOPE-EVENTS";
pub const FORMAT_VERSION: u32 = 1;
const MAX_HEADER_LEN: u32 = 1 << 20;
const MAX_RECORD_LEN: u32 = 16 << 20;

const RECORD_KERNEL_EVENT: u8 = 1;
const RECORD_KERNEL_COUNTERS: u8 = 2;

/// What a reader needs to interpret the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFileHeader {
    pub format_version: u32,
    /// Add to a kernel CLOCK_MONOTONIC timestamp to get Unix time in ns.
    pub wall_clock_offset_ns: i64,
    pub ports: Vec<u16>,
    pub capture_bytes: u32,
    pub recorded_by: String,
}

#[derive(Debug, Error)]
pub enum EventFileError {
    #[error("not an httpscope event file (bad magic)")]
    BadMagic,
    #[error("event file format {0} is not supported (this build reads {FORMAT_VERSION})")]
    Version(u32),
    #[error("event file header is invalid: {0}")]
    Header(String),
    #[error("record of {0} bytes is larger than any kernel record")]
    RecordTooLarge(u32),
    #[error("unknown record kind {0}")]
    UnknownRecord(u8),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One record read back from an event file; an event borrows the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecord<'a> {
    KernelEvent(&'a [u8]),
    KernelCounters(KernelCounters),
}

pub struct EventFileWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> EventFileWriter<W> {
    pub fn new(out: W, header: &EventFileHeader) -> Result<Self, EventFileError> {
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let json = serde_json::to_vec(header).map_err(|e| EventFileError::Header(e.to_string()))?;
        out.write_all(MAGIC)?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        Ok(Self { out })
    }

    pub fn write_event(&mut self, raw: &[u8]) -> Result<(), EventFileError> {
        self.write_record(RECORD_KERNEL_EVENT, raw)
    }

    /// Stores the kernel's counters, so replay reports the capture's drops.
    pub fn write_counters(&mut self, counters: &KernelCounters) -> Result<(), EventFileError> {
        let json =
            serde_json::to_vec(counters).map_err(|e| EventFileError::Header(e.to_string()))?;
        self.write_record(RECORD_KERNEL_COUNTERS, &json)
    }

    fn write_record(&mut self, kind: u8, bytes: &[u8]) -> Result<(), EventFileError> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&len| len <= MAX_RECORD_LEN)
            .ok_or(EventFileError::RecordTooLarge(u32::MAX))?;
        self.out.write_all(&[kind])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), EventFileError> {
        self.out.flush()?;
        Ok(())
    }
}

pub struct EventFileReader<R: Read> {
    input: BufReader<R>,
    header: EventFileHeader,
    /// The latest record's bytes, reused from record to record.
    record: Vec<u8>,
    /// A last record cut short (the recorder was killed mid-write).
    pub truncated_tail: bool,
}

impl<R: Read> EventFileReader<R> {
    pub fn new(input: R) -> Result<Self, EventFileError> {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let mut magic = [0u8; 16];
        input
            .read_exact(&mut magic)
            .map_err(|_| EventFileError::BadMagic)?;
        if &magic != MAGIC {
            return Err(EventFileError::BadMagic);
        }
        let len = read_u32(&mut input)?;
        if len > MAX_HEADER_LEN {
            return Err(EventFileError::Header(format!("{len}-byte header")));
        }
        let mut json = vec![0u8; len as usize];
        input.read_exact(&mut json)?;
        let header: EventFileHeader =
            serde_json::from_slice(&json).map_err(|e| EventFileError::Header(e.to_string()))?;
        if header.format_version != FORMAT_VERSION {
            return Err(EventFileError::Version(header.format_version));
        }
        Ok(Self {
            input,
            header,
            record: Vec::new(),
            truncated_tail: false,
        })
    }

    pub fn header(&self) -> &EventFileHeader {
        &self.header
    }

    /// The next record, `None` at the end. A cut-short last record ends the file.
    pub fn next_record(&mut self) -> Result<Option<EventRecord<'_>>, EventFileError> {
        let mut kind = [0u8; 1];
        if self.input.read(&mut kind)? == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        if self.input.read_exact(&mut len).is_err() {
            self.truncated_tail = true;
            return Ok(None);
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_RECORD_LEN {
            return Err(EventFileError::RecordTooLarge(len));
        }
        let bytes = &mut self.record;
        bytes.resize(len as usize, 0);
        if self.input.read_exact(bytes).is_err() {
            self.truncated_tail = true;
            return Ok(None);
        }
        match kind[0] {
            RECORD_KERNEL_EVENT => Ok(Some(EventRecord::KernelEvent(bytes))),
            RECORD_KERNEL_COUNTERS => serde_json::from_slice(bytes)
                .map(|c| Some(EventRecord::KernelCounters(c)))
                .map_err(|e| EventFileError::Header(e.to_string())),
            other => Err(EventFileError::UnknownRecord(other)),
        }
    }
}

fn read_u32(input: &mut impl Read) -> Result<u32, EventFileError> {
    let mut buf = [0u8; 4];
    input.read_exact(&mut buf)?;
    Ok(u32::from_le_bytes(buf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header() -> EventFileHeader {
        EventFileHeader {
            format_version: FORMAT_VERSION,
            wall_clock_offset_ns: 42,
            ports: vec![8080],
            capture_bytes: 4096,
            recorded_by: "test".into(),
        }
    }

    #[test]
    fn round_trips_events_and_counters() {
        let mut buf = Vec::new();
        let mut counters = KernelCounters::default();
        counters.values[1] = 7;
        {
            let mut writer = EventFileWriter::new(&mut buf, &header()).unwrap();
            writer.write_event(b"abc").unwrap();
            writer.write_counters(&counters).unwrap();
            writer.flush().unwrap();
        }
        let mut reader = EventFileReader::new(buf.as_slice()).unwrap();
        assert_eq!(reader.header(), &header());
        assert_eq!(
            reader.next_record().unwrap(),
            Some(EventRecord::KernelEvent(&b"abc"[..]))
        );
        assert_eq!(
            reader.next_record().unwrap(),
            Some(EventRecord::KernelCounters(counters))
        );
        assert_eq!(reader.next_record().unwrap(), None);
        assert!(!reader.truncated_tail);
    }

    #[test]
    fn cut_short_tail_ends_the_file() {
        let mut buf = Vec::new();
        {
            let mut writer = EventFileWriter::new(&mut buf, &header()).unwrap();
            writer.write_event(b"complete").unwrap();
            writer.write_event(b"cut short").unwrap();
            writer.flush().unwrap();
        }
        buf.truncate(buf.len() - 3);
        let mut reader = EventFileReader::new(buf.as_slice()).unwrap();
        assert!(reader.next_record().unwrap().is_some());
        assert_eq!(reader.next_record().unwrap(), None);
        assert!(reader.truncated_tail);
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(
            EventFileReader::new(&b"GET / HTTP/1.1\r\n\r\n"[..]),
            Err(EventFileError::BadMagic)
        ));
    }
}
