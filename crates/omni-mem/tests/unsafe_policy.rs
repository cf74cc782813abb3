//! The unsafe policy (docs/ARCHITECTURE.md, omni-mem): `unsafe` code lives only in
//! omni-mem (the other crates forbid it: `unsafe_code = "forbid"` in their
//! manifests' `[lints.rust]`), every `unsafe`
//! block there is justified by a `// SAFETY:` comment just above it (or on
//! its line), and every `unsafe fn` states its contract in a `# Safety`
//! section of its doc comment. This test scans omni-mem's sources.
#![cfg(not(any(loom, miri)))]

use std::path::Path;

/// How far above an `unsafe` block its `// SAFETY:` comment may be: a
/// comment may justify a block that opens a few statements later in the
/// same short function, never one in another function.
const SAFETY_REACH: usize = 6;

fn sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("omni-mem/src")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).expect("read source"))
        })
        .collect();
    out.sort();
    assert!(out.len() > 10, "scanned too few files: {}", out.len());
    out
}

/// Whether line `l` is code (not a comment) that opens an `unsafe` block.
fn opens_unsafe_block(l: &str) -> bool {
    let code = l.split("//").next().unwrap_or("");
    code.contains("unsafe {")
}

/// Whether line `l` declares an `unsafe fn` item (not a function-pointer
/// type such as `clone: unsafe fn(...)`).
fn declares_unsafe_fn(l: &str) -> bool {
    let code = l.trim_start();
    if code.starts_with("//") {
        return false;
    }
    let Some(at) = code.find("unsafe fn ") else {
        return false;
    };
    let before = &code[..at];
    before.is_empty()
        || before.ends_with("pub ")
        || before.ends_with("pub(crate) ")
        || before.ends_with("const ")
        || before.ends_with("extern \"C\" ")
}

/// Every line of omni-mem's sources that `is_site` picks: how many, and
/// those `justified` (given the file's lines and the line's index) rejects.
fn unjustified(
    is_site: fn(&str) -> bool,
    justified: fn(&[&str], usize) -> bool,
) -> (usize, Vec<String>) {
    let (mut sites, mut offenders) = (0, Vec::new());
    for (name, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| is_site(l)) {
            sites += 1;
            if !justified(&lines, i) {
                offenders.push(format!("{name}:{}: {}", i + 1, l.trim()));
            }
        }
    }
    (sites, offenders)
}

/// No offender among more than `least` sites found (fewer would mean the
/// scan no longer recognises them).
fn assert_none((sites, least): (usize, usize), offenders: &[String], what: &str) {
    assert!(sites > least, "found too few sites ({sites}) for: {what}");
    assert!(offenders.is_empty(), "{what}:\n{}", offenders.join("\n"));
}

#[test]
fn every_unsafe_block_in_omni_mem_has_a_safety_comment() {
    let (blocks, offenders) = unjustified(opens_unsafe_block, |lines, i| {
        let from = i.saturating_sub(SAFETY_REACH);
        lines[from..=i].iter().any(|l| l.contains("SAFETY:"))
    });
    let what =
        format!("unsafe blocks with no `// SAFETY:` comment in the {SAFETY_REACH} lines above");
    assert_none((blocks, 100), &offenders, &what);
}

#[test]
fn every_unsafe_fn_in_omni_mem_documents_its_contract() {
    // The doc comment and attributes directly above the item.
    let (fns, offenders) = unjustified(declares_unsafe_fn, |lines, i| {
        lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim_start();
                t.starts_with("///") || t.starts_with("#[")
            })
            .any(|l| l.trim_start() == "/// # Safety")
    });
    let what = "unsafe fns with no `# Safety` section in their doc comment";
    assert_none((fns, 30), &offenders, what);
}

#[test]
fn the_other_crates_forbid_unsafe_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for manifest in ["omni-lang/Cargo.toml", "omni-cli/Cargo.toml"] {
        let text = std::fs::read_to_string(root.join(manifest)).expect("crate manifest");
        let lints = text.split("[lints.rust]").nth(1).unwrap_or("");
        assert!(
            lints
                .lines()
                .any(|l| l.trim() == "unsafe_code = \"forbid\""),
            "{manifest} does not forbid unsafe code"
        );
    }
}
