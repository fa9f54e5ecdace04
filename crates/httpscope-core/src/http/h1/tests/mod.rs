//! Engine tests through the public API, fed chunk by chunk the way the kernel side would.
#![allow(clippy::unwrap_used)]

mod bodies;
mod elided;
mod exchanges;
mod gaps;
mod pairing;
mod protocol;

use crate::direction::Direction;
use crate::http::{
    DataChunk, Emit, HttpConfig, HttpConnection, HttpMessage, Outbox, ParseCounters,
};

const SEND: Direction = Direction::Send;
const RECV: Direction = Direction::Recv;

/// One connection plus the kernel-side bookkeeping: offsets per direction and a clock.
struct Feed {
    conn: HttpConnection,
    config: HttpConfig,
    out: Outbox,
    counters: ParseCounters,
    offsets: [u64; 2],
    ts: u64,
}

impl Feed {
    fn new() -> Self {
        Self::with(false, HttpConfig::default())
    }

    fn with(mid_stream: bool, config: HttpConfig) -> Self {
        Feed {
            conn: HttpConnection::new(mid_stream),
            config,
            out: Outbox::default(),
            counters: ParseCounters::default(),
            offsets: [0; 2],
            ts: 0,
        }
    }

    /// One syscall of `len` bytes of which `data` was captured.
    fn chunk(&mut self, dir: Direction, data: &[u8], len: u64) -> &mut Self {
        self.record(dir, data, len, false)
    }

    /// One kernel record of `len` bytes: `data`, then the rest lost or `elided` on purpose.
    fn record(&mut self, dir: Direction, data: &[u8], len: u64, elided: bool) -> &mut Self {
        self.ts += 10;
        let chunk = DataChunk {
            direction: dir,
            offset: self.offsets[dir.index()],
            len,
            data,
            elided,
        };
        self.offsets[dir.index()] += len;
        self.deliver(&chunk, self.ts)
    }

    /// `chunk` as it is, at time `ts`: the offsets and clock are left alone.
    fn deliver(&mut self, chunk: &DataChunk<'_>, ts: u64) -> &mut Self {
        let mut cx = Emit::new(&self.config, &mut self.counters, &mut self.out, ts);
        self.conn.on_data(chunk, &mut cx);
        self
    }

    /// A record of `data` followed by `elided` body bytes the kernel counted, not copied.
    fn elided(&mut self, dir: Direction, data: &[u8], elided: u64) -> &mut Self {
        self.record(dir, data, data.len() as u64 + elided, true)
    }

    fn send(&mut self, data: &[u8]) -> &mut Self {
        self.chunk(SEND, data, data.len() as u64)
    }

    fn recv(&mut self, data: &[u8]) -> &mut Self {
        self.chunk(RECV, data, data.len() as u64)
    }

    /// The kernel dropped `n` bytes' worth of chunks in `dir`.
    fn lose(&mut self, dir: Direction, n: u64) -> &mut Self {
        self.offsets[dir.index()] += n;
        self
    }

    /// Feeds `data` in pieces of `step` bytes.
    fn split(&mut self, dir: Direction, data: &[u8], step: usize) -> &mut Self {
        for piece in data.chunks(step) {
            self.chunk(dir, piece, piece.len() as u64);
        }
        self
    }

    fn close(&mut self) -> &mut Self {
        self.ts += 10;
        let mut cx = Emit::new(&self.config, &mut self.counters, &mut self.out, self.ts);
        self.conn.on_close(&mut cx);
        self
    }

    fn take(&mut self) -> Vec<HttpMessage> {
        self.out.take()
    }
}

/// A message with its timing fields cleared, for comparing differently chunked feeds.
fn timeless(mut m: HttpMessage) -> HttpMessage {
    m.first_ts_ns = 0;
    m.last_ts_ns = 0;
    m.latency_ns = m.latency_ns.map(|_| 0);
    m
}

fn header<'a>(m: &'a HttpMessage, name: &str) -> Option<&'a str> {
    m.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}
