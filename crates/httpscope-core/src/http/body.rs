//! The bounded body sink: keeps a prefix of the body and, for gzip/deflate bodies, inflates
//! on the fly until `body_limit` decoded bytes are known.

use std::io::{self, Write};

use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

use super::message::{push_capped, HttpMessage};
use super::ParseCounters;

/// Content-Encoding as far as we can decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Gzip,
    Deflate,
    /// Anything we do not decode (br, zstd, stacked codings).
    Other,
}

impl Encoding {
    /// The coding after one more `Content-Encoding` value: codings stacked on a real one are
    /// beyond us.
    pub fn with_header(self, value: &[u8]) -> Encoding {
        let this = match value.trim_ascii() {
            v if v.is_empty() || v.eq_ignore_ascii_case(b"identity") => Encoding::Identity,
            v if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => {
                Encoding::Gzip
            }
            v if v.eq_ignore_ascii_case(b"deflate") => Encoding::Deflate,
            _ => Encoding::Other,
        };
        match (self, this) {
            (Encoding::Identity, e) | (e, Encoding::Identity) => e,
            _ => Encoding::Other,
        }
    }
}

/// Decoded output that keeps only its first `limit` bytes.
#[derive(Debug)]
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let before = self.buf.len();
        push_capped(&mut self.buf, data, self.limit);
        self.overflowed |= self.buf.len() - before < data.len();
        // Claim everything so the decoder keeps going; the caller stops once we overflow.
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
enum Inflater {
    Gzip(GzDecoder<Capped>),
    Zlib(ZlibDecoder<Capped>),
    Raw(DeflateDecoder<Capped>),
}

impl Inflater {
    fn new(encoding: Encoding, first: u8, limit: usize) -> Option<Self> {
        let out = Capped {
            buf: Vec::new(),
            limit,
            overflowed: false,
        };
        // "deflate" should be zlib-wrapped but some servers send raw deflate; a zlib CMF byte
        // (CM = 8, window <= 32K) is unlikely as the first byte of a raw deflate stream.
        let zlib = first & 0x0f == 8 && first >> 4 <= 7;
        match encoding {
            Encoding::Gzip => Some(Inflater::Gzip(GzDecoder::new(out))),
            Encoding::Deflate if zlib => Some(Inflater::Zlib(ZlibDecoder::new(out))),
            Encoding::Deflate => Some(Inflater::Raw(DeflateDecoder::new(out))),
            Encoding::Identity | Encoding::Other => None,
        }
    }

    fn out(&self) -> &Capped {
        match self {
            Inflater::Gzip(d) => d.get_ref(),
            Inflater::Zlib(d) => d.get_ref(),
            Inflater::Raw(d) => d.get_ref(),
        }
    }

    /// Feeds compressed bytes until they are used up or the output is full; returns the
    /// decoded prefix once full.
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
        while !bytes.is_empty() && !self.out().overflowed {
            let n = match self {
                Inflater::Gzip(d) => d.write(bytes)?,
                Inflater::Zlib(d) => d.write(bytes)?,
                Inflater::Raw(d) => d.write(bytes)?,
            };
            if n == 0 {
                // The compressed stream ended; trailing bytes are ignored like browsers do.
                break;
            }
            bytes = bytes.get(n..).unwrap_or_default();
        }
        // The decoder holds output back until its next write; drain it to see if we are done.
        match self {
            Inflater::Gzip(d) => d.flush()?,
            Inflater::Zlib(d) => d.flush()?,
            Inflater::Raw(d) => d.flush()?,
        }
        if !self.out().overflowed {
            return Ok(None);
        }
        let out = match self {
            Inflater::Gzip(d) => d.get_mut(),
            Inflater::Zlib(d) => d.get_mut(),
            Inflater::Raw(d) => d.get_mut(),
        };
        Ok(Some(std::mem::take(&mut out.buf)))
    }

    /// What the captured bytes decoded to so far: a true prefix of the decoded body.
    fn take_decoded(&mut self) -> Vec<u8> {
        let out = match self {
            Inflater::Gzip(d) => d.get_mut(),
            Inflater::Zlib(d) => d.get_mut(),
            Inflater::Raw(d) => d.get_mut(),
        };
        std::mem::take(&mut out.buf)
    }

    /// The decoded prefix and whether there was more, after checking the stream ended properly.
    fn finish(self) -> io::Result<(Vec<u8>, bool)> {
        let out = match self {
            Inflater::Gzip(d) => d.finish(),
            Inflater::Zlib(d) => d.finish(),
            Inflater::Raw(d) => d.finish(),
        };
        out.map(|o| (o.buf, o.overflowed))
    }
}

#[derive(Debug)]
enum Inflate {
    Off,
    /// Encoded, but no body byte seen yet (decoders are built lazily: most bodies are empty
    /// or identity-coded, and a decoder costs tens of KiB).
    Pending(Encoding),
    Active(Box<Inflater>),
    /// The first `limit` decoded bytes; the decoder is freed as soon as they are known.
    Decoded(Vec<u8>),
    Failed,
}

/// Collects what a record keeps of one body.
#[derive(Debug)]
pub(super) struct BodySink {
    kept: Vec<u8>,
    limit: usize,
    len: u64,
    captured: bool,
    inflate: Inflate,
}

impl BodySink {
    /// `kept`: an empty buffer for the kept prefix (its room is reused).
    pub fn new(encoding: Encoding, limit: usize, kept: Vec<u8>) -> Self {
        let inflate = match encoding {
            Encoding::Gzip | Encoding::Deflate if limit > 0 => Inflate::Pending(encoding),
            _ => Inflate::Off,
        };
        BodySink {
            kept,
            limit,
            len: 0,
            captured: true,
            inflate,
        }
    }

    /// Captured body bytes (dechunked).
    pub fn push(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len() as u64);
        push_capped(&mut self.kept, bytes, self.limit);
        if let (Inflate::Pending(encoding), Some(&first)) = (&self.inflate, bytes.first()) {
            self.inflate = match Inflater::new(*encoding, first, self.limit) {
                Some(inflater) => Inflate::Active(Box::new(inflater)),
                None => Inflate::Off,
            };
        }
        if let Inflate::Active(inflater) = &mut self.inflate {
            match inflater.feed(bytes) {
                Ok(None) => {}
                Ok(Some(decoded)) => self.inflate = Inflate::Decoded(decoded),
                Err(_) => self.inflate = Inflate::Failed,
            }
        }
    }

    /// Body bytes that exist but were not captured.
    pub fn skip(&mut self, n: u64) {
        self.len = self.len.saturating_add(n);
        self.captured = false;
        // `kept` must stay a true prefix of the body: nothing after a hole.
        self.limit = self.kept.len();
        // Inflating cannot continue past a hole; free the decoder now, keeping what it decoded
        // (the capture budget copies only a body's first bytes: they still read as text).
        self.inflate = match std::mem::replace(&mut self.inflate, Inflate::Off) {
            Inflate::Decoded(prefix) => Inflate::Decoded(prefix),
            Inflate::Active(mut inflater) => Inflate::Decoded(inflater.take_decoded()),
            _ => Inflate::Off,
        };
    }

    /// Fills the body fields of `msg`; `complete` is false when the body ended early.
    pub fn finish(self, msg: &mut HttpMessage, complete: bool, counters: &mut ParseCounters) {
        msg.body_len = self.len;
        msg.body_captured = self.captured;
        let whole = complete && self.captured;
        let decoded = match self.inflate {
            // Decoded before a hole, or past body_limit: the text goes on after it.
            Inflate::Decoded(prefix) if complete && !prefix.is_empty() => Some((prefix, true)),
            Inflate::Active(inflater) if whole => inflater.finish().ok(),
            Inflate::Failed if whole => None,
            _ => {
                msg.body_truncated = !whole || self.len > self.kept.len() as u64;
                msg.body = self.kept;
                return;
            }
        };
        match decoded {
            Some((text, truncated)) => {
                msg.body_truncated = truncated;
                msg.body = text;
            }
            None => {
                counters.decode_errors += 1;
                msg.body_truncated = self.len > self.kept.len() as u64;
                msg.body = self.kept;
            }
        }
    }
}
