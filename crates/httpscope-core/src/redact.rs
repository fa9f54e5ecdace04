//! Redaction of secrets before any sink sees a message: header values, query
//! parameters and JSON values whose names match a pattern, in parsed fields and in `raw`.

use std::cell::RefCell;

use crate::http::{Headers, HttpMessage, HttpVersion};

pub const REDACTED: &str = "[REDACTED]";

/// Headers redacted unless `--no-redact`: credentials and session cookies.
pub const DEFAULT_HEADER_PATTERNS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "*api-key*",
    "*api_key*",
    "*apikey*",
    "*-token",
    "*secret*",
    "*password*",
];

/// A case-insensitive name pattern; `*` matches any run of characters.
/// Common shapes (`name`, `*part*`, `prefix*`, `*suffix`) match without the general glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    Exact(String),
    Contains(String),
    Prefix(String),
    Suffix(String),
    Glob(String),
}

impl NamePattern {
    pub fn new(pattern: &str) -> Self {
        let lower = pattern.to_ascii_lowercase();
        let inner = lower.trim_matches('*');
        if inner.contains('*') {
            return NamePattern::Glob(lower);
        }
        let owned = inner.to_owned();
        match (
            lower.starts_with('*'),
            lower.ends_with('*') && lower.len() > 1,
        ) {
            (false, false) => NamePattern::Exact(owned),
            (true, true) => NamePattern::Contains(owned),
            (false, true) => NamePattern::Prefix(owned),
            (true, false) => NamePattern::Suffix(owned),
        }
    }

    /// Length of the shortest name the pattern can match.
    fn min_len(&self) -> usize {
        match self {
            NamePattern::Exact(p)
            | NamePattern::Contains(p)
            | NamePattern::Prefix(p)
            | NamePattern::Suffix(p) => p.len(),
            NamePattern::Glob(p) => p.bytes().filter(|&b| b != b'*').count(),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        match self {
            NamePattern::Exact(p) => name.eq_ignore_ascii_case(p.as_bytes()),
            NamePattern::Prefix(p) => name
                .get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p.as_bytes())),
            NamePattern::Suffix(p) => name
                .len()
                .checked_sub(p.len())
                .is_some_and(|start| name[start..].eq_ignore_ascii_case(p.as_bytes())),
            NamePattern::Contains(p) => {
                p.is_empty()
                    || name
                        .windows(p.len())
                        .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
            }
            NamePattern::Glob(p) => glob(p.as_bytes(), name),
        }
    }
}

fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob(rest, &name[skip..])),
        Some((&p, rest)) => name
            .split_first()
            .is_some_and(|(&n, tail)| n.eq_ignore_ascii_case(&p) && glob(rest, tail)),
    }
}

/// Header names remembered with their verdict (names repeat on every message), each in a slot
/// picked from its length and a few of its bytes; a slot keeps the last name that landed in it.
const VERDICT_SLOTS: usize = 256;

/// A header name and whether a pattern matches it.
type Verdict = (Box<str>, bool);

/// The slot of `name` among [`VERDICT_SLOTS`]: cheaper than hashing the whole name, and
/// enough to tell apart the names one service sees.
fn verdict_slot(name: &[u8]) -> usize {
    let byte = |i: usize| usize::from(name.get(i).copied().unwrap_or_default());
    let len = name.len();
    (len ^ (byte(0) << 1) ^ (byte(len / 2) << 3) ^ (byte(len.wrapping_sub(1)) << 5)) % VERDICT_SLOTS
}

/// Header names to match against a list of patterns, with each name's verdict remembered.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    patterns: Vec<NamePattern>,
    /// Names shorter than this match no pattern (many common ones, such as `Host`).
    shortest_match: usize,
    verdicts: RefCell<Vec<Option<Verdict>>>,
}

impl HeaderNames {
    pub fn new(patterns: Vec<NamePattern>) -> Self {
        Self {
            shortest_match: patterns
                .iter()
                .map(NamePattern::min_len)
                .min()
                .unwrap_or(usize::MAX),
            patterns,
            verdicts: RefCell::new(vec![None; VERDICT_SLOTS]),
        }
    }

    /// Matches no name.
    pub fn none() -> Self {
        Self::new(Vec::new())
    }

    /// Inlined up to the length check: most names are too short to match (or no pattern
    /// is set), and every field of every message asks.
    #[inline]
    pub fn matches(&self, name: &str) -> bool {
        name.len() >= self.shortest_match && self.remembered_verdict(name)
    }

    fn remembered_verdict(&self, name: &str) -> bool {
        let mut verdicts = self.verdicts.borrow_mut();
        let Some(slot) = verdicts.get_mut(verdict_slot(name.as_bytes())) else {
            return self.patterns.iter().any(|p| p.matches(name));
        };
        match slot {
            Some((known, verdict)) if **known == *name => *verdict,
            _ => {
                let verdict = self.patterns.iter().any(|p| p.matches(name));
                *slot = Some((name.into(), verdict));
                verdict
            }
        }
    }
}

/// Two lists are the same when their patterns are: the verdicts only remember them.
impl PartialEq for HeaderNames {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for HeaderNames {}

/// What to hide. `Default` redacts the default headers and keeps bodies.
#[derive(Debug, Clone)]
pub struct Redactor {
    headers: HeaderNames,
    /// Query parameters and JSON keys.
    fields: Vec<NamePattern>,
    keep_bodies: bool,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(true, &[], true)
    }
}

impl Redactor {
    /// `defaults`: the default header list; `extra`: patterns for headers,
    /// query parameters and JSON keys alike; `keep_bodies`: false keeps only metadata.
    pub fn new(defaults: bool, extra: &[String], keep_bodies: bool) -> Self {
        let mut headers: Vec<NamePattern> = if defaults {
            DEFAULT_HEADER_PATTERNS
                .iter()
                .map(|p| NamePattern::new(p))
                .collect()
        } else {
            Vec::new()
        };
        let fields: Vec<NamePattern> = extra.iter().map(|p| NamePattern::new(p)).collect();
        headers.extend(fields.iter().cloned());
        Self {
            headers: HeaderNames::new(headers),
            fields,
            keep_bodies,
        }
    }

    /// The names of the headers whose values this redactor hides.
    pub fn header_names(&self) -> &HeaderNames {
        &self.headers
    }

    fn header_matches(&self, name: &str) -> bool {
        self.headers.matches(name)
    }

    fn field_matches(&self, name: &str) -> bool {
        self.fields.iter().any(|p| p.matches(name))
    }

    pub fn apply(&self, message: &mut HttpMessage) {
        let mut header_redacted = self.redact_headers(&mut message.headers);
        if let Some(extra) = message.extra.as_deref_mut() {
            header_redacted |= self.redact_headers(&mut extra.trailers);
        }
        if let (Some(url), false) = (&message.url, self.fields.is_empty()) {
            if let Some(redacted) = self.redact_query(url) {
                message.url = Some(redacted.into());
            }
        }
        if !self.keep_bodies {
            message.body.clear();
        } else if !self.fields.is_empty() {
            message.body = self.redact_json(&message.body);
        }
        // Raw bytes hold what the parsed fields hold, plus the HTTP/1 field lines the parser
        // skipped: rebuild them when either may hide something.
        let skipped = message.proto != HttpVersion::H2 && message.unknown_headers() > 0;
        if header_redacted || skipped || !self.fields.is_empty() || !self.keep_bodies {
            message.raw = self.redact_raw(&message.raw);
        }
    }

    /// Hides the values of matching headers; true if any was hidden.
    fn redact_headers(&self, headers: &mut Headers) -> bool {
        let mut redacted = false;
        for index in 0..headers.len() {
            let matches = headers
                .get(index)
                .is_some_and(|(name, _)| self.header_matches(name));
            if matches {
                headers.set_value(index, REDACTED);
                redacted = true;
            }
        }
        redacted
    }

    fn redact_query(&self, url: &str) -> Option<String> {
        if self.fields.is_empty() {
            return None;
        }
        let (path, query) = url.split_once('?')?;
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if self.field_matches(key) => format!("{key}={REDACTED}"),
                _ => param.to_owned(),
            })
            .collect();
        Some(format!("{path}?{}", params.join("&")))
    }

    /// Rewrites the head lines of raw wire bytes, then the body part.
    fn redact_raw(&self, raw: &[u8]) -> Vec<u8> {
        let head_end = find(raw, b"\r\n\r\n").map(|i| i + 4);
        let (head, body) = raw.split_at(head_end.unwrap_or(raw.len()));
        let mut out = Vec::with_capacity(raw.len());
        for (index, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
            if index == 0 {
                out.extend_from_slice(&self.redact_request_line(line));
                continue;
            }
            match line.iter().position(|&b| b == b':') {
                Some(colon) if self.header_matches(&String::from_utf8_lossy(&line[..colon])) => {
                    out.extend_from_slice(&line[..=colon]);
                    out.push(b' ');
                    out.extend_from_slice(REDACTED.as_bytes());
                    let ending = if line.ends_with(b"\r\n") {
                        &b"\r\n"[..]
                    } else if line.ends_with(b"\n") {
                        &b"\n"[..]
                    } else {
                        &b""[..]
                    };
                    out.extend_from_slice(ending);
                }
                _ => out.extend_from_slice(line),
            }
        }
        if self.keep_bodies {
            if self.fields.is_empty() {
                out.extend_from_slice(body);
            } else {
                out.extend_from_slice(&self.redact_json(body));
            }
        }
        out
    }

    fn redact_request_line(&self, line: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(line);
        let mut parts = text.splitn(3, ' ');
        let (Some(method), Some(target), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return line.to_vec();
        };
        match self.redact_query(target) {
            Some(target) => format!("{method} {target} {rest}").into_bytes(),
            None => line.to_vec(),
        }
    }

    /// Replaces the values of matching keys in (possibly truncated) JSON text.
    fn redact_json(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            if body[i] != b'"' {
                out.push(body[i]);
                i += 1;
                continue;
            }
            let end = string_end(body, i);
            let token = &body[i..end];
            out.extend_from_slice(token);
            i = end;
            let key = String::from_utf8_lossy(
                token
                    .get(1..token.len().saturating_sub(1))
                    .unwrap_or_default(),
            );
            let mut j = i;
            while j < body.len() && body[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < body.len() && body[j] == b':' && self.field_matches(&key) {
                out.extend_from_slice(&body[i..=j]);
                j += 1;
                while j < body.len() && body[j].is_ascii_whitespace() {
                    out.push(body[j]);
                    j += 1;
                }
                let value_end = if body.get(j) == Some(&b'"') {
                    string_end(body, j)
                } else {
                    body[j..]
                        .iter()
                        .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                        .map_or(body.len(), |n| j + n)
                };
                out.extend_from_slice(format!("\"{REDACTED}\"").as_bytes());
                i = value_end;
            }
        }
        out
    }
}

/// Index just past the string starting with the quote at `start` (or the end of input).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::http::{HttpVersion, MessageKind};
    use std::sync::Arc;

    fn message(
        raw: &[u8],
        headers: &[(&str, &str)],
        url: Option<&str>,
        body: &[u8],
    ) -> HttpMessage {
        HttpMessage {
            method: Some("POST".into()),
            url: url.map(Arc::from),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            wire_bytes: raw.len() as u64,
            body_len: body.len() as u64,
            body: body.to_vec(),
            raw: raw.to_vec(),
            ..HttpMessage::new(
                MessageKind::Request,
                Direction::Send,
                HttpVersion::Http11,
                0,
            )
        }
    }

    const RAW: &[u8] = b"POST /login?user=al&token=abc HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nX-Api-Key: k\r\nHost: h\r\n\r\n{\"user\":\"al\", \"password\": \"hunter2\",\"n\":1}";

    fn sample() -> HttpMessage {
        message(
            RAW,
            &[
                ("Authorization", "Bearer s3cret"),
                ("X-Api-Key", "k"),
                ("Host", "h"),
            ],
            Some("/login?user=al&token=abc"),
            b"{\"user\":\"al\", \"password\": \"hunter2\",\"n\":1}",
        )
    }

    #[test]
    fn default_redacts_credential_headers_everywhere() {
        let mut m = sample();
        Redactor::default().apply(&mut m);
        assert_eq!(m.headers.get(0).map(|h| h.1), Some(REDACTED));
        assert_eq!(m.headers.get(1).map(|h| h.1), Some(REDACTED));
        assert_eq!(m.headers.get(2).map(|h| h.1), Some("h"));
        let raw = String::from_utf8(m.raw).unwrap();
        assert!(
            !raw.contains("s3cret") && !raw.contains("X-Api-Key: k"),
            "{raw}"
        );
        assert!(raw.contains("Authorization: [REDACTED]\r\n"), "{raw}");
        // Query and JSON are left alone unless asked for.
        assert!(raw.contains("token=abc") && raw.contains("hunter2"));
    }

    #[test]
    fn user_patterns_cover_query_and_json() {
        let mut m = sample();
        Redactor::new(true, &["token".into(), "pass*".into()], true).apply(&mut m);
        assert_eq!(m.url.as_deref(), Some("/login?user=al&token=[REDACTED]"));
        let body = String::from_utf8(m.body.clone()).unwrap();
        assert_eq!(
            body,
            "{\"user\":\"al\", \"password\": \"[REDACTED]\",\"n\":1}"
        );
        let raw = String::from_utf8(m.raw).unwrap();
        assert!(
            raw.starts_with("POST /login?user=al&token=[REDACTED] HTTP/1.1\r\n"),
            "{raw}"
        );
        assert!(
            raw.ends_with("\"password\": \"[REDACTED]\",\"n\":1}"),
            "{raw}"
        );
    }

    #[test]
    fn no_redact_keeps_everything_and_no_body_drops_bodies() {
        let mut m = sample();
        Redactor::new(false, &[], true).apply(&mut m);
        assert_eq!(m.raw, RAW);
        let mut m = sample();
        Redactor::new(true, &[], false).apply(&mut m);
        assert!(m.body.is_empty());
        assert!(m.raw.ends_with(b"Host: h\r\n\r\n"));
    }

    #[test]
    fn verdicts_stay_right_when_names_share_a_slot() {
        let r = Redactor::default();
        // Far more names than slots, asked twice over: each answer is the pattern's.
        for _ in 0..2 {
            for i in 0..(4 * VERDICT_SLOTS) {
                assert!(!r.header_matches(&format!("x-plain-{i}")), "{i}");
                assert!(r.header_matches(&format!("x-secret-{i}")), "{i}");
            }
        }
        assert!(r.header_matches("Authorization") && !r.header_matches("Content-Type"));
    }

    #[test]
    fn names_as_short_as_a_pattern_still_match() {
        let r = Redactor::new(false, &["x-*-id".into(), "ab*".into()], true);
        assert!(r.header_matches("X--ID"));
        assert!(r.header_matches("ab"));
        assert!(!r.header_matches("a"));
        assert!(Redactor::new(false, &["*".into()], true).header_matches(""));
        assert!(!Redactor::new(false, &[], true).header_matches("anything"));
    }

    #[test]
    fn globs_and_truncated_json() {
        assert!(NamePattern::new("*api-key*").matches("X-API-Key"));
        assert!(!NamePattern::new("cookie").matches("set-cookie"));
        assert!(NamePattern::new("*-token").matches("X-Auth-TOKEN"));
        assert!(!NamePattern::new("*-token").matches("token"));
        assert!(NamePattern::new("pass*").matches("Passwd"));
        assert!(NamePattern::new("a*b*c").matches("AxxBxxC"));
        assert!(!NamePattern::new("a*b*c").matches("axxbxx"));
        assert!(NamePattern::new("*").matches("anything"));
        let r = Redactor::new(false, &["secret".into()], true);
        assert_eq!(
            r.redact_json(b"{\"secret\": 12345"),
            b"{\"secret\": \"[REDACTED]\""
        );
        assert_eq!(
            r.redact_json(b"{\"secret\":\"abc"),
            b"{\"secret\":\"[REDACTED]\""
        );
        assert_eq!(r.redact_json(b"\"a\\\"b\""), b"\"a\\\"b\"");
    }
}
