//! logfmt lines: `key=value` pairs, values quoted when they need it.

use std::fmt::Write as _;

use super::{lossless_text, rfc3339_millis};
use crate::record::ExchangeRecord;

/// Appends one record as a logfmt line, newline included.
pub fn write_line(record: &ExchangeRecord<'_>, out: &mut String) {
    let message = record.message;
    out.push_str("ts=");
    rfc3339_millis(record.unix_ns, out);
    number(out, " pid=", record.conn.tgid);
    number(out, " tid=", record.tid);
    out.push_str(" comm=");
    value(&record.conn.comm, out);
    if let Some(role) = record.role {
        let _ = write!(out, " role={}", role.as_str());
    }
    for (key, text) in [
        (" dir=", record.direction().as_str()),
        (" src=", record.src_text()),
        (" dst=", record.dst_text()),
    ] {
        out.push_str(key);
        out.push_str(text);
    }
    number(out, " conn=", record.conn.conn_id);
    if record.conn.tls {
        out.push_str(" tls=true");
    }
    out.push_str(" kind=");
    out.push_str(message.kind.as_str());
    if let Some(exchange) = message.exchange {
        number(out, " exchange=", exchange);
    }
    number(out, " bytes=", message.wire_bytes);
    if let Some(method) = &message.method {
        out.push_str(" method=");
        value(method, out);
    }
    if let Some(url) = &message.url {
        out.push_str(" url=");
        value(url, out);
    }
    if let Some(status) = message.status {
        number(out, " status=", status);
    }
    if let Some(latency_ns) = message.latency_ns {
        // Milliseconds with three decimals, without float formatting.
        number(out, " latency_ms=", latency_ns / 1_000_000);
        let micros = (latency_ns / 1000 % 1000) as u16;
        out.push('.');
        for digit in [micros / 100, micros / 10 % 10, micros % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
    }
    if message.interim {
        out.push_str(" interim=true");
    }
    if message.partial {
        out.push_str(" partial=true");
    }
    if !message.body_captured {
        out.push_str(" body_captured=false");
    }
    if message.body_truncated {
        out.push_str(" body_truncated=true");
    }
    out.push_str(" body=");
    quoted(&lossless_text(&message.body), out);
    out.push_str(" raw=");
    quoted(&lossless_text(&message.raw), out);
    out.push('\n');
}

fn number(out: &mut String, key: &str, value: impl itoa::Integer) {
    out.push_str(key);
    out.push_str(itoa::Buffer::new().format(value));
}

fn value(text: &str, out: &mut String) {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(text);
    } else {
        quoted(text, out);
    }
}

/// Bytes that may need escaping: ASCII controls, `"`, `\\`, DEL, and 0xC2 (C1 controls' lead byte).
const NEEDS_CHECK: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7F] = true;
    table[0xC2] = true;
    table
};

/// Quotes `text`, escaping quotes, backslashes and control characters.
/// Scans bytes: everything that needs escaping is ASCII or a C1 control (0xC2 0x80..0x9F).
fn quoted(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !NEEDS_CHECK[usize::from(b)] {
            i += 1;
            continue;
        }
        let c1_control = b == 0xC2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n));
        if b == 0xC2 && !c1_control {
            i += 1;
            continue;
        }
        out.push_str(&text[plain_from..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            _ if c1_control => {
                let _ = write!(out, "\\u{{{:x}}}", bytes[i + 1]);
                i += 1;
            }
            _ => {
                let _ = write!(out, "\\u{{{b:x}}}");
            }
        }
        i += 1;
        plain_from = i;
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        let mut out = String::new();
        value("curl", &mut out);
        out.push(' ');
        value("my app", &mut out);
        out.push(' ');
        value("", &mut out);
        assert_eq!(out, "curl \"my app\" \"\"");
    }

    #[test]
    fn escapes_line_breaks_and_quotes() {
        let mut out = String::new();
        quoted("GET / HTTP/1.1\r\nX: \"q\"\\\u{1}é\u{85}", &mut out);
        assert_eq!(
            out,
            "\"GET / HTTP/1.1\\r\\nX: \\\"q\\\"\\\\\\u{1}é\\u{85}\""
        );
    }
}
