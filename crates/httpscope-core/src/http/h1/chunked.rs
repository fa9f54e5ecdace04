//! Incremental chunked transfer-coding decoder: framing may be split across syscalls anywhere.

/// Longest chunk-size line (size plus extensions) we accept.
const MAX_SIZE_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line; `ext` once past the hex digits.
    Size {
        value: u64,
        digits: bool,
        ext: bool,
    },
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd {
        cr: bool,
    },
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Saw CR of the final blank line.
    FinalLf,
    Done,
}

/// The chunk framing is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FramingError {
    /// Bytes consumed before the offending byte.
    pub used: usize,
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub(super) struct Chunked {
    state: State,
    line_len: usize,
    trailer_len: usize,
    max_trailer: usize,
}

impl Chunked {
    pub fn new(max_trailer: usize) -> Self {
        Chunked {
            state: State::Size {
                value: 0,
                digits: false,
                ext: false,
            },
            line_len: 0,
            trailer_len: 0,
            max_trailer,
        }
    }

    /// Consumes bytes of the message, passing chunk data to `data`; returns bytes used and
    /// whether the body (including trailers) ended.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), FramingError> {
        let mut used = 0;
        while let Some(rest) = bytes.get(used..) {
            let Some(&first) = rest.first() else { break };
            match &mut self.state {
                State::Done => break,
                State::Data(left) => {
                    let take = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let (chunk, _) = rest.split_at(take);
                    data(chunk);
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::DataEnd { cr: false };
                    }
                    used += take;
                }
                _ => {
                    if !self.framing_byte(first) {
                        return Err(FramingError { used });
                    }
                    used += 1;
                }
            }
        }
        Ok((used, self.state == State::Done))
    }

    /// Skips `n` lost bytes; returns how many fell inside chunk data. Fewer than `n` means the
    /// loss reached framing and the rest of the body cannot be decoded.
    pub fn skip(&mut self, n: u64) -> u64 {
        let State::Data(left) = &mut self.state else {
            return 0;
        };
        let take = n.min(*left);
        *left -= take;
        if *left == 0 {
            self.state = State::DataEnd { cr: false };
        }
        take
    }

    /// Advances over one framing byte; false if it is malformed here.
    fn framing_byte(&mut self, b: u8) -> bool {
        self.state = match self.state {
            State::Size { value, digits, ext } => {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return false;
                }
                match b {
                    b'\n' if !digits => return false,
                    b'\n' => {
                        self.line_len = 0;
                        if value == 0 {
                            State::TrailerStart
                        } else {
                            State::Data(value)
                        }
                    }
                    _ if ext => State::Size { value, digits, ext },
                    b';' | b' ' | b'\t' | b'\r' if digits => State::Size {
                        value,
                        digits,
                        ext: true,
                    },
                    _ => {
                        let Some(v) = char::from(b)
                            .to_digit(16)
                            .and_then(|d| value.checked_mul(16)?.checked_add(u64::from(d)))
                        else {
                            return false;
                        };
                        State::Size {
                            value: v,
                            digits: true,
                            ext: false,
                        }
                    }
                }
            }
            State::DataEnd { cr: false } if b == b'\r' => State::DataEnd { cr: true },
            State::DataEnd { .. } if b == b'\n' => State::Size {
                value: 0,
                digits: false,
                ext: false,
            },
            State::TrailerStart | State::Trailer => {
                self.trailer_len += 1;
                if self.trailer_len > self.max_trailer {
                    return false;
                }
                match (self.state, b) {
                    (State::TrailerStart, b'\n') => State::Done,
                    (State::TrailerStart, b'\r') => State::FinalLf,
                    (_, b'\n') => State::TrailerStart,
                    _ => State::Trailer,
                }
            }
            State::FinalLf if b == b'\n' => State::Done,
            _ => return false,
        };
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_split(wire: &[u8], step: usize) -> (Vec<u8>, usize, bool) {
        let mut c = Chunked::new(1024);
        let mut out = Vec::new();
        let mut total = 0;
        let mut done = false;
        for piece in wire.chunks(step) {
            let (used, d) = c.feed(piece, |d| out.extend_from_slice(d)).unwrap();
            total += used;
            done = d;
            if d {
                break;
            }
        }
        (out, total, done)
    }

    #[test]
    fn decodes_at_every_split() {
        let wire = b"5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (out, used, done) = decode_split(wire, step);
            assert!(done, "step {step}");
            assert_eq!(out, b"hello0123456789");
            assert_eq!(used, wire.len() - 4, "step {step}");
        }
    }

    #[test]
    fn bare_lf_and_no_trailers() {
        let (out, used, done) = decode_split(b"3\nabc\n0\n\n", 100);
        assert_eq!((out.as_slice(), used, done), (&b"abc"[..], 9, true));
    }

    #[test]
    fn malformed_framing() {
        let mut c = Chunked::new(1024);
        assert_eq!(c.feed(b"zz\r\n", |_| {}), Err(FramingError { used: 0 }));
        let mut c = Chunked::new(1024);
        assert_eq!(c.feed(b"3\r\nabcX", |_| {}), Err(FramingError { used: 6 }));
        let mut c = Chunked::new(1024);
        assert!(
            c.feed(b"11111111111111111\r\n", |_| {}).is_err(),
            "overflow"
        );
        let mut c = Chunked::new(4);
        assert!(
            c.feed(b"0\r\nX-Long: 1\r\n\r\n", |_| {}).is_err(),
            "trailer cap"
        );
        let mut c = Chunked::new(1024);
        assert!(c.feed(b"\r\n", |_| {}).is_err(), "empty size");
    }

    #[test]
    fn skip_stays_inside_data() {
        let mut c = Chunked::new(1024);
        let (used, _) = c.feed(b"10\r\nab", |_| {}).unwrap();
        assert_eq!(used, 6);
        assert_eq!(c.skip(10), 10);
        assert_eq!(c.skip(10), 4, "only 4 data bytes were left");
        assert_eq!(c.skip(1), 0, "framing now");
        let (_, done) = c.feed(b"\r\n0\r\n\r\n", |_| {}).unwrap();
        assert!(done);
    }
}
