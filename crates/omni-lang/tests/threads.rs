//! Language-level thread stress: programs whose threads exchange many
//! lists, trees and closures through channels. Run by `cargo test` and,
//! in `.ci/run`, under ThreadSanitizer and AddressSanitizer. Every program
//! must print what it should and end with zero live bytes on every thread
//! and no message in flight.

mod common;
use common::SharedBuf;

use omni_lang::{run_source, run_source_with, Limits, VM_STACK_BYTES};

fn run(src: &'static str) -> String {
    std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(move || {
            let buf = SharedBuf::default();
            let stats = match run_source(src, Box::new(buf.clone()), vec![]) {
                Ok(s) => s,
                Err(d) => panic!("program failed: {}", d[0].message),
            };
            let heap = omni_mem::heap_stats();
            assert_eq!(
                (heap.live_regions, heap.live_bytes),
                (0, 0),
                "main thread leaked"
            );
            assert_eq!(
                (
                    stats.thread_live_regions_at_exit,
                    stats.thread_live_bytes_at_exit
                ),
                (0, 0),
                "a spawned thread leaked"
            );
            buf.text()
        })
        .unwrap()
        .join()
        .unwrap()
}

/// What a program prints with a step budget of `fuel`, or its error.
fn run_with_fuel(src: &str, fuel: u64) -> Result<String, String> {
    let src = src.to_string();
    std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(move || {
            let buf = SharedBuf::default();
            let limits = Limits {
                fuel: Some(fuel),
                ..Limits::default()
            };
            let r = run_source_with(&src, Box::new(buf.clone()), vec![], limits);
            let heap = omni_mem::heap_stats();
            assert_eq!((heap.live_regions, heap.live_bytes), (0, 0), "leaked");
            r.map(|_| buf.text()).map_err(|d| d[0].message.clone())
        })
        .unwrap()
        .join()
        .unwrap()
}

/// The step budget bounds the calls of all the program's threads together
/// (a spawned thread used to start with its spawner's whole remaining
/// budget, so spawning in a loop multiplied it: a fuzzer's program with a
/// budget of 20,000 calls made 19.7 million on 636,608 threads). A thread
/// takes half of what its spawner has left and `join` gives back the rest.
#[test]
fn a_step_budget_bounds_every_thread_together() {
    let src = "
(define (work n) (if (= n 0) 0 (work (- n 1))))
(define (go i) (if (= i 0) 'done (begin (join (spawn (lambda () (work 1000)))) (go (- i 1)))))
(display (go 100))";
    // About 100,300 calls in all, none of the threads more than 1,002:
    // enough budget for all of them (a spawn and join costs the spawner
    // only what the thread used) ...
    assert_eq!(run_with_fuel(src, 200_000), Ok("done".to_string()));
    // ... and too little for all of them together, though enough for
    // each alone.
    let err = run_with_fuel(src, 50_000).expect_err("the budget runs out");
    assert!(err.contains("step budget exhausted"), "{err}");
}

/// A spawned thread compiles the top-level form its closure came from
/// (lazy_code.rs), and the step budget pays for it: one step per datum
/// of the form. A fuzzer's program spawned in nested loops of a long form
/// and ran for seconds on 20,000 steps, when compiling cost none.
#[test]
fn a_step_budget_pays_for_the_forms_spawned_threads_compile() {
    let data: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let src = format!(
        "(define (go i) (if (= i 0) (length '({})) (begin (join (spawn (lambda () i))) (go (- i 1)))))
(display (go 100))",
        data.join(" ")
    );
    // 100 threads each compile `go`'s form of about 520 data: some
    // 52,000 steps, where the calls take some 300 ...
    assert_eq!(run_with_fuel(&src, 100_000), Ok("500".to_string()));
    // ... so a budget the calls alone fit in runs out.
    let err = run_with_fuel(&src, 20_000).expect_err("the budget runs out");
    assert!(err.contains("step budget exhausted"), "{err}");
}

/// 3 producers x N messages (lists, trees, closures) to 2 consumers that
/// keep some in a long-lived dict; totals are checked.
#[test]
fn producers_to_consumers_with_retention() {
    let out = run(r#"
(define n 2000)
(define q (chan 32))
(define results (chan))
(define (tree d) (if (= d 0) 1 (cons (tree (- d 1)) (tree (- d 1)))))
(define (leaves t) (if (pair? t) (+ (leaves (car t)) (leaves (cdr t))) t))
(define (producer id)
  (let loop ((i 0))
    (when (< i n)
      (let ((k (remainder i 3)))
        (cond ((= k 0) (send q (list 'list id i)))
              ((= k 1) (send q (list 'tree (tree 3))))
              (else (let ((xs (list i i)))
                      (send q (list 'closure (lambda () (apply + xs))))))))
      (loop (+ i 1)))))
(define (consumer)
  (let ((kept (dict)))
    (let loop ((m (recv q)) (sum 0) (count 0))
      (let ((tag (car m)))
        (cond ((eq? tag 'stop) (send results (list sum count (dict-count kept))))
              ((eq? tag 'list)
               (dict-set! kept (remainder count 10) m)
               (loop (recv q) (+ sum (caddr m)) (+ count 1)))
              ((eq? tag 'tree) (loop (recv q) (+ sum (leaves (cadr m))) (+ count 1)))
              (else (loop (recv q) (+ sum ((cadr m))) (+ count 1))))))))
(define ps (map (lambda (id) (spawn (lambda () (producer id)))) (list 1 2 3)))
(define cs (map (lambda (_) (spawn consumer)) (list 1 2)))
(for-each join ps)
; every message is queued or taken: one stop per consumer
(send q (list 'stop))
(send q (list 'stop))
(define r1 (recv results))
(define r2 (recv results))
(for-each join cs)
(println (+ (car r1) (car r2)) (+ (cadr r1) (cadr r2)))
"#);
    // list messages carry i (sum over i = 0 mod 3), trees 8 leaves,
    // closures 2i (i = 2 mod 3); 3 producers.
    let n = 2000i64;
    let mut want = 0;
    for i in 0..n {
        want += match i % 3 {
            0 => i,
            1 => 8,
            _ => 2 * i,
        };
    }
    assert_eq!(out, format!("{} {}\n", 3 * want, 3 * n));
}

/// A ring of threads passing a token (rendezvous channels): ping-pong
/// latency path, many blocking hand-offs.
#[test]
fn token_ring() {
    let out = run(r#"
(define k 4)
(define rounds 300)
(define chans (map (lambda (_) (chan)) (list 1 2 3 4)))
(define (nth xs i) (if (= i 0) (car xs) (nth (cdr xs) (- i 1))))
(define (node i)
  (let ((in (nth chans i)) (out (nth chans (remainder (+ i 1) k))))
    (let loop ((t (recv in)))
      (if (nothing? t)
          (close out)
          (begin (send out (cons (+ (car t) 1) (cdr t))) (loop (recv in)))))))
(define ts (map (lambda (i) (spawn (lambda () (node i)))) (list 1 2 3)))
(define first (nth chans 0))
(define last (nth chans 1))
(let loop ((r 0) (tok (list 0 'payload)))
  (if (< r rounds)
      (begin (send last tok) (loop (+ r 1) (recv first)))
      (begin (close last) (println (car tok) (cadr tok)))))
(for-each join ts)
"#);
    assert_eq!(out, "900 payload\n");
}

/// `(exit)` stops only the program that called it: a program of the same
/// process that is running then (its VM started before the exit) goes on,
/// calls included.
#[test]
fn an_exit_stops_only_its_own_program() {
    std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(|| {
            let buf = SharedBuf::default();
            let mut vm = omni_lang::vm::Vm::new(Box::new(buf.clone()));
            let first =
                omni_lang::compile_program(&mut vm, "(define (f x) (+ x 1))").expect("compiles");
            omni_lang::run_compiled(&mut vm, &first, &mut |_, _| {}).expect("runs");
            // Another program exits while this one is between forms.
            let other = std::thread::Builder::new()
                .stack_size(VM_STACK_BYTES)
                .spawn(|| {
                    let r = omni_lang::run_source_report(
                        "(exit 3)",
                        Box::new(std::io::sink()),
                        vec![],
                        omni_lang::Limits::default(),
                    );
                    r.exit
                });
            let other = other.expect("spawn");
            assert_eq!(other.join().expect("joined"), Some(3));
            let rest = omni_lang::compile_program(&mut vm, "(println (f 41))").expect("compiles");
            let r = omni_lang::run_compiled(&mut vm, &rest, &mut |_, _| {});
            assert!(
                r.is_ok(),
                "stopped by another program's exit: {:?}",
                r.err()
            );
            assert_eq!(vm.rt.exit_status(), None);
            vm.shutdown();
            assert_eq!(buf.text(), "42\n");
        })
        .unwrap()
        .join()
        .unwrap();
}
