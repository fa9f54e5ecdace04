//! Message starts: accumulating a head across chunks, sniffing the protocol from the first
//! bytes, and turning a parsed head into an in-flight message.

use std::mem;
use std::sync::Arc;

use super::super::framing::{self, Framing};
use super::super::head::{self, Head, Parsed};
use super::{DirParser, InFlight, Link, State};
use crate::http::body::BodySink;
use crate::http::message::{push_capped, HttpMessage, HttpVersion, MessageKind};
use crate::http::sniff::{self, Sniff};
use crate::http::{Emit, Protocol};

/// Head bytes sniffed on every append while the protocol is unknown; beyond this only when a
/// line ends, so a long first line arriving byte by byte is not re-parsed per byte.
const SNIFF_EVERY_APPEND: usize = 32;

impl DirParser {
    pub(super) fn head_bytes(&mut self, data: &[u8], cx: &mut Emit<'_>, link: &mut Link) -> usize {
        let max = cx.config.max_head_bytes;
        if self.head.is_empty() {
            // Stray CRLFs between messages are allowed (RFC 9112 §2.2) and belong to none.
            let blank = data
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let rest = data.get(blank..).unwrap_or_default();
            if rest.is_empty() {
                return data.len();
            }
            self.head_ts = cx.ts;
            let window = rest.get(..max).unwrap_or(rest);
            let undecided = link.detecting()
                && match self.sniff(window, link) {
                    Sniff::Undecided => true,
                    Sniff::Http1 => false,
                    Sniff::Http2 | Sniff::Tls | Sniff::Other => return 0,
                };
            // Fast path: parse in place; only heads split across chunks are copied.
            let kind = self.head_kind(link, window);
            let parsed = if undecided {
                Parsed::Partial
            } else {
                head::parse(kind, window, cx.out.headers(), &cx.config.header_fields)
            };
            match parsed {
                Parsed::Complete(head, end) => {
                    let (bytes, after) = rest.split_at(end.min(rest.len()));
                    return blank + end + self.on_head(kind, head, bytes, after, cx, link);
                }
                Parsed::Invalid => {
                    self.bad_head(0, cx, link);
                    return blank;
                }
                Parsed::Partial if window.len() < rest.len() => {
                    self.too_large(cx, link);
                    return blank;
                }
                Parsed::Partial => {}
            }
            self.head.extend_from_slice(rest);
            self.scanned = rest.len();
            return data.len();
        }
        let old = self.head.len();
        let added = data.get(..max.saturating_sub(old)).unwrap_or(data);
        self.head.extend_from_slice(added);
        if link.detecting() && (old < SNIFF_EVERY_APPEND || added.contains(&b'\n')) {
            let buffered = mem::take(&mut self.head);
            let sniffed = self.sniff(&buffered, link);
            self.head = buffered;
            if !matches!(sniffed, Sniff::Undecided | Sniff::Http1) {
                let mut head = mem::take(&mut self.head);
                head.truncate(old);
                self.pass(&head, cx, link);
                return 0;
            }
        }
        match head::find_head_end(&self.head, self.scanned) {
            Some(end) => {
                // Freed rather than kept: most heads arrive whole and never use the buffer.
                let buffered = mem::take(&mut self.head);
                let bytes = buffered.get(..end).unwrap_or_default();
                let kind = self.head_kind(link, bytes);
                match head::parse(kind, bytes, cx.out.headers(), &cx.config.header_fields) {
                    // httparse must end the head at the blank line we found.
                    Parsed::Complete(head, len) if len == end => {
                        self.on_head(kind, head, bytes, &[], cx, link);
                    }
                    _ => self.bad_head(end, cx, link),
                }
                end.saturating_sub(old)
            }
            None if added.len() < data.len() || self.head.len() >= max => {
                self.too_large(cx, link);
                added.len()
            }
            None => {
                self.scanned = self.head.len();
                added.len()
            }
        }
    }

    /// Classifies the connection from its first bytes; not HTTP/1 means passthrough from now.
    fn sniff(&mut self, bytes: &[u8], link: &mut Link) -> Sniff {
        let sniffed = sniff::classify(bytes);
        match sniffed {
            Sniff::Undecided => {}
            Sniff::Http1 => link.protocol = Protocol::Http1,
            Sniff::Http2 => self.not_http(Protocol::Http2, link),
            Sniff::Tls => self.not_http(Protocol::Tls, link),
            Sniff::Other => self.not_http(Protocol::Other, link),
        }
        sniffed
    }

    fn too_large(&mut self, cx: &mut Emit<'_>, link: &mut Link) {
        cx.counters.head_too_large += 1;
        cx.counters.parse_errors += 1;
        cx.counters.skipped_bytes += self.head.len() as u64;
        self.head = Vec::new();
        self.lose(cx, link);
    }

    /// Kind of the message whose head starts with `bytes` in this direction.
    fn head_kind(&self, link: &Link, bytes: &[u8]) -> MessageKind {
        match self.kind(link) {
            Some(kind) => kind,
            None if bytes.starts_with(b"HTTP/") => MessageKind::Response,
            None => MessageKind::Request,
        }
    }

    /// Handles a parsed head; `bytes` is the head on the wire, blank line included, and `after`
    /// what follows it in this chunk. Returns the bytes of `after` used: a body of known length
    /// that is all there completes the message at once.
    fn on_head(
        &mut self,
        kind: MessageKind,
        head: Head<'_>,
        bytes: &[u8],
        after: &[u8],
        cx: &mut Emit<'_>,
        link: &mut Link,
    ) -> usize {
        let max_trailer = cx.config.max_head_bytes;
        let mut paired = None;
        let framing = match kind {
            MessageKind::Request => {
                framing::request_framing(&head, max_trailer).map(|f| (f, false))
            }
            // Response framing depends on the request method (HEAD, CONNECT), known only by
            // pairing; a head rejected after pairing is a loss, which resets pairing anyway.
            MessageKind::Response => {
                let status = head.status.unwrap_or_default();
                paired = link.pairing.on_response(status);
                let method = paired.as_ref().map(|p| &*p.method);
                framing::response_framing(status, method, &head, max_trailer)
            }
        };
        let Some((framing, tunnel_after)) = framing else {
            self.bad_head(bytes.len(), cx, link);
            return 0;
        };
        link.protocol = Protocol::Http1;
        let request_dir = match kind {
            MessageKind::Request => self.dir,
            MessageKind::Response => self.dir.opposite(),
        };
        link.request_dir.get_or_insert(request_dir);
        let sink = BodySink::new(head.encoding, cx.config.body_limit, cx.out.bytes(0));
        // Size `raw` once for head and body so body bytes do not reallocate it.
        let wire_len = match framing {
            Framing::Length(n) => (bytes.len() as u64).saturating_add(n),
            Framing::Chunked(_) | Framing::Close => u64::MAX,
        };
        let raw_limit = cx.config.raw_limit;
        let mut raw = cx
            .out
            .bytes(usize::try_from(wire_len).map_or(raw_limit, |n| n.min(raw_limit)));
        push_capped(&mut raw, bytes, raw_limit);
        let version = if head.version_minor == 0 {
            HttpVersion::Http10
        } else {
            HttpVersion::Http11
        };
        let skipped_fields = head.skipped_fields;
        // Built in place: every move of a message copies all of it.
        let mut fl = InFlight {
            msg: HttpMessage {
                last_ts_ns: cx.ts,
                method: head.method,
                url: head.url.map(|url| self.shared_url(url)),
                status: head.status,
                reason: head.reason,
                headers: head.headers,
                wire_bytes: bytes.len() as u64,
                raw,
                ..HttpMessage::new(kind, self.dir, version, self.head_ts)
            },
            framing,
            sink,
            request_ts: None,
            tunnel_after,
        };
        let msg = &mut fl.msg;
        if skipped_fields > 0 {
            msg.extra_mut().unknown_headers = skipped_fields;
            cx.counters.h1_invalid_fields += u64::from(skipped_fields);
        }
        match kind {
            MessageKind::Request => {
                // Cheap copies: a standard method is borrowed and the url is shared.
                msg.exchange = link.pairing.on_request(
                    msg.method.clone().unwrap_or_default(),
                    msg.url.clone().unwrap_or_else(|| Arc::from("")),
                    self.head_ts,
                    link.peer_idle,
                    cx.counters,
                );
            }
            MessageKind::Response => {
                let status = msg.status.unwrap_or_default();
                msg.interim = (100..200).contains(&status) && status != 101;
                if let Some(req) = paired {
                    msg.exchange = Some(req.exchange);
                    msg.method = Some(req.method);
                    msg.url = Some(req.url);
                    fl.request_ts = Some(req.request_first_ts_ns);
                }
            }
        }
        match fl.framing {
            // Whole here (or empty): emitted without being parked, which costs an allocation.
            Framing::Length(len) if len <= after.len() as u64 => {
                let (used, _, _) = fl.take_body(after, cx);
                self.state = State::Head;
                self.emit(fl, true, cx, link);
                used
            }
            _ => {
                self.state = State::Body(Box::new(fl));
                0
            }
        }
    }

    /// `url` as shared text: the previous request's when they are the same (a keep-alive
    /// client repeating a request), so that a repeat allocates nothing.
    fn shared_url(&mut self, url: &str) -> Arc<str> {
        match &self.last_url {
            Some(last) if **last == *url => last.clone(),
            _ => self.last_url.insert(Arc::from(url)).clone(),
        }
    }

    fn bad_head(&mut self, len: usize, cx: &mut Emit<'_>, link: &mut Link) {
        cx.counters.parse_errors += 1;
        cx.counters.skipped_bytes += len as u64;
        self.lose(cx, link);
    }
}
