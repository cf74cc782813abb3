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

pub mod atomic;
#[cfg(not(loom))]
mod barrier;
#[cfg(not(loom))]
mod build_info;
#[cfg(not(loom))]
mod equal;
#[cfg(not(loom))]
mod error;
pub mod intern;
#[cfg(not(loom))]
mod meta;
#[cfg(not(loom))]
mod obj;
#[cfg(not(loom))]
mod parcel;
#[cfg(not(loom))]
mod reach;
#[cfg(not(loom))]
mod region;
pub mod smr;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
pub mod testing;
#[cfg(not(loom))]
mod tether;
#[cfg(not(loom))]
mod trace;
#[cfg(not(loom))]
mod transmigrate;
#[cfg(not(loom))]
mod value;

#[cfg(not(loom))]
pub use barrier::{admit_into, Repair};
#[cfg(not(loom))]
pub use build_info::build_info;
#[cfg(not(loom))]
pub use equal::{equal, eqv, hash_value};
#[cfg(not(loom))]
pub use error::{MemError, MemResult};
#[cfg(not(loom))]
pub use intern::{intern, symbol_name};
#[cfg(not(loom))]
pub use meta::registered_tags;
#[cfg(not(loom))]
pub use obj::{
    alloc_array, alloc_array_from, alloc_box, alloc_closure, alloc_dict, alloc_float, alloc_list,
    alloc_pair, alloc_str, array_get, array_items, array_len, array_push, array_set, box_get,
    box_set, car, cdr, closure_capture, closure_code, closure_len, closure_set_capture, dict_count,
    dict_entries, dict_get, dict_remove, dict_set, float_value, int_value, is_dict, is_pair,
    is_str, kind, make_int, set_car, set_cdr, with_str, HeapTag, Kind,
};
#[cfg(not(loom))]
pub use parcel::{parcels_in_flight, region_bytes, Handoff, Parcel};
#[cfg(not(loom))]
pub use reach::reachable_bytes;
#[cfg(not(loom))]
pub use region::{
    heap_limit, heap_stats, live_regions, merge, merge_permitted, merge_threshold, region_create,
    region_create_at, region_create_message, region_create_process, region_exit, region_of,
    region_release, region_retain, reserve_rank, reserve_ranks, set_heap_limit,
    set_merge_threshold, trace_origin, trace_start, trace_start_at, trace_stop, trim_pools,
    MergeRefusal, Region, TransferRefusal, DEFAULT_MERGE_THRESHOLD_BYTES, LARGE_OBJECT,
    RANK_PROCESS, RANK_RETAINED, SEGMENT_SIZE,
};
#[cfg(not(loom))]
pub use stats::{HeapStats, RegionStats};
#[cfg(not(loom))]
pub use tether::{tether_end, tether_start, BorrowedRef, Tether};
#[cfg(not(loom))]
pub use trace::{TraceEvent, TraceKind};
#[cfg(not(loom))]
pub use transmigrate::{transmigrate, transmigrate_roots, transmigrate_younger};
#[cfg(not(loom))]
pub use value::{Value, FIXNUM_MAX, FIXNUM_MIN};
