//! Conformance programs: every `tests/programs/*.omni` file carries its
//! expected output in comments:
//!
//! * `;; out: TEXT` — the next expected line of standard output;
//! * `;; err: TEXT` — the next expected line of the rendered diagnostic
//!   (the program must then fail); `{MAX_DEPTH}` in it stands for the
//!   build's limit on nested calls (`omni_lang::MAX_DEPTH`: debug and
//!   release builds differ), `{MAX_DEPTH-1}` for one less;
//! * `;; exit: N` — the status the program asks for with `(exit)` (none:
//!   it must not call `exit`);
//! * `;; in: TEXT` — the next line of the program's input (`read-line`,
//!   ...); without any, the input is empty.
//!
//! Each program runs on its own thread (regions are per thread), and the
//! runner itself checks that the program ended with zero live regions and
//! zero live bytes on that thread, and (for programs that succeed) on every
//! thread the program spawned, and that no message is left in flight.

mod common;
use common::SharedBuf;

use std::path::{Path, PathBuf};

use omni_lang::{input::Source, run_source_io, Limits, MAX_DEPTH, VM_STACK_BYTES};

struct Outcome {
    stdout: String,
    stderr: String,
    exit: Option<u8>,
    live_regions: u64,
    live_bytes: usize,
}

fn run_program(path: &Path, limits: Limits) -> Outcome {
    let src = std::fs::read_to_string(path).expect("read program");
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let handle = std::thread::Builder::new()
        .stack_size(VM_STACK_BYTES)
        .spawn(move || {
            let buf = SharedBuf::default();
            let input = expectations(&src, ";; in:").unwrap_or_default();
            let report = run_source_io(
                &src,
                Source::Given(Box::new(std::io::Cursor::new(input.into_bytes()))),
                Box::new(buf.clone()),
                vec!["arg1".into(), "arg2".into()],
                limits,
            );
            let (stderr, thread_regions, thread_bytes) = match report.result {
                Ok(v) => (
                    String::new(),
                    v.thread_live_regions_at_exit,
                    v.thread_live_bytes_at_exit,
                ),
                Err(ds) => (ds.iter().map(|d| d.render(&name, &src)).collect(), 0, 0),
            };
            let stats = omni_mem::heap_stats();
            let stdout = buf.text();
            Outcome {
                stdout,
                stderr,
                exit: report.exit,
                live_regions: stats.live_regions + thread_regions,
                live_bytes: stats.live_bytes + thread_bytes,
            }
        })
        .expect("spawn");
    handle.join().expect("program thread panicked")
}

fn expectations(src: &str, tag: &str) -> Option<String> {
    let mut out = String::new();
    let mut any = false;
    for line in src.lines() {
        if let Some(rest) = line.strip_prefix(tag) {
            any = true;
            out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            out.push('\n');
        }
    }
    any.then_some(out)
}

fn programs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/programs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/programs exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "omni"))
        .collect();
    v.sort();
    v
}

#[test]
fn conformance_programs() {
    check_programs(Limits::default());
}

/// The same programs with every call on the general path: the pure tier
/// (CTRR.md, runtime duty 7) must change nothing a program shows.
#[test]
fn conformance_programs_without_the_pure_tier() {
    check_programs(Limits {
        pure_tier: false,
        ..Limits::default()
    });
}

/// An expected diagnostic with the build's call-depth limit written in.
fn with_depth_limit(expected: &str) -> String {
    expected
        .replace("{MAX_DEPTH}", &MAX_DEPTH.to_string())
        .replace("{MAX_DEPTH-1}", &(MAX_DEPTH - 1).to_string())
}

fn check_programs(limits: Limits) {
    let progs = programs();
    assert!(
        progs.len() >= 60,
        "expected at least 60 programs, found {}",
        progs.len()
    );
    let mut failures = Vec::new();
    for p in &progs {
        let src = std::fs::read_to_string(p).unwrap();
        let want_out = expectations(&src, ";; out:").unwrap_or_default();
        let want_err = expectations(&src, ";; err:").map(|e| with_depth_limit(&e));
        let got = run_program(p, limits);
        let name = p.file_name().unwrap().to_string_lossy();
        if got.stdout != want_out {
            failures.push(format!(
                "{name}: stdout\n--- want\n{want_out}--- got\n{}",
                got.stdout
            ));
        }
        match &want_err {
            Some(e) if &got.stderr != e => failures.push(format!(
                "{name}: stderr\n--- want\n{e}--- got\n{}",
                got.stderr
            )),
            None if !got.stderr.is_empty() => {
                failures.push(format!("{name}: unexpected error\n{}", got.stderr))
            }
            _ => {}
        }
        let want_exit = expectations(&src, ";; exit:").map(|s| s.trim().to_string());
        let got_exit = got.exit.map(|s| s.to_string());
        if want_exit != got_exit {
            failures.push(format!(
                "{name}: exit status: want {want_exit:?}, got {got_exit:?}"
            ));
        }
        if got.live_regions != 0 || got.live_bytes != 0 {
            failures.push(format!(
                "{name}: {} live regions / {} live bytes at exit",
                got.live_regions, got.live_bytes
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} programs failed:\n{}",
        failures.len(),
        progs.len(),
        failures.join("\n")
    );
}
