//! Output records of the HTTP engine: one [`HttpMessage`] per request or response seen.

use crate::direction::Direction;

/// Whether a message is a request or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Request,
    Response,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Request => "request",
            MessageKind::Response => "response",
        }
    }
}

/// One HTTP/1.x message as seen on the wire by the traced process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    pub kind: MessageKind,
    pub direction: Direction,
    /// Timestamp of the chunk carrying the message's first byte.
    pub first_ts_ns: u64,
    /// Timestamp of the chunk carrying the message's last byte.
    pub last_ts_ns: u64,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Request method; for responses, the method of the paired request.
    pub method: Option<String>,
    /// Request target; for responses, the target of the paired request.
    pub url: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    /// Headers in wire order; values decoded as lossy UTF-8.
    pub headers: Vec<(String, String)>,
    /// Size on the wire: head + body including chunk framing.
    pub wire_bytes: u64,
    /// Decoded body length (after dechunking, before content decoding).
    pub body_len: u64,
    /// First `body_limit` body bytes (dechunked, or decompressed for a fully captured gzip/deflate body).
    pub body: Vec<u8>,
    /// The body is longer than `body`, or not all of it was captured.
    pub body_truncated: bool,
    /// False if any body byte was not captured (gap, capture limit, sendfile).
    pub body_captured: bool,
    /// First `raw_limit` captured bytes of this message as on the wire.
    pub raw: Vec<u8>,
    /// Bytes of the head or framing were lost, or the connection closed mid-message.
    pub partial: bool,
    /// Responses only, when paired: response `last_ts_ns` - request `first_ts_ns`.
    pub latency_ns: Option<u64>,
    /// Per-connection exchange number shared by a request and its responses; None when unpaired.
    pub exchange: Option<u64>,
    /// A 1xx response that is not the final response.
    pub interim: bool,
}

/// Appends to `raw` as much of `bytes` as fits under `limit`.
pub(super) fn push_capped(raw: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let room = limit.saturating_sub(raw.len());
    raw.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
}
