//! Reachability measurement for diagnostics: how many bytes of a region the
//! given roots still reach. Used by the retention-smell warning
//! (docs/REGION_COALESCE_POLICY.md): a long-lived region whose allocated
//! bytes far exceed its reachable bytes holds dead values until it dies.
//!
//! Not on any hot path; it allocates a visited set (Rust memory, not a
//! region) and walks the objects through the per-tag metadata. The visited
//! set is a mark bitmap per segment reached (one bit per word of the
//! segment's first window, where every object starts): 256 bytes per
//! 16 KiB segment, so measuring a region costs under 2% of its size (a
//! hash set of addresses cost more than the region itself).

use std::collections::HashMap;

use crate::meta::meta_of;
use crate::obj::{array_parts, dict_view, header_tag, object_size, HeapTag, ENTRY_WORDS};
use crate::region::{block_of_ptr, lifetime_owner, segment_addr, Region, SEGMENT_SIZE};
use crate::value::Value;

/// Bytes of the objects in `region` and in the slot regions it owns
/// reachable from `roots` (objects and the used part of array and dict
/// buffers, each object counted once). Pointers out of them are not
/// followed.
pub fn reachable_bytes(roots: &[Value], region: Region) -> usize {
    let b = region.block();
    let mut seen = Marks::default();
    let mut stack: Vec<Value> = roots.to_vec();
    let mut bytes = 0;
    while let Some(v) = stack.pop() {
        // A moved original stands for its copy (transmigrate.rs).
        let v = crate::obj::peek_resolved(v);
        if !v.is_heap() {
            continue;
        }
        let p = v.heap_ptr();
        // SAFETY: the roots are held by the caller, hence live, and every
        // object reachable from a live object is live (closure property).
        unsafe {
            if lifetime_owner(block_of_ptr(p)) != b || !seen.mark(p) {
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

/// Words in a segment's first window: every object starts in one.
const WINDOW_WORDS: usize = SEGMENT_SIZE / 8;

/// Mark bits, a bitmap per segment, with the last segment remembered
/// (neighbouring objects usually share one).
#[derive(Default)]
struct Marks {
    index: HashMap<usize, usize>,
    bits: Vec<[u64; WINDOW_WORDS / 64]>,
    last: Option<(usize, usize)>,
}

impl Marks {
    /// Mark the object at `p`; whether it was unmarked.
    fn mark(&mut self, p: *mut u8) -> bool {
        let seg = segment_addr(p);
        let i = match self.last {
            Some((s, i)) if s == seg => i,
            _ => {
                let next = self.bits.len();
                let i = *self.index.entry(seg).or_insert(next);
                if i == next {
                    self.bits.push([0; WINDOW_WORDS / 64]);
                }
                self.last = Some((seg, i));
                i
            }
        };
        let word = (p.addr() - seg) / 8;
        let (w, bit) = (word / 64, 1u64 << (word % 64));
        let fresh = self.bits[i][w] & bit == 0;
        self.bits[i][w] |= bit;
        fresh
    }
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

    #[test]
    fn marks_span_segments_and_large_objects() {
        // A list over many segments, and a string big enough for a segment
        // of its own, all reachable: every allocated byte is counted once.
        let r = region_create();
        let big = alloc_str(r, &"x".repeat(3 * LARGE_OBJECT)).unwrap();
        let mut l = alloc_pair(r, big, Value::EMPTY).unwrap();
        for i in 0..3_000 {
            l = alloc_pair(r, Value::fixnum(i).unwrap(), l).unwrap();
        }
        assert!(r.stats().segments > 3);
        assert_eq!(reachable_bytes(&[l, l, big], r), r.bytes_allocated());
        region_exit(r);
        assert_no_live_regions();
    }
}
