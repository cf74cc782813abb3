//! Memory behaviour the CTRR schedule promises, measured with omni-mem's
//! accounting (peak live bytes on the program's thread):
//! * a loop that builds and drops a temporary tree per iteration peaks at
//!   about one tree, however many iterations run;
//! * a loop that replaces its state every round does not retain old rounds,
//!   also when a primitive makes the new state from the old one;
//! * an accumulator that survives the loop is allocated once, where it lives
//!   (no copies on the way out);
//! * values stored into an old array or dict and later overwritten are given
//!   back (slot regions, docs/REGION_COALESCE_POLICY.md);
//! * a value stored into a global on every run of its scope is built in the
//!   global region (no copy at the store); one stored only under an `if`
//!   is not (the runs that do not store it leave nothing behind).

mod common;
use common::SharedBuf;

use omni_lang::{run_source, VM_STACK_BYTES};

struct Run {
    peak: usize,
    /// Peak of the segment bytes regions held (exact, where `peak` counts
    /// a region's bytes only when it takes a segment or dies).
    peak_segments: usize,
    transmigrated: u64,
    out: String,
}

impl Run {
    /// Fail, saying what was kept, unless the peak of live bytes stayed
    /// below `bytes`.
    fn assert_peak_below(&self, bytes: usize, kept: &str) {
        assert!(self.peak < bytes, "peak {} bytes: {kept}", self.peak);
    }
}

fn run(src: &'static str) -> Run {
    std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(move || {
            let out = SharedBuf::default();
            run_source(src, Box::new(out.clone()), vec![]).expect("program runs");
            let s = omni_mem::heap_stats();
            assert_eq!(s.live_bytes, 0);
            let text = out.text();
            Run {
                peak: s.peak_live_bytes,
                peak_segments: s.peak_segment_bytes,
                transmigrated: s.transmigrated_bytes,
                out: text,
            }
        })
        .unwrap()
        .join()
        .unwrap()
}

/// Run `f` on a fresh VM, on a thread with the VM's stack; then shut the
/// VM down and check that nothing is live.
fn with_vm(f: impl FnOnce(&mut omni_lang::vm::Vm) + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(|| {
            let mut vm = omni_lang::vm::Vm::new(Box::new(std::io::sink()));
            f(&mut vm);
            vm.shutdown();
            assert_eq!(omni_mem::heap_stats().live_bytes, 0);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Compile and run `src` on `vm`, which keeps its globals.
fn feed(vm: &mut omni_lang::vm::Vm, src: &str) {
    let forms = omni_lang::compile_program(vm, src).unwrap();
    omni_lang::run_compiled(vm, &forms, &mut |_, _| {}).unwrap();
}

const TREE_BYTES_D10: usize = ((1 << 11) - 1) * 24; // 2047 pairs

#[test]
fn temporary_tree_per_iteration_peaks_at_one_tree() {
    let few = run(
        "(define (make d) (if (= d 0) '() (cons (make (- d 1)) (make (- d 1)))))
                   (define (check t) (if (null? t) 0 (+ 1 (check (car t)) (check (cdr t)))))
                   (define (loop i sum) (if (= i 0) sum (loop (- i 1) (+ sum (check (make 10))))))
                   (println (loop 5 0))",
    );
    let many = run(
        "(define (make d) (if (= d 0) '() (cons (make (- d 1)) (make (- d 1)))))
                    (define (check t) (if (null? t) 0 (+ 1 (check (car t)) (check (cdr t)))))
                    (define (loop i sum) (if (= i 0) sum (loop (- i 1) (+ sum (check (make 10))))))
                    (println (loop 200 0))",
    );
    assert_eq!(few.out, "5115\n");
    assert_eq!(many.out, "204600\n");
    // Segment granularity (16 KiB) blurs small differences; 200 trees
    // retained would be ~9.8 MB.
    assert!(
        many.peak <= few.peak + 32 * 1024,
        "peak grew with iterations: {} vs {}",
        many.peak,
        few.peak
    );
    assert!(
        many.peak < 3 * TREE_BYTES_D10 + 64 * 1024,
        "peak {} is more than about one tree",
        many.peak
    );
}

#[test]
fn replaced_loop_state_is_not_retained() {
    // Each round replaces `last` with a fresh list; old rounds must die.
    let r = run("(define (fresh) (list 1 2 3 4 5 6 7 8))
                 (define (spin k last) (if (= k 0) last (spin (- k 1) (fresh))))
                 (println (spin 100000 '()))");
    assert_eq!(r.out, "(1 2 3 4 5 6 7 8)\n");
    // 100,000 rounds x 192 bytes would be 19 MB if retained.
    r.assert_peak_below(256 * 1024, "old rounds retained");
}

#[test]
fn loop_state_a_primitive_makes_from_the_old_state_is_not_retained() {
    // Each round's string and float are made by a primitive from the last
    // round's (`string-append`, `+`): they are built in the next
    // iteration's region, so old rounds die. Retained, the strings would
    // be about 2,000 x 2,000 bytes (4 MB) and the floats 100,000 x 16.
    // The same when the new state is bound by a `let` first (`pad`).
    let r = run(
        "(define (grow i s) (if (= i 0) (string-length s) (grow (- i 1) (string-append s \"ab\"))))
                 (define (sum i x) (if (= i 0) x (sum (- i 1) (+ x 0.5))))
                 (define (pad i s) (if (= i 0) (string-length s) (let ((t (string-append s \"cd\"))) (pad (- i 1) t))))
                 (println (grow 2000 \"\") (sum 100000 0.0) (pad 2000 \"\"))",
    );
    assert_eq!(r.out, "4000 50000.0 4000\n");
    r.assert_peak_below(64 * 1024, "old rounds retained");
}

#[test]
fn values_a_loop_sets_are_given_back() {
    // `s` is captured by the loop and assigned, so it is a box; each round
    // replaces its string. Retained (before the ninth session), the 4,000
    // strings would be about 4,000 x 4,000 bytes (16 MB); the box's slot
    // region is compacted as they are replaced. The read of `s` in
    // `string-append` borrows (a pinning read would keep them all), and so
    // does `dict-has?`'s look-up in the dict a second loop refills.
    let r = run("(define (build n)
           (let ((s \"\"))
             (let loop ((i 0))
               (when (< i n) (set! s (string-append s \"ab\")) (loop (+ i 1))))
             (string-length s)))
         (define d (dict))
         (define (refill n)
           (let loop ((i 0))
             (when (< i n)
               (when (dict-has? d (remainder i 5)) (dict-remove! d (remainder i 5)))
               (dict-set! d (remainder i 5) (list i i i i i i i i))
               (loop (+ i 1)))))
         (refill 20000)
         (println (build 4000) (dict-ref d 4))");
    assert_eq!(
        r.out,
        "8000 (19999 19999 19999 19999 19999 19999 19999 19999)\n"
    );
    r.assert_peak_below(1024 * 1024, "replaced values retained");
}

#[test]
fn big_values_a_loop_sets_are_given_back_too() {
    // Each round's 100 KB string is built in a scratch region past the
    // merge threshold: merged into the box's region (before the ninth
    // session) it stayed there, 300 x 100 KB = 30 MB; copied into the
    // box's slot region it is given back when replaced.
    let r = run(
        "(define (mk n acc) (if (= n 0) acc (mk (- n 1) (string-append acc \"0123456789\"))))
         (define base (mk 10000 \"\"))
         (define (build n)
           (let ((s \"\"))
             (let loop ((i 0))
               (when (< i n) (set! s (string-append base (number->string i))) (loop (+ i 1))))
             (string-length s)))
         (println (build 300))",
    );
    assert_eq!(r.out, "100003\n");
    r.assert_peak_below(4 * 1024 * 1024, "replaced values retained");
}

#[test]
fn values_a_loop_sets_into_a_global_are_given_back() {
    // A global the program assigns holds a box; each round's string is
    // copied into its slot region and the one it replaces is given back.
    // Before the ninth session every string stayed in the global region
    // until exit (4,000 x 4,000 bytes, 16 MB).
    let r = run("(define s \"\")
         (define (go i) (when (< i 4000) (set! s (string-append s \"ab\")) (go (+ i 1))))
         (go 0)
         (println (string-length s))");
    assert_eq!(r.out, "8000\n");
    r.assert_peak_below(1024 * 1024, "replaced values retained");
}

#[test]
fn a_table_updated_from_its_own_values_gives_back_what_it_replaces() {
    // Every round lengthens the strings of a global array and dict, read
    // out of them: `(string-append (array-ref a i) "x")`. The reads borrow
    // (no pin), so the replaced strings are given back: 84 MB stayed in
    // pinned slot regions before the ninth session.
    let r = run(
        "(define names (make-array 10 \"\"))
         (define totals (dict))
         (define (round! r)
           (let loop ((i 0))
             (when (< i 10)
               (array-set! names i (string-append (array-ref names i) \"x\"))
               (dict-set! totals (remainder i 3) (string-append (dict-ref totals (remainder i 3) \"\") \"y\"))
               (loop (+ i 1)))))
         (let loop ((r 0)) (when (< r 2000) (round! r) (loop (+ r 1))))
         (println (string-length (array-ref names 9)) (string-length (dict-ref totals 1)))",
    );
    assert_eq!(r.out, "2000 6000\n");
    r.assert_peak_below(1024 * 1024, "replaced values retained");
}

#[test]
fn a_value_read_into_a_let_and_replaced_is_given_back() {
    // `(let ((old (array-ref a i))) (array-set! a i (string-append old
    // "x")))`: the store comes after the last use of `old`, so the read
    // borrows and the replaced strings are given back (43 MB stayed in
    // pinned slot regions for 3,000 rounds before the tenth session).
    let r = run("(define a (make-array 10 \"\"))
         (define (round! r)
           (let loop ((i 0))
             (when (< i 10)
               (let ((old (array-ref a i)))
                 (if (string=? old \"never\")
                     (array-set! a i \"?\")
                     (array-set! a i (string-append old \"x\"))))
               (loop (+ i 1)))))
         (let loop ((r 0)) (when (< r 2000) (round! r) (loop (+ r 1))))
         (println (string-length (array-ref a 9)))");
    assert_eq!(r.out, "2000\n");
    r.assert_peak_below(1024 * 1024, "replaced values retained");
}

#[test]
fn a_part_of_a_read_value_used_up_at_once_pins_nothing() {
    // `(+ 1 (car (array-ref a i)))`: `car` takes the read value apart and
    // `+` uses the part up, so the read borrows; each round's list (with
    // a 20-slot array in it) is given back when replaced (71 MB for
    // 30,000 rounds before the tenth session).
    let r = run("(define a (make-array 10 (list 0)))
         (define (round! r)
           (let loop ((i 0))
             (when (< i 10)
               (array-set! a i (list (+ 1 (car (array-ref a i))) (make-array 20 r)))
               (loop (+ i 1)))))
         (let loop ((r 0)) (when (< r 5000) (round! r) (loop (+ r 1))))
         (println (car (array-ref a 9)) (array-length (cadr (array-ref a 9))))");
    assert_eq!(r.out, "5000 20\n");
    r.assert_peak_below(1024 * 1024, "replaced values retained");
}

#[test]
fn a_primitive_that_returns_its_argument_keeps_it_alive_across_the_jump() {
    // `min` and `max` return one of their arguments, which lives in this
    // round's region (it was the last round's result): the tail call
    // copies it into the destination before the round's region goes.
    let r = run(
        "(define (lo i a) (if (= i 0) a (lo (- i 1) (min a (+ 0.5 i)))))
                 (define (hi i a) (if (= i 0) a (hi (- i 1) (max (+ a 0.25) 2.5))))
                 (define (same i s) (if (= i 0) s (same (- i 1) (string-append s))))
                 (println (lo 1000 2000.5) (hi 1000 0.5) (same 1000 (string-append \"x\" \"y\")))",
    );
    assert_eq!(r.out, "1.5 252.25 xy\n");
}

#[test]
fn received_messages_a_loop_replaces_are_not_retained() {
    // The consumer's state is the message `recv` returns: it is adopted
    // into the next iteration's region, so each dies a round later.
    // Retained, 20,000 messages of 8 pairs would be 3.8 MB.
    let r = run("(define c (chan 4))
                 (define (produce n) (if (= n 0) (close c) (begin (send c (list n n n n n n n n)) (produce (- n 1)))))
                 (define h (spawn (fn [] (produce 20000))))
                 (define (consume ch m total) (if (nothing? m) total (consume ch (recv ch) (+ total (car m)))))
                 (println (consume c (recv c) 0))
                 (join h)");
    assert_eq!(r.out, "200010000\n");
    r.assert_peak_below(256 * 1024, "old messages retained");
}

#[test]
fn accumulator_is_built_where_it_lives() {
    let r = run("(define (build n) (let loop ((i 0) (acc '())) (if (= i n) acc (loop (+ i 1) (cons i acc)))))
                 (define kept (build 50000))
                 (println (length kept))");
    assert_eq!(r.out, "50000\n");
    // Built straight into the global region: nothing copied on the way.
    assert_eq!(r.transmigrated, 0, "the accumulator was copied");
    assert!(r.peak < 50000 * 24 + 64 * 1024, "peak {}", r.peak);
}

#[test]
fn a_value_every_run_stores_in_a_global_is_built_there() {
    // `b` is stored into `g` on every run of its `let`: it is built in the
    // global region, so the store copies nothing (and `g` is `b` itself).
    let r = run("(define g '())
                 (define (keep! n) (let ((b (list n n n))) (set! g b) (set-car! b 0) (length b)))
                 (let loop ((i 0)) (when (< i 1000) (keep! i) (loop (+ i 1))))
                 (println g)");
    assert_eq!(r.out, "(0 999 999)\n");
    assert_eq!(r.transmigrated, 0, "the stored value was copied");
}

#[test]
fn a_value_stored_in_a_global_only_sometimes_is_not_built_there() {
    // A store under an `if` may not happen: the value is built where it
    // was before (the activation's destination, here the caller's scratch)
    // and copied when it is stored, so the 100,000 candidates that are not
    // kept are not left in the global region (4.8 MB if they were).
    let r = run("(define best '())
                 (define (consider n)
                   (let ((c (list n n)))
                     (if (= 0 (remainder n 1000)) (set! best c))
                     (length c)))
                 (let loop ((i 0)) (when (< i 100000) (consider i) (loop (+ i 1))))
                 (println best)");
    assert_eq!(r.out, "(99000 99000)\n");
    assert!(r.transmigrated > 0, "the kept values were not copied");
    assert!(
        r.peak_segments < 1024 * 1024,
        "peak {} segment bytes: candidates left in the global region",
        r.peak_segments
    );
}

#[test]
fn overwritten_array_and_dict_values_are_given_back() {
    // 2,000 rounds replace every slot of a global array and a global dict:
    // retained, the old values would be 2,000 x (100 x 48 + 7 x 24) bytes,
    // about 10 MB. Slot regions are compacted as the values are replaced.
    let r = run("(define store (make-array 100 '()))
         (define index (dict))
         (define (round! r)
           (let loop ((i 0))
             (when (< i 100)
               (array-set! store i (list r i))
               (dict-set! index (remainder i 7) (cons r i))
               (loop (+ i 1)))))
         (let loop ((r 0)) (when (< r 2000) (round! r) (loop (+ r 1))))
         (println (array-ref store 99) (dict-ref index 3))");
    assert_eq!(r.out, "(1999 99) (1999 . 94)\n");
    r.assert_peak_below(1024 * 1024, "old values retained");
    assert!(
        r.peak_segments < 1024 * 1024,
        "peak {} segment bytes: old values retained",
        r.peak_segments
    );
}

#[test]
fn many_small_containers_stored_into_once_cost_no_segment_each() {
    // 20,000 one-slot arrays, each given one fresh string: about 1.3 MB of
    // live data. A slot region per array cost a 16 KiB segment each
    // (330 MB of segments) before the ninth session; a container gets one
    // only once it overwrites values.
    let r = run("(define (make n acc)
           (if (= n 0) acc
               (let ((a (make-array 1 0)))
                 (array-set! a 0 (string-append \"x\" (number->string n)))
                 (make (- n 1) (cons a acc)))))
         (define (go) (let ((l (make 20000 '()))) (array-ref (car l) 0)))
         (println (go))");
    assert_eq!(r.out, "x1\n");
    assert!(
        r.peak_segments < 8 * 1024 * 1024,
        "peak {} segment bytes: a segment per container",
        r.peak_segments
    );
}
#[test]
fn floats_updated_in_place_allocate_nothing() {
    // A grid of floats read and rewritten 300 times: flonums are
    // immediates, so nothing goes to the rows' slot regions, which every
    // read would otherwise pin (3 million boxed floats, 46 MB, were kept).
    let r = run("(define n 100)
                 (define grid (make-array n '()))
                 (define (init i) (when (< i n) (array-set! grid i (make-array n 0.0)) (init (+ i 1))))
                 (init 0)
                 (define (step-row row j) (when (< j n) (array-set! row j (+ (array-ref row j) 0.5)) (step-row row (+ j 1))))
                 (define (step i) (when (< i n) (step-row (array-ref grid i) 0) (step (+ i 1))))
                 (define (run k) (when (> k 0) (step 0) (run (- k 1))))
                 (run 300)
                 (println (array-ref (array-ref grid 5) 5))");
    assert_eq!(r.out, "150.0\n");
    r.assert_peak_below(256 * 1024, "replaced floats kept");
}

#[test]
fn coalesce_compacts_the_global_region_to_what_globals_reach() {
    with_vm(|vm| {
        // Pairs have no slot regions (arrays and dicts do): every value
        // stored into the cell stays in the global region.
        feed(
            vm,
            "(define cell (cons '() '()))
             (define (fill! r) (let loop ((i 0)) (when (< i 100) (set-car! cell (list r i)) (loop (+ i 1)))))
             (let loop ((r 0)) (when (< r 100) (fill! r) (loop (+ r 1))))",
        );
        let before = vm.global_region.bytes_allocated();
        let report = vm.coalesce().unwrap();
        assert_eq!(report.before, before);
        // 100 rounds x 100 lists of 2 pairs were stored; only the last
        // list (plus the cell and the closures) survives.
        assert!(before > 100 * 100 * 48, "{before}");
        assert!(
            report.after < before / 20,
            "after {} of {}",
            report.after,
            before
        );
        feed(vm, "(println (car cell))");
    });
}

#[test]
fn what_computing_a_definition_left_behind_dies_with_its_form() {
    with_vm(|vm| {
        // A merge sort's intermediate lists: `merge` shares its arguments'
        // tails, so they are built in the call's destination. With the
        // definition's value built straight in the global region they
        // stayed there (16 MB for 20,000 numbers); now they die with the
        // form's scratch and the sorted list alone is copied into the
        // global region.
        feed(
            vm,
            "(define (split l)
               (if (or (null? l) (null? (cdr l))) (cons l '())
                   (let ((r (split (cddr l))))
                     (cons (cons (car l) (car r)) (cons (cadr l) (cdr r))))))
             (define (merge a b)
               (cond ((null? a) b) ((null? b) a)
                     ((< (car a) (car b)) (cons (car a) (merge (cdr a) b)))
                     (else (cons (car b) (merge a (cdr b))))))
             (define (msort l)
               (if (or (null? l) (null? (cdr l))) l
                   (let ((p (split l))) (merge (msort (car p)) (msort (cdr p))))))
             (define (numbers n seed acc)
               (if (= n 0) acc
                   (numbers (- n 1) (remainder (+ (* seed 1103) 12345) 65536) (cons seed acc))))
             (define input (numbers 5000 7 '()))",
        );
        let before = vm.global_region.bytes_allocated();
        feed(vm, "(define sorted (msort input))");
        let grown = vm.global_region.bytes_allocated() - before;
        // The sorted list is 5,000 pairs (120,000 bytes); the sort
        // allocates about 13 times that.
        assert!(
            grown < 3 * 5000 * 24,
            "the global region grew by {grown} bytes"
        );
        feed(
            vm,
            "(println (length sorted) (car sorted) (list-ref sorted 4999))",
        );
    });
}

#[test]
fn what_a_procedure_only_inspects_dies_with_the_call_that_made_it() {
    // `stats` returns a list holding `total`'s result, so its call of
    // `total` escapes; `total` and `squares` only inspect their lists
    // (escape summaries, escape.rs), so the lists made for them are built
    // in `stats`'s scratch and die when it returns. Without summaries
    // every round's two 1,000-element lists stayed in the destination
    // (200 rounds: 9.6 MB).
    let r = run("(define (iota n) (let loop ((i n) (acc '())) (if (= i 0) acc (loop (- i 1) (cons i acc)))))
                 (define (squares l) (map (fn [x] (* x x)) l))
                 (define (total l) (fold-left + 0 l))
                 (define (stats n) (list n (total (squares (iota n)))))
                 (define (run k acc) (if (= k 0) acc (run (- k 1) (cons (stats 1000) acc))))
                 (let ((results (run 200 '()))) (println (length results) (car results)))");
    assert_eq!(r.out, "200 (1000 333833500)\n");
    r.assert_peak_below(1 << 20, "the pipeline's intermediate lists were kept");
}
