//! A passive HPACK decoder (RFC 7541) for one direction of a connection, written for a
//! watcher rather than an endpoint: it may join a connection whose table it never saw fill,
//! and it may lose bytes. Endpoint decoders (the `h2` crate's, `loona-hpack`, `httlib-hpack`)
//! reject a reference they cannot resolve and end the connection; here the field is counted
//! as unknown, table positions stay aligned, and decoding carries on exactly.
//!
//! Rules: a field is decoded exactly or reported unknown, never guessed. When bytes of a
//! header block are lost, or a block fails to decode, every entry we knew is forgotten: the
//! encoder's insertions in the lost part come before everything we see afterwards, so the
//! entries inserted after that point still answer references exactly, and older ones are
//! unknown. A table size update to 0 makes the whole table known again.

mod huffman;
mod table;

use std::sync::Arc;

use table::{DynamicTable, Entry, Lookup, ENTRY_OVERHEAD};

/// Default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Largest dynamic table kept per direction, whatever SETTINGS allow.
const TABLE_CAP: usize = 64 * 1024;
/// Most fields kept per header block (the rest are decoded for the table, then dropped).
const MAX_FIELDS: usize = 256;

/// The block does not decode: a broken encoder, or bytes we misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid HPACK block")]
pub struct InvalidBlock;

/// What one header block decoded to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Fields in order, pseudo-headers included.
    pub fields: Vec<(Arc<str>, Arc<str>)>,
    /// Fields whose name or value could not be resolved.
    pub unknown: u32,
    /// Fields decoded but not kept: over the field or size limits.
    pub dropped: u32,
}

impl Fields {
    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<str>> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Header list size limit: name + value + 32 per field, as RFC 9113 counts it.
    max_list_size: usize,
    /// SETTINGS_HEADER_TABLE_SIZE of the decoding peer, once it took effect (acknowledged).
    limit: Option<usize>,
}

impl Decoder {
    /// `from_start`: the connection is seen from its first byte.
    pub fn new(from_start: bool, max_list_size: usize) -> Self {
        Decoder {
            table: DynamicTable::new(from_start, DEFAULT_TABLE_SIZE, TABLE_CAP),
            max_list_size,
            limit: None,
        }
    }

    /// The decoding side's SETTINGS_HEADER_TABLE_SIZE was acknowledged: table size updates
    /// above it are errors from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = Some(limit);
    }

    /// Bytes of a header block were lost: entries we knew may have moved.
    pub fn lose_track(&mut self) {
        self.table.lose_track();
    }

    /// Whether every reference can be resolved (seen from the start or after a reset to 0).
    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        self.table.is_complete()
    }

    /// Decodes one complete header block. On error the table is no longer trusted.
    pub fn decode(&mut self, block: &[u8]) -> Result<Fields, InvalidBlock> {
        let mut fields = Fields::default();
        let result = self.decode_into(block, &mut fields);
        if result.is_err() {
            self.table.lose_track();
        }
        result.map(|()| fields)
    }

    fn decode_into(&mut self, mut block: &[u8], out: &mut Fields) -> Result<(), InvalidBlock> {
        let mut list_size = 0usize;
        let mut at_start = true;
        while let Some(&first) = block.first() {
            let field = if first & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                match self.table.get(index) {
                    Lookup::Found(name, value) => Some((name.clone(), value.clone())),
                    Lookup::Unknown => None,
                    Lookup::Invalid => return Err(InvalidBlock),
                }
            } else if first & 0xe0 == 0x20 {
                // Size updates only open a block (RFC 7541 §4.2).
                if !at_start {
                    return Err(InvalidBlock);
                }
                let size = integer(&mut block, 5)?;
                if self.limit.is_some_and(|limit| size > limit) {
                    return Err(InvalidBlock);
                }
                self.table.set_max_size(size);
                continue;
            } else {
                let (prefix, indexing) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                let name_index = integer(&mut block, prefix)?;
                let name = match name_index {
                    0 => Some(string(&mut block)?),
                    index => match self.table.get(index) {
                        Lookup::Found(name, _) => Some(name.clone()),
                        Lookup::Unknown => None,
                        Lookup::Invalid => return Err(InvalidBlock),
                    },
                };
                let value = string(&mut block)?;
                if indexing {
                    let size = name.as_ref().map_or(0, |n| n.len()) + value.len() + ENTRY_OVERHEAD;
                    let entry = match &name {
                        Some(name) => Entry::Known {
                            name: name.clone(),
                            value: value.clone(),
                        },
                        None => Entry::Unknown,
                    };
                    self.table.insert(entry, size);
                }
                name.map(|name| (name, value))
            };
            at_start = false;
            match field {
                None => out.unknown += 1,
                Some((name, value)) => {
                    list_size = list_size.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                    if list_size > self.max_list_size || out.fields.len() >= MAX_FIELDS {
                        out.dropped += 1;
                    } else {
                        out.fields.push((name, value));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), at most 2^28.
fn integer(block: &mut &[u8], n: u8) -> Result<usize, InvalidBlock> {
    let (&first, mut rest) = block.split_first().ok_or(InvalidBlock)?;
    let mask = (1u16 << n) as u8 - 1;
    let mut value = usize::from(first & mask);
    if value == usize::from(mask) {
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(InvalidBlock)?;
            rest = tail;
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
            if shift > 21 {
                return Err(InvalidBlock);
            }
        }
    }
    *block = rest;
    Ok(value)
}

/// A string literal, Huffman-coded or not, as lossy UTF-8.
fn string(block: &mut &[u8]) -> Result<Arc<str>, InvalidBlock> {
    let huffman = block.first().is_some_and(|&b| b & 0x80 != 0);
    let len = integer(block, 7)?;
    let bytes = block.get(..len).ok_or(InvalidBlock)?;
    *block = block.get(len..).unwrap_or_default();
    if huffman {
        let mut decoded = Vec::with_capacity(len + len / 2);
        huffman::decode(bytes, &mut decoded).map_err(|_| InvalidBlock)?;
        Ok(Arc::from(String::from_utf8_lossy(&decoded)))
    } else {
        Ok(Arc::from(String::from_utf8_lossy(bytes)))
    }
}

#[cfg(test)]
mod tests;
