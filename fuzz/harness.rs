//! Fuzz harnesses, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! regression test `crates/httpscope-core/tests/fuzz_regressions.rs`, which replays every saved
//! input through these very functions. Each takes the fuzzer's raw bytes and panics only on a
//! bug: a panic inside httpscope-core, or a broken output invariant checked here.
#![allow(dead_code)]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use httpscope_core::direction::Direction;
use httpscope_core::eventlog::{EventFileReader, EventRecord};
use httpscope_core::format::{json, logfmt, Timestamps};
use httpscope_core::http::{
    DataChunk, Emit, HeaderFields, HttpConfig, HttpConnection, HttpMessage, Outbox, ParseCounters,
};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::record::ExchangeRecord;
use httpscope_core::sink::{Sink, SinkError};

const BODY_LIMIT: usize = 64;
const RAW_LIMIT: usize = 64;
/// Records read from one event file at most (a fuzz input is small anyway).
const MAX_FILE_RECORDS: usize = 10_000;

/// Formats every record both ways and checks what a hostile peer must never achieve: a record
/// spanning several lines, invalid JSON, or kept bytes beyond the configured limits.
struct CheckingSink;

impl Sink for CheckingSink {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        check_message(record.message, BODY_LIMIT, RAW_LIMIT);
        let mut line = Vec::new();
        logfmt::write_line(record, &mut Timestamps::default(), &mut line);
        assert_one_line(&line, "logfmt");
        line.clear();
        json::write_line(record, &mut line);
        let line = assert_one_line(&line, "json");
        if let Err(err) = serde_json::from_str::<serde_json::Value>(line) {
            panic!("invalid JSON record ({err}): {line}");
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Also checks the line is UTF-8, and returns it as text.
fn assert_one_line<'a>(line: &'a [u8], format: &str) -> &'a str {
    let line = match std::str::from_utf8(line) {
        Ok(line) => line,
        Err(err) => panic!("{format} record is not UTF-8 ({err}): {line:?}"),
    };
    let body = line.strip_suffix('\n').unwrap_or(line);
    assert!(
        !body.contains('\n') && !body.contains('\r'),
        "{format} record spans several lines: {line:?}"
    );
    line
}

fn check_message(msg: &HttpMessage, body_limit: usize, raw_limit: usize) {
    assert!(
        msg.body.len() <= body_limit,
        "body of {} bytes kept, limit {body_limit}",
        msg.body.len()
    );
    assert!(
        msg.raw.len() <= raw_limit,
        "raw of {} bytes kept, limit {raw_limit}",
        msg.raw.len()
    );
}

/// A pipeline with small limits, so eviction, idle timeouts and caps are all reachable.
fn small_pipeline() -> Pipeline {
    Pipeline::new(
        PipelineConfig {
            http: HttpConfig {
                body_limit: BODY_LIMIT,
                raw_limit: RAW_LIMIT,
                max_head_bytes: 4096,
                header_fields: HeaderFields::All,
            },
            max_connections: 8,
            idle_timeout: Duration::from_secs(2),
            ..PipelineConfig::default()
        },
        vec![Box::new(CheckingSink)],
    )
}

/// Target `decode`: the whole input as one raw kernel record, then the input cut into records
/// by u16 little-endian length prefixes, each decoded and run through a pipeline.
pub fn decode(data: &[u8]) {
    let _ = httpscope_core::event::decode(data);
    let mut pipeline = small_pipeline();
    let mut rest = data;
    while let [lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (record, next) = tail.split_at(len);
        pipeline
            .process_raw(record)
            .expect("the checking sink never fails");
        rest = next;
    }
    pipeline.finish().expect("the checking sink never fails");
}

/// Target `eventlog`: the input as an event file, every record replayed through a pipeline.
pub fn eventlog(data: &[u8]) {
    let Ok(mut reader) = EventFileReader::new(data) else {
        return;
    };
    let mut pipeline = small_pipeline();
    for _ in 0..MAX_FILE_RECORDS {
        match reader.next_record() {
            Ok(Some(EventRecord::KernelEvent(raw))) => pipeline
                .process_raw(raw)
                .expect("the checking sink never fails"),
            Ok(Some(EventRecord::KernelCounters(counters))) => {
                pipeline.set_kernel_counters(counters)
            }
            Ok(None) | Err(_) => break,
        }
    }
    pipeline.finish().expect("the checking sink never fails");
}

/// One step of the `http_engine` target on a single connection.
#[derive(Debug, Arbitrary)]
enum Op {
    /// The next syscall of a direction: `skip` bytes lost before it (a dropped event), then
    /// `bytes` captured, then `lost` more bytes the syscall moved but did not copy.
    Data {
        send: bool,
        skip: u8,
        lost: u8,
        bytes: Vec<u8>,
    },
    /// A syscall whose offset lies `back` bytes before the expected one (a replayed overlap).
    Rewind {
        send: bool,
        back: u8,
        bytes: Vec<u8>,
    },
    /// A huge jump: a gap of more than any buffer.
    Jump { send: bool, by: u32 },
    /// close(), EOF or process exit; later bytes must be ignored.
    Close,
}

#[derive(Debug, Arbitrary)]
struct EngineInput {
    body_limit: u8,
    raw_limit: u8,
    max_head_bytes: u16,
    mid_stream: bool,
    ops: Vec<Op>,
}

/// Target `http_engine`: an arbitrary sequence of chunks, gaps, overlaps and closes fed to one
/// `HttpConnection`; every emitted message must respect the configured limits.
pub fn http_engine(data: &[u8]) {
    let Ok(input) = EngineInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let config = HttpConfig {
        body_limit: usize::from(input.body_limit),
        raw_limit: usize::from(input.raw_limit),
        max_head_bytes: usize::from(input.max_head_bytes).max(1),
        header_fields: HeaderFields::All,
    };
    let mut conn = HttpConnection::new(input.mid_stream);
    let mut counters = ParseCounters::default();
    let mut out = Outbox::default();
    // Next offset of each direction: [send, recv].
    let mut next = [0u64; 2];
    let mut ts = 1_000u64;
    for op in &input.ops {
        ts += 1_000;
        let (send, offset, len, bytes) = match op {
            Op::Data {
                send,
                skip,
                lost,
                bytes,
            } => {
                let offset = next[usize::from(!send)] + u64::from(*skip);
                let len = bytes.len() as u64 + u64::from(*lost);
                (*send, offset, len, bytes.as_slice())
            }
            Op::Rewind { send, back, bytes } => {
                let offset = next[usize::from(!send)].saturating_sub(u64::from(*back));
                (*send, offset, bytes.len() as u64, bytes.as_slice())
            }
            Op::Jump { send, by } => {
                let offset = next[usize::from(!send)] + u64::from(*by);
                (*send, offset, 1, &b"G"[..])
            }
            Op::Close => {
                conn.on_close(&mut Emit::new(&config, &mut counters, &mut out, ts));
                continue;
            }
        };
        let dir = usize::from(!send);
        next[dir] = next[dir].max(offset + len);
        let chunk = DataChunk {
            direction: if send {
                Direction::Send
            } else {
                Direction::Recv
            },
            offset,
            len,
            data: bytes,
            elided: false,
        };
        conn.on_data(&chunk, &mut Emit::new(&config, &mut counters, &mut out, ts));
        for msg in out.messages() {
            check_message(msg, config.body_limit, config.raw_limit);
        }
        out.recycle();
    }
    conn.on_close(&mut Emit::new(&config, &mut counters, &mut out, ts + 1_000));
    for msg in out.messages() {
        check_message(msg, config.body_limit, config.raw_limit);
    }
}

/// One HTTP/2 frame of the `h2` target: a real frame header around fuzzed bytes, so the
/// fuzzer spends its time in frame payloads and HPACK blocks rather than in framing.
#[derive(Debug, Arbitrary)]
struct H2Frame {
    send: bool,
    kind: u8,
    flags: u8,
    stream: u8,
    payload: Vec<u8>,
    /// Split the frame into two syscalls at this byte (modulo its length).
    split: u8,
    /// Bytes of the frame that the capture loses at its end.
    lost: u8,
    /// Raw bytes instead of a frame.
    raw: bool,
}

#[derive(Debug, Arbitrary)]
struct H2Input {
    max_head_bytes: u16,
    mid_stream: bool,
    frames: Vec<H2Frame>,
}

/// Target `h2`: the client preface, then fuzzed frames both ways (HPACK blocks, SETTINGS,
/// CONTINUATION runs, resets, lost tails) through `HttpConnection`; nothing may panic and
/// every record keeps to its limits and formats as one line.
pub fn h2(data: &[u8]) {
    let Ok(input) = H2Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let config = HttpConfig {
        body_limit: BODY_LIMIT,
        raw_limit: RAW_LIMIT,
        max_head_bytes: usize::from(input.max_head_bytes).max(1),
        header_fields: HeaderFields::All,
    };
    let mut conn = HttpConnection::new(input.mid_stream);
    let mut counters = ParseCounters::default();
    let mut out = Outbox::default();
    let mut next = [0u64; 2];
    let mut ts = 1_000u64;
    let mut feed = |send: bool, bytes: &[u8], lost: u64, out: &mut Outbox| {
        ts += 1_000;
        let dir = usize::from(!send);
        let len = bytes.len() as u64 + lost;
        let chunk = DataChunk {
            direction: if send {
                Direction::Send
            } else {
                Direction::Recv
            },
            offset: next[dir],
            len,
            data: bytes,
            // Some lost tails come as the kernel's capture budget would mark them.
            elided: lost % 2 == 1,
        };
        next[dir] += len;
        conn.on_data(&chunk, &mut Emit::new(&config, &mut counters, out, ts));
    };
    if !input.mid_stream {
        feed(true, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, &mut out);
    }
    for frame in &input.frames {
        let mut bytes = if frame.raw {
            frame.payload.clone()
        } else {
            let len = frame.payload.len() as u32;
            let mut bytes = len.to_be_bytes()[1..].to_vec();
            bytes.extend([frame.kind % 11, frame.flags]);
            bytes.extend(u32::from(frame.stream).to_be_bytes());
            bytes.extend(&frame.payload);
            bytes
        };
        let lost = usize::from(frame.lost).min(bytes.len() / 4);
        bytes.truncate(bytes.len() - lost);
        let split = usize::from(frame.split) % (bytes.len() + 1);
        feed(frame.send, &bytes[..split], 0, &mut out);
        feed(frame.send, &bytes[split..], lost as u64, &mut out);
        for msg in out.messages() {
            check_message(msg, config.body_limit, config.raw_limit);
        }
        out.recycle();
    }
    let mut sink = CheckingSink;
    let info = httpscope_core::conn::ConnInfo::unknown(1, 1);
    conn.on_close(&mut Emit::new(&config, &mut counters, &mut out, ts + 1_000));
    for msg in out.messages() {
        let record = ExchangeRecord {
            unix_ns: 0,
            tid: 1,
            conn: &info,
            role: conn.role(),
            message: msg,
            route: msg.url.as_deref(),
        };
        let _ = sink.record(&record);
    }
}
