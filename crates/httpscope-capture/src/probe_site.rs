//! Where on a function's first instructions its entry probe costs least.
//!
//! On x86-64 the kernel either emulates a probed instruction in the trap handler (a push of
//! a register, a nop, a relative jump, call or conditional jump) or runs it out of line under
//! a single-step, a second trap (see `tls/openssl_workers.rs` for what each costs). A function
//! that begins with instructions changing nothing a probe reads (a compare, a test,
//! `endbr64`, a load into a register no probe program reads) can be probed at the first
//! emulated instruction after them instead:
//! - every call passes there exactly once: the instructions before it fall through, and no
//!   branch of the function lands among them or on it;
//! - the probe sees the entry's argument registers, stack pointer and memory, since those
//!   instructions write no memory, no stack pointer and none of the registers read. So a
//!   return probe there finds the return address where it is at the entry.
//!
//! A function whose code does not fully decode, or that jumps through a register (its
//! targets unknown), keeps its probe on the entry.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess,
    Register,
};

/// Instructions skipped at most before giving up on an emulated one.
const MAX_SKIPPED: usize = 8;

/// Registers the entry programs of the library hooks read: the SysV argument registers.
pub const ARGUMENT_REGISTERS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// The address for an entry probe of the function whose whole machine code is `code`,
/// starting at `address`, whose programs read the registers `reads` (and the stack
/// pointer): the first instruction the kernel emulates when everything before it is
/// skippable (see above), else `address`.
pub fn cheap_entry(code: &[u8], address: u64, reads: &[Register]) -> u64 {
    let Some(instructions) = decode_all(code, address) else {
        return address;
    };
    let mut factory = InstructionInfoFactory::new();
    for (index, instruction) in instructions.iter().take(MAX_SKIPPED + 1).enumerate() {
        if index > 0 && is_branch_target(&instructions, instruction.ip()) {
            return address;
        }
        if emulated(instruction) {
            return instruction.ip();
        }
        if !changes_nothing_read(&mut factory, instruction, reads) {
            return address;
        }
    }
    address
}

/// The second instruction of the function whose whole machine code is `code`, when the
/// first falls through to it, it is emulated and no branch lands on it: a cheaper site for a
/// caller that accounts for what the first instruction changed.
pub fn emulated_second(code: &[u8], address: u64) -> Option<u64> {
    let instructions = decode_all(code, address)?;
    let (first, second) = (instructions.first()?, instructions.get(1)?);
    let falls_through = first.flow_control() == FlowControl::Next;
    (falls_through && emulated(second) && !is_branch_target(&instructions, second.ip()))
        .then_some(second.ip())
}

/// Whether the kernel emulates the instruction at the start of `code` (at `address`).
pub fn emulated_at(code: &[u8], address: u64) -> bool {
    emulated(&Decoder::with_ip(64, code, address, DecoderOptions::NONE).decode())
}

/// Every instruction of `code`, or `None` when some bytes do not decode or the function
/// jumps through a register or memory (a jump table could land anywhere in it).
fn decode_all(code: &[u8], address: u64) -> Option<Vec<Instruction>> {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let instructions: Vec<Instruction> = decoder.into_iter().collect();
    let unknown = instructions
        .iter()
        .any(|i| i.code() == Code::INVALID || i.flow_control() == FlowControl::IndirectBranch);
    (!unknown).then_some(instructions)
}

fn is_branch_target(instructions: &[Instruction], ip: u64) -> bool {
    instructions.iter().any(|i| {
        matches!(
            i.flow_control(),
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch | FlowControl::Call
        ) && i.near_branch_target() == ip
    })
}

/// Whether the kernel's uprobe trap emulates `instruction` rather than single-stepping it:
/// a push of a register, a one-byte or long nop, a relative jump, call or conditional jump.
/// (Kernels before the push and nop emulation single-step those; the site costs no more.)
fn emulated(instruction: &Instruction) -> bool {
    matches!(
        instruction.code(),
        Code::Push_r64
            | Code::Nopd
            | Code::Nopq
            | Code::Nop_rm16
            | Code::Nop_rm32
            | Code::Nop_rm64
            | Code::Jmp_rel8_64
            | Code::Jmp_rel32_64
            | Code::Call_rel32_64
    ) || instruction.is_jcc_short_or_near()
}

/// Whether `instruction` falls through and writes no memory, no stack pointer and none of
/// `reads` (flags are read by no probe).
fn changes_nothing_read(
    factory: &mut InstructionInfoFactory,
    instruction: &Instruction,
    reads: &[Register],
) -> bool {
    if instruction.flow_control() != FlowControl::Next || instruction.stack_pointer_increment() != 0
    {
        return false;
    }
    let info = factory.info(instruction);
    let writes = |access: OpAccess| {
        matches!(
            access,
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        )
    };
    if info.used_memory().iter().any(|m| writes(m.access())) {
        return false;
    }
    !info.used_registers().iter().any(|r| {
        let full = r.register().full_register();
        writes(r.access()) && (full == Register::RSP || reads.contains(&full))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x1000;

    fn site(code: &[u8]) -> u64 {
        cheap_entry(code, BASE, &ARGUMENT_REGISTERS) - BASE
    }

    #[test]
    fn a_compare_before_a_conditional_jump_is_skipped() {
        // rustls's ChunkVecBuffer::is_full: cmp dword [rdi],1; jne +2; xor eax,eax; ret; ret
        let is_full = [0x83, 0x3f, 0x01, 0x75, 0x03, 0x31, 0xc0, 0xc3, 0xc3];
        assert_eq!(site(&is_full), 3);
    }

    #[test]
    fn an_emulated_entry_stays() {
        // push rbp; mov rbp,rsp; pop rbp; ret
        assert_eq!(site(&[0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3]), 0);
    }

    #[test]
    fn endbr64_and_loads_into_unread_registers_are_skipped() {
        // endbr64; mov rax,[rdi]; push rbx; pop rbx; ret
        let code = [0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8b, 0x07, 0x53, 0x5b, 0xc3];
        assert_eq!(site(&code), 7);
    }

    #[test]
    fn a_written_argument_keeps_the_entry() {
        // mov rdi,[rdi]; jmp rel32 (rustls's Reader::consume: a tail call with a new RDI)
        let code = [0x48, 0x8b, 0x3f, 0xe9, 0, 0, 0, 0];
        assert_eq!(site(&code), 0);
        // xor ecx,ecx; jmp (ECX is RCX, an argument register)
        assert_eq!(site(&[0x31, 0xc9, 0xeb, 0x00, 0xc3]), 0);
    }

    #[test]
    fn the_stack_pointer_or_memory_written_keeps_the_entry() {
        // sub rsp,0x18; call rel32 (Debian's SSL_write shape)
        assert_eq!(site(&[0x48, 0x83, 0xec, 0x18, 0xe8, 0, 0, 0, 0, 0xc3]), 0);
        // mov [rdi],rax; jmp +0
        assert_eq!(site(&[0x48, 0x89, 0x07, 0xeb, 0x00, 0xc3]), 0);
    }

    #[test]
    fn a_branch_into_the_skipped_span_keeps_the_entry() {
        // cmp dword [rdi],1; jne +0 (lands on the xor); xor eax,eax; jmp back to the jne
        let code = [0x83, 0x3f, 0x01, 0x75, 0x00, 0x31, 0xc0, 0xeb, 0xfa];
        assert_eq!(site(&code), 0);
    }

    #[test]
    fn an_indirect_jump_or_undecodable_code_keeps_the_entry() {
        // cmp dword [rdi],1; jne +2; jmp rax
        assert_eq!(site(&[0x83, 0x3f, 0x01, 0x75, 0x02, 0xff, 0xe0, 0xc3]), 0);
        // cmp dword [rdi],1; then a truncated instruction
        assert_eq!(site(&[0x83, 0x3f, 0x01, 0x0f]), 0);
    }
}
