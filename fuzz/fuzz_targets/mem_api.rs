//! omni-mem's API driven by arbitrary operation sequences: region create /
//! exit / retain / release / merge, allocation, stores through the barrier,
//! reads out of arrays and dicts (which pin their slot regions), values
//! built in a container's store region, transmigration, tethers. The harness plays the mutator and keeps the
//! contract (it drops the values of a region before that region can die);
//! everything must end with zero live regions and bytes, and never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omni_mem::*;

struct Harness {
    /// Scope-open regions, oldest first (a stack: only the youngest exits).
    scopes: Vec<Region>,
    /// Values the mutator holds.
    vals: Vec<Value>,
}

impl Harness {
    /// Forget every held value that dies with `r`, the youngest scope:
    /// those in `r` and in the slot regions it owns, which have its rank
    /// (before `r` may die).
    fn drop_values_in(&mut self, r: Region) {
        self.vals
            .retain(|&v| region_of(v).is_none_or(|vr| vr.rank() < r.rank()));
    }

    fn pick_val(&self, b: u8) -> Value {
        if self.vals.is_empty() || b % 5 == 0 {
            Value::fixnum(b as i64).unwrap()
        } else {
            self.vals[b as usize % self.vals.len()]
        }
    }

    fn pick_region(&self, b: u8) -> Option<Region> {
        (!self.scopes.is_empty()).then(|| self.scopes[b as usize % self.scopes.len()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness {
        scopes: vec![region_create()],
        vals: Vec::new(),
    };
    set_merge_threshold(64 * 1024);
    let mut it = data.chunks(3);
    while let Some(op) = it.next() {
        let (a, b, c) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        match a % 18 {
            0 if h.scopes.len() < 16 => h.scopes.push(region_create()),
            1 if h.scopes.len() > 1 => {
                let r = h.scopes.pop().unwrap();
                h.drop_values_in(r);
                region_exit(r);
            }
            2 => {
                if let Some(r) = h.pick_region(b) {
                    if let Ok(v) = alloc_pair(r, h.pick_val(c), h.pick_val(b)) {
                        h.vals.push(v);
                    }
                }
            }
            3 => {
                if let Some(r) = h.pick_region(b) {
                    if let Ok(v) = alloc_str(r, &"s".repeat(c as usize)) {
                        h.vals.push(v);
                    }
                }
            }
            4 => {
                if let Some(r) = h.pick_region(b) {
                    let items = [h.pick_val(c), h.pick_val(b)];
                    if let Ok(v) = alloc_array_from(r, &items) {
                        h.vals.push(v);
                    }
                }
            }
            5 => {
                if let Some(r) = h.pick_region(b) {
                    if let Ok(d) = alloc_dict(r) {
                        let _ = dict_set(d, h.pick_val(c), h.pick_val(b));
                        h.vals.push(d);
                    }
                }
            }
            6 => {
                if let Some(r) = h.pick_region(b) {
                    if let Ok(v) = alloc_box(r, h.pick_val(c)) {
                        h.vals.push(v);
                    }
                }
            }
            // Stores through the barrier, in every direction.
            7 => {
                let _ = set_car(h.pick_val(b), h.pick_val(c));
                let _ = box_set(h.pick_val(c), h.pick_val(b));
            }
            8 => {
                let _ = array_set(h.pick_val(b), 0, h.pick_val(c));
                let _ = array_push(h.pick_val(c), h.pick_val(b));
                let _ = dict_set(h.pick_val(b), h.pick_val(c), h.pick_val(c));
            }
            9 => {
                // Transmigrate a value into an older scope and keep the copy.
                let v = h.pick_val(b);
                if let (Some(src), Some(dst)) = (region_of(v), h.pick_region(c)) {
                    if dst.rank() < src.rank() {
                        if let Ok(copy) = transmigrate_younger(v, dst) {
                            h.vals.push(copy);
                        }
                    }
                }
            }
            10 if h.scopes.len() > 1 => {
                // Merge the youngest scope into its parent when permitted.
                let n = h.scopes.len();
                let (young, old) = (h.scopes[n - 1], h.scopes[n - 2]);
                if merge(young, old).is_ok() {
                    h.scopes.pop();
                }
            }
            11 => {
                if let Some(r) = h.pick_region(b) {
                    let t = tether_start(r);
                    if let Ok(v) = alloc_pair(r, Value::TRUE, h.pick_val(c)) {
                        let _ = t.borrow(v).get();
                        h.vals.push(v);
                    }
                    tether_end(t).expect("tethers end in order");
                }
            }
            12 => {
                // A counted region that outlives its scope, then released.
                let r = region_create();
                region_retain(r);
                let _ = alloc_pair(r, h.pick_val(b), Value::EMPTY);
                region_exit(r);
                region_release(r);
            }
            13 => {
                let _ = equal(h.pick_val(b), h.pick_val(c));
                let _ = hash_value(h.pick_val(b));
            }
            14 => {
                // Reads hand slot values out (pinning their slot regions).
                let x = h.pick_val(b);
                if let Some(v) = array_get(x, c as usize % 3) {
                    h.vals.push(v);
                }
                if let Some(v) = dict_get(x, h.pick_val(c)) {
                    h.vals.push(v);
                }
                if let Some(items) = array_items(x) {
                    h.vals.extend(items.into_iter().take(4));
                }
                if let Some(entries) = dict_entries(x) {
                    h.vals
                        .extend(entries.into_iter().take(2).flat_map(|(k, v)| [k, v]));
                }
                if let Some(v) = box_get(x) {
                    h.vals.push(v);
                }
            }
            15 => {
                // A fresh value built where it will be stored, then stored
                // at once and not kept (`store_region`'s contract).
                let x = h.pick_val(b);
                if let Some(r) = store_region(x) {
                    if let Ok(v) = alloc_pair(r, h.pick_val(c), Value::EMPTY) {
                        let _ = array_set(x, c as usize % 3, v);
                        let _ = dict_set(x, h.pick_val(c), v);
                        let _ = set_car(x, v);
                        let _ = box_set(x, v);
                    }
                }
            }
            16 => {
                // Borrowing reads: each value is used at once and dropped
                // before anything is stored (`box_borrow`'s contract).
                let x = h.pick_val(b);
                let got = [
                    box_borrow(x),
                    array_borrow(x, c as usize % 3),
                    dict_borrow(x, h.pick_val(c)),
                ];
                for v in got.into_iter().flatten() {
                    let _ = hash_value(v);
                    let _ = equal(v, v);
                }
                let _ = dict_has(x, h.pick_val(c));
            }
            17 => {
                // Removal counts as an overwrite; removed entries are
                // squeezed out in place when the dict fills.
                let _ = dict_remove(h.pick_val(b), h.pick_val(c));
            }
            _ => {}
        }
        if h.vals.len() > 512 {
            h.vals.drain(..256);
        }
    }
    while let Some(r) = h.scopes.pop() {
        h.drop_values_in(r);
        region_exit(r);
    }
    let s = heap_stats();
    assert_eq!(
        (s.live_regions, s.live_bytes),
        (0, 0),
        "leaked regions or bytes"
    );
});
