//! Message heads: finding where a head ends and parsing it with httparse.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use crate::http::body::Encoding;
use crate::http::message::{borrowed_if_known, Headers, MessageKind, KNOWN_METHODS};
use crate::http::HeaderFields;

/// Headers parsed on the stack before falling back to a heap array.
const STACK_HEADERS: usize = 64;

/// Index just past the blank line ending a head in `buf`, searching from about `from`.
///
/// `from` is where the previous search stopped; we back up two bytes so a terminator split
/// across appends is still found, which keeps 1-byte-per-chunk heads linear.
pub(super) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(2);
    loop {
        let nl = i + buf.get(i..)?.iter().position(|&b| b == b'\n')?;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
}

/// Reason phrases most responses use, kept as `&'static str` instead of one allocation each.
const KNOWN_REASONS: [&str; 12] = [
    "OK",
    "Created",
    "Accepted",
    "No Content",
    "Moved Permanently",
    "Found",
    "Not Modified",
    "Bad Request",
    "Unauthorized",
    "Forbidden",
    "Not Found",
    "Internal Server Error",
];

/// Content-Length as declared by the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContentLength {
    Absent,
    Value(u64),
    /// Repeated or not a plain decimal number.
    Invalid,
}

/// Transfer-Encoding as declared by the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transfer {
    Absent,
    /// The final coding is chunked.
    Chunked,
    /// Present, but the final coding is not chunked.
    Other,
}

/// A parsed head with the header facts that decide framing.
#[derive(Debug)]
pub(super) struct Head<'b> {
    pub version_minor: u8,
    pub method: Option<Cow<'static, str>>,
    /// The request target, borrowed from the parsed bytes.
    pub url: Option<&'b str>,
    pub status: Option<u16>,
    pub reason: Option<Cow<'static, str>>,
    pub headers: Headers,
    pub content_length: ContentLength,
    pub transfer: Transfer,
    pub encoding: Encoding,
    /// Field lines the parser skipped as invalid (a control byte in a value, a bad name):
    /// no parsed field names them, but the head's bytes still hold them.
    pub skipped_fields: u32,
}

/// Outcome of parsing the start of a message.
#[derive(Debug)]
pub(super) enum Parsed<'b> {
    /// A head of this many bytes (up to and including the blank line).
    Complete(Head<'b>, usize),
    /// Valid so far; more bytes needed.
    Partial,
    /// Not valid HTTP/1.x.
    Invalid,
}

/// Parses the head at the start of `bytes`; the fields that `keep` names go to `headers`
/// (reused for its room).
pub(super) fn parse<'b>(
    kind: MessageKind,
    bytes: &'b [u8],
    mut headers: Headers,
    keep: &HeaderFields,
) -> Parsed<'b> {
    // Uninitialised slots: initialising 64 headers would cost more than parsing a small head.
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let res = match parse_with(kind, bytes, &mut stack, &mut headers, keep) {
        Err(httparse::Error::TooManyHeaders) => {
            // Rare: size the slots by the lines of this head (each header ends with '\n').
            let end = find_head_end(bytes, 0).unwrap_or(bytes.len());
            let lines = bytes
                .get(..end)
                .unwrap_or(bytes)
                .iter()
                .filter(|&&b| b == b'\n');
            let mut heap = vec![MaybeUninit::uninit(); lines.count()];
            parse_with(kind, bytes, &mut heap, &mut headers, keep)
        }
        res => res,
    };
    match res {
        Ok(Some((mut head, len))) => {
            head.headers = headers;
            Parsed::Complete(head, len)
        }
        Ok(None) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

fn parse_with<'h, 'b>(
    kind: MessageKind,
    bytes: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
    headers: &mut Headers,
    keep: &HeaderFields,
) -> Result<Option<(Head<'b>, usize)>, httparse::Error> {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    // `last`: the start line's last parsed piece; the field lines begin after it.
    let (len, mut head, parsed, last): (_, _, &[httparse::Header<'b>], _) = match kind {
        MessageKind::Request => {
            let mut req = httparse::Request::new(&mut []);
            let status = config.parse_request_with_uninit_headers(&mut req, bytes, slots)?;
            let httparse::Status::Complete(len) = status else {
                return Ok(None);
            };
            let httparse::Request {
                method,
                path,
                version,
                headers,
            } = req;
            let head = Head {
                method: method.map(|m| borrowed_if_known(m, &KNOWN_METHODS)),
                url: path,
                ..Head::new(version)
            };
            (len, head, headers, path)
        }
        MessageKind::Response => {
            let mut resp = httparse::Response::new(&mut []);
            let status = config.parse_response_with_uninit_headers(&mut resp, bytes, slots)?;
            let httparse::Status::Complete(len) = status else {
                return Ok(None);
            };
            let httparse::Response {
                version,
                code,
                reason,
                headers,
            } = resp;
            let head = Head {
                status: code,
                reason: reason.map(|r| borrowed_if_known(r, &KNOWN_REASONS)),
                ..Head::new(version)
            };
            (len, head, headers, reason)
        }
    };
    for h in parsed {
        head.note_header(h.name, h.value);
    }
    let start_end = last.and_then(|piece| end_in(bytes, piece.as_bytes()));
    head.skipped_fields = skipped_fields(bytes.get(..len).unwrap_or(bytes), start_end, parsed);
    match keep {
        HeaderFields::All => headers.set_from_wire(parsed.iter().map(|h| (h.name, h.value))),
        HeaderFields::Only(_) => {
            headers.clear();
            for h in parsed.iter().filter(|h| keep.keeps(h.name)) {
                headers.push(h.name, &String::from_utf8_lossy(h.value));
            }
        }
    }
    Ok(Some((head, len)))
}

/// Field lines httparse skipped (its `ignore_invalid_headers_*`), from the line ends between
/// the pieces it returned: one ends each field line, two the last one and the head. A gap
/// of at most two bytes before a field is its line end alone, so most gaps are not read;
/// a folded value's line ends are its own.
fn skipped_fields(head: &[u8], start_end: Option<usize>, parsed: &[httparse::Header<'_>]) -> u32 {
    let mut from = start_end.unwrap_or(0);
    let mut skipped = 0;
    for h in parsed {
        // A name not found in the head (never seen) leaves its line to the next gap: counted
        // as skipped, which errs toward redacting.
        let Some(name_end) = end_in(head, h.name.as_bytes()) else {
            continue;
        };
        let name = name_end - h.name.len();
        if name.saturating_sub(from) > 2 {
            skipped += newlines(head.get(from..name)).saturating_sub(1);
        }
        // An empty value may be a slice of nothing: its line goes on from the name.
        from = end_in(head, h.value)
            .filter(|_| !h.value.is_empty())
            .unwrap_or(name_end);
    }
    skipped += newlines(head.get(from..)).saturating_sub(2);
    u32::try_from(skipped).unwrap_or(u32::MAX)
}

/// Where `piece`, a slice of `bytes`, ends in it.
fn end_in(bytes: &[u8], piece: &[u8]) -> Option<usize> {
    let start = (piece.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let end = start.checked_add(piece.len())?;
    (end <= bytes.len()).then_some(end)
}

fn newlines(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 0,
        Some(b"\r\n\r\n" | b"\n\n") => 2,
        Some(gap) => gap.iter().filter(|&&b| b == b'\n').count(),
    }
}

impl Head<'_> {
    fn new(version: Option<u8>) -> Self {
        Head {
            version_minor: version.unwrap_or(1),
            method: None,
            url: None,
            status: None,
            reason: None,
            headers: Headers::default(),
            content_length: ContentLength::Absent,
            transfer: Transfer::Absent,
            encoding: Encoding::Identity,
            skipped_fields: 0,
        }
    }

    fn note_header(&mut self, name: &str, value: &[u8]) {
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            self.content_length = match self.content_length {
                ContentLength::Absent => parse_decimal(value)
                    .map(ContentLength::Value)
                    .unwrap_or(ContentLength::Invalid),
                _ => ContentLength::Invalid,
            };
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding of the last header line is the one applied last.
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            self.transfer = if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Transfer::Chunked
            } else {
                Transfer::Other
            };
        } else if name.eq_ignore_ascii_case("content-encoding") {
            self.encoding = self.encoding.with_header(value);
        }
    }
}

/// A non-empty run of ASCII digits that fits in u64 (no sign, no spaces, no list).
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = u64::from(b.checked_sub(b'0').filter(|d| *d < 10)?);
        acc.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::redact::{HeaderNames, Redactor};

    #[test]
    fn head_end_found_across_appends() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(find_head_end(buf, 0), Some(27));
        // Resuming from any earlier stop point finds the same end.
        for from in 0..27 {
            assert_eq!(find_head_end(buf, from), Some(27), "from {from}");
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(find_head_end(b"", 5), None);
    }

    fn complete(kind: MessageKind, bytes: &[u8]) -> Head<'_> {
        match parse(kind, bytes, Headers::default(), &HeaderFields::All) {
            Parsed::Complete(head, len) => {
                assert_eq!(len, bytes.len());
                head
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_headers() {
        let h = complete(
            MessageKind::Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Encoding: GZIP\r\n\r\n",
        );
        assert_eq!(h.content_length, ContentLength::Value(12));
        assert_eq!(h.encoding, Encoding::Gzip);
        assert_eq!(h.status, Some(200));
        assert_eq!(h.reason.as_deref(), Some("OK"));
        let h = complete(
            MessageKind::Request,
            b"POST /u HTTP/1.0\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n",
        );
        assert_eq!(h.content_length, ContentLength::Invalid);
        assert_eq!(h.version_minor, 0);
        let h = complete(
            MessageKind::Request,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: +5\r\n\r\n",
        );
        assert_eq!(h.transfer, Transfer::Chunked);
        assert_eq!(h.content_length, ContentLength::Invalid);
        assert!(matches!(
            parse(
                MessageKind::Request,
                b"HTTP/1.1 200 OK\r\n\r\n",
                Headers::default(),
                &HeaderFields::All
            ),
            Parsed::Invalid
        ));
        assert!(matches!(
            parse(
                MessageKind::Request,
                b"GET / HTTP/1.1\r\nHost",
                Headers::default(),
                &HeaderFields::All
            ),
            Parsed::Partial
        ));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
    }

    /// A head: `start`, then `count` fields `X-i: v`, then `end`.
    fn with_fields(start: &[u8], count: usize, end: &[u8]) -> Vec<u8> {
        let mut bytes = start.to_vec();
        for i in 0..count {
            bytes.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(end);
        bytes
    }

    #[test]
    fn many_headers_fall_back_to_heap() {
        let bytes = with_fields(b"GET / HTTP/1.1\r\n", 200, b"\r\n");
        let h = complete(MessageKind::Request, &bytes);
        assert_eq!(h.headers.len(), 200);
        assert_eq!(h.headers.get(199), Some(("X-199", "v")));
    }

    #[test]
    fn only_the_named_fields_and_upgrade_are_kept() {
        let bytes = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic x\r\nUpgrade: h2c\r\n\
                      Accept: */*\r\nX-Api-Key: k\r\n\r\n";
        let names = Redactor::default().header_names().clone();
        let Parsed::Complete(head, len) = parse(
            MessageKind::Request,
            bytes,
            Headers::default(),
            &HeaderFields::Only(names),
        ) else {
            panic!("the head must parse");
        };
        assert_eq!(len, bytes.len());
        assert_eq!(
            head.headers.iter().collect::<Vec<_>>(),
            [
                ("Authorization", "Basic x"),
                ("Upgrade", "h2c"),
                ("X-Api-Key", "k")
            ]
        );
    }

    #[test]
    fn without_every_field_the_framing_is_the_same() {
        let bytes = with_fields(
            b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\nContent-Length: 3\r\n",
            100,
            b"Transfer-Encoding: chunked\r\n\r\n",
        );
        let kind = MessageKind::Response;
        let (Parsed::Complete(all, all_len), Parsed::Complete(few, few_len)) = (
            parse(kind, &bytes, Headers::default(), &HeaderFields::All),
            parse(
                kind,
                &bytes,
                Headers::default(),
                &HeaderFields::Only(HeaderNames::none()),
            ),
        ) else {
            panic!("both parses must complete");
        };
        assert_eq!(few.headers.iter().collect::<Vec<_>>(), [("Upgrade", "h2c")]);
        assert_eq!(all.headers.len(), 103);
        assert_eq!(
            (few_len, few.status, few.content_length, few.transfer),
            (all_len, all.status, all.content_length, all.transfer)
        );
    }

    #[test]
    fn skipped_field_lines_are_counted_and_folded_ones_are_not() {
        let skipped =
            |kind, bytes: &[u8]| match parse(kind, bytes, Headers::default(), &HeaderFields::All) {
                Parsed::Complete(head, _) => (head.skipped_fields, head.headers.len()),
                other => panic!("{other:?}"),
            };
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01: v\r\nA: b\x01c\r\n\r\n";
        assert_eq!(skipped(MessageKind::Request, request), (2, 1));
        let folded = b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(skipped(MessageKind::Response, folded), (0, 2));
        let bare = b"HTTP/1.1 200 OK\nSet-Cookie: a\x7fb\nContent-Length: 0\n\n";
        assert_eq!(skipped(MessageKind::Response, bare), (1, 1));
        let empty = b"GET / HTTP/1.1\r\nX-Empty:\r\nBad: \x01\r\nY:\r\n\r\n";
        assert_eq!(skipped(MessageKind::Request, empty), (1, 2));
        let first = b"HTTP/1.1 204\r\nBad: \x01\r\n\r\n";
        assert_eq!(skipped(MessageKind::Response, first), (1, 0));
    }

    #[test]
    fn skipped_field_lines_in_every_order() {
        // (line, skipped by the parser?): valid, empty, folded (responses only), invalid.
        let lines: [(&[u8], bool); 5] = [
            (b"A: b\r\n", false),
            (b"E:\r\n", false),
            (b"F: one\r\n two\r\n", false),
            (b"Bad: x\x01y\r\n", true),
            (b"N\x7fame: v\r\n", true),
        ];
        for (kind, start) in [
            (MessageKind::Request, &b"GET /p HTTP/1.1\r\n"[..]),
            (MessageKind::Response, b"HTTP/1.1 200 OK\r\n"),
            (MessageKind::Response, b"HTTP/1.1 204\r\n"),
        ] {
            for a in 0..lines.len() {
                for b in 0..lines.len() {
                    for c in 0..lines.len() {
                        let picked = [lines[a], lines[b], lines[c]];
                        let folded = picked.iter().any(|l| l.0.starts_with(b"F:"));
                        if folded && kind == MessageKind::Request {
                            continue;
                        }
                        let mut head = start.to_vec();
                        picked.iter().for_each(|l| head.extend_from_slice(l.0));
                        head.extend_from_slice(b"\r\n");
                        let want = picked.iter().filter(|l| l.1).count() as u32;
                        match parse(kind, &head, Headers::default(), &HeaderFields::All) {
                            Parsed::Complete(h, _) => {
                                assert_eq!(h.skipped_fields, want, "{head:?}")
                            }
                            other => panic!("{other:?} {head:?}"),
                        }
                    }
                }
            }
        }
    }
}
