//! HPACK's Huffman code (RFC 7541 Appendix B). The code is canonical: ordered by length, then
//! by symbol, each code is the previous one plus one, shifted to its length. So the table
//! below holds only the code lengths, and decoding walks the canonical ranges bit by bit.

use std::sync::OnceLock;

/// Code length of each symbol, 0..=255 and EOS (256), from RFC 7541 Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// The canonical code's ranges: codes of length `l` are `first_code[l]..first_code[l] +
/// count[l]`, naming `symbols[first_index[l]..]` in order.
struct Canonical {
    first_code: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    first_index: [usize; MAX_LEN + 1],
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static TABLE: OnceLock<Canonical> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Canonical {
            first_code: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            first_index: [0; MAX_LEN + 1],
            symbols: [0; 257],
        };
        for &len in &CODE_LENGTHS {
            table.count[usize::from(len)] += 1;
        }
        let mut code = 0u32;
        let mut index = 0usize;
        for len in 1..=MAX_LEN {
            code = (code + table.count[len - 1]) << 1;
            table.first_code[len] = code;
            table.first_index[len] = index;
            index += table.count[len] as usize;
        }
        let mut next = table.first_index;
        for (symbol, &len) in CODE_LENGTHS.iter().enumerate() {
            let slot = &mut next[usize::from(len)];
            table.symbols[*slot] = symbol as u16;
            *slot += 1;
        }
        table
    })
}

/// Not a valid Huffman string: EOS inside, a code longer than 30 bits, or bad padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHuffman;

/// Appends the decoded bytes of `input` to `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    let table = canonical();
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in input {
        for shift in (0..8).rev() {
            code = code << 1 | u32::from(byte >> shift & 1);
            len += 1;
            let offset = code.wrapping_sub(table.first_code[len]);
            if code >= table.first_code[len] && offset < table.count[len] {
                let symbol = table.symbols[table.first_index[len] + offset as usize];
                if symbol == EOS {
                    return Err(InvalidHuffman);
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            } else if len == MAX_LEN {
                return Err(InvalidHuffman);
            }
        }
    }
    // Padding is the most significant bits of EOS: fewer than 8 ones (RFC 7541 §5.2).
    if len > 7 || code != (1 << len) - 1 {
        return Err(InvalidHuffman);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(input: &[u8]) -> Result<String, InvalidHuffman> {
        let mut out = Vec::new();
        decode(input, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn rfc7541_appendix_c_strings() {
        let cases: [(&[u8], &str); 6] = [
            (b"\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff", "www.example.com"),
            (b"\xa8\xeb\x10\x64\x9c\xbf", "no-cache"),
            (b"\x25\xa8\x49\xe9\x5b\xa9\x7d\x7f", "custom-key"),
            (b"\x25\xa8\x49\xe9\x5b\xb8\xe8\xb4\xbf", "custom-value"),
            (b"\x64\x02", "302"),
            (
                b"\xd0\x7a\xbe\x94\x10\x54\xd4\x44\xa8\x20\x05\x95\x04\x0b\x81\x66\xe0\x82\xa6\x2d\x1b\xff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input).as_deref(), Ok(expected));
        }
        assert_eq!(text(b"").as_deref(), Ok(""));
    }

    #[test]
    fn rejects_bad_padding_and_eos() {
        // "0" is 00000 (5 bits); padding of zeros instead of ones.
        assert_eq!(text(&[0b0000_0000]), Err(InvalidHuffman));
        // Eight bits of padding.
        assert_eq!(text(&[0b0000_0111, 0xff]), Err(InvalidHuffman));
        // EOS: thirty ones.
        assert_eq!(text(&[0xff, 0xff, 0xff, 0xfc]), Err(InvalidHuffman));
        assert_eq!(text(&[0xff; 16]), Err(InvalidHuffman));
    }

    #[test]
    fn every_symbol_decodes_back() {
        // Encode each byte with the canonical code, pad with ones, and decode.
        let table = canonical();
        for symbol in 0..=255u16 {
            let len = usize::from(CODE_LENGTHS[usize::from(symbol)]);
            let position = table.symbols[table.first_index[len]..]
                .iter()
                .position(|&s| s == symbol)
                .unwrap_or(usize::MAX);
            let code = u64::from(table.first_code[len] + position as u32);
            let bits = len.div_ceil(8) * 8;
            let padded = code << (bits - len) | ((1 << (bits - len)) - 1);
            let bytes: Vec<u8> = (0..bits / 8)
                .rev()
                .map(|i| (padded >> (i * 8)) as u8)
                .collect();
            let mut out = Vec::new();
            assert_eq!(decode(&bytes, &mut out), Ok(()), "symbol {symbol}");
            assert_eq!(out, [symbol as u8]);
        }
    }
}
