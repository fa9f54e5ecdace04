//! Metric handles already created, found from a record's borrowed labels: a repeated
//! series costs one hash probe and no allocation, not a label set built and hashed
//! under the family's lock.

use std::borrow::Cow;

use hashbrown::hash_map::RawEntryMut;
use hashbrown::{Equivalent, HashMap};

use crate::http::{HttpVersion, Role};
use crate::sink::same_text;

/// What names one HTTP series; `S` is `Box<str>` in the cache, `&str` when looked up.
/// Both hash alike, as `Box<str>` and `&str` hash as their `str`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(super) struct SeriesKey<S> {
    pub role: Role,
    pub method: &'static str,
    pub route: S,
    pub process: S,
    pub container_id: S,
    /// Status and version: durations carry them, request counts do not.
    pub response: Option<(u16, HttpVersion)>,
}

type OwnedKey = SeriesKey<Box<str>>;

impl Equivalent<OwnedKey> for SeriesKey<&str> {
    fn equivalent(&self, key: &OwnedKey) -> bool {
        self.role == key.role
            && self.method == key.method
            && self.response == key.response
            && same_text(self.route, &key.route)
            && same_text(self.process, &key.process)
            && same_text(self.container_id, &key.container_id)
    }
}

impl SeriesKey<&str> {
    fn to_owned_key(self) -> OwnedKey {
        SeriesKey {
            role: self.role,
            method: self.method,
            route: self.route.into(),
            process: self.process.into(),
            container_id: self.container_id.into(),
            response: self.response,
        }
    }
}

/// Up to `max` handles (Arc-backed clones of the family's own); once full, series not
/// yet cached take the family's path every time, so memory stays bounded.
pub(super) struct HandleCache<M> {
    handles: HashMap<OwnedKey, M>,
    max: usize,
}

impl<M: Clone> HandleCache<M> {
    pub fn new(max: usize) -> Self {
        Self {
            handles: HashMap::new(),
            max,
        }
    }

    /// The handle for `key`: the cached one, else `create`'s (kept while there is room).
    pub fn get(&mut self, key: &SeriesKey<&str>, create: impl FnOnce() -> M) -> Cow<'_, M> {
        let full = self.handles.len() >= self.max;
        match self.handles.raw_entry_mut().from_key(key) {
            RawEntryMut::Occupied(entry) => Cow::Borrowed(entry.into_mut()),
            RawEntryMut::Vacant(_) if full => Cow::Owned(create()),
            RawEntryMut::Vacant(entry) => {
                Cow::Borrowed(entry.insert(key.to_owned_key(), create()).1)
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.handles.len()
    }
}
