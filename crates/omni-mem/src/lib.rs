//! omni-mem: the memory runtime of OmniLisp-rs. No garbage collector:
//! regions with Region-RC liveness, a store barrier that repairs
//! younger-to-older edges by merge or transmigration, tethers with epochs,
//! and accounting. Knows nothing of syntax.
//!
//! Specs: docs/REGION_RC_MODEL.md, docs/REGION_DEPENDENCY_RULES.md,
//! docs/CTRR_TRANSMIGRATION.md, docs/REGION_TETHERING.md,
//! docs/REGION_ACCOUNTING.md. All `unsafe` code of the workspace lives in
//! this crate, each block with a `// SAFETY:` comment.
//!
//! Built with `--cfg loom`, only the concurrency core (atomic, smr,
//! intern's `SymbolTable`) is compiled, on loom's atomics, for the
//! model tests in `tests/loom.rs`.

#![deny(unsafe_op_in_unsafe_fn)]

// A value, and an object header, is one 64-bit word that may hold a
// pointer (a forwarding address, a pair mark's index in its upper half).
#[cfg(not(target_pointer_width = "64"))]
compile_error!("omni-mem needs a 64-bit target: a value is one word holding a 64-bit pointer");

pub mod atomic;
pub mod intern;
pub mod smr;

/// Applies `#[cfg(not(loom))]` to every item: the loom build compiles only
/// the concurrency core above.
macro_rules! not_loom {
    ($($item:item)*) => { $( #[cfg(not(loom))] $item )* };
}

not_loom! {
    mod barrier;
    mod build_info;
    mod equal;
    mod error;
    mod meta;
    mod moves;
    mod obj;
    mod parcel;
    mod reach;
    mod slots;
    mod region;
    mod stack;
    mod stats;
    pub mod testing;
    mod tether;
    mod trace;
    mod transmigrate;
    mod value;

    pub use barrier::{admit_into, storable_below_rank, storable_in, Repair};
    pub use build_info::build_info;
    pub use equal::{equal, eqv, hash_value};
    pub use error::{MemError, MemResult};
    pub use intern::{intern, symbol_name};
    pub use meta::registered_tags;
    pub use obj::{
        alloc_array, alloc_array_from, alloc_box, alloc_closure, alloc_dict, alloc_float, alloc_list,
        alloc_pair, alloc_str, array_borrow, array_get, array_items, array_len, array_push, array_set, box_borrow, box_get,
        box_set, car, cdr, closure_capture, closure_code, closure_len, closure_set_capture, dict_count,
        dict_borrow, dict_entries, dict_stored_key, dict_get, dict_has, dict_remove, dict_set, float_value, int_value, is_dict, is_number, is_pair,
        is_str, kind, make_int, resolve, set_car, set_cdr, str_is_ascii, with_str, HeapTag, Kind,
    };
    pub use parcel::{parcels_in_flight, Handoff, Parcel};
    pub use reach::reachable_bytes;
    pub use slots::{
        compact_if_due, hold_compaction, release_compaction, store_region, COMPACT_MIN_BYTES,
        SLOT_REGION_AFTER,
    };
    pub use region::{
        heap_limit, heap_stats, live_regions, merge, merge_permitted, merge_threshold, region_create,
        region_create_at, region_create_message, region_create_process, region_exit, region_of,
        region_release, region_retain, reserve_rank, reserve_ranks, set_heap_limit,
        set_merge_threshold, trace_origin, trace_start, trace_start_at, trace_stop, trim_pools, trim_thread_pool,
        MergeRefusal, Region, TransferRefusal, DEFAULT_MERGE_THRESHOLD_BYTES, LARGE_OBJECT,
        RANK_PROCESS, RANK_RETAINED, SEGMENT_SIZE,
    };
    pub use stack::stack_pointer;
    pub use stats::{HeapStats, RegionStats};
    pub use tether::{tether_end, tether_start, BorrowedRef, Tether};
    pub use trace::{TraceEvent, TraceKind};
    pub use transmigrate::{transmigrate, transmigrate_roots, transmigrate_younger};
    pub use value::{Value, FIXNUM_MAX, FIXNUM_MIN};
}
