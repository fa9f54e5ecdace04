//! Where in a Go function's x86-64 machine code the probes go: its return instructions
//! (Go moves goroutine stacks, so a uretprobe's rewritten return address would crash the
//! program: the return side is a plain uprobe on each `RET`), and the first instruction
//! after its stack-growth check (a goroutine whose stack must grow runs the function's
//! first instructions twice).

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, Register};

/// Instructions of the stack check at most: `[LEA R12, [RSP-frame]]`, `CMP ..., [R14+16]`, `JBE`.
const STACK_CHECK_LEN: usize = 3;

/// The address of the instruction after the prologue's stack check (`CMP` against the
/// goroutine's stack guard at `[R14+16]`, then `JBE` to the `morestack` call at the end of
/// the function), or `address` when the function has no such check.
pub fn after_stack_check(code: &[u8], address: u64) -> u64 {
    let end = address + code.len() as u64;
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut compared_guard = false;
    for instruction in decoder.into_iter().take(STACK_CHECK_LEN) {
        match instruction.mnemonic() {
            Mnemonic::Cmp => compared_guard = instruction.memory_base() == Register::R14,
            Mnemonic::Jbe
                if compared_guard && (address..end).contains(&instruction.near_branch_target()) =>
            {
                return instruction.next_ip();
            }
            _ => {}
        }
    }
    address
}

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
    fn skips_the_stack_check() {
        // Go 1.27's (*Conn).Write: lea r12,[rsp-0x48]; cmp r12,[r14+0x10]; jbe +0x7b3; push rbp
        let mut code = vec![
            0x4c, 0x8d, 0x64, 0x24, 0xb8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xb3, 0x07, 0, 0,
            0x55,
        ];
        code.resize(0x800, 0xcc);
        assert_eq!(after_stack_check(&code, 0x1000), 0x100f);
        // No check (a leaf function): the entry itself.
        assert_eq!(after_stack_check(&[0x55, 0xc3], 0x1000), 0x1000);
        // A JBE out of the function is not the stack check.
        assert_eq!(after_stack_check(&code[..0x20], 0x1000), 0x1000);
    }

    #[test]
    fn refuses_undecodable_bytes() {
        assert_eq!(return_addresses(&[0x0f, 0x0b, 0x06], 0), None);
    }
}
