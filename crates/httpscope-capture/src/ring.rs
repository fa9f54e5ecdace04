//! The events ring buffer's reader. Records are handled in place, and the consumer
//! position is published in steps of [`PUBLISH_STEP`] bytes and whenever the reader
//! has caught up, not after every record: the BPF programs read that position on
//! every reserve, and a store to it per record would take its cache line away from
//! the traced programs' CPUs a million times a second.
//!
//! The kernel offers the data pages twice in a row, so that a record across the end
//! reads as one slice. Only one copy is mapped: a second one would count the ring twice
//! in the profiler's RSS, for the rare record that wraps, which is stitched instead.

use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

use aya::maps::{Map, MapData};

use crate::loader::CaptureError;

/// Bytes read between two publications of the consumer position (at most a quarter
/// of the ring): the space the kernel cannot reuse yet is that much larger.
const PUBLISH_STEP: usize = 64 * 1024;

/// A record's 8-byte header: its length, with these flags in the top bits.
const HEADER_BYTES: usize = 8;
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;

/// A ring buffer map and the reader of its mapped pages.
pub(crate) struct EventRing {
    map: MapData,
    view: RingView,
}

/// A ring buffer as the kernel lays it out: the consumer page (ours to write), then
/// the producer page and one copy of the data pages.
struct RingView {
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: usize,
    /// A record across the end of the ring, put back together.
    stitched: Vec<u8>,
    /// The position read up to, and the one the kernel was last told.
    pos: usize,
    published: usize,
    step: usize,
    /// The producer position last read.
    produced: usize,
}

impl EventRing {
    pub(crate) fn new(map: Map, name: &'static str) -> Result<Self, CaptureError> {
        let err = |e: String| CaptureError::Map(name, e);
        let Map::RingBuf(map) = map else {
            return Err(err("not a ring buffer".into()));
        };
        let size = map.info().map_err(|e| err(e.to_string()))?.max_entries() as usize;
        if !size.is_power_of_two() {
            return Err(err(format!("size {size} is not a power of two")));
        }
        let page = page_size();
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(|e| err(format!("mapping its consumer page: {e}")))?;
        let producer = Mapping::new(fd, page + size, libc::PROT_READ, page).map_err(|e| {
            err(format!(
                "mapping its {} MiB of data: {e} (a smaller --ring-mb needs less memory)",
                size >> 20
            ))
        })?;
        let view = RingView::new(consumer, producer, page, size);
        Ok(Self { map, view })
    }

    /// Hands every committed record to `handle`, in order; returns how many.
    pub(crate) fn drain(&mut self, handle: &mut dyn FnMut(&[u8])) -> usize {
        self.view.drain(handle)
    }

    /// The file descriptor to poll for records.
    pub(crate) fn as_raw_fd(&self) -> i32 {
        self.map.fd().as_fd().as_raw_fd()
    }
}

impl RingView {
    /// `consumer`: one page; `producer`: `page + size` bytes; `size` a power of two.
    fn new(consumer: Mapping, producer: Mapping, page: usize, size: usize) -> Self {
        let mut ring = Self {
            consumer,
            producer,
            page,
            mask: size - 1,
            stitched: Vec::new(),
            pos: 0,
            published: 0,
            step: PUBLISH_STEP.min(size / 4),
            produced: 0,
        };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        ring.published = ring.pos;
        ring.produced = ring.load_produced();
        ring
    }

    fn drain(&mut self, handle: &mut dyn FnMut(&[u8])) -> usize {
        let mut handled = 0;
        loop {
            if self.pos == self.produced && !self.refresh() {
                return handled;
            }
            let Some(record) = self.record_at(self.pos) else {
                // Reserved, not committed yet: the next drain takes it.
                self.publish();
                return handled;
            };
            let footprint = record.footprint();
            if let Record::Data(data) = record {
                handle(data);
                handled += 1;
            }
            self.pos = self.pos.wrapping_add(footprint);
            if self.pos.wrapping_sub(self.published) >= self.step {
                self.publish();
            }
        }
    }

    /// Caught up: gives the kernel the space read, then looks for records written since.
    fn refresh(&mut self) -> bool {
        self.publish();
        // Either this load sees the next record, or its producer sees the position
        // just published (the kernel's wakeup decision pairs with this).
        fence(Ordering::SeqCst);
        self.produced = self.load_produced();
        self.pos != self.produced
    }

    fn publish(&mut self) {
        if self.published != self.pos {
            self.consumer_pos().store(self.pos, Ordering::Release);
            self.published = self.pos;
        }
    }

    fn record_at(&mut self, pos: usize) -> Option<Record<'_>> {
        let size = self.mask + 1;
        let start = pos & self.mask;
        // SAFETY: the kernel writes record headers at 8-byte alignment, so the header's
        // 8 bytes lie within the data pages.
        let header = unsafe { &*self.producer.at(self.page + start).cast::<AtomicU32>() };
        // Pairs with the kernel's commit: the record's bytes are visible once BUSY is clear.
        let word = header.load(Ordering::Acquire);
        if word & BUSY_BIT != 0 {
            return None;
        }
        let len = (word & !(BUSY_BIT | DISCARD_BIT)) as usize;
        if word & DISCARD_BIT != 0 {
            return Some(Record::Discarded(len));
        }
        let len = len.min(size - HEADER_BYTES);
        let data_start = (start + HEADER_BYTES) & self.mask;
        let before_end = len.min(size - data_start);
        // SAFETY: `data_start + before_end` is at most the ring's size, and the rest
        // of a record that wraps starts at the first data page.
        let (head, tail) = unsafe {
            (
                std::slice::from_raw_parts(self.producer.at(self.page + data_start), before_end),
                std::slice::from_raw_parts(self.producer.at(self.page), len - before_end),
            )
        };
        if tail.is_empty() {
            return Some(Record::Data(head));
        }
        self.stitched.clear();
        self.stitched.extend_from_slice(head);
        self.stitched.extend_from_slice(tail);
        Some(Record::Data(&self.stitched))
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page starts with the kernel's consumer position, an
        // aligned word that lives as long as the mapping.
        unsafe { &*self.consumer.at(0).cast::<AtomicUsize>() }
    }

    fn load_produced(&self) -> usize {
        // SAFETY: the producer page starts with the producer position, as above.
        let producer_pos = unsafe { &*self.producer.at(0).cast::<AtomicUsize>() };
        // Pairs with the kernel's release store after a reserve.
        producer_pos.load(Ordering::Acquire)
    }
}

enum Record<'a> {
    Data(&'a [u8]),
    Discarded(usize),
}

impl Record<'_> {
    /// The bytes the record takes in the ring: its header and its data, 8-byte aligned.
    fn footprint(&self) -> usize {
        let len = match self {
            Record::Data(data) => data.len(),
            Record::Discarded(len) => *len,
        };
        (HEADER_BYTES + len).next_multiple_of(8)
    }
}

/// A shared mapping of part of a map's file, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// A shared mapping of `len` bytes of the map's fd, from `offset`.
    fn new(fd: i32, len: usize, prot: i32, offset: usize) -> std::io::Result<Self> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Self::mmap(len, prot, libc::MAP_SHARED, fd, offset)
    }

    /// Zeroed private memory, as a stand-in for a map's pages.
    #[cfg(test)]
    fn anonymous(len: usize) -> Self {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        Self::mmap(len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            .expect("an anonymous mapping")
    }

    fn mmap(
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: libc::off_t,
    ) -> std::io::Result<Self> {
        // SAFETY: a fresh mapping; the kernel checks the fd and the range.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        Ok(Self { ptr, len })
    }

    /// The address `offset` bytes in; callers keep within `len`.
    fn at(&self, offset: usize) -> *const u8 {
        debug_assert!(offset < self.len);
        self.ptr.as_ptr().wrapping_add(offset)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is the one mmap returned, and nothing borrows it past `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;
    const SIZE: usize = 4 * PAGE;

    /// A ring laid out as the kernel's, in anonymous memory (one copy of the data
    /// pages, as the reader maps it): the writer below plays the kernel.
    struct FakeRing {
        view: RingView,
        produced: usize,
    }

    impl FakeRing {
        fn new() -> Self {
            let consumer = Mapping::anonymous(PAGE);
            let producer = Mapping::anonymous(PAGE + SIZE);
            Self {
                view: RingView::new(consumer, producer, PAGE, SIZE),
                produced: 0,
            }
        }

        fn put(&self, pos: usize, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let at = (pos + i) & (SIZE - 1);
                // SAFETY: within the anonymous producer mapping.
                unsafe { self.view.producer.at(PAGE + at).cast_mut().write(*b) };
            }
        }

        /// Appends a record; `flags` are BUSY_BIT and DISCARD_BIT. Returns its position.
        fn write(&mut self, data: &[u8], flags: u32) -> usize {
            let pos = self.produced;
            self.put(pos, &(data.len() as u32 | flags).to_ne_bytes());
            self.put(pos + 4, &[0; 4]);
            self.put(pos + HEADER_BYTES, data);
            self.produced += (HEADER_BYTES + data.len()).next_multiple_of(8);
            // SAFETY: the producer position, at the start of the producer page.
            unsafe { &*self.view.producer.at(0).cast::<AtomicUsize>() }
                .store(self.produced, Ordering::Release);
            pos
        }

        fn set_flags(&self, pos: usize, len: usize, flags: u32) {
            self.put(pos, &(len as u32 | flags).to_ne_bytes());
        }

        fn published(&self) -> usize {
            self.view.consumer_pos().load(Ordering::Acquire)
        }

        fn drain(&mut self) -> Vec<Vec<u8>> {
            let mut seen = Vec::new();
            self.view.drain(&mut |data| seen.push(data.to_vec()));
            seen
        }
    }

    #[test]
    fn records_come_in_order_without_the_discarded_ones() {
        let mut ring = FakeRing::new();
        ring.write(b"first", 0);
        ring.write(b"dropped by its program", DISCARD_BIT);
        ring.write(b"second record", 0);
        assert_eq!(
            ring.drain(),
            vec![b"first".to_vec(), b"second record".to_vec()]
        );
        assert_eq!(
            ring.published(),
            ring.produced,
            "caught up: all space given back"
        );
        assert!(ring.drain().is_empty());
    }

    #[test]
    fn a_record_not_committed_yet_waits_for_the_next_drain() {
        let mut ring = FakeRing::new();
        ring.write(b"one", 0);
        let busy = ring.write(b"two", BUSY_BIT);
        ring.write(b"three", 0);
        assert_eq!(ring.drain(), vec![b"one".to_vec()]);
        assert_eq!(
            ring.published(),
            busy,
            "the space before the busy record is given back"
        );
        ring.set_flags(busy, 3, 0);
        assert_eq!(ring.drain(), vec![b"two".to_vec(), b"three".to_vec()]);
    }

    #[test]
    fn a_record_across_the_end_of_the_ring_reads_whole() {
        let mut ring = FakeRing::new();
        let filler = vec![7u8; SIZE - 64 - HEADER_BYTES];
        ring.write(&filler, 0);
        assert_eq!(ring.drain().len(), 1);
        let wrapping: Vec<u8> = (0..200u8).collect();
        ring.write(&wrapping, 0);
        assert_eq!(ring.drain(), vec![wrapping]);
        assert_eq!(ring.published(), ring.produced);
    }

    #[test]
    fn a_record_whose_header_ends_the_ring_reads_from_its_start() {
        let mut ring = FakeRing::new();
        ring.write(&vec![7u8; SIZE - 2 * HEADER_BYTES], 0);
        assert_eq!(ring.drain().len(), 1);
        let record = b"starts at the ring's first byte".to_vec();
        assert_eq!(ring.write(&record, 0) & (SIZE - 1), SIZE - HEADER_BYTES);
        assert_eq!(ring.drain(), vec![record]);
    }

    #[test]
    fn the_consumer_position_is_published_in_steps_not_per_record() {
        let mut ring = FakeRing::new();
        let record = [1u8; 120];
        let count = 3 * SIZE / 4 / (HEADER_BYTES + record.len());
        for _ in 0..count {
            ring.write(&record, 0);
        }
        let step = ring.view.step;
        let consumer = ring.view.consumer.at(0).cast::<AtomicUsize>();
        let mut positions = Vec::new();
        ring.view.drain(&mut |_| {
            // SAFETY: the consumer position, read while the reader holds the ring.
            positions.push(unsafe { &*consumer }.load(Ordering::Acquire));
        });
        positions.dedup();
        // Seen from inside the drain: the start, then once per step read.
        let read = count * (HEADER_BYTES + record.len());
        assert_eq!(positions.len(), (read - 1) / step + 1);
        assert_eq!(ring.published(), ring.produced);
    }
}
