//! Output records of the HTTP engine: one [`HttpMessage`] per request or response seen.

use std::borrow::Cow;
use std::mem;
use std::num::NonZeroU32;
use std::sync::Arc;

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

/// The HTTP version a message travelled in (what the connection carries is `Protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    Http10,
    Http11,
    /// HTTP/2, cleartext (h2c) or over TLS.
    H2,
}

impl HttpVersion {
    /// `http/1.0`, `http/1.1` or `h2`, as ALPN names them.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "http/1.0",
            HttpVersion::Http11 => "http/1.1",
            HttpVersion::H2 => "h2",
        }
    }

    /// The version as HTTP writes it: `1.0`, `1.1` or `2`.
    pub fn version(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
            HttpVersion::H2 => "2",
        }
    }
}

/// What a gRPC call (`content-type: application/grpc*`) adds to its request and response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// Fully qualified service, from `:path` `/package.Service/Method`.
    pub service: Arc<str>,
    /// Method name, from the same path.
    pub method: Arc<str>,
    /// Responses: `grpc-status` from the trailers (or a trailers-only response); None when the
    /// call ended without it (reset, loss).
    pub status: Option<u32>,
    /// Responses: `grpc-message`, percent-decoded.
    pub message: Option<String>,
    /// Length-prefixed gRPC messages this record's direction carried (whole call for streams).
    pub messages: u64,
}

/// One HTTP message (HTTP/1.x or HTTP/2) as seen on the wire by the traced process. Every
/// protocol fills the same fields; the HTTP/2-only ones stay empty for HTTP/1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    pub kind: MessageKind,
    pub direction: Direction,
    /// Timestamp of the chunk carrying the message's first byte.
    pub first_ts_ns: u64,
    /// Timestamp of the chunk carrying the message's last byte.
    pub last_ts_ns: u64,
    pub proto: HttpVersion,
    /// HTTP/2 stream id (never 0 on a message); None for HTTP/1.
    pub stream: Option<NonZeroU32>,
    /// Request method; for responses, the method of the paired request. Standard methods
    /// are borrowed rather than allocated.
    pub method: Option<Cow<'static, str>>,
    /// Request target; for responses, the target of the paired request (shared with it).
    pub url: Option<Arc<str>>,
    pub status: Option<u16>,
    /// Common reason phrases are borrowed rather than allocated.
    pub reason: Option<Cow<'static, str>>,
    /// Headers in wire order; values decoded as lossy UTF-8. HTTP/2 pseudo-headers are not
    /// here: they fill `method`, `url`, `authority` and `status`.
    pub headers: Headers,
    /// Size on the wire: head + body including chunk framing; for HTTP/2 the frames of this
    /// message on its stream (frame headers and padding included).
    pub wire_bytes: u64,
    /// Decoded body length (after dechunking, before content decoding).
    pub body_len: u64,
    /// First `body_limit` body bytes (dechunked, or decompressed for a fully captured gzip/deflate body).
    pub body: Vec<u8>,
    /// The body is longer than `body`, or not all of it was captured.
    pub body_truncated: bool,
    /// False if any body byte was not captured (gap, capture limit, sendfile).
    pub body_captured: bool,
    /// First `raw_limit` captured bytes of this message as on the wire; HTTP/1 only: HTTP/2
    /// frames are binary and HPACK-compressed, beyond the redactor's reach, so they stay out.
    pub raw: Vec<u8>,
    /// Bytes of the head or framing were lost, or the connection closed mid-message.
    pub partial: bool,
    /// Responses only, when paired: response `last_ts_ns` - request `first_ts_ns`.
    pub latency_ns: Option<u64>,
    /// Per-connection exchange number shared by a request and its responses; None when unpaired.
    pub exchange: Option<u64>,
    /// A 1xx response that is not the final response.
    pub interim: bool,
    /// gRPC details; None for other traffic. Boxed: most messages are not gRPC.
    pub grpc: Option<Box<GrpcCall>>,
    /// Fields most messages leave empty (read them with the accessors below). Boxed so that
    /// a message stays within 256 bytes: every message is moved several times on its way.
    pub extra: Option<Box<Extra>>,
}

// Moves of larger values take a slower memcpy path; every message is moved several times.
const _: () = assert!(std::mem::size_of::<HttpMessage>() <= 256);

/// The rarely set fields of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// HTTP/2 `:authority`; for responses, that of the paired request. None for HTTP/1 (its
    /// `Host` is among the headers).
    pub authority: Option<Arc<str>>,
    /// HTTP/2 trailing HEADERS (gRPC's `grpc-status` lives here); empty when none.
    pub trailers: Headers,
    /// Header fields (headers and trailers) whose name or value could not be decoded exactly:
    /// HTTP/2, HPACK references to table entries from before capture began or lost to a gap;
    /// HTTP/1, field lines the parser skipped as invalid. They are left out of `headers`,
    /// never guessed.
    pub unknown_headers: u32,
    /// HTTP/2: the RST_STREAM error code when the stream was reset before this message ended.
    pub reset_code: Option<u32>,
}

impl HttpMessage {
    /// A message with nothing known beyond where it travelled: no head, no body, unpaired.
    pub fn new(
        kind: MessageKind,
        direction: Direction,
        version: HttpVersion,
        first_ts_ns: u64,
    ) -> Self {
        HttpMessage {
            kind,
            direction,
            first_ts_ns,
            last_ts_ns: first_ts_ns,
            proto: version,
            stream: None,
            method: None,
            url: None,
            status: None,
            reason: None,
            headers: Headers::default(),
            wire_bytes: 0,
            body_len: 0,
            body: Vec::new(),
            body_truncated: false,
            body_captured: true,
            raw: Vec::new(),
            partial: false,
            latency_ns: None,
            exchange: None,
            interim: false,
            grpc: None,
            extra: None,
        }
    }

    /// HTTP/2 `:authority` (see [`Extra::authority`]).
    pub fn authority(&self) -> Option<&str> {
        self.extra.as_ref()?.authority.as_deref()
    }

    /// HTTP/2 trailers, when there were any.
    pub fn trailers(&self) -> Option<&Headers> {
        self.extra
            .as_ref()
            .map(|extra| &extra.trailers)
            .filter(|trailers| !trailers.is_empty())
    }

    /// Header fields that could not be decoded exactly (see [`Extra::unknown_headers`]).
    pub fn unknown_headers(&self) -> u32 {
        self.extra.as_ref().map_or(0, |extra| extra.unknown_headers)
    }

    /// The RST_STREAM error code that ended this message early.
    pub fn reset_code(&self) -> Option<u32> {
        self.extra.as_ref()?.reset_code
    }

    /// The rarely set fields, created on first use.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_default()
    }
}

/// Header names and values in wire order, kept in one string: a message's headers cost two
/// allocations rather than two per header.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    ends: Vec<HeaderEnds>,
}

/// Where one header's name and value end in [`Headers::text`]; each starts where the
/// previous one ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderEnds {
    name: usize,
    value: usize,
}

impl Headers {
    /// Room for `headers` headers of `text_bytes` bytes in all.
    pub fn with_capacity(headers: usize, text_bytes: usize) -> Self {
        Headers {
            text: String::with_capacity(text_bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    /// Replaces the headers with wire fields whose values may not be UTF-8 (decoded as lossy
    /// UTF-8), reusing the room already there: the whole block is validated at once, and
    /// decoded field by field only when that fails.
    pub fn set_from_wire<'a, I>(&mut self, fields: I)
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
        I::IntoIter: Clone + ExactSizeIterator,
    {
        let fields = fields.into_iter();
        // The text grows as needed: its room is usually reused from an earlier message.
        let mut text = mem::take(&mut self.text).into_bytes();
        text.clear();
        self.ends.clear();
        self.ends.reserve(fields.len());
        for (name, value) in fields.clone() {
            text.extend_from_slice(name.as_bytes());
            let name = text.len();
            text.extend_from_slice(value);
            self.ends.push(HeaderEnds {
                name,
                value: text.len(),
            });
        }
        match String::from_utf8(text) {
            Ok(text) => self.text = text,
            Err(_) => {
                self.ends.clear();
                for (name, value) in fields {
                    self.push(name, &String::from_utf8_lossy(value));
                }
            }
        }
    }

    /// Removes every header, keeping the room.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Bytes of room held (text and index).
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * mem::size_of::<HeaderEnds>()
    }

    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name = self.text.len();
        self.text.push_str(value);
        self.ends.push(HeaderEnds {
            name,
            value: self.text.len(),
        });
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `index`th header as (name, value).
    pub fn get(&self, index: usize) -> Option<(&str, &str)> {
        let ends = self.ends.get(index)?;
        let start = index
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .map_or(0, |previous| previous.value);
        Some((
            self.text.get(start..ends.name)?,
            self.text.get(ends.name..ends.value)?,
        ))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |ends| {
            let name = self.text.get(start..ends.name).unwrap_or_default();
            let value = self.text.get(ends.name..ends.value).unwrap_or_default();
            start = ends.value;
            (name, value)
        })
    }

    /// Replaces the value of the `index`th header.
    pub fn set_value(&mut self, index: usize, value: &str) {
        let Some(&HeaderEnds {
            name: start,
            value: old_end,
        }) = self.ends.get(index)
        else {
            return;
        };
        self.text.replace_range(start..old_end, value);
        let new_end = start + value.len();
        for (i, ends) in self.ends.iter_mut().enumerate().skip(index) {
            if i > index {
                ends.name = ends.name - old_end + new_end;
            }
            ends.value = ends.value - old_end + new_end;
        }
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(headers: I) -> Self {
        let mut all = Headers::default();
        for (name, value) in headers {
            all.push(name.as_ref(), value.as_ref());
        }
        all
    }
}

/// Methods most requests use, kept as `&'static str` instead of one allocation each.
pub(super) const KNOWN_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// `text` borrowed from `known` when it is one of them (case included), else owned.
pub(super) fn borrowed_if_known(text: &str, known: &[&'static str]) -> Cow<'static, str> {
    match known.iter().find(|k| **k == text) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(text.to_owned()),
    }
}

/// Appends to `raw` as much of `bytes` as fits under `limit`.
pub(super) fn push_capped(raw: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let room = limit.saturating_sub(raw.len());
    raw.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_order_and_take_new_values() {
        let mut headers: Headers = [("Host", "a"), ("Cookie", "secret"), ("X", "")]
            .into_iter()
            .collect();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.get(1), Some(("Cookie", "secret")));
        headers.set_value(1, "[hidden]");
        headers.set_value(0, "");
        let all: Vec<_> = headers.iter().collect();
        assert_eq!(all, [("Host", ""), ("Cookie", "[hidden]"), ("X", "")]);
        assert_eq!(headers.get(3), None);
        let mut wire = headers.clone();
        wire.set_from_wire([("A", &b"1"[..]), ("B", b"\xff2"), ("C", b"")]);
        let all: Vec<_> = wire.iter().collect();
        assert_eq!(all, [("A", "1"), ("B", "\u{fffd}2"), ("C", "")]);
        wire.set_from_wire([("A", &b"1"[..]), ("B", b"caf\xc3\xa9")]);
        assert_eq!(wire.len(), 2);
        assert_eq!(wire.get(1), Some(("B", "café")));
        wire.clear();
        assert!(wire.is_empty() && wire.capacity() > 0);
        assert_eq!(
            format!("{headers:?}"),
            r#"[("Host", ""), ("Cookie", "[hidden]"), ("X", "")]"#
        );
    }
}
