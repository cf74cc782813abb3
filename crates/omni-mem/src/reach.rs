//! Reachability measurement for diagnostics: how many bytes of a region the
//! given roots still reach. Used by the retention-smell warning
//! (docs/REGION_COALESCE_POLICY.md): a long-lived region whose allocated
//! bytes far exceed its reachable bytes holds dead values until it dies.
//!
//! Not on any hot path; it allocates a visited set (Rust memory, not a
//! region) and walks the objects through the per-tag metadata.

use std::collections::HashSet;

use crate::meta::meta_of;
use crate::obj::{array_parts, dict_view, header_tag, object_size, HeapTag, ENTRY_WORDS};
use crate::region::{block_of_ptr, Region};
use crate::value::Value;

/// Bytes of the objects in `region` reachable from `roots` (objects and the
/// used part of array and dict buffers, each object counted once).
/// Pointers out of `region` are not followed.
pub fn reachable_bytes(roots: &[Value], region: Region) -> usize {
    let b = region.block();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut stack: Vec<Value> = roots.to_vec();
    let mut bytes = 0;
    while let Some(v) = stack.pop() {
        if !v.is_heap() {
            continue;
        }
        let p = v.heap_ptr();
        // SAFETY: the roots are held by the caller, hence live, and every
        // object reachable from a live object is live (closure property).
        unsafe {
            if block_of_ptr(p) != b || !seen.insert(p.addr()) {
                continue;
            }
            let hdr = p.cast::<u64>().read();
            let Some(tag) = HeapTag::from_u8(header_tag(hdr)) else {
                continue;
            };
            bytes += object_size(tag, hdr)
                + match tag {
                    HeapTag::Array => array_parts(p).0 * 8,
                    HeapTag::Dict => dict_view(p).used * 8 * ENTRY_WORDS,
                    _ => 0,
                };
            let Ok(m) = meta_of(header_tag(hdr)) else {
                continue;
            };
            let s = (m.trace)(p, hdr);
            for i in 0..s.count {
                let group = s.base.add(i * s.stride);
                for j in 0..s.width {
                    stack.push(group.add(j).read());
                }
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_no_live_regions;
    use crate::*;

    #[test]
    fn counts_what_the_roots_reach_once() {
        let r = region_create();
        let other = region_create();
        let a = alloc_list(r, &[Value::fixnum(1).unwrap(), Value::fixnum(2).unwrap()]).unwrap();
        let shared = alloc_pair(r, a, a).unwrap();
        let _garbage = alloc_list(r, &[Value::NOTHING; 10]).unwrap();
        let outside = alloc_pair(other, shared, Value::EMPTY).unwrap();
        // 3 pairs of 24 bytes: the list's 2 and `shared`.
        assert_eq!(reachable_bytes(&[shared], r), 72);
        assert_eq!(reachable_bytes(&[shared, a, shared], r), 72);
        // Roots outside the region are not followed.
        assert_eq!(reachable_bytes(&[outside], r), 0);
        assert!(r.bytes_allocated() >= 72 + 240);
        let arr = alloc_array_from(r, &[a, Value::TRUE]).unwrap();
        assert!(reachable_bytes(&[arr], r) >= 48 + 16);
        region_exit(other);
        region_exit(r);
        assert_no_live_regions();
    }
}
