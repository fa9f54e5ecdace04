//! The Go version a binary was built with, from its `.go.buildinfo` section.
//!
//! Layout (Go's `debug/buildinfo`): a 32-byte header starting with
//! `"\xff Go buildinf:"`, then the pointer size and a flags byte. Since Go 1.18
//! (flag bit 1) the version string follows inline as a uvarint length and its
//! bytes; older binaries hold pointers instead, and are not supported (the
//! register ABI the probes rely on starts with Go 1.17 anyway).

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 2;

/// A Go release, `go1.21.5` → `GoVersion { minor: 21 }` (all are Go 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoVersion {
    pub minor: u32,
}

/// The version string (`go1.19.8`) in a `.go.buildinfo` section's bytes.
pub fn version_string(section: &[u8]) -> Option<&str> {
    if section.len() < HEADER_LEN || !section.starts_with(MAGIC) {
        return None;
    }
    if section[15] & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let (len, used) = uvarint(&section[HEADER_LEN..])?;
    let start = HEADER_LEN + used;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    std::str::from_utf8(section.get(start..end)?).ok()
}

/// `go1.19.8`, `go1.22rc1`, `go1.27.3 X:nocoverageredesign` → the minor release.
pub fn parse_version(text: &str) -> Option<GoVersion> {
    let rest = text.strip_prefix("go1.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(GoVersion {
        minor: digits.parse().ok()?,
    })
}

fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn section(flags: u8, version: &str) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([8, flags]);
        bytes.resize(HEADER_LEN, 0);
        bytes.push(version.len() as u8);
        bytes.extend_from_slice(version.as_bytes());
        bytes.extend_from_slice(b"\x20path\tgohttps");
        bytes
    }

    #[test]
    fn reads_the_inline_version() {
        let bytes = section(2, "go1.19.8");
        assert_eq!(version_string(&bytes), Some("go1.19.8"));
        assert_eq!(parse_version("go1.19.8"), Some(GoVersion { minor: 19 }));
        assert_eq!(parse_version("go1.22rc1"), Some(GoVersion { minor: 22 }));
        assert_eq!(parse_version("devel +abc"), None);
    }

    #[test]
    fn refuses_pointer_format_and_garbage() {
        assert_eq!(version_string(&section(0, "go1.16")), None);
        assert_eq!(version_string(b"\xff Go buildinf:"), None);
        let mut truncated = section(2, "go1.19.8");
        truncated.truncate(HEADER_LEN + 4);
        assert_eq!(version_string(&truncated), None);
    }
}
