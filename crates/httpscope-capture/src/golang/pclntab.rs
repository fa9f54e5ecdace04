//! Function addresses from `.gopclntab`, the table Go keeps in every binary (stripped
//! ones too: the runtime needs it for stack traces and garbage collection).
//!
//! Layout (Go 1.18+, `runtime/symtab.go` `pcHeader` and `cmd/link` `pclntab.go`):
//! a header (magic `0xfffffff0` for 1.18–1.19, `0xfffffff1` from 1.20; pointer size at
//! byte 7; then pointer-sized nfunc, nfiles, textStart, funcnameOffset, cuOffset,
//! filetabOffset, pctabOffset, pclnOffset). At pclnOffset: nfunc+1 pairs of u32
//! (entry offset from textStart, offset of the `_func`); each `_func` starts with its
//! entry offset and the offset of its name in the function name table. A function
//! ends where the next one starts. Recent linkers leave textStart 0 (the runtime takes
//! it from its module data): it is then the start of `.text`, where `runtime.text` is.

use std::ops::Range;

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;

/// A parsed `.gopclntab`.
pub struct Pclntab<'a> {
    data: &'a [u8],
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    functab: usize,
}

impl<'a> Pclntab<'a> {
    /// `text` is the address of `.text`, used when the header's textStart is 0.
    pub fn parse(data: &'a [u8], text: u64) -> Option<Self> {
        let magic = u32_at(data, 0)?;
        if magic != MAGIC_GO118 && magic != MAGIC_GO120 {
            return None;
        }
        if *data.get(7)? != 8 {
            return None;
        }
        let word = |i: usize| u64_at(data, 8 + 8 * i).and_then(|v| usize::try_from(v).ok());
        Some(Self {
            data,
            nfunc: word(0)?,
            text_start: match u64_at(data, 8 + 8 * 2)? {
                0 => text,
                start => start,
            },
            funcnames: word(3)?,
            functab: word(7)?,
        })
    }

    /// Address range of the function named `name`.
    pub fn find(&self, name: &str) -> Option<Range<u64>> {
        (0..self.nfunc).find_map(|i| {
            let (entry, func) = self.entry(i)?;
            let name_off = usize::try_from(u32_at(self.data, self.functab + func + 4)?).ok()?;
            let start = self.funcnames.checked_add(name_off)?;
            let rest = self.data.get(start..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            if &rest[..end] != name.as_bytes() {
                return None;
            }
            let (next, _) = self.entry(i + 1)?;
            Some(self.text_start + entry..self.text_start + next)
        })
    }

    /// (entry offset from textStart, `_func` offset from the function table) of function i.
    fn entry(&self, i: usize) -> Option<(u64, usize)> {
        let at = self.functab.checked_add(i.checked_mul(8)?)?;
        let entry = u32_at(self.data, at)?;
        let func = u32_at(self.data, at + 4)?;
        Some((u64::from(entry), usize::try_from(func).ok()?))
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A table with two functions, `a.f` at textStart+0x10 and `b.g` at +0x40, ending at +0x60.
    fn table() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(MAGIC_GO120.to_le_bytes());
        t.extend([0, 0, 1, 8]);
        let header_len = 8 + 8 * 8;
        let funcnames = header_len;
        let names = b"a.f\0b.g\0";
        let functab = funcnames + names.len();
        for word in [
            2u64,
            0,
            0x40_1000,
            funcnames as u64,
            0,
            0,
            0,
            functab as u64,
        ] {
            t.extend(word.to_le_bytes());
        }
        t.extend(names);
        // functab: 3 (entry, funcoff) pairs, then two _func records (entry, nameoff).
        let funcs = 3 * 8;
        for (entry, func) in [(0x10u32, funcs), (0x40, funcs + 8), (0x60, 0)] {
            t.extend(entry.to_le_bytes());
            t.extend((func as u32).to_le_bytes());
        }
        for (entry, name) in [(0x10u32, 0u32), (0x40, 4)] {
            t.extend(entry.to_le_bytes());
            t.extend(name.to_le_bytes());
        }
        t
    }

    #[test]
    fn finds_functions_and_their_ends() {
        let t = table();
        let tab = Pclntab::parse(&t, 0).unwrap();
        assert_eq!(tab.find("a.f"), Some(0x40_1010..0x40_1040));
        assert_eq!(tab.find("b.g"), Some(0x40_1040..0x40_1060));
        assert_eq!(tab.find("c.h"), None);
        // Without textStart in the header, `.text` says where offsets start.
        let mut zeroed = t.clone();
        zeroed[8 + 16..8 + 24].fill(0);
        let tab = Pclntab::parse(&zeroed, 0x50_0000).unwrap();
        assert_eq!(tab.find("b.g"), Some(0x50_0040..0x50_0060));
    }

    #[test]
    fn survives_truncation() {
        let t = table();
        for len in 0..t.len() {
            if let Some(tab) = Pclntab::parse(&t[..len], 0) {
                let _ = tab.find("b.g");
            }
        }
        assert!(Pclntab::parse(b"\xf1\xff\xff\xff\0\0\x01\x04", 0).is_none());
    }
}
