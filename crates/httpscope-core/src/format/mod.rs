//! Text renderings of records: logfmt and JSON lines, and their shared pieces.

pub mod json;
pub mod logfmt;

use std::borrow::Cow;
use std::fmt::Write as _;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:20:04.123Z`.
pub fn rfc3339_millis(unix_ns: i64, out: &mut String) {
    let (secs, millis) = split_millis(unix_ns);
    date_time(secs, out);
    push_millis(millis, out);
}

fn split_millis(unix_ns: i64) -> (i64, i64) {
    (
        unix_ns.div_euclid(1_000_000_000),
        unix_ns.rem_euclid(1_000_000_000) / 1_000_000,
    )
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix time `secs`.
fn date_time(secs: i64, out: &mut String) {
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if (0..10_000).contains(&year) {
        push_two_digits(year / 100, out);
        push_two_digits(year % 100, out);
    } else {
        let _ = write!(out, "{year:04}");
    }
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
}

/// `.mmmZ`
fn push_millis(millis: i64, out: &mut String) {
    out.push('.');
    push_two_digits(millis / 10, out);
    out.push(char::from(b'0' + (millis % 10) as u8));
    out.push('Z');
}

/// RFC 3339 timestamps for a stream of records: records come in bursts within one second,
/// so the date and time are formatted once per second and only the milliseconds per record.
#[derive(Debug, Default)]
pub struct Timestamps {
    second: Option<i64>,
    date_time: String,
}

impl Timestamps {
    /// Appends `unix_ns` as [`rfc3339_millis`] does.
    pub fn write(&mut self, unix_ns: i64, out: &mut Vec<u8>) {
        let (secs, millis) = split_millis(unix_ns);
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.date_time.clear();
            date_time(secs, &mut self.date_time);
        }
        out.extend_from_slice(self.date_time.as_bytes());
        let millis = millis as u16;
        out.extend_from_slice(&[
            b'.',
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
            b'Z',
        ]);
    }
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
    fn timestamps_match_rfc3339_millis() {
        let mut timestamps = Timestamps::default();
        let mut out = Vec::new();
        for unix_ns in [
            1_795_616_404_123_456_789,
            1_795_616_404_999_999_999,
            1_795_616_405_000_000_000,
            951_782_400_000_000_000,
            -1,
            0,
        ] {
            out.clear();
            timestamps.write(unix_ns, &mut out);
            let mut expected = String::new();
            rfc3339_millis(unix_ns, &mut expected);
            assert_eq!(out, expected.as_bytes());
        }
    }

    #[test]
    fn keeps_utf8_and_escapes_the_rest() {
        assert_eq!(lossless_text("héllo".as_bytes()), "héllo");
        assert_eq!(lossless_text(b"a\xffb"), "a\\xffb");
    }
}
