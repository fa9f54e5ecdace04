//! Reading machine code out of ELF files: the bytes at a virtual address range, and the
//! file offset a uprobe takes for a virtual address or a symbol.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, ReadRef};

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

/// The file offsets of those of `wanted` the ELF file at `path` defines (dynamic symbols
/// first, as the dynamic loader sees them), found in one pass over its symbol tables.
pub fn symbol_offsets(path: &Path, wanted: &[&str]) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    let Ok(handle) = std::fs::File::open(path) else {
        return found;
    };
    // Only the headers and symbol tables are read, not the whole (possibly huge) file.
    let cache = object::read::ReadCache::new(handle);
    let Ok(file) = object::File::parse(&cache) else {
        return found;
    };
    for symbol in file.dynamic_symbols().chain(file.symbols()) {
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        if wanted.contains(&name) && !found.contains_key(name) {
            if let Some(offset) = file_offset(&file, symbol.address()) {
                found.insert(name.to_owned(), offset);
            }
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A function of this test binary whose machine code the test finds through its file.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn httpscope_elf_test_function(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678
    }

    #[test]
    fn a_symbols_file_offset_holds_its_machine_code() {
        let exe = std::env::current_exe().unwrap();
        let name = "httpscope_elf_test_function";
        let offsets = symbol_offsets(&exe, &[name, "no_such_symbol_anywhere"]);
        assert_eq!(offsets.len(), 1, "{offsets:?}");
        let at = offsets[name] as usize;
        let in_file = &std::fs::read(&exe).unwrap()[at..at + 16];
        let code = httpscope_elf_test_function as *const u8;
        // SAFETY: the function's first 16 bytes are mapped, readable machine code (a
        // function and the padding after it fill at least that much of the text section).
        let in_memory = unsafe { std::slice::from_raw_parts(code, 16) };
        assert_eq!(in_file, in_memory);
        assert_eq!(httpscope_elf_test_function(0), 0x1234_5678);
    }
}
