//! The atomic policy (docs/ATOMIC_POLICY.md): `crates/omni-mem/src/atomic.rs`
//! is the only file in the workspace that names an atomic type or a memory
//! ordering. Everything else uses its named operations. This test scans
//! every Rust file of the repository (crates, fuzz targets, benches).
#![cfg(not(any(loom, miri)))]

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "std::sync::atomic",
    "core::sync::atomic",
    "loom::sync::atomic",
    "Ordering::Relaxed",
    "Ordering::Acquire",
    "Ordering::Release",
    "Ordering::AcqRel",
    "Ordering::SeqCst",
    "AtomicBool",
    "AtomicU8",
    "AtomicU16",
    "AtomicU32",
    "AtomicU64",
    "AtomicUsize",
    "AtomicI32",
    "AtomicI64",
    "AtomicIsize",
    "AtomicPtr",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "corpus" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn only_the_policy_module_names_atomics_or_orderings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let policy = root
        .join("crates/omni-mem/src/atomic.rs")
        .canonicalize()
        .unwrap();
    let this = Path::new(file!()).file_name().unwrap().to_owned();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "scanned too few files: {}", files.len());
    let mut offenders = Vec::new();
    for f in &files {
        if f.canonicalize().unwrap() == policy || f.file_name() == Some(this.as_os_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pat in FORBIDDEN {
                if code.contains(pat) {
                    offenders.push(format!("{}:{}: {pat}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "atomics or orderings named outside crates/omni-mem/src/atomic.rs:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scan_would_catch_an_offender() {
    // Guard against a scan that silently matches nothing.
    let sample = "let x = AtomicUsize::new(0); x.load(Ordering::Relaxed);";
    let hits = FORBIDDEN.iter().filter(|p| sample.contains(*p)).count();
    assert_eq!(hits, 2);
}
