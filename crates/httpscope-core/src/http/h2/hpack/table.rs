//! HPACK's static table and a passive copy of one encoder's dynamic table (RFC 7541 §2.3).
//!
//! Index 62 + k is always the (k+1)-th most recent insertion, as long as it is still in the
//! table. So the entries inserted since we started watching answer references exactly, even
//! when older entries were never seen: those form an unknown tail (the placeholders), and a
//! reference into it is unknown, never guessed. A valid encoder never references an evicted
//! entry, so our eviction may err on either side: keeping an entry too long is harmless,
//! dropping it early only makes a later reference unknown.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Entries 1..=61 (RFC 7541 Appendix A).
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Per-entry overhead counted in the table size (RFC 7541 §4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// One dynamic table entry as far as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Known {
        name: Arc<str>,
        value: Arc<str>,
    },
    /// Inserted with a name we could not resolve; it holds the slot.
    Unknown,
}

/// What an index refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Shared, so that a field costs no allocation when the table already holds it.
    Found(&'a Arc<str>, &'a Arc<str>),
    /// In the table, but not known to us.
    Unknown,
    /// Outside the table: the encoder is broken, or we lost track of it.
    Invalid,
}

/// The static table as shared strings, made once per process.
fn static_entries() -> &'static [(Arc<str>, Arc<str>)] {
    static ENTRIES: OnceLock<Vec<(Arc<str>, Arc<str>)>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        STATIC
            .iter()
            .map(|&(name, value)| (Arc::from(name), Arc::from(value)))
            .collect()
    })
}

#[derive(Debug)]
pub struct DynamicTable {
    /// Newest first, with each entry's size as the encoder counts it.
    entries: VecDeque<(Entry, usize)>,
    size: usize,
    max_size: usize,
    /// Largest table we keep, whatever the encoder announces.
    cap: usize,
    /// Every entry the encoder holds is in `entries` (none from before we started watching).
    complete: bool,
}

impl DynamicTable {
    /// `complete`: the connection is seen from its start, so the table starts empty.
    pub fn new(complete: bool, max_size: usize, cap: usize) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size: max_size.min(cap),
            cap,
            complete,
        }
    }

    /// Forgets every entry: references to older entries are unknown from now on.
    pub fn lose_track(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.complete = false;
    }

    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A dynamic table size update: 0 empties the table, which makes it fully known again.
    pub fn set_max_size(&mut self, max_size: usize) {
        if max_size > self.cap {
            // We keep less than the encoder may: older entries may exist that we dropped.
            self.complete = false;
        }
        self.max_size = max_size.min(self.cap);
        self.evict(0);
        if max_size == 0 {
            self.complete = true;
        }
    }

    /// Inserts a new entry of `size` octets (name + value + 32).
    pub fn insert(&mut self, entry: Entry, size: usize) {
        if size > self.max_size {
            // Larger than the table: it empties the table and is not added (RFC 7541 §4.4).
            self.entries.clear();
            self.size = 0;
            if !self.complete && size <= self.cap {
                // The real maximum may be larger than ours: the entry may be there after all.
                self.entries.push_front((entry, size));
                self.size = size;
            }
            return;
        }
        self.evict(size);
        self.entries.push_front((entry, size));
        self.size += size;
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.entries.pop_back() {
                Some((_, size)) => self.size -= size,
                None => break,
            }
        }
    }

    /// Looks up a full index (static and dynamic).
    pub fn get(&self, index: usize) -> Lookup<'_> {
        if index == 0 {
            return Lookup::Invalid;
        }
        if let Some((name, value)) = static_entries().get(index - 1) {
            return Lookup::Found(name, value);
        }
        match self.entries.get(index - STATIC.len() - 1) {
            Some((Entry::Known { name, value }, _)) => Lookup::Found(name, value),
            Some((Entry::Unknown, _)) => Lookup::Unknown,
            None if self.complete => Lookup::Invalid,
            None => Lookup::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str, value: &str) -> Entry {
        Entry::Known {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn static_entries_and_eviction() {
        let mut t = DynamicTable::new(true, 100, 4096);
        assert_eq!(t.get(2), Lookup::Found(&":method".into(), &"GET".into()));
        assert_eq!(
            t.get(61),
            Lookup::Found(&"www-authenticate".into(), &"".into())
        );
        assert_eq!(t.get(0), Lookup::Invalid);
        assert_eq!(t.get(62), Lookup::Invalid);
        t.insert(known("a", "1"), 34);
        t.insert(known("b", "2"), 34);
        assert_eq!(t.get(62), Lookup::Found(&"b".into(), &"2".into()));
        assert_eq!(t.get(63), Lookup::Found(&"a".into(), &"1".into()));
        // A third entry evicts the oldest.
        t.insert(known("c", "3"), 34);
        assert_eq!(
            (t.get(62), t.get(64)),
            (Lookup::Found(&"c".into(), &"3".into()), Lookup::Invalid)
        );
        t.insert(Entry::Unknown, 500);
        assert_eq!(t.len(), 0, "too large: the table empties");
    }

    #[test]
    fn late_join_keeps_new_entries_and_flags_the_rest() {
        let mut t = DynamicTable::new(false, 4096, 4096);
        assert_eq!(t.get(62), Lookup::Unknown);
        t.insert(known("x", "1"), 34);
        assert_eq!(t.get(62), Lookup::Found(&"x".into(), &"1".into()));
        assert_eq!(t.get(63), Lookup::Unknown);
        t.insert(Entry::Unknown, 40);
        assert_eq!(
            (t.get(62), t.get(63)),
            (Lookup::Unknown, Lookup::Found(&"x".into(), &"1".into()))
        );
        t.set_max_size(0);
        assert!(t.is_complete());
        assert_eq!(t.get(62), Lookup::Invalid);
    }

    #[test]
    fn sizes_beyond_the_cap_make_the_table_incomplete() {
        let mut t = DynamicTable::new(true, 4096, 4096);
        t.set_max_size(1 << 30);
        assert!(!t.is_complete());
        t.insert(known("a", "b"), 34);
        t.lose_track();
        assert_eq!(t.get(62), Lookup::Unknown);
    }
}
