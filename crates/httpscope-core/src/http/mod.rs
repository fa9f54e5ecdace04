//! Per-connection HTTP/1.0/1.1 engine: reassembles each direction's syscall chunks, parses
//! messages with httparse, and pairs responses with their requests.
//!
//! # Pairing
//!
//! Request heads are queued FIFO; each final response pairs with the oldest queued request,
//! and 1xx responses other than 101 share that request's exchange without consuming it.
//! The queue is trusted only while nothing that could hide a message was lost: a gap or parse
//! error in a head or in chunk framing (either direction), a gap between messages, or capture
//! starting mid-stream. After such a loss the queue is dropped (its requests count as
//! `unanswered_requests`), and requests and responses are emitted unpaired (`exchange` None;
//! responses count as `unpaired_responses`) until a safe point: a request head completes while
//! every request seen since the loss has had a final response, the response direction is at a
//! message boundary it has observed, and no more than one request has ever been outstanding.
//! A client that has never pipelined sends a request only after reading the previous response,
//! so the next final response answers it. Once two requests were outstanding at once (real
//! pipelining, or a lost response followed by the next request, which looks the same) or the
//! queue overflowed, a loss leaves the connection unpaired until it closes.

mod body;
mod chunked;
mod head;
mod message;
mod pairing;
mod parser;
mod sniff;
mod stream;

#[cfg(test)]
mod tests;

pub use message::{GrpcCall, Headers, HttpMessage, MessageKind, Proto};

use crate::direction::Direction;
use pairing::Pairing;
use parser::{Ctx, DirParser, Link};

/// Limits of what the engine keeps per message and buffers per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Body bytes kept per message (decoded bytes for gzip/deflate bodies).
    pub body_limit: usize,
    /// Wire bytes kept per message in `HttpMessage::raw`.
    pub raw_limit: usize,
    /// Longest head accepted (also bounds chunked trailers).
    pub max_head_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: 1024,
            raw_limit: 256,
            max_head_bytes: 64 * 1024,
        }
    }
}

/// The bytes of one socket syscall of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub ts_ns: u64,
    pub direction: Direction,
    /// Position of this syscall's first byte in its direction's stream.
    pub offset: u64,
    /// Bytes the syscall moved.
    pub len: u64,
    /// The captured prefix of those bytes (`data.len() <= len`).
    pub data: &'a [u8],
}

/// What the engine could not see or make sense of, summed over connections by the caller.
#[derive(Default, Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseCounters {
    /// Messages emitted.
    pub messages: u64,
    /// Unparseable heads or chunk framing (including over-long heads).
    pub parse_errors: u64,
    /// Bytes of connections that are HTTP/2, TLS or not HTTP.
    pub non_http_bytes: u64,
    /// Bytes lost: kernel-dropped chunks and uncaptured syscall tails.
    pub gap_bytes: u64,
    /// Times a direction found a message start again after losing track (or starting mid-stream).
    pub resyncs: u64,
    /// Bytes seen twice (offset below the expected one) and ignored.
    pub overlap_bytes: u64,
    /// Response records emitted without a paired request.
    pub unpaired_responses: u64,
    /// Requests that never got a paired response: queued at close, or dropped from the queue
    /// when pairing became uncertain.
    pub unanswered_requests: u64,
    /// Messages cut short: emitted with `partial`, or dropped because their head was incomplete.
    pub partial_messages: u64,
    /// Heads longer than `max_head_bytes`.
    pub head_too_large: u64,
    /// Captured bytes discarded while resyncing or after a parse error.
    pub skipped_bytes: u64,
    /// Bytes after a protocol switch (101, CONNECT 2xx).
    pub tunnel_bytes: u64,
    /// Fully captured gzip/deflate bodies that failed to decode (raw bytes kept instead).
    pub decode_errors: u64,
    /// Requests beyond the outstanding-request limit (pairing stops for the connection).
    pub queue_overflows: u64,
}

/// Which side of the exchange the traced process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The process sends requests.
    Client,
    /// The process receives requests.
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// What a connection carries, as far as the engine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Not enough bytes to tell yet.
    Unknown,
    Http1,
    /// HTTP/2 with prior knowledge (the client preface).
    Http2,
    /// TLS records: the plaintext is not visible here.
    Tls,
    /// Something other than HTTP.
    Other,
    /// HTTP/1 until 101 Switching Protocols or a CONNECT 2xx; opaque bytes after.
    Tunnel,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Unknown => "unknown",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Tls => "tls",
            Protocol::Other => "other",
            Protocol::Tunnel => "tunnel",
        }
    }

    /// Bytes are counted, not parsed.
    fn is_opaque(self) -> bool {
        !matches!(self, Protocol::Unknown | Protocol::Http1)
    }
}

/// The HTTP/1 engine of one TCP connection of one traced process.
#[derive(Debug)]
pub struct HttpConnection {
    send: DirParser,
    recv: DirParser,
    link: Link,
    closed: bool,
}

impl HttpConnection {
    /// `mid_stream`: the connection existed before capture started, so the first bytes may be
    /// mid-message: resync.
    pub fn new(mid_stream: bool) -> Self {
        HttpConnection {
            send: DirParser::new(Direction::Send, mid_stream),
            recv: DirParser::new(Direction::Recv, mid_stream),
            link: Link {
                protocol: Protocol::Unknown,
                request_dir: None,
                pairing: Pairing::new(mid_stream),
                mid_stream,
            },
            closed: false,
        }
    }

    /// Feeds the bytes of one syscall; complete messages are appended to `out`.
    pub fn on_data(
        &mut self,
        config: &HttpConfig,
        chunk: &DataChunk<'_>,
        out: &mut Vec<HttpMessage>,
        counters: &mut ParseCounters,
    ) {
        let counter = match self.link.protocol {
            _ if self.closed => &mut counters.skipped_bytes,
            Protocol::Tunnel => &mut counters.tunnel_bytes,
            p if p.is_opaque() => &mut counters.non_http_bytes,
            _ => {
                let (me, peer) = match chunk.direction {
                    Direction::Send => (&mut self.send, &mut self.recv),
                    Direction::Recv => (&mut self.recv, &mut self.send),
                };
                let placed = me.stream.place(chunk, counters);
                let mut cx = Ctx {
                    config,
                    counters,
                    out,
                    link: &mut self.link,
                    ts: chunk.ts_ns,
                    peer_idle: peer.idle(),
                };
                me.feed(placed, &mut cx);
                if cx.link.protocol.is_opaque() {
                    peer.enter_passthrough(&mut cx);
                }
                return;
            }
        };
        *counter = counter.saturating_add(chunk.len);
    }

    /// The connection closed (close(), EOF seen by the process, or the process exited): ends
    /// close-delimited bodies, flushes incomplete messages as partial, counts unanswered requests.
    pub fn on_close(
        &mut self,
        config: &HttpConfig,
        ts_ns: u64,
        out: &mut Vec<HttpMessage>,
        counters: &mut ParseCounters,
    ) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let mut cx = Ctx {
            config,
            counters,
            out,
            link: &mut self.link,
            ts: ts_ns,
            peer_idle: false,
        };
        // Requests first: a request cut short is older than the response it provoked.
        let (first, second) = match cx.link.request_dir {
            Some(Direction::Recv) => (&mut self.recv, &mut self.send),
            _ => (&mut self.send, &mut self.recv),
        };
        first.close(&mut cx);
        second.close(&mut cx);
        cx.link.pairing.on_close(cx.counters);
    }

    /// Client if this process sends requests, Server if it receives them; None until a head parses.
    pub fn role(&self) -> Option<Role> {
        self.link.request_dir.map(|d| match d {
            Direction::Send => Role::Client,
            Direction::Recv => Role::Server,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.link.protocol
    }
}
