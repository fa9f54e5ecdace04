//! HTTP as both protocol engines share it: the message model every sink reads, body
//! decoding, protocol sniffing and per-direction stream reassembly. `h1` and `h2` are the
//! engines; `connection` hands a connection from one to the other.

mod body;
mod connection;
mod h1;
mod h2;
mod message;
mod outbox;
mod sniff;
mod stream;

pub use connection::HttpConnection;
pub use message::{Extra, GrpcCall, Headers, HttpMessage, HttpVersion, MessageKind};
pub use outbox::Outbox;

use crate::direction::Direction;
use crate::redact::HeaderNames;

/// Limits of what the engine keeps per message and buffers per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Body bytes kept per message (decoded bytes for gzip/deflate bodies).
    pub body_limit: usize,
    /// Wire bytes kept per message in `HttpMessage::raw`.
    pub raw_limit: usize,
    /// Longest head accepted (also bounds chunked trailers).
    pub max_head_bytes: usize,
    /// Which header fields (and HTTP/2 trailers) a message keeps.
    pub header_fields: HeaderFields,
}

/// Which header fields (and HTTP/2 trailers) a message keeps: those some sink or decoder
/// reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderFields {
    /// Every field, for sinks that show them (JSON, the live view).
    All,
    /// Only those a finished message is still read for (see `decoder_field`) and those
    /// these names match. A sink that shows no field (logfmt) still needs the redactor's:
    /// a field it hides is what tells it that an HTTP/1 `raw` holds a secret. Metrics
    /// mode, which keeps no `raw`, names none.
    Only(HeaderNames),
}

/// A field read from a finished message: `Upgrade` (h2c), or gRPC's status and message (in
/// the trailers, or the headers of a trailers-only response). Told apart by length first:
/// every field of every message is checked.
fn decoder_field(name: &str) -> bool {
    match name.len() {
        7 => name.eq_ignore_ascii_case("upgrade"),
        11 => name.eq_ignore_ascii_case("grpc-status"),
        12 => name.eq_ignore_ascii_case("grpc-message"),
        _ => false,
    }
}

impl HeaderFields {
    #[inline]
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            HeaderFields::All => true,
            HeaderFields::Only(names) => decoder_field(name) || names.matches(name),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: 1024,
            raw_limit: 256,
            max_head_bytes: 64 * 1024,
            header_fields: HeaderFields::All,
        }
    }
}

/// The bytes of one socket syscall of a connection (its time is `Emit::ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub direction: Direction,
    /// Position of this syscall's first byte in its direction's stream.
    pub offset: u64,
    /// Bytes the syscall moved.
    pub len: u64,
    /// The captured prefix of those bytes (`data.len() <= len`).
    pub data: &'a [u8],
    /// The bytes after `data` were left out on purpose: the kernel framed them as HTTP body
    /// (the capture budget). The decoders still check that they lie inside a body.
    pub elided: bool,
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
    /// Body bytes the kernel counted without copying them (the capture budget), found inside
    /// a body of known extent as expected (elsewhere they count as `gap_bytes`).
    pub elided_bytes: u64,
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
    /// Requests beyond the outstanding-request limit (pairing stops for the connection), or
    /// HTTP/2 streams beyond the tracked-stream limit (the oldest is ended as partial).
    pub queue_overflows: u64,
    /// HTTP/1 field lines skipped as invalid; their messages carry `unknown_headers`.
    pub h1_invalid_fields: u64,
    /// HTTP/2 header fields that could not be resolved (HPACK state from before capture
    /// began, or lost); their messages carry `unknown_headers`.
    pub h2_unknown_headers: u64,
    /// HTTP/2 header blocks that did not decode (their HPACK table is relearned from there).
    pub h2_hpack_errors: u64,
    /// HTTP/2 RST_STREAM frames.
    pub h2_rst_streams: u64,
    /// HTTP/2 PUSH_PROMISE frames (the pushed responses are reported unpaired).
    pub h2_push_promises: u64,
    /// HTTP/2 GOAWAY frames.
    pub h2_goaways: u64,
}

/// What an engine works with while it handles one event (a chunk, or the close): the limits
/// it keeps to, the counters of what it could not see or parse, the messages it finishes, and
/// the event's time.
#[derive(Debug)]
pub struct Emit<'a> {
    pub config: &'a HttpConfig,
    pub counters: &'a mut ParseCounters,
    pub out: &'a mut Outbox,
    /// When the event happened (CLOCK_MONOTONIC ns): the syscall's time, or the close's.
    pub ts: u64,
}

impl<'a> Emit<'a> {
    pub fn new(
        config: &'a HttpConfig,
        counters: &'a mut ParseCounters,
        out: &'a mut Outbox,
        ts: u64,
    ) -> Self {
        Emit {
            config,
            counters,
            out,
            ts,
        }
    }
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
    /// HTTP/2: the client preface, a 101 to h2c, or frames on a connection joined mid-way.
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
