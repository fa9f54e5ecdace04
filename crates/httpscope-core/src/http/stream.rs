//! Per-direction stream reassembly: places each syscall's chunk against the expected offset,
//! turning lost chunks and uncaptured tails into counted gaps and dropping overlaps.

use super::{DataChunk, ParseCounters};

/// A chunk placed in its direction's stream: lost bytes, then captured bytes, then more lost bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placed<'a> {
    /// Bytes lost before this chunk (earlier chunks the kernel dropped).
    pub pre_gap: u64,
    /// Captured bytes not seen before.
    pub data: &'a [u8],
    /// Bytes of this syscall that were not captured.
    pub post_gap: u64,
    /// `post_gap` was left out on purpose (the capture budget): the decoder counts it as
    /// elided if it lies inside a body, as lost otherwise.
    pub elided: bool,
    /// `data` starts at the chunk's first byte (a syscall boundary, where resync may happen).
    pub at_start: bool,
    /// The first chunk of this direction.
    pub first: bool,
}

/// The expected offset of the next byte in one direction.
#[derive(Debug)]
pub(super) struct StreamPos {
    /// None until the first chunk when capture started mid-stream (offsets are then unknown).
    next: Option<u64>,
}

impl StreamPos {
    pub fn new(mid_stream: bool) -> Self {
        StreamPos {
            next: (!mid_stream).then_some(0),
        }
    }

    pub fn place<'a>(&mut self, chunk: &DataChunk<'a>, counters: &mut ParseCounters) -> Placed<'a> {
        // Trust `len` over a longer buffer: the kernel never captures more than the syscall moved.
        let cap = usize::try_from(chunk.len).unwrap_or(usize::MAX);
        let data = chunk.data.get(..cap).unwrap_or(chunk.data);
        let first = self.next.is_none();
        let expected = self.next.unwrap_or(chunk.offset);
        let end = chunk.offset.saturating_add(chunk.len);
        let mut placed = Placed {
            pre_gap: chunk.offset.saturating_sub(expected),
            data,
            post_gap: 0,
            elided: chunk.elided,
            at_start: true,
            first,
        };
        if chunk.offset < expected {
            let overlap = expected - chunk.offset;
            if end <= expected {
                counters.overlap_bytes = counters.overlap_bytes.saturating_add(chunk.len);
                placed.data = &[];
                placed.at_start = false;
                return placed;
            }
            counters.overlap_bytes = counters.overlap_bytes.saturating_add(overlap);
            let skip = usize::try_from(overlap).unwrap_or(usize::MAX);
            placed.data = data.get(skip..).unwrap_or_default();
            placed.at_start = false;
            placed.post_gap = (end - expected).saturating_sub(placed.data.len() as u64);
        } else {
            placed.post_gap = chunk.len.saturating_sub(data.len() as u64);
        }
        self.next = Some(end);
        let lost_tail = if placed.elided { 0 } else { placed.post_gap };
        counters.gap_bytes = counters
            .gap_bytes
            .saturating_add(placed.pre_gap)
            .saturating_add(lost_tail);
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;

    fn chunk(offset: u64, len: u64, data: &[u8]) -> DataChunk<'_> {
        DataChunk {
            direction: Direction::Send,
            offset,
            len,
            data,
            elided: false,
        }
    }

    #[test]
    fn gaps_and_overlaps() {
        let mut c = ParseCounters::default();
        let mut s = StreamPos::new(false);
        let p = s.place(&chunk(0, 4, b"abcd"), &mut c);
        assert_eq!(
            (p.pre_gap, p.data, p.post_gap, p.at_start),
            (0, &b"abcd"[..], 0, true)
        );
        let p = s.place(&chunk(10, 8, b"xyz"), &mut c);
        assert_eq!((p.pre_gap, p.data, p.post_gap), (6, &b"xyz"[..], 5));
        assert_eq!(c.gap_bytes, 11);
        // Overlapping retransmit of bytes 16..20: only 18..20 are new.
        let p = s.place(&chunk(16, 4, b"qrst"), &mut c);
        assert_eq!(
            (p.pre_gap, p.data, p.post_gap, p.at_start),
            (0, &b"st"[..], 0, false)
        );
        assert_eq!(c.overlap_bytes, 2);
        // Entirely old.
        let p = s.place(&chunk(0, 3, b"abc"), &mut c);
        assert!(p.data.is_empty() && p.pre_gap == 0 && p.post_gap == 0);
        assert_eq!(c.overlap_bytes, 5);
        // Overlap reaching into an uncaptured tail.
        let p = s.place(&chunk(18, 10, b"s"), &mut c);
        assert_eq!((p.data, p.post_gap), (&b""[..], 8));
    }

    #[test]
    fn mid_stream_anchors_on_first_chunk_and_never_overflows() {
        let mut c = ParseCounters::default();
        let mut s = StreamPos::new(true);
        let p = s.place(&chunk(1000, 2, b"ab"), &mut c);
        assert!(p.first && p.pre_gap == 0);
        let p = s.place(&chunk(u64::MAX - 1, u64::MAX, b"longer than len?"), &mut c);
        assert!(!p.first);
        assert_eq!(p.data.len(), 16);
        let p = s.place(&chunk(5, 3, b"abcdef"), &mut c);
        assert!(p.data.is_empty());
        // A buffer longer than the syscall is cut to `len`.
        let mut s = StreamPos::new(false);
        let p = s.place(&chunk(0, 2, b"abcd"), &mut c);
        assert_eq!((p.data, p.post_gap), (&b"ab"[..], 0));
    }
}
