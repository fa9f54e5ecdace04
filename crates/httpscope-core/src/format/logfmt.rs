//! logfmt lines: `key=value` pairs, values quoted when they need it.

use std::io::Write as _;

use super::Timestamps;
use crate::http::GrpcCall;
use crate::record::ExchangeRecord;

/// Appends one record as a logfmt line, newline included.
pub fn write_line(record: &ExchangeRecord<'_>, timestamps: &mut Timestamps, out: &mut Vec<u8>) {
    let message = record.message;
    out.extend_from_slice(b"ts=");
    timestamps.write(record.unix_ns, out);
    number(out, b" pid=", record.conn.tgid);
    number(out, b" tid=", record.tid);
    out.extend_from_slice(b" comm=");
    value(&record.conn.comm, out);
    if let Some(cgroup) = record.conn.cgroup.as_deref() {
        out.extend_from_slice(b" cgroup=");
        value(&cgroup.path, out);
        for (key, id) in [
            (&b" container_id="[..], &cgroup.container_id),
            (b" k8s_pod_uid=", &cgroup.pod_uid),
        ] {
            if let Some(id) = id {
                out.extend_from_slice(key);
                out.extend_from_slice(id.as_bytes());
            }
        }
    }
    if let Some(role) = record.role {
        out.extend_from_slice(b" role=");
        out.extend_from_slice(role.as_str().as_bytes());
    }
    for (key, text) in [
        (&b" dir="[..], record.direction().as_str()),
        (b" src=", record.src_text()),
        (b" dst=", record.dst_text()),
    ] {
        out.extend_from_slice(key);
        out.extend_from_slice(text.as_bytes());
    }
    number(out, b" conn=", record.conn.conn_id);
    if record.conn.tls {
        out.extend_from_slice(b" tls=true");
    }
    if let Some(lib) = record.conn.tls_lib {
        out.extend_from_slice(b" tls_lib=");
        out.extend_from_slice(lib.as_str().as_bytes());
    }
    out.extend_from_slice(b" kind=");
    out.extend_from_slice(message.kind.as_str().as_bytes());
    out.extend_from_slice(b" proto=");
    out.extend_from_slice(message.proto.as_str().as_bytes());
    if let Some(stream) = message.stream {
        number(out, b" stream=", stream.get());
    }
    if let Some(exchange) = message.exchange {
        number(out, b" exchange=", exchange);
    }
    number(out, b" bytes=", message.wire_bytes);
    if let Some(method) = &message.method {
        out.extend_from_slice(b" method=");
        value(method, out);
    }
    if let Some(url) = &message.url {
        out.extend_from_slice(b" url=");
        value(url, out);
    }
    if let Some(route) = record.route {
        out.extend_from_slice(b" route=");
        value(route, out);
    }
    if let Some(authority) = message.authority() {
        out.extend_from_slice(b" authority=");
        value(authority, out);
    }
    if let Some(status) = message.status {
        number(out, b" status=", status);
    }
    if let Some(grpc) = message.grpc.as_deref() {
        grpc_fields(grpc, out);
    }
    if let Some(latency_ns) = message.latency_ns {
        // Milliseconds with three decimals, without float formatting.
        number(out, b" latency_ms=", latency_ns / 1_000_000);
        let micros = (latency_ns / 1000 % 1000) as u16;
        out.push(b'.');
        for digit in [micros / 100, micros / 10 % 10, micros % 10] {
            out.push(b'0' + digit as u8);
        }
    }
    if message.interim {
        out.extend_from_slice(b" interim=true");
    }
    if message.partial {
        out.extend_from_slice(b" partial=true");
    }
    if let Some(extra) = message.extra.as_deref() {
        if let Some(code) = extra.reset_code {
            number(out, b" reset_code=", code);
        }
        if extra.unknown_headers > 0 {
            number(out, b" unknown_headers=", extra.unknown_headers);
        }
    }
    if !message.body_captured {
        out.extend_from_slice(b" body_captured=false");
    }
    if message.body_truncated {
        out.extend_from_slice(b" body_truncated=true");
    }
    out.extend_from_slice(b" body=");
    quoted(&message.body, out);
    out.extend_from_slice(b" raw=");
    quoted(&message.raw, out);
    out.push(b'\n');
}

fn grpc_fields(grpc: &GrpcCall, out: &mut Vec<u8>) {
    out.extend_from_slice(b" grpc_service=");
    value(&grpc.service, out);
    out.extend_from_slice(b" grpc_method=");
    value(&grpc.method, out);
    if let Some(status) = grpc.status {
        number(out, b" grpc_status=", status);
    }
    if let Some(message) = &grpc.message {
        out.extend_from_slice(b" grpc_message=");
        value(message, out);
    }
    number(out, b" grpc_messages=", grpc.messages);
}

fn number(out: &mut Vec<u8>, key: &[u8], value: impl itoa::Integer) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A byte table: `inside` for `first..0x7F` apart from `except`, `!inside` for every other byte.
const fn byte_table(first: u8, inside: bool, except: &[u8]) -> [bool; 256] {
    let mut table = [!inside; 256];
    let mut b = first as usize;
    while b < 0x7F {
        table[b] = inside;
        b += 1;
    }
    let mut i = 0;
    while i < except.len() {
        table[except[i] as usize] = !inside;
        i += 1;
    }
    table
}

/// Bytes that keep a value from being bare: ASCII whitespace, controls, `"`, `=`, `\\`, and
/// every non-ASCII byte (whose character needs a closer look).
const NOT_BARE: [bool; 256] = byte_table(0x21, false, b"\"=\\");

fn value(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let plain = match bytes.iter().position(|&b| NOT_BARE[usize::from(b)]) {
        None => !bytes.is_empty(),
        Some(at) if bytes[at].is_ascii() => false,
        Some(_) => text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\'),
    };
    if plain {
        out.extend_from_slice(bytes);
    } else {
        quoted(bytes, out);
    }
}

/// Bytes copied as they are: printable ASCII other than `"` and `\\`.
const PLAIN: [bool; 256] = byte_table(0x20, true, b"\"\\");

/// Length of the leading run of [`PLAIN`] bytes, found eight bytes at a time.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    // Each mask sets the high bit of the bytes that match. A borrow or carry only moves to
    // more significant bytes, past a byte that really matches, so the lowest bit set is exact.
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGH_BITS
    }
    let mut start = 0;
    while let Some(Ok(word)) = bytes.get(start..start + 8).map(<[u8; 8]>::try_from) {
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
        // 0x7F and above: the high bit is set in the byte or in the byte plus one.
        let high = (word | word.wrapping_add(ONES)) & HIGH_BITS;
        let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
        let special = control | high | quote | backslash;
        if special != 0 {
            return start + (special.trailing_zeros() / 8) as usize;
        }
        start += 8;
    }
    start
        + bytes[start..]
            .iter()
            .position(|&b| !PLAIN[usize::from(b)])
            .unwrap_or(bytes.len() - start)
}

/// Quotes `bytes` as text, escaping quotes, backslashes and control characters (C1 ones
/// included); valid UTF-8 is kept and each byte that is not part of it becomes `\\xNN`.
fn quoted(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut i = 0;
    while i < bytes.len() {
        let run = plain_prefix(&bytes[i..]);
        if run > 0 {
            out.extend_from_slice(&bytes[i..i + run]);
            i += run;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        i += 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            // Line ends are the most common escape: one step for both bytes.
            b'\r' if bytes.get(i) == Some(&b'\n') => {
                out.extend_from_slice(b"\\r\\n");
                i += 1;
            }
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x7F => {
                let _ = write!(out, "\\u{{{b:x}}}");
            }
            _ => {
                let width = match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => 0,
                };
                let char_bytes = bytes.get(i - 1..i - 1 + width).unwrap_or_default();
                let valid = !char_bytes.is_empty() && std::str::from_utf8(char_bytes).is_ok();
                match char_bytes {
                    // A C1 control: U+0080..U+009F.
                    &[0xC2, second] if valid && second <= 0x9F => {
                        let _ = write!(out, "\\u{{{second:x}}}");
                        i += 1;
                    }
                    _ if valid => {
                        out.extend_from_slice(char_bytes);
                        i += width - 1;
                    }
                    // Not UTF-8: the byte as `\xNN`, its backslash escaped.
                    _ => {
                        let _ = write!(out, "\\\\x{b:02x}");
                    }
                }
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn quotes_only_when_needed() {
        let mut out = Vec::new();
        value("curl", &mut out);
        out.push(b' ');
        value("my app", &mut out);
        out.push(b' ');
        value("", &mut out);
        out.push(b' ');
        value("n\u{a0}bsp", &mut out);
        out.push(b' ');
        value("café", &mut out);
        assert_eq!(text(out), "curl \"my app\" \"\" \"n\u{a0}bsp\" café");
    }

    #[test]
    fn escapes_line_breaks_and_quotes() {
        let mut out = Vec::new();
        quoted(
            "GET / HTTP/1.1\r\nX: \"q\"\\\u{1}é\u{85}".as_bytes(),
            &mut out,
        );
        assert_eq!(
            text(out),
            "\"GET / HTTP/1.1\\r\\nX: \\\"q\\\"\\\\\\u{1}é\\u{85}\""
        );
    }

    #[test]
    fn plain_runs_end_at_the_first_byte_to_escape() {
        let text = b"0123456789abcdef0123456789abcdef";
        for at in 0..text.len() {
            for special in [0x00, 0x1F, b'"', b'\\', 0x7F, 0x80, 0xC2, 0xFF] {
                let mut bytes = text.to_vec();
                bytes[at] = special;
                assert_eq!(plain_prefix(&bytes), at, "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_prefix(b" ~ !#"), 5);
        assert_eq!(plain_prefix(text), text.len());
    }

    #[test]
    fn invalid_utf8_bytes_are_spelled_out() {
        let mut out = Vec::new();
        quoted(b"a\xffb\xe2\x82\xe2\x82\xac\xc2", &mut out);
        assert_eq!(text(out), "\"a\\\\xffb\\\\xe2\\\\x82€\\\\xc2\"");
    }

    #[test]
    fn h2_and_grpc_fields_follow_the_http1_ones() {
        use crate::conn::ConnInfo;
        use crate::direction::Direction;
        use crate::http::{Extra, HttpMessage, HttpVersion, MessageKind};

        let message = HttpMessage {
            stream: std::num::NonZeroU32::new(5),
            method: Some("POST".into()),
            url: Some("/pkg.Echo/Say".into()),

            status: Some(200),
            exchange: Some(3),
            latency_ns: Some(2_000_000),
            extra: Some(Box::new(Extra {
                authority: Some("localhost:1".into()),
                reset_code: Some(8),
                unknown_headers: 2,
                ..Extra::default()
            })),
            grpc: Some(Box::new(GrpcCall {
                service: "pkg.Echo".into(),
                method: "Say".into(),
                status: Some(14),
                message: Some("gone away".into()),
                messages: 2,
            })),
            ..HttpMessage::new(MessageKind::Response, Direction::Recv, HttpVersion::H2, 0)
        };
        let conn = ConnInfo::unknown(1, 2);
        let record = ExchangeRecord {
            unix_ns: 0,
            tid: 2,
            conn: &conn,
            role: None,
            message: &message,
            route: Some("/pkg.Echo/Say"),
        };
        let mut out = Vec::new();
        write_line(&record, &mut Timestamps::default(), &mut out);
        let line = text(out);
        let fields = line.split_once(" kind=").map(|(_, rest)| rest);
        assert_eq!(
            fields,
            Some(
                "response proto=h2 stream=5 exchange=3 bytes=0 method=POST url=/pkg.Echo/Say \
                 route=/pkg.Echo/Say authority=localhost:1 status=200 grpc_service=pkg.Echo grpc_method=Say \
                 grpc_status=14 grpc_message=\"gone away\" grpc_messages=2 latency_ms=2.000 \
                 reset_code=8 unknown_headers=2 body=\"\" raw=\"\"\n"
            )
        );
    }
}
