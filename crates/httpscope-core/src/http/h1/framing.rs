//! Body framing of HTTP/1 messages: how a head says where its body ends.

use super::chunked::Chunked;
use super::head::{ContentLength, Head, Transfer};

/// How the body of a message is delimited.
#[derive(Debug)]
pub(super) enum Framing {
    /// This many body bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// The body runs until the connection closes (responses only).
    Close,
}

/// Framing of a request body; None if the head makes it undeterminable.
pub(super) fn request_framing(head: &Head<'_>, max_trailer: usize) -> Option<Framing> {
    match (head.transfer, head.content_length) {
        (_, ContentLength::Invalid) => None,
        (Transfer::Chunked, _) => Some(Framing::Chunked(Chunked::new(max_trailer))),
        // A request cannot be close-delimited, so its length is unknowable (RFC 9112 §6.3).
        (Transfer::Other, _) => None,
        (Transfer::Absent, ContentLength::Value(n)) => Some(Framing::Length(n)),
        (Transfer::Absent, ContentLength::Absent) => Some(Framing::Length(0)),
    }
}

/// Framing of a response body given the method of its request (when known), and whether the
/// connection becomes a tunnel after it; None if the head makes it undeterminable.
pub(super) fn response_framing(
    status: u16,
    method: Option<&str>,
    head: &Head<'_>,
    max_trailer: usize,
) -> Option<(Framing, bool)> {
    let connect_ok = method == Some("CONNECT") && (200..300).contains(&status);
    if status == 101 || connect_ok {
        return Some((Framing::Length(0), true));
    }
    if (100..200).contains(&status) || status == 204 || status == 304 || method == Some("HEAD") {
        return Some((Framing::Length(0), false));
    }
    let framing = match (head.transfer, head.content_length) {
        (_, ContentLength::Invalid) => return None,
        (Transfer::Chunked, _) => Framing::Chunked(Chunked::new(max_trailer)),
        (Transfer::Other, _) | (Transfer::Absent, ContentLength::Absent) => Framing::Close,
        (Transfer::Absent, ContentLength::Value(n)) => Framing::Length(n),
    };
    Some((framing, false))
}
