//! Recognising streams: the protocol of a connection's first bytes, and the chunks where a
//! lost direction can pick up message boundaries again.

use super::message::MessageKind;

/// Longest method token accepted when resyncing onto a request line.
const MAX_RESYNC_METHOD: usize = 24;
/// The HTTP/2 connection preface up to the point where it is unambiguous.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What the first bytes of a connection look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sniff {
    /// Too few bytes to tell.
    Undecided,
    /// A valid HTTP/1 request or status line.
    Http1,
    Http2,
    Tls,
    Other,
}

/// Classifies the accumulated first bytes of a stream (never called on mid-stream bytes).
pub(super) fn classify(buf: &[u8]) -> Sniff {
    match buf {
        [] | [0x16] => return Sniff::Undecided,
        [0x16, 0x03, ..] => return Sniff::Tls,
        _ => {}
    }
    match h2_server_preface(buf) {
        Some(true) => return Sniff::Http2,
        None => return Sniff::Undecided,
        Some(false) => {}
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf.get(..n) == H2_PREFACE.get(..n) {
        return if n == H2_PREFACE.len() {
            Sniff::Http2
        } else {
            Sniff::Undecided
        };
    }
    let line = |kind: MessageKind| {
        // No header slots: TooManyHeaders then means the first line parsed fine.
        let mut none: [httparse::Header<'_>; 0] = [];
        let res = match kind {
            MessageKind::Request => httparse::Request::new(&mut none).parse(buf),
            MessageKind::Response => httparse::Response::new(&mut none).parse(buf),
        };
        match res {
            Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
                Sniff::Http1
            }
            // Only complete lines end in '\n', and the first line comes first.
            Ok(httparse::Status::Partial) if buf.contains(&b'\n') => Sniff::Http1,
            Ok(httparse::Status::Partial) => Sniff::Undecided,
            Err(_) => Sniff::Other,
        }
    };
    match (line(MessageKind::Request), line(MessageKind::Response)) {
        (Sniff::Http1, _) | (_, Sniff::Http1) => Sniff::Http1,
        (Sniff::Other, Sniff::Other) => Sniff::Other,
        _ => Sniff::Undecided,
    }
}

/// Whether `buf` starts with an HTTP/2 server connection preface: a SETTINGS frame (type 4,
/// no flags, stream 0) whose length is a multiple of 6 within the default maximum frame size
/// (RFC 9113 §3.4, §6.5). An h2c server may send it before it reads the client's preface, so
/// its own first bytes are this frame. None while the bytes so far are a prefix of one.
fn h2_server_preface(buf: &[u8]) -> Option<bool> {
    const HEADER: usize = 9;
    const MAX_LEN: usize = 16_384;
    for (i, &b) in buf.iter().take(HEADER).enumerate() {
        let ok = match i {
            0 => b == 0,
            2 => {
                let len = usize::from(buf[1]) << 8 | usize::from(b);
                len <= MAX_LEN && len % 6 == 0
            }
            3 => b == 0x04,
            4 => b == 0x00,
            5 => b & 0x7f == 0,
            6..=8 => b == 0,
            _ => true,
        };
        if !ok {
            return Some(false);
        }
    }
    (buf.len() >= HEADER).then_some(true)
}

/// Whether `data` starts with a TLS record header (content type 20..=23, version 3.x).
pub(super) fn looks_like_tls_record(data: &[u8]) -> bool {
    matches!(data, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// Whether `data` plausibly starts a message of `kind` (either kind when unknown).
///
/// Used only to resync, so it is stricter than the parser: an upper-case method token.
pub(super) fn looks_like_start(kind: Option<MessageKind>, data: &[u8]) -> bool {
    let response = || data.starts_with(b"HTTP/1.");
    let request = || {
        let token = data
            .iter()
            .take_while(|&&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
            .count();
        (1..=MAX_RESYNC_METHOD).contains(&token)
            && data.get(token) == Some(&b' ')
            && data.get(token + 1).is_some_and(|&b| b != b' ')
    };
    match kind {
        Some(MessageKind::Response) => response(),
        Some(MessageKind::Request) => request(),
        None => response() || request(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_needs_enough_bytes() {
        assert_eq!(classify(b"GET"), Sniff::Undecided);
        assert_eq!(classify(b"H"), Sniff::Undecided);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Sniff::Http1);
        assert_eq!(classify(b"GET / HTTP/1.1\r\nHost: x"), Sniff::Http1);
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n"), Sniff::Http1);
        assert_eq!(classify(b"PRI * HTT"), Sniff::Undecided);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Sniff::Http2);
        assert_eq!(classify(&[0x16]), Sniff::Undecided);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), Sniff::Tls);
        assert_eq!(classify(b"\x00\x01\x02garbage"), Sniff::Other);
        assert_eq!(classify(b"GET / HTTP/2.0\r\n"), Sniff::Other);
    }

    #[test]
    fn h2_server_preface_is_http2() {
        // Node.js's h2c server sends its SETTINGS frame before reading anything.
        let settings = b"\x00\x00\x18\x04\x00\x00\x00\x00\x00\x00\x01\x00\x00\x10\x00";
        assert_eq!(classify(settings), Sniff::Http2);
        assert_eq!(
            classify(&settings[..9]),
            Sniff::Http2,
            "an empty SETTINGS is enough"
        );
        assert_eq!(
            classify(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
            Sniff::Http2
        );
        for n in 1..9 {
            assert_eq!(classify(&settings[..n]), Sniff::Undecided, "{n} bytes");
        }
        // Not SETTINGS, an ACK, another stream, or a length no SETTINGS frame has.
        assert_eq!(
            classify(b"\x00\x00\x18\x01\x04\x00\x00\x00\x01"),
            Sniff::Other
        );
        assert_eq!(
            classify(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"),
            Sniff::Other
        );
        assert_eq!(
            classify(b"\x00\x00\x06\x04\x00\x00\x00\x00\x03"),
            Sniff::Other
        );
        assert_eq!(
            classify(b"\x00\x00\x07\x04\x00\x00\x00\x00\x00"),
            Sniff::Other
        );
        assert_eq!(classify(b"\x00\x01\x02garbage"), Sniff::Other);
    }

    #[test]
    fn resync_starts_are_strict() {
        assert!(looks_like_start(
            Some(MessageKind::Request),
            b"GET /x HTTP/1.1\r\n"
        ));
        assert!(looks_like_start(
            Some(MessageKind::Request),
            b"VERSION-CONTROL /"
        ));
        assert!(!looks_like_start(
            Some(MessageKind::Request),
            b"get / HTTP/1.1"
        ));
        assert!(!looks_like_start(Some(MessageKind::Request), b"GET"));
        assert!(!looks_like_start(
            Some(MessageKind::Request),
            b"HTTP/1.1 200 OK"
        ));
        assert!(looks_like_start(
            Some(MessageKind::Response),
            b"HTTP/1.1 200 OK"
        ));
        assert!(!looks_like_start(
            Some(MessageKind::Response),
            b"GET / HTTP/1.1"
        ));
        assert!(looks_like_start(None, b"HTTP/1.0 404 Not Found"));
        assert!(looks_like_start(None, b"POST /a HTTP/1.1"));
    }
}
