//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte frame header, the payload fields around a
//! header block or DATA (padding, priority), SETTINGS entries, and the strict check that
//! finds frame boundaries in a connection joined mid-way.

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 9;
/// What a client sends first (RFC 9113 §3.4).
pub const CLIENT_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame a peer accepts until its SETTINGS say otherwise; also the largest frame the
/// mid-connection boundary check believes in.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_MAX_FRAME_SIZE.
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    /// Extension frames are ignored (RFC 9113 §5.5).
    Unknown(u8),
}

impl Kind {
    fn from_u8(byte: u8) -> Kind {
        match byte {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }

    /// Flags the frame type defines; senders set no others.
    fn defined_flags(self) -> u8 {
        match self {
            Kind::Data => END_STREAM | PADDED,
            Kind::Headers => END_STREAM | END_HEADERS | PADDED | PRIORITY,
            Kind::PushPromise => END_HEADERS | PADDED,
            Kind::Continuation => END_HEADERS,
            Kind::Settings | Kind::Ping => ACK,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> FrameHeader {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *bytes;
        FrameHeader {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind: Kind::from_u8(kind),
            flags,
            stream: u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether a sender could have written this header: a known type, only its flags, and the
    /// stream id and length its type requires.
    fn plausible(&self, reserved_bit: bool) -> bool {
        let on_stream = self.stream != 0;
        let shape = match self.kind {
            Kind::Data | Kind::Headers | Kind::Continuation => on_stream,
            Kind::Priority => on_stream && self.len == 5,
            Kind::RstStream => on_stream && self.len == 4,
            Kind::Settings => {
                !on_stream && self.len.is_multiple_of(6) && (!self.has(ACK) || self.len == 0)
            }
            Kind::PushPromise => on_stream && self.len >= 4,
            Kind::Ping => !on_stream && self.len == 8,
            Kind::GoAway => !on_stream && self.len >= 8,
            Kind::WindowUpdate => self.len == 4,
            Kind::Unknown(_) => false,
        };
        shape
            && !reserved_bit
            && self.len <= DEFAULT_MAX_FRAME
            && self.flags & !self.kind.defined_flags() == 0
    }
}

/// Whether `data` is exactly a run of whole, plausible frames: the evidence needed to start
/// decoding a connection whose beginning was not seen. Writers emit whole frames per
/// syscall, so a chunk that parses this way end to end is taken as a boundary.
pub fn exact_frames(data: &[u8]) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        let Some(Ok(header)) = rest.get(..HEADER_LEN).map(<&[u8; HEADER_LEN]>::try_from) else {
            return false;
        };
        let frame = FrameHeader::parse(header);
        if !frame.plausible(header[5] & 0x80 != 0) {
            return false;
        }
        let end = HEADER_LEN + frame.len as usize;
        let Some(next) = rest.get(end..) else {
            return false;
        };
        rest = next;
    }
    !data.is_empty()
}

/// The payload without its padding; None when the pad length does not fit.
pub fn unpadded<'a>(header: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    if !header.has(PADDED) {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.get(..rest.len().checked_sub(usize::from(pad))?)
}

/// The header block fragment of a HEADERS frame: padding and priority fields removed.
pub fn headers_fragment<'a>(header: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let rest = unpadded(header, payload)?;
    if header.has(PRIORITY) {
        rest.get(5..)
    } else {
        Some(rest)
    }
}

/// The promised stream id and header block fragment of a PUSH_PROMISE frame.
pub fn push_promise_fragment<'a>(
    header: &FrameHeader,
    payload: &'a [u8],
) -> Option<(u32, &'a [u8])> {
    let rest = unpadded(header, payload)?;
    let id = rest.get(..4)?;
    let promised = u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff;
    Some((promised, rest.get(4..)?))
}

/// The 32-bit value of RST_STREAM (error code) and WINDOW_UPDATE frames.
pub fn u32_payload(payload: &[u8]) -> Option<u32> {
    let bytes = payload.get(..4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The last value of setting `id` in a SETTINGS payload, if any.
pub fn setting(payload: &[u8], id: u16) -> Option<u32> {
    payload
        .chunks_exact(6)
        .rev()
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) == id)
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> FrameHeader {
        let mut h = [0; HEADER_LEN];
        h.copy_from_slice(&bytes[..HEADER_LEN]);
        FrameHeader::parse(&h)
    }

    #[test]
    fn parses_headers_of_every_type() {
        let h = header(b"\x00\x00\x05\x01\x25\x80\x00\x00\x03");
        assert_eq!(
            h,
            FrameHeader {
                len: 5,
                kind: Kind::Headers,
                flags: END_STREAM | END_HEADERS | PRIORITY,
                stream: 3
            }
        );
        for (byte, kind) in [
            (0, Kind::Data),
            (2, Kind::Priority),
            (3, Kind::RstStream),
            (4, Kind::Settings),
            (5, Kind::PushPromise),
            (6, Kind::Ping),
            (7, Kind::GoAway),
            (8, Kind::WindowUpdate),
            (9, Kind::Continuation),
            (0xfa, Kind::Unknown(0xfa)),
        ] {
            assert_eq!(header(&[0, 0, 0, byte, 0, 0, 0, 0, 1]).kind, kind);
        }
    }

    #[test]
    fn padding_and_priority_are_removed() {
        let padded = FrameHeader {
            len: 0,
            kind: Kind::Headers,
            flags: PADDED | PRIORITY,
            stream: 1,
        };
        // pad length 2, priority (5 bytes), fragment "ab", padding.
        let payload = b"\x02\x00\x00\x00\x00\x10ab\x00\x00";
        assert_eq!(headers_fragment(&padded, payload), Some(&b"ab"[..]));
        assert_eq!(headers_fragment(&padded, b"\x09abc"), None);
        assert_eq!(headers_fragment(&padded, b""), None);
        let data = FrameHeader {
            kind: Kind::Data,
            flags: PADDED,
            ..padded
        };
        assert_eq!(unpadded(&data, b"\x01xy\x00"), Some(&b"xy"[..]));
        let push = FrameHeader {
            kind: Kind::PushPromise,
            flags: 0,
            ..padded
        };
        assert_eq!(
            push_promise_fragment(&push, b"\x80\x00\x00\x02hp"),
            Some((2, &b"hp"[..]))
        );
    }

    #[test]
    fn settings_and_fixed_payloads() {
        let settings = b"\x00\x03\x00\x00\x00\x64\x00\x01\x00\x00\x10\x00\x00\x01\x00\x00\x00\x00";
        assert_eq!(setting(settings, SETTINGS_HEADER_TABLE_SIZE), Some(0));
        assert_eq!(setting(&settings[..6], SETTINGS_HEADER_TABLE_SIZE), None);
        assert_eq!(setting(settings, SETTINGS_MAX_FRAME_SIZE), None);
        assert_eq!(u32_payload(b"\x00\x00\x00\x08"), Some(8));
        assert_eq!(u32_payload(b"\x00"), None);
    }

    #[test]
    fn boundaries_only_on_exact_runs_of_plausible_frames() {
        let ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x0012345678";
        let window = b"\x00\x00\x04\x08\x00\x00\x00\x00\x01\x00\x00\x10\x00";
        let mut both = ping.to_vec();
        both.extend_from_slice(window);
        assert!(exact_frames(ping));
        assert!(exact_frames(&both));
        assert!(!exact_frames(&both[..both.len() - 1]), "a cut frame");
        assert!(!exact_frames(b""));
        assert!(!exact_frames(b"GET / HTTP/1.1\r\n\r\n"));
        // PING on a stream, SETTINGS with a flag it does not define, an unknown type.
        assert!(!exact_frames(
            b"\x00\x00\x08\x06\x00\x00\x00\x00\x0112345678"
        ));
        assert!(!exact_frames(b"\x00\x00\x00\x04\x02\x00\x00\x00\x00"));
        assert!(!exact_frames(b"\x00\x00\x00\x0b\x00\x00\x00\x00\x00"));
        // Longer than the default maximum frame size.
        let mut big = b"\x00\x40\x01\x00\x00\x00\x00\x00\x01".to_vec();
        big.resize(9 + 0x4001, 0);
        assert!(!exact_frames(&big));
    }
}
