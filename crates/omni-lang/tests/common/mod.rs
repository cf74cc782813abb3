//! Helpers shared by omni-lang's integration tests.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// An in-memory `Write` that a test keeps a handle to while the VM owns
/// the other one.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).to_string()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A seeded xorshift generator for the tests that make random programs.
#[allow(dead_code)] // not every test crate that shares this module uses it
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Run `src` with `limits` on a thread with the VM's stack: its output,
/// result, and the thread's heap statistics at the end.
#[allow(dead_code)]
pub fn run_limited(
    src: String,
    limits: omni_lang::Limits,
) -> (
    String,
    Result<omni_lang::vm::VmStats, Vec<omni_lang::Diagnostic>>,
    omni_mem::HeapStats,
) {
    std::thread::Builder::new()
        .stack_size(omni_lang::VM_STACK_BYTES)
        .spawn(move || {
            let out = SharedBuf::default();
            let r = omni_lang::run_source_with(&src, Box::new(out.clone()), vec![], limits);
            (out.text(), r, omni_mem::heap_stats())
        })
        .expect("spawn")
        .join()
        .expect("program thread")
}

/// Run `src` on a thread with the VM's stack; its output and the thread's
/// heap statistics, after checking that nothing is left live.
#[allow(dead_code)]
pub fn run_checked(src: String) -> (String, omni_mem::HeapStats) {
    let (out, r, s) = run_limited(src, omni_lang::Limits::default());
    r.expect("program runs");
    assert_eq!(s.live_bytes, 0);
    (out, s)
}
