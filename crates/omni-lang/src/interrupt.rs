//! Stop requests: interrupts (Ctrl-C, `kill`: the `omni` binary's signal
//! handler calls `request`) and `(exit)` (`wake`, after the program's
//! runtime has recorded its status). Every VM of the process remembers the
//! count when it starts and, at each call, checks whether it changed; if
//! so it asks `stops` whether the change concerns it: an interrupt stops
//! every program, an exit only the program that asked for it (tests run
//! many programs in one process). A stopped VM ends with an error, so the
//! program's output is flushed, its regions are freed and the backtrace
//! shows where it was. A signal that no VM has acknowledged yet is
//! *pending*: the binary exits at once on a signal that arrives while one
//! is.
//!
//! The count is one word: signals in the high 32 bits, exits in the low
//! 32 bits. One load gives both, so a VM never sees an exit's change
//! without a signal that came before it, or the other way round.

use omni_mem::atomic::Counter64;

/// Stop requests so far in this process: signals `<< 32`, plus exits.
/// Relaxed operations suffice (docs/ATOMIC_POLICY.md): nothing is
/// published with the count (an exit's status is published by the
/// runtime's lock), and a VM only needs to see a request eventually, at
/// one of its next calls.
static REQUESTS: Counter64 = Counter64::new(0);

/// One signal's step of the count.
const SIGNAL: u64 = 1 << 32;

/// The request count when a VM last acted on a signal (or the REPL started
/// an evaluation). `store_release` is the layer's only plain store;
/// relaxed would do, for the same reason as above.
static ACKNOWLEDGED: Counter64 = Counter64::new(0);

/// Ask every running VM to stop at its next call (a signal).
pub fn request() {
    REQUESTS.fetch_add_relaxed(SIGNAL);
}

/// Make every running VM look at its runtime at its next call: a program
/// asked to exit (its runtime holds the status).
pub fn wake() {
    REQUESTS.fetch_add_relaxed(1);
}

/// Requests so far: a VM that started when this was N looks again once it
/// is not.
pub fn count() -> u64 {
    REQUESTS.load_relaxed()
}

/// Whether a signal came between counts `seen` and `now`.
pub fn signalled_between(seen: u64, now: u64) -> bool {
    seen >> 32 != now >> 32
}

/// Signals so far in this process.
pub fn signals() -> u64 {
    count() >> 32
}

/// A VM has stopped for the signals counted in `n` (or they no longer
/// apply): `n` is the `count()` it acted on.
pub fn acknowledge(n: u64) {
    ACKNOWLEDGED.store_release(n);
}

/// Whether a signal has been made that no VM has acted on yet.
pub fn pending() -> bool {
    signals() > ACKNOWLEDGED.load_relaxed() >> 32
}
