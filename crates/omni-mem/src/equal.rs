//! Structural equality (`equal?`) and the hash consistent with it, used for
//! dict keys. Both are iterative; `equal` terminates on cyclic data: nodes
//! already found equal (directly or through others) are assumed equal, as
//! R7RS allows, and are kept in union-find classes (Adams and Dybvig,
//! "Efficient nondestructive equality checking for trees and graphs",
//! ICFP 2008), so two cyclic graphs are compared in near-linear time.
//! (A set of compared *pairs* of nodes, used until the ninth session, may
//! grow to the product of the two graphs' sizes: two cycles of coprime
//! lengths p and q took p x q steps.)

use std::collections::HashMap;

use crate::obj::{
    array_borrow, array_len, box_borrow, car, cdr, dict_count, dict_entries_unpinned,
    float_value, int_value, kind, with_str, Kind,
};
use crate::value::Value;

/// After this much work (pairs of parts pushed to compare) `equal` starts
/// uniting the nodes it compares, so cyclic structures terminate while
/// small acyclic comparisons pay nothing extra. Counted in parts pushed,
/// not nodes visited: a node of n parts (an array, a dict) pushes n, and
/// counting it as one let the work before the check reach the threshold
/// times the widest node (a 10,000-element array holding itself, compared
/// with another: 10^8 parts, 1.5 GB and 12 s; a fuzzer found it).
/// (Under Miri, 100: the same two regimes, reached in a hundredth of the
/// interpreted steps; a cyclic comparison took 80 s of the Miri gate.)
const CYCLE_CHECK_AFTER: usize = if cfg!(miri) { 100 } else { 20_000 };

/// Union-find over node addresses (value bits): the classes of nodes
/// assumed equal so far.
#[derive(Default)]
struct Classes {
    parent: HashMap<u64, u64>,
}

impl Classes {
    fn find(&mut self, mut x: u64) -> u64 {
        // Path halving: every other node on the way points to its
        // grandparent.
        while let Some(&p) = self.parent.get(&x) {
            match self.parent.get(&p) {
                Some(&g) => {
                    self.parent.insert(x, g);
                    x = g;
                }
                None => return p,
            }
        }
        x
    }

    /// Put `a` and `b` in one class; false if they were in one already.
    fn union(&mut self, a: u64, b: u64) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        self.parent.insert(ra, rb);
        true
    }
}

/// `eqv?`: identity, plus numbers and characters by value.
pub fn eqv(a: Value, b: Value) -> bool {
    if a.is(b) {
        return true;
    }
    match (kind(a), kind(b)) {
        (Kind::Int, Kind::Int) => int_value(a) == int_value(b),
        (Kind::Float, Kind::Float) => {
            float_value(a).map(f64::to_bits) == float_value(b).map(f64::to_bits)
        }
        _ => false,
    }
}

/// `equal?`: structural equality over pairs, strings, arrays, dicts, boxes.
pub fn equal(a: Value, b: Value) -> bool {
    equal_counted(a, b).0
}

/// `equal`, and the number of pairs of parts it pushed to compare (its
/// work, which bounds its stack). Before the cycle check starts the work
/// is at most `CYCLE_CHECK_AFTER` plus one node's parts; after it, each
/// node is expanded at most once (its class is new), so the whole work is
/// linear in the parts of the two graphs.
fn equal_counted(a: Value, b: Value) -> (bool, usize) {
    // The pair being compared comes first, then the work stack (which
    // allocates only when a compound value pushes its parts: comparing
    // two numbers or symbols, a dict's usual keys, allocates nothing).
    let mut first = Some((a, b));
    let mut stack = Vec::new();
    let mut work = 0usize;
    let mut classes: Option<Classes> = None;
    while let Some((a, b)) = first.take().or_else(|| stack.pop()) {
        if eqv(a, b) {
            continue;
        }
        let (ka, kb) = (kind(a), kind(b));
        if ka != kb {
            return (false, work);
        }
        if work > CYCLE_CHECK_AFTER
            && matches!(ka, Kind::Pair | Kind::Array | Kind::Dict | Kind::Box)
        {
            // Already assumed equal (a cycle, or sharing): nothing more to
            // compare here; if they differ, the comparison that assumed it
            // finds the difference.
            let classes = classes.get_or_insert_with(Classes::default);
            if !classes.union(a.bits() as u64, b.bits() as u64) {
                continue;
            }
        }
        let pending = stack.len();
        match ka {
            Kind::Pair => match (car(a), car(b), cdr(a), cdr(b)) {
                (Some(x), Some(y), Some(dx), Some(dy)) => {
                    stack.push((dx, dy));
                    stack.push((x, y));
                }
                _ => return (false, work),
            },
            Kind::Str => {
                let same = with_str(a, |x| with_str(b, |y| x == y)).flatten();
                if same != Some(true) {
                    return (false, work);
                }
            }
            Kind::Array => {
                let (Some(n), Some(m)) = (array_len(a), array_len(b)) else {
                    return (false, work);
                };
                if n != m {
                    return (false, work);
                }
                for i in (0..n).rev() {
                    match (array_borrow(a, i), array_borrow(b, i)) {
                        (Some(x), Some(y)) => stack.push((x, y)),
                        _ => return (false, work),
                    }
                }
            }
            Kind::Dict => {
                // Entry by entry in insertion order. (Looking keys up in `b`
                // would call `equal` recursively through the dict's index,
                // which never terminates on a dict that is its own key: a
                // fuzzer found that.)
                let (Some(ea), Some(eb)) = (dict_entries_unpinned(a), dict_entries_unpinned(b)) else {
                    return (false, work);
                };
                if ea.len() != eb.len() {
                    return (false, work);
                }
                for ((ka, va), (kb, vb)) in ea.into_iter().zip(eb).rev() {
                    stack.push((va, vb));
                    stack.push((ka, kb));
                }
            }
            Kind::Box => match (box_borrow(a), box_borrow(b)) {
                (Some(x), Some(y)) => stack.push((x, y)),
                _ => return (false, work),
            },
            _ => return (false, work),
        }
        work += stack.len() - pending;
    }
    (true, work)
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;

#[inline]
fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23)
}

/// How many nodes of a compound key contribute to its hash. Bounded so that
/// hashing terminates on cycles and stays cheap on long lists.
const HASH_NODES: usize = 16;

/// A hash consistent with `equal` (equal values hash alike). Never depends
/// on addresses, so it survives transmigration.
pub fn hash_value(v: Value) -> u64 {
    let mut h = SEED;
    // As in `equal`: no allocation for a value without parts.
    let mut first = Some(v);
    let mut stack = Vec::new();
    let mut budget = HASH_NODES;
    while let Some(v) = first.take().or_else(|| stack.pop()) {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let k = kind(v);
        h = mix(h, k as u64);
        match k {
            Kind::Fixnum | Kind::Int => h = mix(h, int_value(v).unwrap_or(0) as u64),
            Kind::Float => h = mix(h, float_value(v).map(f64::to_bits).unwrap_or(0)),
            Kind::Str => {
                h = with_str(v, |s| s.bytes().fold(h, |acc, byte| mix(acc, byte as u64)))
                    .unwrap_or(h)
            }
            Kind::Pair => {
                if let (Some(a), Some(d)) = (car(v), cdr(v)) {
                    stack.push(d);
                    stack.push(a);
                }
            }
            Kind::Array => {
                let n = array_len(v).unwrap_or(0);
                h = mix(h, n as u64);
                for i in (0..n.min(HASH_NODES)).rev() {
                    if let Some(x) = array_borrow(v, i) {
                        stack.push(x);
                    }
                }
            }
            Kind::Dict => h = mix(h, dict_count(v).unwrap_or(0) as u64),
            // Boxes compare by contents but are mutable; closures compare by
            // identity but move when transmigrated: both hash by kind only.
            Kind::Box | Kind::Closure => {}
            _ => h = mix(h, v.bits() as u64),
        }
    }
    finish(h)
}

/// Spread every input bit over every output bit (the 64-bit finaliser of
/// MurmurHash3). Dicts index with the low bits and probe linearly; `mix`
/// alone leaves consecutive integer keys in neighbouring slots, two to a
/// slot, so a dict filled with keys `0..n` grew one cluster that every
/// insertion walked to its end: O(n) per `dict-set!`.
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj::{alloc_array_from, alloc_pair, array_set, set_cdr};
    use crate::region::{region_create, region_exit, Region};
    use crate::testing::leak_checked;

    /// A cyclic list whose cars repeat `cars` forever.
    fn cycle(r: Region, cars: &[i64]) -> Value {
        let last = alloc_pair(r, Value::fixnum(cars[cars.len() - 1]).expect("small"), Value::EMPTY)
            .expect("pair");
        let mut head = last;
        for &c in cars[..cars.len() - 1].iter().rev() {
            head = alloc_pair(r, Value::fixnum(c).expect("small"), head).expect("pair");
        }
        assert!(set_cdr(last, head).expect("store"));
        head
    }

    #[test]
    fn cycles_of_coprime_lengths_compare_in_linear_time() {
        // Both are the infinite list (7 7 7 ...). Remembering compared
        // pairs of nodes visited p x q pairs (about 10^8 here, gigabytes);
        // uniting nodes into classes visits each node about once.
        leak_checked(|| {
            let (p, q) = if cfg!(miri) { (3, 5) } else { (10_007, 10_009) };
            let r = region_create();
            let a = cycle(r, &vec![7; p]);
            let b = cycle(r, &vec![7; q]);
            assert!(equal(a, b));
            region_exit(r);
        });
    }

    /// An array of n slots that all hold the array itself.
    fn self_array(r: Region, n: usize) -> Value {
        let a = alloc_array_from(r, &vec![Value::EMPTY; n]).expect("array");
        for i in 0..n {
            assert!(array_set(a, i, a).expect("store"));
        }
        a
    }

    #[test]
    fn wide_self_referential_arrays_compare_in_linear_work() {
        // Counting nodes visited rather than parts pushed, the work before
        // the cycle check was the threshold times n (10^8 parts, 1.5 GB
        // for n = 10,000); now the check starts within one array's width
        // of the threshold, and the one union of the two arrays expands
        // them once more.
        leak_checked(|| {
            let n = if cfg!(miri) { 60 } else { 10_000 };
            let r = region_create();
            let (a, b) = (self_array(r, n), self_array(r, n));
            let (same, work) = equal_counted(a, b);
            assert!(same);
            assert!(
                work <= CYCLE_CHECK_AFTER + 3 * n,
                "{work} parts pushed for two arrays of {n}"
            );
            // One slot that differs is still found.
            let c = self_array(r, n);
            assert!(array_set(c, n / 2, Value::fixnum(1).expect("small")).expect("store"));
            assert!(!equal(a, c));
            region_exit(r);
        });
    }

    #[test]
    fn cycles_that_differ_somewhere_are_not_equal() {
        leak_checked(|| {
            let r = region_create();
            // (1 1 1 2 1 1 1 2 ...) against (1 1 1 1 2 ...): they differ at
            // the fourth element, and (1 2 ...) against (1 2 1 3 ...) only
            // on the second round of the cycle, after the first nodes
            // were assumed equal.
            let a = cycle(r, &[1, 1, 1, 2]);
            let b = cycle(r, &[1, 1, 1, 1, 2]);
            assert!(!equal(a, b));
            let c = cycle(r, &[1, 2]);
            let d = cycle(r, &[1, 2, 1, 3]);
            assert!(!equal(c, d));
            assert!(equal(c, cycle(r, &[1, 2, 1, 2])));
            region_exit(r);
        });
    }
}
