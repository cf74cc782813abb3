//! Threads sharing the process-wide parts of omni-mem (symbol table, id
//! and token counters) while each owns its regions. Run under TSan in
//! `.ci/run`; here it checks per-thread isolation of regions and counters.

use omni_mem::testing::assert_no_live_regions;
use omni_mem::*;

#[test]
fn threads_own_their_regions_and_share_the_symbol_table() {
    let threads = if cfg!(miri) { 2 } else { 4 };
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let global = region_create();
                let keep = alloc_dict(global).unwrap();
                for i in 0..rounds {
                    let scratch = region_create();
                    let name = intern(&format!("sym-{}", i % 50));
                    let l = alloc_list(scratch, &[name, Value::fixnum(i).unwrap()]).unwrap();
                    // Young-to-old store: repaired by the barrier on this thread.
                    dict_set(keep, Value::fixnum(i % 10).unwrap(), l).unwrap();
                    region_exit(scratch);
                }
                assert_eq!(dict_count(keep), Some(10));
                let last = dict_get(keep, Value::fixnum((rounds - 1) % 10).unwrap()).unwrap();
                assert_eq!(
                    symbol_name(car(last).unwrap()),
                    Some(format!("sym-{}", (rounds - 1) % 50).as_str())
                );
                assert!(
                    heap_stats().repairs_transmigrate + heap_stats().repairs_merge >= rounds as u64
                );
                region_exit(global);
                assert_no_live_regions();
                t
            })
        })
        .collect();
    let mut done: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    done.sort();
    assert_eq!(done, (0..threads).collect::<Vec<_>>());
    // The same names were interned concurrently: one symbol per name.
    assert_eq!(intern("sym-7"), intern("sym-7"));
    assert_no_live_regions();
}
