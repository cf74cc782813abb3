//! Transmigration: copy the part of a value graph that lives in a source
//! domain into a destination region (docs/CTRR_TRANSMIGRATION.md).
//!
//! * Iterative: an explicit work stack of copied objects; no recursion, so
//!   depth is bounded only by memory.
//! * Forwarding table = visited set: the header word of each visited source
//!   object holds its copy's address with bit 0 set (headers are even, so
//!   the mark is unambiguous). A restore log lists the forwarded objects;
//!   every header is restored before returning, on success and on error.
//!   One source object maps to exactly one copy, so sharing and cycles are
//!   preserved.
//! * External-root rule: a pointer to an object outside the domain is kept
//!   as is and never followed.
//! * One edge-rewrite choke point: `rewrite` is the only place a slot of a
//!   copy is updated. The pair micro-kernel (cdr chains walked in a loop
//!   without pushing) and the metadata-driven generic path both call it.

use crate::error::MemResult;
use crate::meta::meta_of;
use crate::obj::{field, header_tag, make_header, HeapTag, HDR};
use crate::region::{
    alloc_raw, block_of_ptr, note_transmigrated, segment_addr, with_stats, Region, RegionBlock,
};
use crate::value::Value;

/// Which objects are copied.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Domain {
    /// Objects in exactly this region.
    Region(*mut RegionBlock),
    /// Objects in any region younger (higher rank) than this rank: what the
    /// barrier needs so the copy's external edges all point to older regions.
    YoungerThan(u64),
}

struct Transmigration {
    dst: *mut RegionBlock,
    domain: Domain,
    /// Copies whose slots still hold source values.
    stack: Vec<*mut u8>,
    /// Source objects whose headers hold forwarding addresses.
    log: Vec<*mut u8>,
    bytes: u64,
    /// Domain memo: the last segment looked up and whether it is in the
    /// domain. Neighbouring objects usually share a segment, so most
    /// domain tests are one compare. (Segments never change region during
    /// a transmigration: nothing merges while it runs.)
    memo_seg: usize,
    memo_in: bool,
}

const FORWARDED: usize = 1;

impl Transmigration {
    #[inline]
    unsafe fn in_domain(&mut self, p: *mut u8) -> bool {
        let seg = segment_addr(p);
        if seg == self.memo_seg {
            return self.memo_in;
        }
        // SAFETY: `p` is an object start in a live region (graph invariant).
        let inside = unsafe {
            let b = block_of_ptr(p);
            match self.domain {
                Domain::Region(src) => b == src,
                Domain::YoungerThan(rank) => (*b).rank > rank && b != self.dst,
            }
        };
        self.memo_seg = seg;
        self.memo_in = inside;
        inside
    }

    /// The forwarding address stored in `p`'s header, if any.
    #[inline]
    unsafe fn forwarded(p: *mut u8) -> Option<*mut u8> {
        // SAFETY: the header word is read whole as a pointer, so a stored
        // forwarding address keeps its provenance and an ordinary header
        // reads as a provenance-free word.
        let w = unsafe { p.cast::<*mut u8>().read() };
        (w.addr() & FORWARDED != 0).then(|| w.map_addr(|a| a & !FORWARDED))
    }

    #[inline]
    unsafe fn set_forward(&mut self, src: *mut u8, copy: *mut u8) {
        // SAFETY: `src` is a live object whose original header is now in
        // `copy`; the restore log puts it back.
        unsafe {
            src.cast::<*mut u8>()
                .write(copy.map_addr(|a| a | FORWARDED))
        };
        self.log.push(src);
    }

    /// The choke point: the new value for an edge that held `v`.
    #[inline]
    unsafe fn forward(&mut self, v: Value) -> MemResult<Value> {
        if !v.is_heap() {
            return Ok(v);
        }
        let p = v.heap_ptr();
        // SAFETY: graph invariant: heap values point at live objects.
        unsafe {
            if !self.in_domain(p) {
                return Ok(v); // external root: never rewritten
            }
            if let Some(copy) = Self::forwarded(p) {
                return Ok(Value::from_heap(copy));
            }
            let hdr = p.cast::<u64>().read();
            let m = meta_of(header_tag(hdr))?;
            let copy = (m.clone)(p, hdr, self.dst)?;
            self.bytes += copy_size(copy, hdr);
            self.set_forward(p, copy);
            self.stack.push(copy);
            Ok(Value::from_heap(copy))
        }
    }

    #[inline(always)]
    unsafe fn rewrite(&mut self, slot: *mut Value) -> MemResult<()> {
        // SAFETY: `slot` is a value slot of a copy we own.
        unsafe {
            let old = slot.read();
            // Immediates are the common case in list cars: no call.
            if !old.is_heap() {
                return Ok(());
            }
            let v = self.forward(old)?;
            slot.write(v);
        }
        Ok(())
    }

    /// Rewrite every slot of `copy`; pairs run the micro-kernel.
    unsafe fn scan(&mut self, mut copy: *mut u8) -> MemResult<()> {
        // SAFETY: `copy` is a fresh copy in dst with a restored header.
        unsafe {
            loop {
                let hdr = copy.cast::<u64>().read();
                if header_tag(hdr) == HeapTag::Pair as u8 {
                    self.rewrite(field(copy, 0))?;
                    let cdr_slot = field(copy, 1);
                    let next = cdr_slot.read();
                    // Micro-kernel: an unvisited in-domain pair in the cdr is
                    // copied and scanned right here instead of pushed.
                    if next.is_heap() && self.in_domain(next.heap_ptr()) {
                        let np = next.heap_ptr();
                        if Self::forwarded(np).is_none() {
                            let nh = np.cast::<u64>().read();
                            if header_tag(nh) == HeapTag::Pair as u8 {
                                let c = alloc_raw(self.dst, HDR + 16)?;
                                c.cast::<u64>().write(make_header(HeapTag::Pair, 0));
                                std::ptr::copy_nonoverlapping(field(np, 0), field(c, 0), 2);
                                self.bytes += (HDR + 16) as u64;
                                self.set_forward(np, c);
                                cdr_slot.write(Value::from_heap(c));
                                copy = c;
                                continue;
                            }
                        }
                    }
                    return self.rewrite(cdr_slot);
                }
                let m = meta_of(header_tag(hdr))?;
                let s = (m.trace)(copy, hdr);
                for i in 0..s.count {
                    let group = s.base.add(i * s.stride);
                    for j in 0..s.width {
                        self.rewrite(group.add(j))?;
                    }
                }
                return Ok(());
            }
        }
    }

    unsafe fn run(&mut self, root: Value) -> MemResult<Value> {
        // SAFETY: per `transmigrate_into`'s contract.
        unsafe {
            let out = self.forward(root)?;
            while let Some(c) = self.stack.pop() {
                self.scan(c)?;
            }
            Ok(out)
        }
    }

    /// Put every forwarded source header back.
    unsafe fn restore(&mut self) {
        for &src in &self.log {
            // SAFETY: each logged object's header holds its copy's address;
            // the copy carries the original header word.
            unsafe {
                let copy = src.cast::<*mut u8>().read().map_addr(|a| a & !FORWARDED);
                src.cast::<u64>().write(copy.cast::<u64>().read());
            }
        }
    }
}

fn copy_size(copy: *mut u8, hdr: u64) -> u64 {
    match HeapTag::from_u8(header_tag(hdr)) {
        Some(t) => crate::obj::object_size(t, hdr) as u64 + buffer_size(t, copy),
        None => 0,
    }
}

fn buffer_size(t: HeapTag, copy: *mut u8) -> u64 {
    // SAFETY: `copy` is a fresh copy of tag `t` with storage already laid out.
    unsafe {
        match t {
            HeapTag::Array => (crate::obj::array_parts(copy).0 * 8) as u64,
            HeapTag::Dict => (crate::obj::dict_view(copy).used * 8 * 3) as u64,
            _ => 0,
        }
    }
}

/// Copy the in-domain part of `root`'s graph into `dst`.
///
/// # Safety
/// `dst` must be a live control block owned by this thread, not in the
/// domain; every object reachable from `root` must be live.
pub(crate) unsafe fn transmigrate_into(
    root: Value,
    dst: *mut RegionBlock,
    domain: Domain,
) -> MemResult<Value> {
    let mut t = Transmigration {
        dst,
        domain,
        stack: Vec::new(),
        log: Vec::with_capacity(64),
        bytes: 0,
        memo_seg: 0,
        memo_in: false,
    };
    // SAFETY: per the contract; `restore` runs whatever `run` returned.
    let result = unsafe { t.run(root) };
    // SAFETY: as above.
    unsafe { t.restore() };
    let objects = t.log.len() as u64;
    let side = (t.log.capacity() + t.stack.capacity()) * std::mem::size_of::<*mut u8>();
    // SAFETY: dst is live.
    unsafe { note_transmigrated(dst, objects, t.bytes) };
    with_stats(|s| {
        s.transmigrations += 1;
        s.transmigrated_objects += objects;
        s.transmigrated_bytes += t.bytes;
        s.peak_transmigration_side_bytes = s.peak_transmigration_side_bytes.max(side);
    });
    result
}

/// Copy every object of `root`'s graph that lives in `src` into `dst`.
/// Pointers to objects outside `src` are kept as they are (external roots).
/// The copy shares no storage with `src`, so `src` may be freed afterwards
/// as far as the copy is concerned.
pub fn transmigrate(root: Value, src: Region, dst: Region) -> MemResult<Value> {
    let (s, d) = (src.block(), dst.block());
    if s == d {
        return Ok(root);
    }
    // SAFETY: both regions are live and owned by this thread; `root` is held
    // by the mutator, so its graph is live.
    unsafe { transmigrate_into(root, d, Domain::Region(s)) }
}

/// Copy every object of `root`'s graph that lives in a region younger than
/// `dst` into `dst`: afterwards `dst` (and anything older) may hold the
/// result without breaking the region order. This is the barrier's repair.
pub fn transmigrate_younger(root: Value, dst: Region) -> MemResult<Value> {
    let d = dst.block();
    // SAFETY: as in `transmigrate`.
    unsafe { transmigrate_into(root, d, Domain::YoungerThan((*d).rank)) }
}
