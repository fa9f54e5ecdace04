//! Reading machine code out of ELF files: the bytes at a virtual address range, and the
//! file offset a uprobe takes for a virtual address.

use std::ops::Range;

use object::{Object, ObjectSection, ReadRef};

/// The bytes at `range`, read from the section that holds it (only those bytes).
pub fn bytes_at<'d, R: ReadRef<'d>>(
    file: &object::File<'d, R>,
    range: Range<u64>,
) -> Option<&'d [u8]> {
    file.sections().find_map(|section| {
        let end = range.end.checked_sub(section.address())?;
        if range.start < section.address() || end > section.size() {
            return None;
        }
        section
            .data_range(range.start, range.end - range.start)
            .ok()
            .flatten()
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
