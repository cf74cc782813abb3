//! Interrupt requests (Ctrl-C, `kill`): the `omni` binary's signal handler
//! calls `request`. Every VM of the process remembers the count when it
//! starts and, at each call, checks whether it changed; if so it stops with
//! the error `interrupted`, so the program's output is flushed, its regions
//! are freed and the backtrace shows where it was, and acknowledges it. A
//! request that no VM has acknowledged yet is *pending*: the binary exits
//! at once on a signal that arrives while one is.

use omni_mem::atomic::Counter64;

/// Requests so far in this process. Relaxed operations suffice
/// (docs/ATOMIC_POLICY.md): nothing is published with the count, and a VM
/// only needs to see a request eventually, at one of its next calls.
static REQUESTS: Counter64 = Counter64::new(0);

/// The request count when a VM last acted on it (or the REPL started an
/// evaluation). `store_release` is the layer's only plain store; relaxed
/// would do, for the same reason as above.
static ACKNOWLEDGED: Counter64 = Counter64::new(0);

/// Ask every running VM to stop at its next call.
pub fn request() {
    REQUESTS.fetch_add_relaxed(1);
}

/// Requests so far: a VM that started when this was N stops once it is not.
pub fn count() -> u64 {
    REQUESTS.load_relaxed()
}

/// A VM has stopped for the first `n` requests (or they no longer apply):
/// `n` is the `count()` it acted on.
pub fn acknowledge(n: u64) {
    ACKNOWLEDGED.store_release(n);
}

/// Whether a request has been made that no VM has acted on yet.
pub fn pending() -> bool {
    count() > ACKNOWLEDGED.load_relaxed()
}
