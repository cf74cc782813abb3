//! The reader on arbitrary bytes: never panics; invalid UTF-8 is the
//! caller's error (the CLI reports it with a position).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        if let Err(e) = omni_lang::reader::read(src) {
            assert!(
                e.span.line >= 1 && e.span.col >= 1,
                "error without a position"
            );
        }
    }
});
