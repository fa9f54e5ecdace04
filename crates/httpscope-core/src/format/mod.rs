//! Text renderings of records: logfmt and JSON lines, and their shared pieces.

pub mod json;
pub mod logfmt;

use std::borrow::Cow;
use std::fmt::Write as _;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:20:04.123Z`.
pub fn rfc3339_millis(unix_ns: i64, out: &mut String) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let millis = unix_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(out, "{year:04}");
    for (separator, value) in [
        ('-', month as i64),
        ('-', day as i64),
        ('T', day_secs / 3600),
        (':', day_secs % 3600 / 60),
        (':', day_secs % 60),
    ] {
        out.push(separator);
        push_two_digits(value, out);
    }
    out.push('.');
    push_two_digits(millis / 10, out);
    out.push(char::from(b'0' + (millis % 10) as u8));
    out.push('Z');
}

/// Formatting machinery is slow for this: it runs for every record.
fn push_two_digits(value: i64, out: &mut String) {
    let value = value.clamp(0, 99) as u8;
    out.push(char::from(b'0' + value / 10));
    out.push(char::from(b'0' + value % 10));
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Bytes as text: valid UTF-8 as is, each invalid byte as `\xNN`.
pub fn lossless_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let mut out = String::new();
        rfc3339_millis(1_795_616_404_123_456_789, &mut out);
        assert_eq!(out, "2026-11-25T14:20:04.123Z");
        out.clear();
        rfc3339_millis(951_782_400_000_000_000, &mut out);
        assert_eq!(out, "2000-02-29T00:00:00.000Z");
        out.clear();
        rfc3339_millis(0, &mut out);
        assert_eq!(out, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn keeps_utf8_and_escapes_the_rest() {
        assert_eq!(lossless_text("héllo".as_bytes()), "héllo");
        assert_eq!(lossless_text(b"a\xffb"), "a\\xffb");
    }
}
