//! logfmt lines: `key=value` pairs, values quoted when they need it.

use std::fmt::Write as _;

use super::{lossless_text, rfc3339_millis};
use crate::record::ExchangeRecord;

/// Appends one record as a logfmt line, newline included.
pub fn write_line(record: &ExchangeRecord<'_>, out: &mut String) {
    let message = record.message;
    out.push_str("ts=");
    rfc3339_millis(record.unix_ns, out);
    let _ = write!(out, " pid={} tid={} comm=", record.conn.tgid, record.tid);
    value(&record.conn.comm, out);
    if let Some(role) = record.role {
        let _ = write!(out, " role={}", role.as_str());
    }
    let _ = write!(
        out,
        " dir={} src={} dst={} conn={} kind={}",
        record.direction().as_str(),
        record.src(),
        record.dst(),
        record.conn.conn_id,
        message.kind.as_str()
    );
    if let Some(exchange) = message.exchange {
        let _ = write!(out, " exchange={exchange}");
    }
    let _ = write!(out, " bytes={}", message.wire_bytes);
    if let Some(method) = &message.method {
        out.push_str(" method=");
        value(method, out);
    }
    if let Some(url) = &message.url {
        out.push_str(" url=");
        value(url, out);
    }
    if let Some(status) = message.status {
        let _ = write!(out, " status={status}");
    }
    if let Some(latency) = record.latency_ms() {
        let _ = write!(out, " latency_ms={latency:.3}");
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

fn quoted(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
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
        quoted("GET / HTTP/1.1\r\nX: \"q\"\\\u{1}", &mut out);
        assert_eq!(out, "\"GET / HTTP/1.1\\r\\nX: \\\"q\\\"\\\\\\u{1}\"");
    }
}
