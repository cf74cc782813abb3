//! The pure tier (crates/omni-lang/src/vm/pure.rs): procedures that only
//! read and call run without activations, and whatever does not apply
//! falls back to the general path, which then behaves exactly as if the
//! tier did not exist (values, errors, backtraces, limits).

mod common;

use common::run_limited;
use omni_lang::vm::VmStats;
use omni_lang::{Diagnostic, Limits};

/// Run `src` with `limits` on a thread with the VM's stack: its output and
/// result, after checking that every region was freed.
fn run(src: &str, limits: Limits) -> (String, Result<VmStats, Vec<Diagnostic>>) {
    let (out, r, _) = run_heap(src, limits);
    (out, r)
}

/// `run`, also returning the thread's heap statistics.
fn run_heap(
    src: &str,
    limits: Limits,
) -> (
    String,
    Result<VmStats, Vec<Diagnostic>>,
    omni_mem::HeapStats,
) {
    let (out, r, heap) = run_limited(src.to_string(), limits);
    assert_eq!(heap.live_regions, 0, "live regions at exit");
    assert_eq!(heap.live_bytes, 0, "live bytes at exit");
    (out, r, heap)
}

fn run_ok(src: &str) -> (String, VmStats) {
    let (out, r) = run(src, Limits::default());
    match r {
        Ok(stats) => (out, stats),
        Err(d) => panic!("program failed: {d:?}\n{src}"),
    }
}

/// Check that `src` prints `want` with every call on the general path.
fn assert_general_output(src: &str, want: &str) {
    let (general, r) = run(
        src,
        Limits {
            pure_tier: false,
            ..Limits::default()
        },
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(general, want);
}

/// What `src` prints with `limits`, then its error if it fails, checked
/// to be the same with the pure tier and without it (`case` names the run).
fn same_outcome_in_both_tiers(src: &str, limits: Limits, case: &str) -> String {
    let results: Vec<String> = [true, false]
        .into_iter()
        .map(|pure_tier| {
            let (out, r) = run(
                src,
                Limits {
                    pure_tier,
                    ..limits
                },
            );
            match r {
                Ok(_) => out,
                Err(d) => format!("{out}error: {}", d[0].message),
            }
        })
        .collect();
    assert_eq!(results[0], results[1], "{case}");
    results[0].clone()
}

/// Run `src` with each step budget of `fuels` in both tiers, checking
/// that they agree, that the first budget runs out and that the last
/// lets the program print `output`.
fn budget_sweep(src: &str, fuels: std::ops::Range<u64>, output: &str) {
    let outcomes: Vec<String> = fuels
        .map(|fuel| {
            let limits = Limits {
                fuel: Some(fuel),
                ..Limits::default()
            };
            same_outcome_in_both_tiers(src, limits, &format!("budget {fuel}"))
        })
        .collect();
    // The range covers both outcomes.
    assert!(outcomes[0].contains("step budget exhausted"));
    assert_eq!(outcomes[outcomes.len() - 1], output);
}

fn run_err(src: &str, limits: Limits) -> (String, Diagnostic) {
    let (out, r) = run(src, limits);
    match r {
        Ok(_) => panic!("program succeeded\n{src}"),
        Err(mut d) => (out, d.remove(0)),
    }
}

#[test]
fn a_procedure_that_only_reads_and_calls_runs_in_the_pure_tier() {
    let (out, s) = run_ok(
        "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
         (define (tak x y z) (if (not (< y x)) z (tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y))))
         (define (count i acc) (if (= i 0) acc (count (- i 1) (+ acc 1))))
         (println (fib 20) (tak 18 12 6) (count 100000 0))",
    );
    assert_eq!(out, "6765 7 100000\n");
    assert_eq!(s.pure_runs, 3);
    assert_eq!(s.pure_fallbacks, 0);
    // The calls made inside are counted as any call.
    assert!(s.calls > 21_891 + 100_000, "{} calls", s.calls);
    assert!(s.tail_calls >= 100_000);
}

#[test]
fn pair_reads_tests_and_closures_run_in_the_pure_tier() {
    let (out, s) = run_ok(
        "(define (ok? row dist placed)
           (or (null? placed)
               (and (not (= (car placed) (+ row dist)))
                    (not (= (car placed) (- row dist)))
                    (not (= (car placed) row))
                    (ok? row (+ dist 1) (cdr placed)))))
         (define (count-below l k)
           (let loop ((l l) (n 0))
             (if (null? l) n (loop (cdr l) (if (< (car l) k) (+ n 1) n)))))
         (define (kind x) (cond ((pair? x) 'pair) ((symbol? x) 'symbol) ((eq? x #t) 'true) (else 'other)))
         (println (ok? 1 1 (list 5 7 9)) (ok? 3 2 (list 5 2 9)) (count-below (list 1 5 2 8 3) 4)
                  (kind '(1)) (kind 'a) (kind #t) (kind 2))",
    );
    assert_eq!(out, "true false 3 pair symbol true other\n");
    // ok? twice (the second meets 5 = 3 + 2), the loop of count-below (count-below itself makes a
    // closure: general), kind four times.
    assert_eq!(s.pure_runs, 7);
    assert_eq!(s.pure_fallbacks, 0);
}

#[test]
fn a_pure_procedure_returns_what_its_caller_made_as_the_same_object() {
    let (out, s) = run_ok(
        "(define (nth l n) (if (= n 0) (car l) (nth (cdr l) (- n 1))))
         (define (collect i acc)
           (if (= i 0) acc (collect (- i 1) (cons (nth (list (list i) (list (* i 10))) 1) acc))))
         (println (collect 3 '()))
         (let ((b (box 1)))
           (define kept (nth (list 0 b) 1))
           (set-box! b 2)
           (println (eq? kept b) (unbox kept)))",
    );
    assert_eq!(out, "((10) (20) (30))\ntrue 2\n");
    // collect builds only in its destination: the whole loop is one run;
    // then nth for the definition.
    assert_eq!(s.pure_runs, 2);
    assert_eq!(s.pure_fallbacks, 0);
}

#[test]
fn an_operand_of_another_kind_falls_back_and_the_procedure_waits_on_the_general_path() {
    let (out, s) = run_ok(
        "(define (sq x) (* x x))
         (println (sq 1.5))
         (println (sq 3))",
    );
    assert_eq!(out, "2.25\n9\n");
    assert_eq!(s.pure_fallbacks, 1, "one fallback");
    assert_eq!(s.pure_runs, 0, "sq waits 16 calls before it is tried again");
}

/// An obstacle met at every call costs a few retries: after its `n`th
/// fallback a procedure waits `2^(3+n)` calls on the general path
/// (`ir::TierState`), so 1000 calls try the tier at calls 1, 18, 51, 116,
/// 245 and 502: six fallbacks of `sum` (whose code has `sq`'s inlined)
/// and six of `sq` (called by `sum` on the general path).
#[test]
fn an_obstacle_met_at_every_call_is_retried_at_doubling_intervals() {
    let (out, s) = run_ok(
        "(define (sq x) (* x x))
         (define (sum k acc) (if (= k 0) acc (sum (- k 1) (+ acc (sq 0.5)))))
         (println (sum 1000 0))",
    );
    assert_eq!(out, "250.0\n");
    assert_eq!(s.pure_fallbacks, 12);
    assert_eq!(s.pure_runs, 0);
}

/// An obstacle met once (a float among fixnums) costs a few calls on the
/// general path: the procedure that met it, and a caller whose run fell
/// back because its callee was waiting, run in the tier again afterwards.
/// (`sq` is defined after `sum-sq`, so it is called, not inlined.)
#[test]
fn a_procedure_that_fell_back_once_runs_in_the_pure_tier_again() {
    let (out, s) = run_ok(
        "(define (sum-sq n acc) (if (= n 0) acc (sum-sq (- n 1) (+ acc (sq n)))))
         (define (sq x) (* x x))
         (println (sq 1.5))
         (println (sum-sq 100 0))
         (println (sum-sq 100 0) (sum-sq 1000 0) (sq 3))",
    );
    assert_eq!(out, "2.25\n338350\n338350 333833500 9\n");
    // `sq`'s overflow, then `sum-sq`'s first run (its callee waiting).
    assert_eq!(s.pure_fallbacks, 2);
    // Each tried again after 16 of its calls on the general path (`sq`'s
    // from `sum-sq`'s rounds there, then `sum-sq`'s, which runs the rest
    // of its rounds in the tier); then the three last calls.
    assert_eq!(s.pure_runs, 5);
}

#[test]
fn a_result_too_big_for_a_fixnum_falls_back_to_the_general_arithmetic() {
    let (out, s) = run_ok(
        "(define (dbl n k) (if (= k 0) n (dbl (* n 2) (- k 1))))
         (println (dbl 1 10) (dbl 1 62))",
    );
    assert_eq!(out, "1024 4611686018427387904\n");
    assert_eq!(s.pure_runs, 1);
    // The run overflows near its last round; the general path's rerun
    // tries the tier again after 16 and after 48 of its tail calls, and
    // each try meets the overflow again.
    assert_eq!(s.pure_fallbacks, 3);
}

#[test]
fn a_callee_redefined_as_impure_makes_its_caller_fall_back() {
    let (out, s) = run_ok(
        "(define (g x) (+ x 1))
         (define (f x) (g x))
         (println (f 1))
         (define (g x) (string-append \"<\" (number->string x) \">\"))
         (println (f 1))
         (println (f 2))",
    );
    assert_eq!(out, "2\n<1>\n<2>\n");
    assert_eq!(s.pure_runs, 1);
    assert_eq!(s.pure_fallbacks, 1);
}

#[test]
fn an_error_in_pure_code_is_reported_by_the_general_path_with_its_backtrace() {
    let (out, d) = run_err(
        "(define (f l) (car l))
         (define (g l) (+ 1 (f l)))
         (println 'before)
         (g 5)",
        Limits::default(),
    );
    assert_eq!(out, "before\n");
    assert!(
        d.message.starts_with("car: expected a pair"),
        "{}",
        d.message
    );
    let names: Vec<&str> = d.trace.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["f", "g"], "{d:?}");
}

#[test]
fn deep_pure_recursion_stops_with_the_general_paths_stack_overflow() {
    let limits = Limits {
        max_depth: 1000,
        ..Limits::default()
    };
    let (_, d) = run_err("(define (down n) (+ 1 (down n))) (down 1)", limits);
    assert!(
        d.message.starts_with("stack overflow: more than"),
        "{}",
        d.message
    );
    assert!(
        d.trace.len() > 100,
        "the general path's frames: {}",
        d.trace.len()
    );
    assert!(d.trace.iter().all(|t| t.0 == "down"));
}

#[test]
fn a_step_budget_stops_a_pure_loop() {
    let limits = Limits {
        fuel: Some(10_000),
        ..Limits::default()
    };
    let (_, d) = run_err("(define (spin n) (spin n)) (spin 1)", limits);
    assert_eq!(d.message, "step budget exhausted");
}

#[test]
fn the_wrong_number_of_arguments_is_the_general_paths_error() {
    let (_, d) = run_err(
        "(define (f a b) (if (= a 0) b (f (- a 1))))
         (f 3 4)",
        Limits::default(),
    );
    assert!(
        d.message.contains("expected 2 argument(s), got 1"),
        "{}",
        d.message
    );
}

#[test]
fn values_of_ifs_and_lets_inside_arguments_reach_the_callee() {
    // A first version wrote the value of an `if` in a tail call's
    // argument on one branch only (found by the differential test).
    let (out, s) = run_ok(
        "(define v5 '())
         (define (pick a b) (if (= a 0) b (pick (- a 1) (let ((c (let ((d \"a\")) v5))) (if (null? c) (let ((e v5)) (if (null? e) 6 (car e))) (car c))))))
         (define (either a b) (or (and (< a b) a) (and (> a b) b) 'same))
         (println (pick 2 1) (either 1 2) (either 3 2) (either 2 2))",
    );
    assert_eq!(out, "6 1 2 same\n");
    assert_eq!(s.pure_runs, 4);
}

#[test]
fn a_procedure_that_builds_only_in_its_destination_runs_in_the_pure_tier() {
    let (out, r, heap) = run_heap(
        "(define (make d) (if (= d 0) (cons '() '()) (cons (make (- d 1)) (make (- d 1)))))
         (define (check t) (if (null? (car t)) 1 (+ 1 (check (car t)) (check (cdr t)))))
         (define rounds (box 0))
         (define (loop i sum) (set-box! rounds (+ (unbox rounds) 1)) (if (= i 0) sum (loop (- i 1) (+ sum (check (make 8))))))
         (define kept (make 4))
         (println (loop 2000 0) (check kept) (unbox rounds))",
        Limits::default(),
    );
    let s = r.expect("runs");
    assert_eq!(out, "1022000 31 2001\n");
    // The loop stores into a box with `set-box!` (general: the tier sets
    // only boxes of assigned variables); each make and check it calls is a pure
    // run, make building in the loop's scratch region (made by the run at
    // the activation's rank, as the general path makes it).
    assert_eq!(s.pure_fallbacks, 0);
    assert_eq!(s.pure_runs, 1 + 2 * 2_000 + 1);
    // 2,000 trees of 511 pairs were built; a tree at a time was live.
    assert!(
        heap.peak_live_bytes < 2_000 * 511 * 24 / 10,
        "peak {} bytes",
        heap.peak_live_bytes
    );
}

#[test]
fn a_builder_called_where_its_result_dies_builds_in_the_callers_scratch_region() {
    let (out, s) = run_ok(
        "(define (len l) (if (null? l) 0 (+ 1 (len (cdr l)))))
         (define (mk n) (if (= n 0) '() (cons n (mk (- n 1)))))
         (define (f n) (+ 1 (len (mk n))))
         (define (g n) (len (mk n)))
         (println (f 5) (f 6) (mk 2) (g 3))",
    );
    assert_eq!(out, "6 7 (2 1) 3\n");
    // f's call of mk builds in f's scratch region (made for it, exited as
    // f returns); g's builds in g's destination, as a tail call's argument
    // does. Every call from the top level runs whole.
    assert_eq!(s.pure_fallbacks, 0);
    assert_eq!(s.pure_runs, 4);
}

#[test]
fn a_loop_that_builds_in_scratch_every_round_keeps_one_rounds_memory() {
    // Each round, `round` conses a list and `add` makes a closure, both in
    // their destination: `loop`'s scratch region, made for them and exited
    // before the round's tail call. `g`'s body is inlined in `loop`, so
    // its call of `mk` builds in that region too (not in a scratch region
    // of `g`'s own); `two` builds its list in its own, exited as it
    // returns: two scratch regions a round.
    let src = "(define (sum l) (if (null? l) 0 (+ (car l) (sum (cdr l)))))
         (define (round i) (sum (cons i (cons i (cons i '())))))
         (define (twice f x) (f (f x)))
         (define (add k) (twice (lambda (x) (+ x k)) 0))
         (define (mk n) (if (= n 0) '() (cons n (mk (- n 1)))))
         (define (g n) (+ n (sum (mk n))))
         (define (two i) (+ 1 (sum (list i i))))
         (define (loop i acc) (if (= i 0) acc (loop (- i 1) (+ acc (round i) (add i) (g 8) (two i)))))
         (println (loop 20000 0))";
    let (out, r, heap) = run_heap(src, Limits::default());
    let s = match r {
        Ok(s) => s,
        Err(d) => panic!("{d:?}"),
    };
    assert_eq!(out, "1400970000\n");
    assert_eq!(s.pure_fallbacks, 0);
    assert_eq!(s.pure_runs, 1);
    // Scratch regions every round; a round's few objects were live.
    assert!(
        s.scratch_regions >= 40_000,
        "{} scratch regions",
        s.scratch_regions
    );
    assert_explained(src, "loop", "global procedure's body inlined at 3 calls");
    assert!(
        heap.peak_live_bytes < 64 * 1024,
        "peak {} bytes",
        heap.peak_live_bytes
    );
}

#[test]
fn closures_and_length_run_in_the_pure_tier_with_the_general_paths_results() {
    let src = format!(
        "{QUEENS}
         (define (adder k) (lambda (x) (+ x k)))
         (define (compose f g) (lambda (x) (f (g x))))
         (println (queens 6 '()) (queens 8 '()) ((compose (adder 1) (adder 10)) 5) (length '()) (length '(a b c)))"
    );
    let src = src.as_str();
    let want = "4 92 16 0 3\n";
    let (out, s) = run_ok(src);
    assert_eq!(out, want);
    assert_eq!(s.pure_fallbacks, 0);
    // One run per procedure call from the top level: queens twice, adder
    // twice, compose, and the closure compose made.
    assert_eq!(s.pure_runs, 6);
    assert_general_output(src, want);
}

#[test]
fn length_of_an_improper_or_cyclic_list_is_the_general_paths_error() {
    for (list, message) in [
        ("'(1 2 . 3)", "length"),
        ("(let ((l (list 1 2))) (set-cdr! (cdr l) l) l)", "length"),
    ] {
        let src = format!(
            "(define (n l) (+ 1 (length l)))
             (define l {list})
             (println (n '(1)))
             (println (n l))"
        );
        let (out, d) = run_err(&src, Limits::default());
        assert_eq!(out, "2\n");
        assert!(d.message.contains(message), "{}", d.message);
        let (general_out, general) = run_err(
            &src,
            Limits {
                pure_tier: false,
                ..Limits::default()
            },
        );
        assert_eq!(general_out, out);
        assert_eq!(general.message, d.message);
    }
}

#[test]
fn a_fallback_after_a_scratch_region_was_made_frees_it() {
    // `f` conses in its scratch region, then `check` meets an error: the
    // run is abandoned with f's scratch region made, and the general path
    // reports the error; every region is freed (the runner checks).
    let src = "(define (check l) (if (> (car l) 2) (error \"too big\" (car l)) (car l)))
         (define (f n) (+ 1 (check (cons n '()))))
         (println (f 1))
         (println (f 3))";
    let (out, d) = run_err(src, Limits::default());
    assert_eq!(out, "2\n");
    assert!(d.message.contains("too big"), "{}", d.message);
}

#[test]
fn an_error_after_building_is_the_general_paths_error_and_frees_everything() {
    let (out, d) = run_err(
        "(define (build n) (if (= n 0) (error \"bottom\" n) (cons n (build (- n 1)))))
         (println 'start)
         (define l (build 1000))",
        Limits::default(),
    );
    assert_eq!(out, "start\n");
    assert!(d.message.contains("bottom"), "{}", d.message);
    assert!(d.trace.iter().all(|t| t.0 == "build" || t.0 == "toplevel"));
}

#[test]
fn constants_captures_and_every_operand_count_give_the_general_paths_values() {
    let (out, s) = run_ok(
        "(define table '((a 1) (b 2) (c 3)))
         (define (lookup k) (let loop ((l table)) (cond ((null? l) #f) ((eq? (car (car l)) k) (cadr (car l))) (else (loop (cdr l))))))
         (define (sums a b c) (list (+) (* ) (+ a) (* a b) (+ a b c) (* a b c 2) (- a b) (quotient c a) (remainder c b) (modulo (- 0 c) b)))
         (define (tests x) (list (null? x) (pair? x) (not x) (zero? 0) (symbol? 'q) (number? x) (integer? 3) (eq? x x) (string? x)))
         (define (quoted) '(1 \"two\" #\\3))
         (define (empty) (list))
         (define (within lo hi x) (and (<= lo x) (< x hi) (> hi lo) (>= x lo) (not (= x hi))))
         (println (lookup 'b) (lookup 'z) (sums 3 4 10) (tests '(1)) (quoted) (empty) (within 1 5 3) (within 1 5 5))",
    );
    assert_eq!(
        out,
        "2 false (0 1 3 12 17 240 -1 3 2 2) (false true false true true false true true false) (1 two 3) () true false\n"
    );
    assert_eq!(s.pure_fallbacks, 0);
    // One run per call from the top level (lookup's, its loop's closure
    // made in the tier, twice; within twice).
    assert_eq!(s.pure_runs, 8);
}

#[test]
fn a_step_budget_runs_out_at_the_same_call_in_both_tiers() {
    let src = "(define (count i acc) (if (= i 0) acc (count (- i 1) (+ acc 1))))
               (define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
               (println (count 50 0) (fib 8))";
    budget_sweep(src, 80..140, "50 21\n");
}

#[test]
fn tail_calls_that_reorder_their_parameters_and_repeated_pair_reads_keep_their_values() {
    // Arguments written in place where nothing later reads what they
    // overwrite (`keep`, `walk`), left in temporaries where something does
    // (`swap`, `rotate`, `shift`, and `pick`'s callee register); repeated
    // `car`s read once while their registers hold, and again after a join
    // or a write (`walk`, `first-twice`).
    let src = "(define (keep a b n) (if (= n 0) (list a b) (keep a (+ b 1) (- n 1))))
         (define (swap a b n) (if (= n 0) (list a b) (swap b a (- n 1))))
         (define (rotate a b c n) (if (= n 0) (list a b c) (rotate b c a (- n 1))))
         (define (shift a b n) (if (= n 0) (list a b) (shift (+ a b) a (- n 1))))
         (define (pick f g n) (if (= n 0) (f n) (pick g f (- n 1))))
         (define (inc x) (+ x 1))
         (define (dec x) (- x 1))
         (define (walk x l) (if (null? l) x (if (< (car l) x) (walk (car l) (cdr l)) (walk (+ x (car l)) (cdr l)))))
         (define (first-twice l) (list (car l) (if (pair? (cdr l)) (car (cdr l)) 0) (car l)))
         (define (tests x) (if (number? x) 'number (if (eq? x 'k) 'k (if (pair? x) (if (eq? (car x) 'q) 'q-list 'list) 'other))))
         (println (keep 1 2 5) (swap 1 2 5) (rotate 1 2 3 4) (shift 1 1 10) (pick inc dec 3) (pick inc dec 4))
         (println (walk 5 '(3 9 1 4 7)) (first-twice '(1 2)) (first-twice '(3)))
         (println (tests 1) (tests 'k) (tests '(q)) (tests '(r)) (tests \"s\"))";
    let want =
        "(1 7) (2 1) (2 3 1) (144 89) -1 1\n12 (1 2 1) (3 0 3)\nnumber k q-list list other\n";
    let (out, s) = run_ok(src);
    assert_eq!(out, want);
    assert_eq!(s.pure_fallbacks, 0);
    // One run per call from the top level (`inc` and `dec` run inside
    // `pick`'s).
    assert_eq!(s.pure_runs, 14);
    assert_general_output(src, want);
}

#[test]
fn a_procedure_runs_its_own_body_in_place_of_its_calls_of_itself() {
    // fib, tak and the tree builder inline their calls of themselves
    // (explain says so); the values, and the calls and tail calls counted,
    // are the general path's.
    let src = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
         (define (tak x y z) (if (not (< y x)) z (tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y))))
         (define (make d) (if (= d 0) (cons '() '()) (cons (make (- d 1)) (make (- d 1)))))
         (define (check t) (if (null? (car t)) 1 (+ 1 (check (car t)) (check (cdr t)))))
         (define (walk n acc)
           (if (= n 0) acc (if (= (remainder n 2) 1) (walk (- n 1) (+ acc 1)) (+ 1 (walk (- n 1) acc)))))
         (define (depth n) (let loop ((i n)) (if (= i 0) 0 (+ 1 (loop (- i 1))))))
         (println (fib 15) (tak 12 8 4) (check (make 6)) (walk 41 0) (depth 9))";
    let want = "610 5 127 41 9\n";
    let (out, s) = run_ok(src);
    assert_eq!(out, want);
    assert_eq!(s.pure_fallbacks, 0);
    let (general, r) = run(
        src,
        Limits {
            pure_tier: false,
            ..Limits::default()
        },
    );
    let g = r.expect("runs");
    assert_eq!(general, want);
    assert_same_calls(&s, &g);
    // (`loop` calls itself by its own name, not through a global.)
    for name in ["fib", "tak", "make", "check", "walk", "loop"] {
        assert_explained(src, name, "its body inlined at");
    }
}

#[test]
fn a_tail_call_of_itself_in_an_inlined_body_loops_and_takes_its_steps() {
    // `walk`'s tail calls of itself in its inlined bodies jump back to the
    // body's start; each still takes a step of the budget, so the budget
    // runs out at the same call in both tiers.
    let src = "(define (walk n acc)
                 (if (= n 0) acc (if (= (remainder n 3) 0) (+ 1 (walk (- n 1) acc)) (walk (- n 1) (+ acc 2)))))
               (println (walk 40 0))";
    budget_sweep(src, 20..70, "67\n");
    let explained = omni_lang::explain_source(src).expect("explains");
    assert!(explained.contains("its body inlined at"), "{explained}");
}

#[test]
fn an_inlined_call_of_a_redefined_global_calls_what_the_global_now_holds() {
    let src = "(define (f n) (if (= n 0) 0 (+ 1 (f (- n 1)))))
         (define g f)
         (println (g 5))
         (define (f n) 100)
         (println (g 5) (f 5))";
    let (out, s) = run_ok(src);
    assert_eq!(out, "5\n101 100\n");
    assert_eq!(s.pure_fallbacks, 0);
    assert_general_output(src, "5\n101 100\n");
}

#[test]
fn inlined_calls_keep_the_general_paths_depth_limit() {
    // Every other call of `walk` is not a tail call: the depth grows by
    // one every two calls, also where the body is inlined, whose tail call
    // takes the inlined call's level (as on the general path). Around the
    // limit, both tiers give the same value or the same error.
    let limits = Limits {
        max_depth: 100,
        ..Limits::default()
    };
    let mut outcomes = Vec::new();
    for n in 180..230 {
        let src = format!(
            "(define (walk n acc)
               (if (= n 0) acc (if (= (remainder n 2) 1) (walk (- n 1) (+ acc 1)) (+ 1 (walk (- n 1) acc)))))
             (define (down n) (if (= n 0) 0 (+ 1 (down (- n 1)))))
             (println (walk {n} 0))
             (println (down (- {n} 90)))"
        );
        outcomes.push(same_outcome_in_both_tiers(
            &src,
            limits,
            &format!("n = {n}"),
        ));
    }
    // The range covers both outcomes, for both procedures.
    assert!(outcomes[0].starts_with("180\n90\n"), "{}", outcomes[0]);
    let walked = |o: &String| o.lines().next().is_some_and(|l| l.parse::<i64>().is_ok());
    assert!(outcomes
        .iter()
        .any(|o| walked(o) && o.contains("stack overflow")));
    assert!(outcomes
        .last()
        .is_some_and(|o| o.starts_with("error: stack overflow")));
}

#[test]
fn a_builder_inlined_where_its_result_dies_builds_in_the_callers_scratch_region() {
    // The inner call's value dies in `length`: CTRR gives it the scratch
    // region as its destination, so the inlined body builds there.
    let src = "(define (f n) (if (= n 0) (list 0) (cons n (list (length (f (- n 1)))))))
         (define (loop i acc) (if (= i 0) acc (loop (- i 1) (+ acc (length (f 30))))))
         (println (f 5) (loop 5000 0))";
    let (out, s, heap) = run_heap(src, Limits::default());
    let s = s.expect("runs");
    assert_eq!(out, "(5 2) 10000\n");
    assert_eq!(s.pure_fallbacks, 0);
    // One round's pairs live at a time, not 5,000 rounds' (at least
    // 60 pairs a round, 24 bytes each).
    assert!(
        heap.peak_live_bytes < 5_000 * 60 * 24 / 10,
        "peak {} bytes",
        heap.peak_live_bytes
    );
    assert_general_output(src, "(5 2) 10000\n");
    // `(f 5)` alone: the top level's scratch region, and f's at 5 and 2,
    // each holding what the bodies inlined there, two levels deep (4 and
    // 3; 1 and 0), build, and given to the call the inner one makes (of
    // 2) as its destination.
    let (_, s) = run_ok(
        "(define (f n) (if (= n 0) (list 0) (cons n (list (length (f (- n 1)))))))
         (println (f 5))",
    );
    assert_eq!(s.scratch_regions, 3);
}

/// Both tiers counted the same calls and tail calls (each a step of the
/// step budget).
fn assert_same_calls(pure: &VmStats, general: &VmStats) {
    assert_eq!(
        (pure.calls, pure.tail_calls),
        (general.calls, general.tail_calls),
        "calls and tail calls: pure tier, general path"
    );
}

/// The stats of `src` in both tiers (pure tier first), with the heap's,
/// after checking that the two print `want`.
fn both_tiers(src: &str, want: &str) -> [(VmStats, omni_mem::HeapStats); 2] {
    [true, false].map(|pure_tier| {
        let (out, r, heap) = run_heap(
            src,
            Limits {
                pure_tier,
                ..Limits::default()
            },
        );
        assert_eq!(out, want, "pure tier {pure_tier}");
        match r {
            Ok(stats) => (stats, heap),
            Err(d) => panic!("program failed: {d:?}\n{src}"),
        }
    })
}

/// The side-by-side mutation benchmark's shape: fresh lists stored into
/// an old array and dict, many rounds. It runs in the tier, counts the
/// same calls, and its slot regions are compacted as on the general path
/// (the tier holds compaction during a run and compacts after it).
const STORE_ROUNDS: &str = "
    (define store (make-array 100 '()))
    (define index (dict))
    (define (round! r)
      (let loop ((i 0))
        (when (< i 100)
          (array-set! store i (list r i (* r i)))
          (when (= (remainder i 10) 0) (dict-set! index i (cons r i)))
          (loop (+ i 1)))))
    (define (run r) (when (< r 300) (round! r) (run (+ r 1))))
    (run 0)
    (println (array-ref store 99) (dict-ref index 90) (dict-count index))";

#[test]
fn a_procedure_that_stores_runs_in_the_pure_tier() {
    let [(pure, pure_heap), (general, general_heap)] =
        both_tiers(STORE_ROUNDS, "(299 99 29601) (299 . 90) 10\n");
    assert_eq!((pure.pure_runs, pure.pure_fallbacks), (1, 0));
    assert_same_calls(&pure, &general);
    // Overwritten lists are given back in both.
    assert!(
        pure_heap.slot_compactions > 0,
        "{} and {} compactions",
        pure_heap.slot_compactions,
        general_heap.slot_compactions
    );
    assert!(
        pure_heap.peak_live_bytes <= 2 * general_heap.peak_live_bytes,
        "{} peak bytes against {}",
        pure_heap.peak_live_bytes,
        general_heap.peak_live_bytes
    );
}

/// A run that stores and then meets what does not apply (here a call of a
/// procedure that prints) puts back everything its stores replaced before
/// the general path runs the call again: a counter is not counted twice,
/// a new dict key is removed and a replaced value restored in its place
/// (the order of the keys shows it).
#[test]
fn a_run_that_falls_back_puts_back_what_its_stores_replaced() {
    let src = "
        (define a (make-array 1 0))
        (define d (dict 4 'old 9 'nine))
        (define (shout) (println \"at\" (array-ref a 0)))
        (define (bump! n)
          (if (= n 0) 'done
              (begin (array-set! a 0 (+ 1 (array-ref a 0)))
                     (dict-set! d n (array-ref a 0))
                     (when (= n 3) (shout))
                     (bump! (- n 1)))))
        (bump! 5)
        (println (array-ref a 0) (dict-keys d) (dict-ref d 4) (dict-ref d 1))";
    let want = "at 3\n5 (4 9 5 3 2 1) 2 5\n";
    assert_general_output(src, want);
    let [(pure, _), _] = both_tiers(src, want);
    assert!(pure.pure_fallbacks >= 1);
}

/// The same after an error that a handler catches: the general path's
/// rerun raises it with the containers as they were before the run.
#[test]
fn an_error_after_stores_is_raised_on_the_containers_as_they_were() {
    let src = "
        (define a (make-array 2 0))
        (define (fill! i)
          (if (= i 2) (car i)
              (begin (array-set! a i (+ (array-ref a i) 10)) (fill! (+ i 1)))))
        (println (guard-error (lambda () (fill! 0)) (lambda (e) 'caught))
                 (array-ref a 0) (array-ref a 1))";
    let out = same_outcome_in_both_tiers(src, Limits::default(), "error after stores");
    assert_eq!(out, "caught 10 10\n");
}

/// A run logs at most `MAX_UNDO` (4096) stores between two commits (a
/// commit is made at a tail call of the run's first procedure): past that
/// it falls back, puts them all back, and the general path makes them
/// once (and runs the procedure the run began with from then on; `fill!`'s
/// own runs commit as they loop).
#[test]
fn a_run_with_too_many_stores_falls_back_and_makes_each_once() {
    let src = "
        (define a (make-array 10 0))
        (define (fill! i)
          (when (< i 10000)
            (array-set! a (remainder i 10) (+ 1 (array-ref a (remainder i 10))))
            (fill! (+ i 1))))
        (define (go) (fill! 0) 'filled)
        (println (go) (go))
        (println (array->list a))";
    let want = "filled filled\n(2000 2000 2000 2000 2000 2000 2000 2000 2000 2000)\n";
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert_eq!(pure.pure_fallbacks, 1);
    assert_same_calls(&pure, &general);
}

/// A run that loops storing commits what it stored every `COMMIT_AT` (64)
/// stores, at its loop's tail call; when it later falls back, only the
/// stores since are put back, and the general path goes on from that tail
/// call: each store made once, the same calls counted, and an error's
/// backtrace the general path's.
#[test]
fn a_run_that_committed_goes_on_from_its_last_commit() {
    let src = "
        (define a (make-array 1 0))
        (define d (dict))
        (define (shout) (println \"at\" (array-ref a 0)))
        (define (bump! n)
          (if (= n 0) 'done
              (begin (array-set! a 0 (+ 1 (array-ref a 0)))
                     (dict-set! d (remainder n 7) (array-ref a 0))
                     (when (= n 3) (shout))
                     (bump! (- n 1)))))
        (bump! 200)
        (println (array-ref a 0) (dict-keys d) (dict-ref d 1))";
    let want = "at 198\n200 (4 3 2 1 0 6 5) 200\n";
    assert_general_output(src, want);
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert_eq!(pure.pure_fallbacks, 1);
    assert_same_calls(&pure, &general);
    // A step budget that runs out anywhere in the loop, before or after
    // commits: the same output and error in both tiers.
    let quiet = src.replace("(when (= n 3) (shout))", "");
    budget_sweep(&quiet, 20..260, "200 (4 3 2 1 0 6 5) 200\n");
    // An error after a restart, in each of the activations after the last
    // commits (among them the one the general path begins with, whose
    // backtrace line is the tail call's): the same message and backtrace.
    for k in 1..=40 {
        assert_same_error_at(src, k);
    }
}

/// `src` with its `(shout)` at `n` = 3 replaced by an error at `n` = `k`:
/// the same output, message and backtrace in both tiers.
fn assert_same_error_at(src: &str, k: u32) {
    let failing = src.replace(
        "(when (= n 3) (shout))",
        &format!("(when (= n {k}) (car n))"),
    );
    let diags: Vec<String> = [true, false]
        .map(|pure_tier| {
            let (out, d) = run_err(
                &failing,
                Limits {
                    pure_tier,
                    ..Limits::default()
                },
            );
            format!("{out}{d:?}")
        })
        .into();
    assert_eq!(diags[0], diags[1], "error at {k}");
}

/// A stored value younger than the container is repaired by the store
/// helper (copied where the container lives), in the tier as on the
/// general path, also when the run then falls back.
#[test]
fn a_store_the_barrier_repairs_is_the_general_paths() {
    let src = "
        (define a (make-array 2 '()))
        (define (pair-of n) (list n (+ n 1)))
        (define (put! i n) (array-set! a i (pair-of n)))
        (define (go n) (put! 0 n) (put! 1 (+ n 10)) (if (= n 3) (car n) (array-ref a 0)))
        (println (go 1) (array-ref a 1))
        (println (guard-error (lambda () (go 3)) (lambda (e) 'caught)) a)";
    let out = same_outcome_in_both_tiers(src, Limits::default(), "repaired stores");
    assert_eq!(out, "(1 2) (11 12)\ncaught [(3 4) (13 14)]\n");
}

/// `set!` of a global the program assigns and of a captured variable (both
/// boxes made before the run) runs in the tier as a logged store: a
/// fallback puts the old value back, so a counter is counted once; a
/// variable used before its definition is the general path's error.
#[test]
fn assigned_globals_and_captured_variables_are_set_in_the_tier() {
    let src = "
        (define count 0)
        (define (shout) (println \"count\" count))
        (define (tick! n)
          (when (> n 0)
            (set! count (+ count 1))
            (when (= n 150) (shout))
            (tick! (- n 1))))
        (define (make-acc)
          (let ((total 0))
            (lambda (n)
              (let loop ((i n))
                (when (> i 0) (set! total (+ total i)) (loop (- i 1))))
              total)))
        (define acc (make-acc))
        (tick! 200)
        (println count (acc 100) (acc 10))";
    let want = "count 51\n200 5050 5105\n";
    assert_general_output(src, want);
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert!(pure.pure_runs >= 2, "{} pure runs", pure.pure_runs);
    assert_same_calls(&pure, &general);
    let early = "
        (define (f) (set! later (+ 1 later)) later)
        (println (guard-error f (lambda (e) 'caught)))
        (define later 1)
        (println (f))";
    assert_eq!(
        same_outcome_in_both_tiers(early, Limits::default(), "before its definition"),
        "caught\n2\n"
    );
}

/// Check that `src` prints `want` in both tiers with the same calls: the
/// pure tier's stats.
fn tiers_agree(src: &str, want: &str) -> VmStats {
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert_same_calls(&pure, &general);
    pure
}

/// A list of `0 .. n-1` built front to back with `set-cdr!` (a queue's
/// tail); `STOP` marks where a test may add a step after each store.
const BUILD: &str = "
    (define (build n)
      (let ((head (cons 0 '())))
        (let loop ((i 1) (tail head))
          (if (= i n) head
              (let ((c (cons i '())))
                (set-cdr! tail c)
                STOP
                (loop (+ i 1) c))))))";

/// A list built front to back with `set-cdr!` (a queue's tail), then
/// changed in place with `set-car!`: both procedures run in the tier, with
/// the general path's result and calls.
#[test]
fn pairs_are_changed_in_place_in_the_tier() {
    let src = &(BUILD.replace("STOP", "")
        + "
        (define (double! l) (when (pair? l) (set-car! l (* 2 (car l))) (double! (cdr l))))
        (define (grow! l n) (set-cdr! l (list n (+ n 1))) l)
        (define l (build 10))
        (double! l)
        (println l)
        (println (grow! (cdr (cdr l)) 7) l)");
    let want = "(0 2 4 6 8 10 12 14 16 18)\n(4 7 8) (0 2 4 7 8)\n";
    let pure = tiers_agree(src, want);
    assert_eq!(pure.pure_fallbacks, 0);
    assert!(pure.pure_runs >= 3, "{} pure runs", pure.pure_runs);
    assert_explained(src, "double!", "stores logged");
    // The list `grow!` stores is built in the pair's region, as CTRR
    // sends it there.
    assert_explained(src, "grow!", "pure tier: tried first");
}

/// A run that changed a pair and then falls back puts the old car and cdr
/// back first: the counter is counted once, and the general path's error
/// for a store into something that is not a pair is raised as it is.
#[test]
fn a_run_that_falls_back_puts_back_the_pairs_it_changed() {
    let src = "
        (define counter (cons 0 '()))
        (define (shout) (println \"at\" (car counter)))
        (define (tick! n)
          (when (> n 0)
            (set-car! counter (+ 1 (car counter)))
            (set-cdr! counter (list n))
            (when (= n 3) (shout))
            (tick! (- n 1))))
        (tick! 5)
        (println counter)";
    let want = "at 3\n(5 1)\n";
    assert!(tiers_agree(src, want).pure_fallbacks >= 1);
    let not_a_pair = "
        (define counter (cons 0 '()))
        (define (tick! p n)
          (if (= n 0) (set-car! 5 n)
              (begin (set-car! p (+ 1 (car p))) (tick! p (- n 1)))))
        (println (guard-error (lambda () (tick! counter 4)) (lambda (e) e)))
        (println counter)
        (tick! counter 2)";
    let out = same_outcome_in_both_tiers(not_a_pair, Limits::default(), "not a pair");
    assert!(out.starts_with("set-car!: expected a pair"), "{out}");
    assert!(
        out.contains("\n(4)\nerror: set-car!: expected a pair"),
        "{out}"
    );
}

/// A queue built in the run's destination commits its stores as it loops
/// (every 64, at the loop's tail call); when it falls back after a
/// commit, the pairs changed since are put back and the general path goes
/// on from that tail call: every element once, in order. (Two fallbacks:
/// `build`'s run, where the loop is a nested call that never commits, and
/// then the loop's own run, which commits.)
#[test]
fn a_queue_built_across_commits_goes_on_from_its_last_commit() {
    let src = &(BUILD.replace("STOP", "(when (= i 150) (shout))")
        + "
        (define (shout) (println \"at\" 150))
        (define (check l i) (if (null? l) i (if (= (car l) i) (check (cdr l) (+ i 1)) (list 'bad i))))
        (println (check (build 300) 0))");
    let want = "at 150\n300\n";
    assert_eq!(tiers_agree(src, want).pure_fallbacks, 2);
}

/// A pair in one of the run's scratch regions is changed without a log
/// entry: the region ends before the run does (a put-back would write
/// into freed memory, which the sanitizer gates would catch), and after a
/// fallback nothing reaches it. Logged, these 5,000 stores with no tail
/// call between them would pass the log's limit (4,096) and fall back.
#[test]
fn pairs_in_the_runs_scratch_regions_are_changed_without_a_log() {
    let src = "
        (define (sum-pair n) (let ((p (cons n 0))) (set-cdr! p (+ n 1)) (+ (car p) (cdr p))))
        (define (walk n) (if (= n 0) 0 (+ (sum-pair n) (walk (- n 1)))))
        (println (walk 5000))";
    let want = "25010000\n";
    let [(pure, pure_heap), (general, _)] = both_tiers(src, want);
    assert_eq!((pure.pure_runs, pure.pure_fallbacks), (1, 0));
    assert!(
        pure.scratch_regions >= 1,
        "{} scratch regions",
        pure.scratch_regions
    );
    assert!(pure_heap.regions_freed > 1);
    assert_same_calls(&pure, &general);
    // The same with a fallback at the end (an error the general path
    // raises), after the scratch regions of the changed pairs ended.
    let falls = src.replace("(if (= n 0) 0", "(if (= n 0) (car n)").replace(
        "(println (walk 5000))",
        "(println (guard-error (lambda () (walk 5000)) (lambda (e) e)))",
    );
    let [(pure, _), _] = both_tiers(&falls, "car: expected a pair, got 0 (integer)\n");
    assert!(pure.pure_fallbacks >= 1);
}

/// nqueens' shape (benches/programs/nqueens.omni): `ok?`, a global
/// procedure that captures nothing and loops, called from `queens`' inner
/// loop.
const QUEENS: &str = "
    (define (ok? row dist placed)
      (or (null? placed)
          (and (not (= (car placed) (+ row dist)))
               (not (= (car placed) (- row dist)))
               (not (= (car placed) row))
               (ok? row (+ dist 1) (cdr placed)))))
    (define (queens n placed)
      (if (= (length placed) n) 1
          (let loop ((r 1) (total 0))
            (if (> r n) total
                (loop (+ r 1) (if (ok? r 1 placed) (+ total (queens n (cons r placed))) total))))))";

/// The line `omni explain` gives procedure `name`'s pure-tier code.
fn explained_line(src: &str, name: &str) -> String {
    let explained = omni_lang::explain_source(src).expect("explains");
    let at = explained
        .find(&format!("procedure {name} "))
        .unwrap_or_else(|| panic!("{name} listed"));
    explained[at..].lines().nth(1).unwrap_or("").to_string()
}

/// Check that procedure `name`'s pure-tier line says `text`.
fn assert_explained(src: &str, name: &str, text: &str) {
    let line = explained_line(src, name);
    assert!(line.contains(text), "{name}: {line}");
}

#[test]
fn a_global_procedure_that_captures_nothing_has_its_body_inlined_at_a_call() {
    // `loop` runs `ok?`'s body in place of its call, and `ok?`'s tail call
    // of itself there loops back to the body's start: the values, and the
    // calls and tail calls counted, are the general path's.
    let src = format!("{QUEENS} (println (queens 6 '()) (queens 7 '()))");
    let src = src.as_str();
    let want = "4 40\n";
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert_eq!(pure.pure_fallbacks, 0);
    assert_same_calls(&pure, &general);
    assert_explained(src, "loop", "a global procedure's body inlined at 1 call");
    // Each round's step is taken where the general path takes it.
    budget_sweep(
        "(define (ok? row dist placed)
           (or (null? placed)
               (and (not (= (car placed) (+ row dist))) (ok? row (+ dist 1) (cdr placed)))))
         (define (count r n acc) (if (= r n) acc (count (+ r 1) n (if (ok? r 1 '(9 3 5 1)) (+ acc 1) acc))))
         (println (count 0 12 0))",
        10..120,
        "9\n",
    );
}

/// `explain` says a procedure may have a scratch region when it inlines a
/// body whose value dies in it: if the global no longer holds that
/// procedure, the call is made with the scratch region as its destination,
/// and what the global holds then may build there.
#[test]
fn an_inlined_body_whose_value_dies_may_give_its_procedure_a_scratch_region() {
    let src = "(define (small? n) (< n 10))
         (define (pick n) (if (small? n) 1 2))
         (println (pick 3))
         (define (small? n) (pair? (list n)))
         (println (pick 30))";
    assert_explained(src, "small?", "no scratch region");
    assert_explained(src, "pick", "a scratch region if a callee builds there");
    both_tiers(src, "1\n1\n");
}

#[test]
fn an_inlined_loop_that_swaps_its_arguments_keeps_their_values() {
    // gcd's tail call passes (b, (remainder a b)): the arguments move to
    // the parameters after all of them are computed.
    let src = "(define (gcd a b) (if (= b 0) a (gcd b (remainder a b))))
         (define (sum-gcd i acc) (if (= i 0) acc (sum-gcd (- i 1) (+ acc (gcd (* i 12) 90)))))
         (println (gcd 1071 462) (sum-gcd 200 0))";
    let [(pure, _), _] = both_tiers(src, "21 3576\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert_explained(
        src,
        "sum-gcd",
        "a global procedure's body inlined at 1 call",
    );
}

#[test]
fn an_inlined_global_redefined_later_is_called_as_it_now_is() {
    // The body inlined is `f`'s first definition; `use` then calls what `f`
    // holds: another procedure, one with captures, a non-procedure.
    let src = "(define (f x) (+ x 1))
         (define (use n acc) (if (= n 0) acc (use (- n 1) (+ acc (f n)))))
         (println (use 10 0))
         (define (f x) (* x 2))
         (println (use 10 0))
         (define f (let ((k 100)) (lambda (x) (+ x k))))
         (println (use 10 0))
         (define f 5)
         (println (use 10 0))";
    let out = same_outcome_in_both_tiers(src, Limits::default(), "redefined");
    assert!(out.starts_with("65\n110\n1055\nerror: "), "{out}");
    assert_explained(src, "use", "a global procedure's body inlined at 1 call");
}

#[test]
fn an_error_in_an_inlined_body_is_the_general_paths_with_its_backtrace() {
    let src = "(define (first l) (car l))
         (define (firsts ls acc) (if (null? ls) acc (firsts (cdr ls) (+ acc (first (car ls))))))
         (println (firsts '((1) (2) (3)) 0))
         (firsts '((1) 2) 0)";
    assert_explained(src, "firsts", "a global procedure's body inlined at 1 call");
    let [(out, d), (general_out, g)] = [true, false].map(|pure_tier| {
        run_err(
            src,
            Limits {
                pure_tier,
                ..Limits::default()
            },
        )
    });
    assert_eq!(out, "6\n");
    assert_eq!(general_out, out);
    assert!(
        d.message.starts_with("car: expected a pair"),
        "{}",
        d.message
    );
    assert_eq!((&d.message, &d.trace), (&g.message, &g.trace));
    let names: Vec<&str> = d.trace.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["first", "firsts"], "{d:?}");
}

#[test]
fn a_recursion_that_is_not_a_loop_is_entered_through_its_own_code() {
    // `tak` inlines its own calls from its first level; `repeat` calls it
    // rather than inline it (which would only shift those levels), while a
    // loop (`count`) is inlined.
    let src = "(define (tak x y z) (if (not (< y x)) z (tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y))))
         (define (count i acc) (if (= i 0) acc (count (- i 1) (+ acc 1))))
         (define (repeat k acc) (if (= k 0) acc (repeat (- k 1) (+ acc (tak 12 8 4) (count 3 0)))))
         (println (repeat 3 0))";
    both_tiers(src, "24\n");
    // (One call inlined: `count`'s.)
    let line = explained_line(src, "repeat");
    assert!(
        line.contains("a global procedure's body inlined at 1 call;")
            || line.ends_with("inlined at 1 call)"),
        "{line}"
    );
    assert_explained(src, "tak", "its body inlined at");
}

#[test]
fn captures_are_loaded_at_a_calls_entry_and_kept_while_the_closure_loops() {
    // A closure's captures (and the closure) are loaded into registers once
    // per call; its tail calls of itself keep them, a tail call of another
    // closure of the same code loads that one's, and a captured box is
    // read afresh after each `set!`.
    let src = "(define (mk k) (lambda (n me other acc) (if (= n 0) acc (other (- n 1) other me (+ acc k)))))
         (define a (mk 1))
         (define b (mk 100))
         (define (scale xs k) (let loop ((l xs) (acc '())) (if (null? l) acc (loop (cdr l) (cons (* k (car l)) acc)))))
         (define (total n)
           (let ((sum 0))
             (let loop ((i 0)) (if (= i n) sum (begin (set! sum (+ sum i)) (loop (+ i 1)))))))
         (println (a 5 a b 0) (b 4 b a 0) (scale '(1 2 3) 10) (total 100))";
    let [(pure, _), (general, _)] = both_tiers(src, "203 202 (30 20 10) 4950\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert_same_calls(&pure, &general);
}

/// A named `let` in tail position runs in its procedure's frame: no
/// closure, its arguments in registers after the procedure's, its
/// captures copied beside them, its tail calls of itself a jump back.
/// Values, calls and tail calls counted, and every step budget's outcome
/// are the general path's.
#[test]
fn a_named_let_in_tail_position_runs_in_its_procedures_frame() {
    let src = format!("{QUEENS} (println (queens 6 '()) (queens 7 '()))");
    let src = src.as_str();
    let [(pure, _), (general, _)] = both_tiers(src, "4 40\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert_same_calls(&pure, &general);
    assert_explained(
        src,
        "queens",
        "1 named-let loop run in its frame, with no closure",
    );
    // `ok?` is inlined in the loop, in `queens`' frame.
    assert_explained(src, "queens", "a global procedure's body inlined at 1 call");
    let small = format!("{QUEENS} (println (queens 4 '()))");
    budget_sweep(&small, 10..400, "2\n");
}

/// A loop's iteration ends as its procedure's tail call of itself: what an
/// iteration built in the scratch region (here `mk`'s list, which dies in
/// `sum`) goes when the next begins, so the loop keeps one round's memory.
#[test]
fn a_named_loops_scratch_region_is_exited_every_round() {
    let src = "(define (mk n) (if (= n 0) '() (cons n (mk (- n 1)))))
         (define (sum l) (if (null? l) 0 (+ (car l) (sum (cdr l)))))
         (define (total rounds)
           (let loop ((i 0) (acc 0))
             (if (= i rounds) acc (loop (+ i 1) (+ acc (sum (mk 40)))))))
         (println (total 20000))";
    assert_explained(src, "total", "1 named-let loop run in its frame");
    let (out, r, heap) = run_heap(src, Limits::default());
    let s = match r {
        Ok(s) => s,
        Err(d) => panic!("{d:?}"),
    };
    assert_eq!(out, "16400000\n");
    assert_eq!(s.pure_fallbacks, 0);
    assert!(
        s.scratch_regions >= 20_000,
        "{} scratch regions",
        s.scratch_regions
    );
    assert!(
        heap.peak_live_bytes < 64 * 1024,
        "peak {} bytes",
        heap.peak_live_bytes
    );
}

/// Where the loop's closure is needed, or what it would exit could hold
/// something of the procedure's, the named `let` makes its closure and is
/// called as before: the loop named as a value, called other than in a
/// tail call of itself, after code that may have made the scratch region,
/// with stores in its body, or not in tail position.
#[test]
fn a_named_let_that_needs_its_closure_is_called_as_before() {
    for (name, def, call, want) in [
        (
            "as-value",
            "(define (as-value n) (let loop ((i 0)) (if (= i n) (procedure? loop) (loop (+ i 1)))))",
            "(as-value 3)",
            "true",
        ),
        (
            "non-tail",
            "(define (non-tail n) (let loop ((i 0)) (if (= i n) 0 (+ 2 (loop (+ i 1))))))",
            "(non-tail 5)",
            "10",
        ),
        (
            "after-scratch",
            "(define (after-scratch n) (let ((k (length (list n n)))) (let loop ((i 0) (acc 0)) (if (= i n) acc (loop (+ i 1) (+ acc k))))))",
            "(after-scratch 4)",
            "8",
        ),
        (
            "stores",
            "(define v (make-array 3 0)) (define (stores n) (let loop ((i 0)) (if (= i 3) (array-ref v 2) (begin (array-set! v i n) (loop (+ i 1))))))",
            "(stores 7)",
            "7",
        ),
        (
            "not-tail",
            "(define (not-tail n) (+ 1 (let loop ((i 0)) (if (= i n) i (loop (+ i 1))))))",
            "(not-tail 4)",
            "5",
        ),
    ] {
        let src = format!("{def} (println {call})");
        let line = explained_line(&src, name);
        assert!(!line.contains("named-let loop"), "{name}: {line}");
        both_tiers(&src, &format!("{want}\n"));
    }
}

/// A named loop whose callee stores commits what was stored every
/// `COMMIT_AT` stores at its tail call of itself, with a closure of the
/// loop made then as the restart's callee: when the run later falls back,
/// the general path goes on from that tail call. Each store made once, the
/// same calls counted, and an error's backtrace the general path's.
#[test]
fn a_named_loop_that_committed_goes_on_from_its_last_commit() {
    // (`step!` is defined after `count!`, so it is called, not inlined:
    // the loop's body itself stores nothing.)
    let src = "
        (define a (make-array 1 0))
        (define d (dict))
        (define (shout) (println \"at\" (array-ref a 0)))
        (define (count! n k)
          (let loop ((n n))
            (if (= n 0) 'done
                (begin (step! n k) (loop (- n 1))))))
        (define (step! n k)
          (array-set! a 0 (+ k (array-ref a 0)))
          (dict-set! d (remainder n 7) (array-ref a 0))
          (when (= n 3) (shout)))
        (count! 200 1)
        (println (array-ref a 0) (dict-keys d) (dict-ref d 1))";
    let want = "at 198\n200 (4 3 2 1 0 6 5) 200\n";
    assert_general_output(src, want);
    assert_explained(src, "count!", "1 named-let loop run in its frame");
    let [(pure, _), (general, _)] = both_tiers(src, want);
    // Two fallbacks: the run's (`step!` calls `shout`, which is not pure),
    // and that of the loop's run the restart makes, whose callee `step!`
    // is no longer tried in the tier.
    assert_eq!(pure.pure_fallbacks, 2);
    assert_same_calls(&pure, &general);
    let quiet = src.replace("(when (= n 3) (shout))", "");
    budget_sweep(&quiet, 20..460, "200 (4 3 2 1 0 6 5) 200\n");
    // An error after a restart, at activations before and after the last
    // commits: the same message and backtrace.
    for k in [1, 2, 5, 17, 40, 63, 64, 65, 100, 150] {
        assert_same_error_at(src, k);
    }
}

/// A procedure's calls of itself with its own destination run in the
/// caller's `exec` loop, a frame further up the register stack
/// (`SelfFrame` in vm/pure.rs), not in a nested `exec`: deep non-tail
/// recursion through a global and through a named `let`'s own name, a
/// builder that passes its destination on, a walk whose results die. The
/// general path's values, calls and tail calls, and its step budget.
#[test]
fn a_procedures_calls_of_itself_run_in_its_callers_loop() {
    let src = "(define (sum-to n) (if (= n 0) 0 (+ n (sum-to (- n 1)))))
         (define (make d) (if (= d 0) '() (cons (make (- d 1)) (make (- d 1)))))
         (define (walk t) (if (pair? t) (+ (walk (car t)) (walk (cdr t))) 1))
         (println (sum-to 5000) (walk (make 10)))";
    let [(pure, _), (general, _)] = both_tiers(src, "12502500 1024\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert!(pure.pure_self_calls > 2000, "{}", pure.pure_self_calls);
    assert_eq!(general.pure_self_calls, 0);
    assert_same_calls(&pure, &general);
    let named = "(define (depth n) (let loop ((i n)) (if (= i 0) 0 (+ 1 (loop (- i 1))))))
         (println (depth 3000))";
    let [(pure, _), (general, _)] = both_tiers(named, "3000\n");
    assert!(pure.pure_self_calls > 900, "{}", pure.pure_self_calls);
    assert_same_calls(&pure, &general);
    let small = "(define (sum-to n) (if (= n 0) 0 (+ n (sum-to (- n 1)))))
         (println (sum-to 40))";
    budget_sweep(small, 5..60, "820\n");
}

/// A call run in its caller's loop that ends in a tail call of another
/// procedure makes it as a nested call and returns its value to the
/// caller's frame (whichever level of `f`'s inlined bodies the base case
/// falls on).
#[test]
fn a_tail_call_of_another_procedure_from_a_call_run_in_its_callers_loop_returns_there() {
    let src = "(define (g k acc) (if (= k 0) acc (g (- k 1) (+ acc 1))))
         (define (f n) (if (= n 0) (g 10 0) (+ 1 (f (- n 1)))))
         (println (f 30) (f 31) (f 32))";
    let want = "40 41 42\n";
    let [(pure, _), (general, _)] = both_tiers(src, want);
    assert_eq!(pure.pure_fallbacks, 0);
    assert!(pure.pure_self_calls > 0);
    assert_same_calls(&pure, &general);
    budget_sweep(src, 5..150, want);
}

/// An error many calls deep in frames run in the caller's loop is the
/// general path's, with its backtrace.
#[test]
fn an_error_deep_in_calls_run_in_the_callers_loop_is_the_general_paths() {
    let src = "(define (d n) (if (= n 0) (car n) (+ 1 (d (- n 1))))) (println (d 30))";
    let diags: Vec<String> = [true, false]
        .map(|pure_tier| {
            let (out, d) = run_err(
                src,
                Limits {
                    pure_tier,
                    ..Limits::default()
                },
            );
            format!("{out}{d:?}")
        })
        .into();
    assert_eq!(diags[0], diags[1]);
    assert!(diags[0].contains("car"), "{}", diags[0]);
}

/// A procedure that made its scratch region calls itself in a nested
/// `exec` (the scratch region is the caller's, exited when the caller
/// returns): none of its calls runs in the caller's loop.
#[test]
fn a_call_made_after_the_caller_made_its_scratch_region_is_nested() {
    let src = "(define (h n) (if (= n 0) 0 (let ((tmp (list n n))) (+ (car tmp) (h (- n 1))))))
         (println (h 100))";
    let [(pure, _), (general, _)] = both_tiers(src, "5050\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert!(pure.scratch_regions > 0);
    assert_eq!(pure.pure_self_calls, 0);
    assert_same_calls(&pure, &general);
}

/// A call of itself whose result dies where the caller builds is made in
/// a nested `exec`, whose destination is the caller's scratch region, as
/// on the general path (run in the caller's loop, it would build in the
/// caller's destination).
#[test]
fn a_call_whose_result_dies_where_the_caller_builds_is_nested() {
    let src = "(define (f n) (if (= n 0) '() (let ((k (length (f (- n 1))))) (list n k))))
         (println (f 5))";
    let [(pure, _), (general, _)] = both_tiers(src, "(5 2)\n");
    assert_eq!(pure.pure_fallbacks, 0);
    assert_eq!(pure.pure_self_calls, 0);
    assert_same_calls(&pure, &general);
}

/// Calls of itself run in the caller's loop keep the depth limit: a
/// runaway recursion in a procedure too long to be inlined (so that no
/// inlined body's entry checks the depth first) stops with the general
/// path's stack overflow.
#[test]
fn calls_run_in_the_callers_loop_keep_the_depth_limit() {
    let terms: String = (2..43).map(|k| format!(" (* n {k})")).collect();
    let src = format!("(define (down n) (+ 1{terms} (down n))) (down 1)");
    assert!(!explained_line(&src, "down").contains("inlined"));
    let limits = Limits {
        max_depth: 1000,
        ..Limits::default()
    };
    let out = same_outcome_in_both_tiers(&src, limits, "runaway recursion");
    assert!(out.contains("stack overflow: more than 1000"), "{out}");
}

/// A random value expression for `random_pair_changes_agree_in_both_tiers`:
/// a fixnum, fresh pairs and lists, or (`shared`) the car of a global,
/// which only ever holds such values (never a cell of a global's spine, so
/// no change makes a cycle).
fn pair_value(rng: &mut common::Rng, depth: u32, shared: bool) -> String {
    let leaf = depth == 0;
    match rng.below(if leaf { 3 } else { 7 }) {
        0 => format!("{}", rng.below(50)),
        1 => "a".into(),
        2 => "(+ a b)".into(),
        3 => format!(
            "(cons {} {})",
            pair_value(rng, depth - 1, shared),
            pair_value(rng, depth - 1, shared)
        ),
        4 => format!("(list a {})", pair_value(rng, depth - 1, shared)),
        5 if shared => format!("(car g{})", rng.below(3)),
        5 => "b".into(),
        // A pair changed while only this expression holds it: it is built
        // in the procedure's scratch region when its value dies here.
        _ => format!(
            "(let ((p (cons a b))) (set-car! p {}) (set-cdr! p (car p)) (length (list (cdr p) a)))",
            pair_value(rng, depth - 1, false)
        ),
    }
}

/// One random statement of a procedure on `a` and `b` that changes the
/// globals' pairs, calls a procedure the tier cannot run (a fallback), or
/// meets an error (a `set-car!` of a cdr that is not a pair).
fn pair_statement(rng: &mut common::Rng) -> String {
    let g = rng.below(3);
    match rng.below(9) {
        0 | 1 => format!("(set-car! g{g} {})", pair_value(rng, 2, true)),
        2 | 3 => format!(
            "(let ((c (cdr g{g}))) (if (pair? c) (set-cdr! c {v}) (set-cdr! g{g} {v})))",
            v = pair_value(rng, 2, false)
        ),
        4 => format!(
            "(let ((c (cdr g{g}))) (when (pair? c) (set-car! c {})))",
            pair_value(rng, 1, false)
        ),
        5 => format!("(when (= a {}) (shout a))", rng.below(40)),
        6 if rng.below(4) == 0 => format!("(set-car! (cdr g{g}) a)"),
        _ => format!("(set-cdr! g{g} (list a {}))", pair_value(rng, 1, false)),
    }
}

/// Seeded random programs whose procedures change global pairs (and pairs
/// of their own) in loops of tail calls, fall back at random calls and
/// stop at random errors: the pure tier prints exactly what the general
/// path prints, calls as often, and frees every region.
#[test]
fn random_pair_changes_agree_in_both_tiers() {
    for seed in 1..=48u64 {
        let mut rng = common::Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut src = String::from(
            "(define g0 (list 0 1 2)) (define g1 (list 3 4)) (define g2 (cons 5 6))\n\
             (define (shout k) (println \"shout\" k g0 g1 g2))\n",
        );
        for p in 0..3 {
            let body: Vec<String> = (0..1 + rng.below(4))
                .map(|_| pair_statement(&mut rng))
                .collect();
            src.push_str(&format!("(define (p{p} a b) {} a)\n", body.join(" ")));
        }
        src.push_str(
            "(define (run! i n) (when (< i n) (p0 i (+ i 1)) (p1 (+ i 2) i) (p2 i i) (run! (+ i 1) n)))\n\
             (println (guard-error (lambda () (run! 0 100) 'done) (lambda (e) e)))\n\
             (println g0 g1 g2)\n",
        );
        let outcomes: Vec<(String, VmStats)> = [true, false]
            .into_iter()
            .map(|pure_tier| {
                let limits = Limits {
                    pure_tier,
                    ..Limits::default()
                };
                match run(&src, limits) {
                    (out, Ok(stats)) => (out, stats),
                    (_, Err(d)) => panic!("seed {seed}: {d:?}\n{src}"),
                }
            })
            .collect();
        assert_eq!(outcomes[0].0, outcomes[1].0, "seed {seed}\n{src}");
        assert_same_calls(&outcomes[0].1, &outcomes[1].1);
        assert!(
            outcomes[0].1.pure_runs > 0,
            "seed {seed}: no pure run\n{src}"
        );
    }
}
