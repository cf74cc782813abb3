//! Errors omni-mem reports as values (never a process abort).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemError {
    /// A region's optional quota would be exceeded by an allocation.
    QuotaExceeded {
        region_id: u64,
        quota: usize,
        requested: usize,
        allocated: usize,
    },
    /// A borrowed reference was used after its region died or its tether ended.
    StaleBorrow {
        region_id: u64,
        reason: &'static str,
    },
    /// Tethers must end in the reverse order they started.
    TetherOrder,
    /// A region handle was used after its region was freed.
    DeadRegion { region_id: u64 },
    /// An object larger than the runtime supports (4 GiB elements/bytes).
    TooLarge { requested: usize },
    /// A heap tag has no clone/trace metadata registered.
    NoMetadata { tag: u8 },
    /// A region operation was attempted from a thread that does not own it.
    WrongThread { region_id: u64 },
    /// The thread's heap limit (`set_heap_limit`) would be exceeded.
    HeapLimit { limit: usize, live: usize },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemError::QuotaExceeded {
                region_id,
                quota,
                requested,
                allocated,
            } => write!(
                f,
                "region exceeded quota; likely escape/retention (region #{region_id}: \
                 quota {quota} bytes, {allocated} allocated, {requested} requested)"
            ),
            MemError::StaleBorrow { region_id, reason } => {
                write!(f, "stale borrow of region #{region_id}: {reason}")
            }
            MemError::TetherOrder => write!(f, "tethers must end in reverse order of start"),
            MemError::DeadRegion { region_id } => {
                write!(f, "use of region #{region_id} after it was freed")
            }
            MemError::TooLarge { requested } => {
                write!(f, "object too large ({requested} elements or bytes)")
            }
            MemError::NoMetadata { tag } => write!(f, "heap tag {tag} has no clone/trace metadata"),
            MemError::WrongThread { region_id } => {
                write!(
                    f,
                    "region #{region_id} used from a thread that does not own it"
                )
            }
            MemError::HeapLimit { limit, live } => write!(
                f,
                "heap limit exceeded: {live} bytes of segments live, limit {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for MemError {}

pub type MemResult<T> = Result<T, MemError>;
