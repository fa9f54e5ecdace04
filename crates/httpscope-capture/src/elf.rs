//! Reading machine code out of ELF files: the bytes at a virtual address range, and the
//! file offset a uprobe takes for a virtual address or a symbol.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use object::read::ReadCache;
use object::{Object, ObjectSection, ObjectSymbol, ReadRef};

/// An ELF file read on demand (a Go or Node.js binary can be hundreds of MB), except its
/// symbol names: a scan of the symbol tables reads every name, and [`ReadCache`] alone
/// reads each with a system call of its own (Node's 200,000 symbols: a quarter of a
/// second per scan). Their string tables are read whole, once, instead.
pub struct ElfFile {
    cache: ReadCache<File>,
    /// The file ranges of `.strtab` and `.dynstr`.
    strings: Vec<Range<u64>>,
}

impl ElfFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let cache = ReadCache::new(File::open(path)?);
        let strings = string_tables(&cache);
        Ok(Self { cache, strings })
    }

    /// The file's bytes, for `object::File::parse` and the readers of machine code.
    pub fn data(&self) -> ElfData<'_> {
        ElfData { file: self }
    }
}

/// The string tables' file ranges (none if the file is not ELF: its parse fails later).
fn string_tables(cache: &ReadCache<File>) -> Vec<Range<u64>> {
    let Ok(file) = object::File::parse(cache) else {
        return Vec::new();
    };
    file.sections()
        .filter(|s| matches!(s.name(), Ok(".strtab" | ".dynstr")))
        .filter_map(|s| s.file_range())
        .map(|(offset, size)| offset..offset.saturating_add(size))
        .collect()
}

/// [`ElfFile`]'s bytes: what `object` reads of it.
#[derive(Clone, Copy)]
pub struct ElfData<'a> {
    file: &'a ElfFile,
}

impl<'a> ReadRef<'a> for ElfData<'a> {
    fn len(self) -> Result<u64, ()> {
        (&self.file.cache).len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        (&self.file.cache).read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        let Some(table) = self.file.strings.iter().find(|t| t.contains(&range.start)) else {
            return (&self.file.cache).read_bytes_at_until(range, delimiter);
        };
        // The whole table, read on its first use and kept by the cache.
        let bytes = (&self.file.cache).read_bytes_at(table.start, table.end - table.start)?;
        let start = usize::try_from(range.start - table.start).map_err(|_| ())?;
        let end = usize::try_from(range.end.min(table.end).saturating_sub(table.start))
            .map_err(|_| ())?;
        let rest = bytes.get(start..end).ok_or(())?;
        let len = memchr::memchr(delimiter, rest).ok_or(())?;
        Ok(&rest[..len])
    }
}

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
    let Ok(elf) = ElfFile::open(path) else {
        return found;
    };
    let Ok(file) = object::File::parse(elf.data()) else {
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

    /// Every symbol's name, static symbols then dynamic ones, as `data` reads them.
    fn symbol_names<'d, R: ReadRef<'d>>(data: R) -> Vec<Vec<u8>> {
        let file = object::File::parse(data).unwrap();
        file.symbols()
            .chain(file.dynamic_symbols())
            .map(|s| s.name_bytes().unwrap().to_vec())
            .collect()
    }

    /// The whole-table reader gives each symbol the name the file's own reads give it.
    #[test]
    fn symbol_names_read_from_whole_string_tables_match_the_files() {
        let exe = std::env::current_exe().unwrap();
        let elf = ElfFile::open(&exe).unwrap();
        assert!(!elf.strings.is_empty(), "no string table found");
        let whole = symbol_names(elf.data());
        let direct = symbol_names(std::fs::read(&exe).unwrap().as_slice());
        assert!(whole.len() > 1000, "{} symbols", whole.len());
        assert_eq!(whole, direct);
    }
}
