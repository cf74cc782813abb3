//! Snapshot tests of `omni explain`: the region schedule of canonical
//! programs is pinned in `tests/explain/*.explain`. Run with
//! `OMNI_UPDATE_SNAPSHOTS=1` to rewrite the snapshots after an intended
//! change, then review the diff.

use std::path::Path;

use omni_lang::explain_source;

#[test]
fn explain_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/explain");
    let update = std::env::var_os("OMNI_UPDATE_SNAPSHOTS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "omni"))
    {
        let src = std::fs::read_to_string(&p).unwrap();
        let got = std::thread::Builder::new()
            .stack_size(omni_lang::VM_STACK_BYTES)
            .spawn(move || explain_source(&src).map_err(|d| format!("{d:?}")))
            .unwrap()
            .join()
            .unwrap()
            .expect("explain succeeds");
        let snap = p.with_extension("explain");
        if update {
            std::fs::write(&snap, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&snap).unwrap_or_default();
            if want != got {
                failures.push(format!("{}\n--- want\n{want}--- got\n{got}", p.display()));
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected the canonical programs, found {checked}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn schedule_shows_values_every_run_stores_in_a_global_built_there() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/explain/global_store.omni"),
    )
    .unwrap();
    let text = explain_source(&src).unwrap();
    // Stored into `g` on every run of its `let`: built in the global region.
    assert!(text.contains("alloc box @2:28 -> global"), "{text}");
    // Stored only under an `if`: built in the destination, copied if stored.
    assert!(text.contains("alloc box @3:34 -> dst"), "{text}");
}

#[test]
fn schedule_shows_destination_passing_and_in_place_stores() {
    let acc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/explain/accumulator_loop.omni"),
    )
    .unwrap();
    let text = explain_source(&acc).unwrap();
    // The accumulator is built where it lives: the loop's destination.
    assert!(text.contains("alloc cons @3:43 -> dst"), "{text}");
    // ...which for the loop is `work`'s scratch (length only inspects it).
    assert!(text.contains("-> callee dst = scratch"), "{text}");
    let store = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/explain/store_into_old.omni"),
    )
    .unwrap();
    let text = explain_source(&store).unwrap();
    // A value stored into an array slot, made without calls, is built in
    // the array's slot region, where it can be reclaimed once overwritten.
    assert!(
        text.contains("alloc list @2:47 -> slot-region-of(slot 2)"),
        "{text}"
    );
    assert!(
        text.contains("barrier array-set! @2:27 (store helper: same/older fast path, else repair into the container's slot region)"),
        "{text}"
    );
    // A value stored into a pair is built in place, in the pair's region.
    assert!(
        text.contains("alloc list @4:38 -> region-of(slot 1)"),
        "{text}"
    );
    assert!(text.contains("barrier set-car! @4:23"), "{text}");
    // Made by a call, it is built in this activation's scratch (the call
    // could store into the array) and the barrier copies it.
    assert!(
        text.contains("call @6:49 -> callee dst = scratch"),
        "{text}"
    );
}
