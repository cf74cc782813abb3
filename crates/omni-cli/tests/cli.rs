//! The `omni` binary as people use it: every subcommand, exit statuses,
//! diagnostics on stderr, the REPL through stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn omni(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omni"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run omni");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn run_prints_program_output() {
    let o = omni(&["run", "examples/hello.omni"], None);
    assert!(o.status.success());
    assert!(text(&o.stdout).starts_with("squares: (1 4 9 16 25)\n"));
}

#[test]
fn program_arguments_reach_the_program() {
    let dir = std::env::temp_dir().join(format!("omni-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("args.omni");
    std::fs::write(&f, "(println (command-line))").unwrap();
    let o = omni(&["run", f.to_str().unwrap(), "one", "two"], None);
    assert_eq!(text(&o.stdout), "(one two)\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_expression_and_stats() {
    let o = omni(&["-e", "(println (+ 1 2))", "--stats"], None);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), "3\n");
    let err = text(&o.stderr);
    assert!(err.contains("live regions at exit   0"), "{err}");
    assert!(err.contains("live bytes at exit     0"), "{err}");
}

#[test]
fn stats_report_slot_regions() {
    let o = omni(
        &["run", "tests/programs/100_slot_regions.omni", "--stats"],
        None,
    );
    assert!(o.status.success());
    let err = text(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("slot regions "))
        .unwrap_or_else(|| panic!("no slot-region line in {err}"));
    // "slot regions N created, N compactions (N bytes given back), N pinned by reads"
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 4, "{line}");
    assert!(n[0] > 0 && n[1] > 0 && n[2] > 0 && n[3] > 0, "{line}");
}

#[test]
fn runtime_error_exits_1_with_position_and_backtrace() {
    let o = omni(&["-e", "(define (f x) (car x)) (f 5)"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("<expr>:1:15: error: car: expected a pair, got 5"),
        "{err}"
    );
    assert!(err.contains("in f called at <expr>:1:24"), "{err}");
}

#[test]
fn explain_and_check() {
    let o = omni(&["explain", "tests/explain/accumulator_loop.omni"], None);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("alloc cons @3:43 -> dst"));
    let ok = omni(&["check", "examples/hello.omni"], None);
    assert!(ok.status.success());
    let bad = omni(&["check", "tests/programs/072_err_compile.omni"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("compile error: if: expected (if test then [else])"));
}

#[test]
fn missing_file_and_bad_usage() {
    let o = omni(&["run", "no/such/file.omni"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cannot read no/such/file.omni"));
    let u = omni(&["frobnicate"], None);
    assert_eq!(u.status.code(), Some(2));
    assert!(text(&u.stderr).contains("unrecognized subcommand 'frobnicate'"));
    let h = omni(&["--help"], None);
    assert!(h.status.success());
    assert!(text(&h.stdout).contains("omni repl"));
}

#[test]
fn invalid_utf8_is_a_positioned_error() {
    let dir = std::env::temp_dir().join(format!("omni-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.omni");
    std::fs::write(&f, b"(println 1)\n(println \"\xff\")").unwrap();
    let o = omni(&["run", f.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(":2:11: read error: invalid UTF-8"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_reports_every_compile_error_in_source_order() {
    // The duplicate binding is found while desugaring, before the
    // compiler sees the arity errors above it: still reported third.
    let o = omni(
        &[
            "-e",
            "(define (f x) (car x 1))\n(define y (cons 1))\n(let ((a 1) (a 2)) a)",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let errs: Vec<String> = text(&o.stderr)
        .lines()
        .filter(|l| l.contains("compile error"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        errs,
        [
            "<expr>:1:15: compile error: car: expected 1 argument(s), got 2",
            "<expr>:2:11: compile error: cons: expected 2 argument(s), got 1",
            "<expr>:3:14: compile error: duplicate binding 'a'",
        ]
    );
}

#[test]
fn a_byte_order_mark_is_skipped_and_columns_count_after_it() {
    let dir = std::env::temp_dir().join(format!("omni-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bom.omni");
    std::fs::write(&f, "\u{feff}(println \"bom ok\")\r\n(car 5)\r\n").unwrap();
    let o = omni(&["run", f.to_str().unwrap()], None);
    assert_eq!(text(&o.stdout), "bom ok\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("bom.omni:2:1: error: car: expected a pair"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn repl_through_stdin() {
    let input = "(define (f x)\n  (* x 2))\n(f 21)\n(car 1)\n(f 5)\n:stats\n:quit\n(f 1)\n";
    let o = omni(&["repl"], Some(input));
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert!(out.starts_with("42\n"), "{out}");
    assert!(
        out.contains("10\n"),
        "the session survived the error: {out}"
    );
    assert!(out.contains("live regions"), "{out}");
    assert!(!out.contains("\n2\n"), ":quit stops reading: {out}");
    assert!(text(&o.stderr).contains("car: expected a pair, got 1"));
}

#[test]
fn trace_regions_and_plot_files() {
    let dir = std::env::temp_dir().join(format!("omni-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("t.json"), dir.join("t.svg"));
    let o = omni(
        &[
            "run",
            "tests/programs/044_tree.omni",
            "--trace-regions",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--stats",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let created: u64 = text(&o.stderr)
        .lines()
        .find_map(|l| {
            l.strip_prefix("regions created")
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let count = |ph: &str| events.iter().filter(|e| e["ph"] == ph).count() as u64;
    // Every region created has a begin, and an end (freed or merged).
    assert_eq!(count("b"), created);
    assert_eq!(count("e"), created);
    assert!(count("C") > 0);
    for e in events {
        assert!(e["ts"].as_f64().is_some(), "every event has a timestamp");
    }
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::Document::parse(&svg_text).expect("well-formed SVG");
    assert_eq!(xml.root_element().tag_name().name(), "svg");
    assert!(xml.descendants().any(|n| n.tag_name().name() == "polyline"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Replaces the car of a global pair with fresh data 30,000 times: pairs
/// and boxes have no slot regions, so every old value stays in the global
/// region.
const PAIR_CHURN: &str = "(define cell (cons 0 0))\n\
(define (fill r) (let loop ((i 0)) (when (< i 100) (set-car! cell (list r i (make-array 50 r))) (loop (+ i 1)))))\n\
(let loop ((r 0)) (when (< r 300) (fill r) (loop (+ r 1))))";

#[test]
fn region_quota_reports_the_retention_site() {
    let o = omni(&["-e", PAIR_CHURN, "--region-quota", "1000000"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("error: region exceeded quota; likely escape/retention"),
        "{err}"
    );
    assert!(err.contains("<expr>:2:77"), "{err}");
    // The mutation benchmark overwrites array and dict slots instead: their
    // slot regions give the old values back, so it fits in the same quota.
    let o = omni(
        &[
            "run",
            "benches/programs/mutation.omni",
            "--region-quota",
            "1000000",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "(999 999 998001) (999 . 990)\n");
}

#[test]
fn max_heap_stops_a_runaway_program() {
    let o = omni(
        &[
            "-e",
            "(define (grow l) (grow (cons 1 l))) (grow '())",
            "--max-heap",
            "4000000",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("heap limit exceeded"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn stats_report_handoffs_and_threads() {
    let o = omni(
        &["run", "tests/programs/089_thread_fan_in.omni", "--stats"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    // 4 producers x 50 fresh lists go by region transfer; the 4 'done
    // markers too. Nothing is copied.
    assert!(
        err.contains(
            "sends                  204 region transfer (A), 0 copy (B), 0 immediate; 204 receives"
        ),
        "{err}"
    );
    assert!(err.contains("threads spawned        4"), "{err}");
    assert!(
        err.contains("live at their exit   0 regions, 0 bytes"),
        "{err}"
    );
    assert!(err.contains("live bytes at exit     0"), "{err}");
}

/// The regions created by the spawned threads, from `--stats`.
fn their_regions(err: &str) -> u64 {
    err.lines()
        .find_map(|l| l.trim().strip_prefix("their regions"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'their regions' line in: {err}"))
}

#[test]
fn stats_count_each_spawned_thread_once_when_threads_are_reused() {
    // Threads spawned one after another run on the same OS thread
    // (worker_pool.rs), whose heap counters run on across them: each must
    // report only its own.
    let program = |n: u32| {
        format!(
            "(define (go n) (when (> n 0) (join (spawn (lambda () (length (list n n n))))) (go (- n 1))))\n(go {n})\n"
        )
    };
    let regions = |n: u32| {
        let dir = std::env::temp_dir().join(format!("omni-reuse-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("p.omni");
        std::fs::write(&file, program(n)).expect("write program");
        let o = omni(
            &["run", file.to_str().expect("utf-8 path"), "--stats"],
            None,
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("threads spawned        {n}")),
            "{err}"
        );
        assert!(
            err.contains("live at their exit   0 regions, 0 bytes"),
            "{err}"
        );
        their_regions(&err)
    };
    let one = regions(1);
    assert!(one > 0);
    assert_eq!(regions(40), 40 * one);
}

#[test]
fn repl_threads_outlive_an_input_and_deadlock_is_reported() {
    let input = "(define c (chan))\n(recv c)\n(define t (spawn (lambda () (send c 7) 'ok)))\n(recv c)\n(join t)\n";
    let o = omni(&["repl"], Some(input));
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    assert!(err.contains("deadlock: every thread is blocked"), "{err}");
    assert!(out.contains("7\nok\n"), "{out}");
}

#[test]
fn max_heap_applies_to_spawned_threads() {
    let o = omni(
        &[
            "-e",
            "(define (grow n acc) (if (= n 0) acc (grow (- n 1) (cons n acc)))) (println (join (spawn (lambda () (length (grow 10000000 '()))))))",
            "--max-heap",
            "8000000",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("thread 0 failed: heap limit exceeded"),
        "{err}"
    );
}

#[test]
fn every_subcommand_has_help_and_bad_flags_are_usage_errors() {
    for (sub, needle) in [
        ("run", "Usage: omni run [OPTIONS] <FILE> [ARGS]..."),
        ("explain", "Usage: omni explain <FILE>"),
        ("check", "Usage: omni check <FILE>"),
        ("repl", "Usage: omni repl"),
    ] {
        let o = omni(&[sub, "--help"], None);
        assert!(o.status.success(), "{sub}");
        assert!(
            text(&o.stdout).contains(needle),
            "{sub}: {}",
            text(&o.stdout)
        );
    }
    let run_help = text(&omni(&["run", "--help"], None).stdout);
    for flag in [
        "--stats",
        "--trace-regions",
        "--plot",
        "--region-quota",
        "--max-heap",
    ] {
        assert!(run_help.contains(flag), "{flag}");
    }
    let v = omni(&["--version"], None);
    assert!(v.status.success());
    assert!(text(&v.stdout).starts_with("omni "));
    let bad = omni(&["run", "x.omni", "--region-quota", "lots"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("invalid value 'lots'"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn retention_smell_is_reported_with_its_site() {
    let o = omni(&["-e", PAIR_CHURN], None);
    assert!(o.status.success(), "a warning does not fail the run");
    let err = text(&o.stderr);
    assert!(
        err.contains("<expr>:2:77: warning: retention smell: the global region holds"),
        "{err}"
    );
    assert!(err.contains("this site put"), "{err}");
    assert!(
        err.contains("note: 2.1 MiB put there at <expr>:2:67"),
        "{err}"
    );
    // Replaced array values that reads pinned are counted too.
    let pinned = "(define a (make-array 100 '()))\n\
(let loop ((i 0)) (when (< i 100000) (let ((old (array-ref a (remainder i 100)))) (array-set! a (remainder i 100) (list i i (if (null? old) 0 (car old))))) (loop (+ i 1))))";
    let o = omni(&["-e", pinned], None);
    assert!(o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("in slot regions of arrays, dicts and boxes, kept because values were read out of them before being replaced"),
        "{err}"
    );
    // Over 1 MiB of global data, all of it reachable: no warning.
    let quiet = omni(
        &[
            "-e",
            "(define big (make-array 200000 0)) (println (array-length big))",
        ],
        None,
    );
    assert!(quiet.status.success());
    assert!(
        !text(&quiet.stderr).contains("retention smell"),
        "{}",
        text(&quiet.stderr)
    );
}

/// A `set-car!` into a global pair of values made elsewhere (each copied
/// into the global region by the barrier) is named as the site, whether
/// the procedure that stores runs in the pure tier or on the general path.
#[test]
fn retention_smell_names_pair_stores_and_builds_in_either_tier() {
    let src = "(define cell (cons 0 0))\n\
(define (put! x) (set-car! cell x))\n\
(define (fill r) (let loop ((i 0)) (when (< i 100) (put! (list r i r i)) (loop (+ i 1)))))\n\
(let loop ((r 0)) (when (< r 200) (fill r) (loop (+ r 1))))";
    for tier in [
        &["-e", src, "--stats"][..],
        &["-e", src, "--stats", "--no-pure-tier"],
    ] {
        let o = omni(tier, None);
        assert!(o.status.success());
        let err = text(&o.stderr);
        assert!(
            err.contains("<expr>:2:18: warning: retention smell"),
            "{tier:?}: {err}"
        );
        assert!(err.contains("this site put 1.8 MiB there"), "{err}");
        let pure_runs = if tier.len() == 3 {
            "1 (0 fell back)"
        } else {
            "0 (0 fell back)"
        };
        assert!(
            err.contains(&format!("pure-tier runs         {pure_runs}")),
            "{err}"
        );
    }
    // A list built straight in the pair's region (CTRR's `region-of`) is
    // named at the list, as the general path names it.
    let built_there = "(define cell (cons 0 0))\n\
(define (fill r) (let loop ((i 0)) (when (< i 100) (set-car! cell (list r i r i)) (loop (+ i 1)))))\n\
(let loop ((r 0)) (when (< r 200) (fill r) (loop (+ r 1))))";
    for tier in [
        &["-e", built_there][..],
        &["-e", built_there, "--no-pure-tier"],
    ] {
        let err = text(&omni(tier, None).stderr);
        assert!(
            err.contains("<expr>:2:67: warning: retention smell"),
            "{tier:?}: {err}"
        );
    }
}

#[test]
fn trace_shows_handoffs() {
    let dir = std::env::temp_dir().join(format!("omni-trace-h-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("h.json");
    // Main sends two fresh messages (its regions leave: "e" events with
    // sent_to_another_thread) and receives them back (adopt events).
    let prog =
        "(define c (chan 2)) (send c (list 1 2)) (send c (list 3)) (println (recv c) (recv c))";
    let o = omni(
        &["-e", prog, "--trace-regions", json.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "(1 2) (3)\n");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let sent = events
        .iter()
        .filter(|e| e["args"]["sent_to_another_thread"] == true)
        .count();
    let adopted: Vec<_> = events.iter().filter(|e| e["name"] == "adopt").collect();
    assert_eq!(sent, 2);
    assert_eq!(adopted.len(), 2);
    assert!(adopted
        .iter()
        .all(|e| e["args"]["bytes"].as_u64().unwrap() > 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trace_covers_spawned_threads() {
    let dir = std::env::temp_dir().join(format!("omni-trace-t-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("t.json");
    let o = omni(
        &[
            "run",
            "examples/threads.omni",
            "--trace-regions",
            json.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "thread 0", "thread 1"]);
    for tid in 1..=3 {
        let count = |ph: &str| {
            events
                .iter()
                .filter(|e| e["tid"] == tid && e["ph"] == ph)
                .count()
        };
        assert!(count("b") > 0, "thread {tid} has region events");
        // Every region a thread created ends on that thread: freed,
        // merged, or handed to another thread.
        assert_eq!(count("b"), count("e"), "thread {tid}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Where the address space is limited (`ulimit -v`), the VM thread's 4 GiB
/// stack is refused: a smaller one is taken, and deep recursion still ends
/// in the `stack overflow` error, with a proportionally lower limit.
#[test]
fn a_limited_address_space_gets_a_smaller_stack_and_a_lower_call_limit() {
    let run = |expr: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 3000000 && exec \"$0\" -e '{expr}'",))
            .arg(env!("CARGO_BIN_EXE_omni"))
            .output()
            .expect("run sh")
    };
    let o = run("(println (+ 1 2))");
    if text(&o.stderr).contains("Sanitizer") {
        // A sanitizer's shadow memory does not fit in 3 GB of address
        // space: nothing to learn here under ASan.
        eprintln!("skipped under a sanitizer");
        return;
    }
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "3\n");
    let o = run("(define (f n) (+ 1 (f n))) (f 1)");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let limit: usize = err
        .split("more than ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stack overflow error in {err}"));
    assert!(limit < omni_lang::MAX_DEPTH, "{err}");
    // A spawned thread gets a smaller stack too.
    let o = run("(println (join (spawn (lambda () (* 6 7)))))");
    assert_eq!(text(&o.stdout), "42\n", "{}", text(&o.stderr));
}

/// Calls whose expressions nest deeply fill the stack before the call
/// limit is reached: the stack guard turns that into the `stack overflow`
/// error. (Before the ninth session the process aborted with Rust's
/// "fatal runtime error: stack overflow": in release builds already with
/// the full 4 GiB stack at 390 levels of nesting and 90,000 calls; here
/// with a 256 MiB stack.)
#[test]
fn calls_that_fill_the_stack_end_in_the_stack_overflow_error() {
    let mut body = String::from("(f (- n 1))");
    for _ in 0..390 {
        body = format!("(+ 1 {body})");
    }
    let program = format!("(define (f n) (if (= n 0) 0 {body})) (f 100000)");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 600000 && exec \"$0\" -e '{program}'"))
        .arg(env!("CARGO_BIN_EXE_omni"))
        .output()
        .expect("run sh");
    let err = text(&o.stderr);
    if err.contains("Sanitizer") {
        eprintln!("skipped under a sanitizer");
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stack overflow: the stack is full after"),
        "{err}"
    );
}

/// `--max-depth N` sets the limit on nested calls, lower or higher than
/// the default.
#[test]
fn max_depth_sets_the_limit_on_nested_calls() {
    let deep = |n: usize, limit: &str| {
        let program = format!(
            "(define (count n) (if (= n 0) 0 (+ 1 (count (- n 1))))) (println (count {n}))"
        );
        omni(&["-e", &program, "--max-depth", limit], None)
    };
    let o = deep(40, "50");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "40\n");
    let o = deep(60, "50");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("stack overflow: more than 50 nested calls"),
        "{}",
        text(&o.stderr)
    );
    // Above the default (100,000 calls in this debug build, whose frames
    // take about 9 KiB each: hence just above).
    let o = deep(100_100, "100200");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "100100\n");
}

#[test]
fn no_pure_tier_runs_every_call_on_the_general_path_with_the_same_output() {
    let program =
        "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (println (fib 15))";
    let with = omni(&["-e", program, "--stats"], None);
    let without = omni(&["-e", program, "--stats", "--no-pure-tier"], None);
    assert!(with.status.success() && without.status.success());
    assert_eq!(text(&with.stdout), "610\n");
    assert_eq!(text(&without.stdout), "610\n");
    assert!(
        text(&with.stderr).contains("pure-tier runs         1 (0 fell back)"),
        "{}",
        text(&with.stderr)
    );
    assert!(
        text(&without.stderr).contains("pure-tier runs         0 (0 fell back)"),
        "{}",
        text(&without.stderr)
    );
    // The same calls either way.
    let calls = |o: &std::process::Output| {
        text(&o.stderr)
            .lines()
            .find(|l| l.starts_with("calls "))
            .map(str::to_string)
    };
    assert_eq!(calls(&with), calls(&without));
}

/// The README's retention example, as the README shows it.
#[test]
fn the_retention_example_names_its_site() {
    let o = omni(
        &[
            "run",
            "examples/retention.omni",
            "--region-quota",
            "1000000",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(
            "examples/retention.omni:10:38: error: region exceeded quota; likely escape/retention"
        ),
        "{err}"
    );
    let o = omni(&["run", "examples/retention.omni"], None);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), "299\n");
    let err = text(&o.stderr);
    assert!(
        err.starts_with("examples/retention.omni:10:38: warning: retention smell"),
        "{err}"
    );
    assert!(
        err.contains("note: 2.1 MiB put there at examples/retention.omni:10:24"),
        "{err}"
    );
}

/// Ctrl-C (or `kill`) stops a running program at its next call: its
/// output so far is written, the error says where it was, and the exit
/// status is 130.
/// Run `program` (which first prints 2,000 lines "started", enough to fill
/// the output buffer, so the first line reaching the pipe proves it runs
/// with the interrupt handler installed), send SIGINT half a second later,
/// and return its exit code, the rest of its stdout, and its stderr.
fn interrupted_run(program: &str) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_omni"))
        .args(["-e", program])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run omni");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "started\n");
    // Usually long enough to get past the printing; the callers' checks
    // hold either way (a slow build, under ASan say, may be stopped
    // inside the loop).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let signal = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(signal.success());
    // A program that does not stop would hang the test: kill it after a
    // minute (the test then fails on the exit status).
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = Command::new("kill").args(["-9", &pid]).status();
    });
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), rest, err)
}

const PRINT_STARTED: &str =
    "(let loop ((i 0)) (when (< i 2000) (println \"started\") (loop (+ i 1)))) ";

#[test]
fn an_interrupt_stops_the_program_and_keeps_its_output() {
    // Prints, then computes "forever".
    let (code, rest, err) = interrupted_run(&format!(
        "{PRINT_STARTED}(display \"partial\") \
         (define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 80)"
    ));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("error: interrupted"), "{err}");
    // Whole lines only, then the unfinished one if the program got that
    // far: and then nothing lost, every line is there.
    let tail = rest.trim_start_matches("started\n");
    let lines = (rest.len() - tail.len()) / "started\n".len();
    match tail {
        "partial" => {
            assert_eq!(lines, 1999, "lines lost");
            assert!(err.contains("in fib called at"), "{err}");
        }
        // Stopped inside the loop (at most at the call after the last
        // line): how many lines it printed is not known here.
        "" => assert!(lines <= 1999, "{lines} lines"),
        other => panic!("unexpected output {other:?}"),
    }
}

/// `guard-error` does not catch an interrupt: a program that retries
/// whatever fails still stops.
#[test]
fn an_interrupt_is_not_caught_by_guard_error() {
    let (code, rest, err) = interrupted_run(&format!(
        "(define (spin n) (spin (+ n 1))) \
         (define (forever) (guard-error (fn [] (spin 0)) (fn [m] (println \"caught\"))) (forever)) \
         {PRINT_STARTED}(forever)"
    ));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("error: interrupted"), "{err}");
    assert!(!rest.contains("caught"), "{rest}");
}

/// The main thread waits in `recv` while another thread computes forever.
/// The interrupt stops that thread; the main thread, now the only one and
/// blocked, reports the interrupt (which caused it), not a deadlock.
#[test]
fn an_interrupt_while_a_thread_waits_is_reported_as_the_interrupt() {
    let (code, _, err) = interrupted_run(&format!(
        "(define c (chan)) (define (spin n) (spin (+ n 1))) \
         (define t (spawn (fn [] (spin 0)))) {PRINT_STARTED}(recv c)"
    ));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("error: interrupted"), "{err}");
    assert!(!err.contains("deadlock"), "{err}");
}

#[test]
fn exit_sets_the_status_in_run_and_repl() {
    let o = omni(
        &[
            "--stats",
            "-e",
            "(println \"out\") (exit 7) (println \"no\")",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "out\n");
    // No diagnostic; the stats' live-bytes check passed.
    assert!(
        text(&o.stderr).contains("live bytes at exit     0"),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stderr).contains("error"), "{}", text(&o.stderr));
    let f = omni(&["-e", "(exit false)"], None);
    assert_eq!(f.status.code(), Some(1));
    let t = omni(&["-e", "(exit)"], None);
    assert_eq!(t.status.code(), Some(0));
    let r = omni(&["repl"], Some("(println 1)\n(exit 5)\n(println 2)\n"));
    assert_eq!(r.status.code(), Some(5), "{}", text(&r.stderr));
    assert_eq!(text(&r.stdout), "1\n");
}

#[test]
fn programs_read_standard_input() {
    let prog = "(let loop ((l (read-line)))
                  (unless (eof-object? l) (println (string-upcase l)) (loop (read-line))))";
    let o = omni(&["-e", prog], Some("one\ntwo\n"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ONE\nTWO\n");
}
