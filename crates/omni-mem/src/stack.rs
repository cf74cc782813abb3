//! The machine stack pointer, for the language VM's stack guard.
//!
//! The guard compares where the stack is now with a limit computed near
//! the top of the thread's stack. The address of a local is not where the
//! stack is under AddressSanitizer: with its use-after-return detection
//! (on by default in the nightly toolchain's runtime) locals live in the
//! sanitizer's heap-allocated "fake stack" (in a check on this machine,
//! 4.3 GB away from the stack pointer). Comparing such addresses, the
//! guard once reported a full stack after 8,190 calls of a program whose
//! 100,000 calls fit (`.ci/run`'s ASan gate, twenty-second session; it
//! depends on where the address-space layout puts the fake stack). The
//! stack pointer register is where the stack is in every build.

/// The current stack pointer (the stack grows down on every target the
/// VM runs on). Where it cannot be read (other architectures, Miri), the
/// address of a local of this frame, which is the same in builds without
/// a sanitizer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let sp: usize;
        // SAFETY: copies the stack pointer register into a general register: no memory, stack
        // or flag is read or written.
        unsafe {
            std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
        }
        sp
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let sp: usize;
        // SAFETY: as above, for `sp`.
        unsafe {
            std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
        }
        sp
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        let marker = 0u8;
        std::hint::black_box(std::ptr::addr_of!(marker)).addr()
    }
}

#[cfg(test)]
mod tests {
    use super::stack_pointer;

    #[inline(never)]
    fn deeper(n: u32) -> usize {
        let buf = std::hint::black_box([0u8; 512]);
        let sp = if n == 0 { stack_pointer() } else { deeper(n - 1) };
        std::hint::black_box(buf);
        sp
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "under Miri this reads a local's address, and Miri's locals are separate allocations, not a stack"
    )]
    fn the_stack_pointer_goes_down_as_calls_nest() {
        let top = stack_pointer();
        let down = deeper(8);
        assert!(down < top, "{down:#x} not below {top:#x}");
        assert!(top - down >= 8 * 512, "nested frames span {} bytes", top - down);
        // Within this thread's stack: nowhere near other mappings.
        assert!(top - down < 1 << 20);
    }
}
