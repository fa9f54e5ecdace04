//! Reading machine code out of ELF files: the bytes at a virtual address range, and the
//! file offset a uprobe takes for a virtual address.

use std::ops::Range;

use object::{Object, ObjectSection, ReadRef};

/// The bytes at `range`, read from the file through the section that holds it. Only
/// those bytes are read: a section's own data would read all of it, and the `.text` of
/// a Go or Node.js binary is tens of MB.
pub fn bytes_at<'d, R: ReadRef<'d>>(
    data: R,
    file: &object::File<'d, R>,
    range: Range<u64>,
) -> Option<&'d [u8]> {
    let len = range.end.checked_sub(range.start)?;
    file.sections().find_map(|section| {
        let end = range.end.checked_sub(section.address())?;
        if range.start < section.address() || end > section.size() {
            return None;
        }
        let (offset, size) = section.file_range()?;
        let within = range.start - section.address();
        if within.checked_add(len)? > size {
            return None;
        }
        data.read_bytes_at(offset + within, len).ok()
    })
}

/// Virtual address → file offset, through the section that holds it.
pub fn file_offset<'d, R: ReadRef<'d>>(file: &object::File<'d, R>, address: u64) -> Option<u64> {
    file.sections().find_map(|section| {
        let (offset, size) = section.file_range()?;
        let within = address.checked_sub(section.address())?;
        (within < size).then_some(offset + within)
    })
}
