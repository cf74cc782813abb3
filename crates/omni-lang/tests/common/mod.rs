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

/// Run `src` on a thread with the VM's stack; its output and the thread's
/// heap statistics, after checking that nothing is left live.
#[allow(dead_code)]
pub fn run_checked(src: String) -> (String, omni_mem::HeapStats) {
    std::thread::Builder::new()
        .stack_size(omni_lang::VM_STACK_BYTES)
        .spawn(move || {
            let out = SharedBuf::default();
            omni_lang::run_source(&src, Box::new(out.clone()), vec![]).expect("program runs");
            let s = omni_mem::heap_stats();
            assert_eq!(s.live_bytes, 0);
            (out.text(), s)
        })
        .expect("spawn")
        .join()
        .expect("program thread")
}
