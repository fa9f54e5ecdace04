//! The return instructions of a function, found by decoding its x86-64 machine code.
//! Go moves goroutine stacks, so a uretprobe's rewritten return address would crash
//! the program: the return side is a plain uprobe on each `RET` instead.

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic};

/// Addresses of every `RET` in `code`, which starts at `address`. `None` when some
/// bytes do not decode (the range is not all code: probing inside it is unsafe).
pub fn return_addresses(code: &[u8], address: u64) -> Option<Vec<u64>> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut returns = Vec::new();
    for instruction in &mut decoder {
        if instruction.code() == Code::INVALID {
            return None;
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            returns.push(instruction.ip());
        }
    }
    Some(returns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_rets_not_c3_bytes() {
        // mov eax, 0xc3; ret; add rsp, 0x18; ret 8; int3
        let code = [
            0xb8, 0xc3, 0, 0, 0, 0xc3, 0x48, 0x83, 0xc4, 0x18, 0xc2, 8, 0, 0xcc,
        ];
        assert_eq!(return_addresses(&code, 0x1000), Some(vec![0x1005, 0x100a]));
    }

    #[test]
    fn refuses_undecodable_bytes() {
        assert_eq!(return_addresses(&[0x0f, 0x0b, 0x06], 0), None);
    }
}
