//! Which path segments are values (ids, tokens, dates, addresses) rather than names.
//!
//! The rules err towards keeping a segment: merging two static routes hides an
//! endpoint, while leaving an odd id in place only costs a row (and the route cap
//! bounds the worst case).

use std::net::IpAddr;

/// Segments longer than this are values whatever they hold (nobody names a route so).
const MAX_NAME_LEN: usize = 64;
/// Hex strings at least this long (with a digit) are ids, like `deadbeef01`.
const MIN_HEX_LEN: usize = 8;
/// Base64-url tokens and ULIDs are at least this long.
const MIN_TOKEN_LEN: usize = 16;

/// True when `segment` holds a value: digits, a UUID, long hex, a ULID or
/// base64-url token, a date, an e-mail address or an IP address; also
/// `prefix_value` forms like `ord_12345`.
pub fn is_variable(segment: &str) -> bool {
    if segment.len() > MAX_NAME_LEN {
        return true;
    }
    // Most segments are lower-case words: every value has a digit, a capital, `@`, `%` or `:`.
    if segment
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b"-_.".contains(&b))
    {
        return false;
    }
    if is_value(segment) {
        return true;
    }
    // Prefixed ids (`cus_9a8b7c6d5e4f`, `order-12345`): the part after the last separator.
    segment
        .rfind(['_', '-'])
        .and_then(|i| segment.get(i + 1..))
        .is_some_and(|tail| is_digits(tail) && tail.len() >= 3 || is_hex_id(tail) || is_token(tail))
}

fn is_value(segment: &str) -> bool {
    is_digits(segment)
        || is_uuid(segment)
        || is_hex_id(segment)
        || is_date(segment)
        || is_email(segment)
        || is_ip(segment)
        || is_ulid(segment)
        || is_token(segment)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `123e4567-e89b-12d3-a456-426614174000`, or its 32 digits without dashes.
fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Hex with at least one digit (so that words like `deadbeef`… still need one).
fn is_hex_id(s: &str) -> bool {
    s.len() >= MIN_HEX_LEN
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && s.bytes().any(|b| b.is_ascii_digit())
}

/// `01ARZ3NDEKTSV4RRFFQ69G5FAV`: 26 characters of Crockford's base32 (no I, L, O, U), the
/// first at most 7 (a 48-bit time), with both digits and letters.
fn is_ulid(s: &str) -> bool {
    let bytes = s.as_bytes();
    let crockford = |b: &u8| b.is_ascii_digit() || b.is_ascii_uppercase() && !b"ILOU".contains(b);
    bytes.len() == 26
        && bytes[0] <= b'7'
        && bytes.iter().all(crockford)
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_uppercase)
}

/// `2026-12-06`, `20261206T1530Z`, `2026-12-06T15:30:00.000Z`: digits and date
/// punctuation only, starting with a four-digit year.
fn is_date(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() >= 7
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b"-:.TZ+".contains(b))
        && bytes.iter().filter(|b| b.is_ascii_digit()).count() >= 6
}

/// IPv4 or IPv6; only parsed when it has the punctuation of one.
fn is_ip(s: &str) -> bool {
    s.bytes().any(|b| b == b'.' || b == b':') && s.parse::<IpAddr>().is_ok()
}

/// `someone@example.com` (also percent-encoded: `someone%40example.com`).
fn is_email(s: &str) -> bool {
    if !s.bytes().any(|b| b == b'@' || b == b'%') {
        return false;
    }
    let (local, domain) = match s.split_once('@') {
        Some(parts) => parts,
        None => match s.split_once("%40") {
            Some(parts) => parts,
            None => return false,
        },
    };
    !local.is_empty() && domain.len() >= 3 && domain.contains('.') && !domain.ends_with('.')
}

/// A base64-url token: long, from their alphabets, and looking random. Names
/// (`getUserProfile`, `oauth2-callback-handler`, `HTTPServerStatus`) are words: the
/// character class (lower, upper, digit) changes rarely inside them. In random base64 it
/// changes at two pairs in three. A guess, as any: a short token
/// of letters only can look like a name, and `--route` corrects what it gets wrong.
fn is_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < MIN_TOKEN_LEN
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(b))
    {
        return false;
    }
    let count = |f: fn(&u8) -> bool| bytes.iter().filter(|b| f(b)).count();
    let (digits, upper, lower) = (
        count(u8::is_ascii_digit),
        count(u8::is_ascii_uppercase),
        count(u8::is_ascii_lowercase),
    );
    let (pairs, changes) = class_changes(bytes);
    (digits > 0 && upper + lower > 0 && changes * 10 >= pairs * 3)
        || random_case(bytes)
        // Capitals as many as small letters: acronyms only, or noise.
        || (digits == 0 && upper >= lower && lower >= 3)
}

/// (adjacent alphanumeric pairs, those whose class differs); separators are word breaks.
fn class_changes(bytes: &[u8]) -> (usize, usize) {
    let class = |b: u8| match b {
        b'a'..=b'z' => Some(0),
        b'A'..=b'Z' => Some(1),
        b'0'..=b'9' => Some(2),
        _ => None,
    };
    bytes
        .windows(2)
        .filter_map(|w| Some((class(w[0])?, class(w[1])?)))
        .fold((0, 0), |(pairs, changes), (a, b)| {
            (pairs + 1, changes + usize::from(a != b))
        })
}

/// Case changing every letter or two, as in random base64: in a name (`getUserProfile`,
/// `HTTPServerStatus`) the lower-case runs are words, mostly longer.
fn random_case(bytes: &[u8]) -> bool {
    let capitals = bytes.iter().filter(|b| b.is_ascii_uppercase()).count();
    let runs: Vec<usize> = bytes
        .split(|b| !b.is_ascii_lowercase())
        .map(<[u8]>::len)
        .filter(|len| *len > 0)
        .collect();
    let lower: usize = runs.iter().sum();
    // Mean lower-case run below 2.5 letters.
    capitals >= 3 && runs.len() >= 3 && lower * 2 < runs.len() * 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_variable() {
        for value in [
            "42",
            "123e4567-e89b-12d3-a456-426614174000",
            "deadbeef01",
            "5f1d7c9e0b3a4c2d8e6f",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01784T58ZNECSQ96H7NSZRRYDH",
            "dGhpcyBpcyBhIHRva2VuIQ",
            "eyJhbGciOiJIUzI1NiJ9",
            "Zm9vYmFyYmF6cXV4MTIzNDU2",
            "ZVCXFwsebKMBFrRIMDvevi",
            "2026-12-06",
            "2026-12-06T15:30:00.000Z",
            "20261206",
            "someone@example.com",
            "someone%40example.com",
            "10.0.0.1",
            "fe80::1",
            "ord_12345",
            "cus_9a8b7c6d5e4f",
            "sess-3kTMd92jf83JdkQ0p1",
            &"x".repeat(65),
        ] {
            assert!(is_variable(value), "{value} should be a value");
        }
    }

    #[test]
    fn names_stay() {
        for name in [
            "users",
            "me",
            "v1",
            "v2",
            "api",
            "healthz",
            "oauth2",
            "2fa",
            "x86_64",
            "getUserProfileById",
            "oauth2-callback-handler",
            "order-items",
            "deadbeef",
            "facade",
            "accessibility-statement",
            "README.md",
            "index.html",
            "v1.2.3",
            "h1-plain",
            "ABCDEFGH",
            "search_by-name",
            "well-known",
            "HTTPServerStatus",
            "listAllVMsForAWSAccount",
            "v1-users-by-id-and-name",
            "utf8-encoded-filename",
            "sha256-checksums",
            "k8s-cluster-overview",
        ] {
            assert!(!is_variable(name), "{name} should stay a name");
        }
    }
}
