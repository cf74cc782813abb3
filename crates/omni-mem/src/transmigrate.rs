//! Transmigration: copy the part of a value graph that lives in a source
//! domain into a destination region (docs/CTRR_TRANSMIGRATION.md).
//!
//! * Iterative: an explicit work stack of copied objects; no recursion, so
//!   depth is bounded only by memory.
//! * Forwarding table = visited set, in the source headers:
//!   - a visited pair's header gets a *pair mark*: its tag byte unchanged,
//!     this session's epoch in bits 8..32 and where its copy is in bits
//!     32..64 (the copy's destination block, as an ordinal into `segs`,
//!     and its word offset there). Marks are not put back, and nothing
//!     else records them: a mark counts iff it has this session's epoch
//!     and lies in a region that takes marks (`region::marks_trusted`:
//!     this thread's, not a message region, first marked less than
//!     `MARK_WINDOW` sessions ago). Epochs repeat only `MARK_WINDOW`
//!     sessions apart, so no earlier session's mark there has this epoch.
//!     A pair in any other region is forwarded like other objects;
//!   - any other visited object's header holds its copy's address with
//!     bit 0 set (headers are even, so the mark is unambiguous); these are
//!     listed in a restore log and put back before returning, on success
//!     and on error.
//!
//!   One source object maps to exactly one copy, so sharing and cycles
//!   are preserved.
//! * Moves: a repair into an older region (`Domain::YoungerThan`, the
//!   barrier's and the boundaries' copies) leaves every source object it
//!   copies *moved*: its header keeps its copy's address with bit 0 set,
//!   for good (no pair marks, no restore). The copy is then the object:
//!   every accessor follows the move (`obj::resolve`), `eq?` compares
//!   what both sides resolve to, and a later repair of the original takes
//!   the copy instead of copying again. So a mutable object that escapes
//!   twice, or is mutated after it escaped, stays one object. A move
//!   points from a younger region into an older one, the direction every
//!   region may point in. Copies into a slot region (which compaction may
//!   free before the source dies), into a message region (another
//!   thread's) and between two given regions (`transmigrate`, whose
//!   destination may die first) leave no moves.
//!   A forwarding address met while copying names either this session's
//!   copy (in the destination: kept) or an earlier move's (followed, and
//!   decided again: the copy may itself lie in the domain).
//! * External-root rule: a pointer to an object outside the domain is kept
//!   as is and never followed.
//! * One edge decision: external -> kept, forwarded -> the forwarding
//!   address, else clone, forward and push. `forward` makes it for the
//!   generic path (through `rewrite`, its one slot writer); the pair
//!   micro-kernel makes it in line for pair-to-pair edges and calls
//!   `forward` for the rest.

use crate::error::MemResult;
use crate::meta::meta_of;
use crate::moves::Remembered;
use crate::obj::{field, header_tag, make_header, HeapTag, HDR};
use crate::region::{
    alloc_raw, block_of_ptr, bump_window, marks_trusted, note_transmigrated, owned_by,
    segment_addr, segment_region, set_bump_cur, thread_token, with_stats, Region, RegionBlock,
};
use crate::trace::TraceKind;
use crate::value::Value;

/// Which objects are copied.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Domain {
    /// Objects in this region and in the slot regions it owns (slots.rs),
    /// which hold what its containers were given and die with it.
    Region(*mut RegionBlock),
    /// Objects in any region younger (higher rank) than this rank: what the
    /// barrier needs so the copy's external edges all point to older regions.
    YoungerThan(u64),
    /// Every object outside the destination: what a closed (message)
    /// region needs, since it may point into no other region.
    AllBut,
}

/// A session's state. (Its fields are in the compiler's order: with
/// `#[repr(C)]` (declaration order) the same code measured list_100k 3.04
/// ns per object against 2.53 ns, and tree_d20 4.47 against 4.2, with the
/// same instruction counts: a layout effect, to measure again when the
/// kernel changes; docs/BENCHMARKS.md, thirteenth session.)
struct Transmigration<const MOVES: bool> {
    dst: *mut RegionBlock,
    domain: Domain,
    /// Copies whose slots still hold source values.
    stack: Vec<*mut u8>,
    /// Source objects whose headers hold forwarding addresses.
    log: Vec<*mut u8>,
    /// The destination blocks that hold marked pairs' copies: a pair
    /// mark's ordinal indexes this (`SEG_SIZE`-aligned addresses, with
    /// the destination's provenance).
    segs: Vec<*mut u8>,
    /// The block of the last pair copy marked (0: none yet), and the mark
    /// bits common to every copy in it: tag, epoch and its ordinal.
    mark_seg: usize,
    mark_base: u64,
    /// `mark_seg` while `memo_in_fast`, else 1 (no block's address): a
    /// pair is marked in line iff its copy's block is this, one compare.
    mark_seg_if_fast: usize,
    /// Pairs marked in this session.
    pair_marks: u64,
    /// The low half of this transmigration's pair marks: the pair tag and
    /// the epoch (`next_session`).
    mark_lo: u32,
    /// This session's number on this thread, and the thread's token: what
    /// `marks_trusted` asks of a region.
    session: u64,
    owner: u64,
    bytes: u64,
    /// Domain memo, keyed by the region a segment was made for
    /// (`segment_region`, read from the segment's header): the last one
    /// looked up that is in the domain, and the last one that is not.
    /// Most graphs lie in few regions, so most domain tests are one load
    /// and one compare, even for a tree whose walk changes segment at
    /// nearly every step. (A segment's region never changes during a
    /// session: nothing merges while it runs. Null is no region.)
    memo_in: *mut RegionBlock,
    memo_out: *mut RegionBlock,
    /// Whether the region of `memo_in` takes pair marks
    /// (`region::marks_trusted`). It is always that of the object last
    /// found in the domain, which is the one the kernel then marks or
    /// asks about.
    memo_in_fast: bool,
    /// The region last asked `marks_trusted`, and its answer (the memo
    /// may alternate between regions merged into one). `memo_in_fast`
    /// always equals `fast_block_ok`; folding the two into one field, with
    /// `mark_seg_if_fast` set only when the answer changes, compiled to 6
    /// more instructions per tree object and tree_d20 16% slower (twenty-
    /// first session), so both stay.
    fast_block: *mut RegionBlock,
    fast_block_ok: bool,
    /// Source objects moved: put back only if the session fails, since
    /// its copies are then unfinished.
    moves: Vec<*mut u8>,
    /// When `dst` is a slot region: the moves made into it, with their
    /// originals' regions, remembered for its compaction (moves.rs).
    into_slots: Vec<Remembered>,
}

/// Bit 0 of a forwarded header: the one bit a move keeps (`obj::MOVED`).
const FORWARDED: usize = crate::obj::MOVED;
const PAIR_TAG: usize = HeapTag::Pair as usize;
const PAIR_BYTES: usize = HDR + 16;
/// A pair mark: bits 0..8 the pair tag, 8..32 the epoch, 32..53 the
/// ordinal of its copy's block in `segs`, 53..64 the copy's offset in
/// that block in words.
const ORD_SHIFT: u32 = 32;
const ORD_MASK: u64 = (1 << 21) - 1;
const OFF_SHIFT: u32 = 53;
const SEG_SIZE: usize = crate::region::SEGMENT_SIZE;
// A copy's word offset in its block is exactly its address bits 3..14, so
// `addr << (OFF_SHIFT - 3)` puts it in bits 53..64 and shifts the rest out.
const _: () = assert!(SEG_SIZE == 1 << (64 - OFF_SHIFT + 3));
/// Blocks a session may mark copies in (2^21 × 16 KiB = 32 GiB of
/// copies); copies past that are forwarded like other objects (logged and
/// restored). The crate's unit tests use one block, so that path runs.
const MAX_MARK_SEGS: usize = if cfg!(test) { 1 } else { ORD_MASK as usize + 1 };
/// Sessions whose numbers differ by less than this have different epochs
/// (`epoch_of_session`); a region whose first marking session is this
/// many sessions old takes no more marks (`region::marks_trusted`).
const MARK_WINDOW: u64 = (1 << 24) - 1;

thread_local! {
    /// The number of this thread's last transmigration session. It only
    /// grows (64 bits: it never wraps), which `marks_trusted` relies on.
    static MARK_SESSION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The epoch of session `s`: 1 ..= `MARK_WINDOW` (0 would make an
/// unmarked pair header, 2, read as a mark).
fn epoch_of_session(s: u64) -> u32 {
    (s % MARK_WINDOW) as u32 + 1
}

/// A new session's number, and the low half of its pair marks: the pair
/// tag and its epoch.
fn next_session() -> (u64, u32) {
    let s = MARK_SESSION.with(|c| {
        let s = c.get() + 1;
        c.set(s);
        s
    });
    (s, PAIR_TAG as u32 | epoch_of_session(s) << 8)
}

/// `MOVES`: the session leaves moves (see the module doc) instead of
/// restored forwardings and pair marks, except in message regions
/// (`movable`). A parameter, so that sessions between two given regions
/// run the kernel without a test for it.
impl<const MOVES: bool> Transmigration<MOVES> {
    /// Whether object `p` is one this session copies (`Domain`).
    ///
    /// # Safety
    /// `p` is a live object of this thread (or of a process region).
    #[inline]
    unsafe fn in_domain(&mut self, p: *mut u8) -> bool {
        // SAFETY: `p` is an object start in a live region (graph invariant).
        unsafe {
            let key = segment_region(p);
            if key == self.memo_in {
                return true;
            }
            if key == self.memo_out {
                return false;
            }
            let b = block_of_ptr(p);
            let inside = match self.domain {
                Domain::Region(src) => b == src || owned_by(b, src),
                Domain::YoungerThan(rank) => (*b).rank > rank && b != self.dst,
                Domain::AllBut => b != self.dst,
            };
            if inside {
                self.memo_in = key;
                if b != self.fast_block {
                    // A session that leaves moves marks no pair, so it
                    // takes no mark for its own either.
                    self.fast_block = b;
                    self.fast_block_ok =
                        !MOVES && marks_trusted(b, self.owner, self.session, MARK_WINDOW);
                }
                self.memo_in_fast = self.fast_block_ok;
                self.mark_seg_if_fast = if self.memo_in_fast { self.mark_seg } else { 1 };
            } else {
                self.memo_out = key;
            }
            inside
        }
    }

    /// Whether source object `p` may be left moved: it is not in a message
    /// region, which may travel to another thread whole and must then
    /// point nowhere outside itself. A move into a slot region is
    /// remembered for its compaction (moves.rs).
    ///
    /// # Safety
    /// `p` is a live object.
    #[inline]
    unsafe fn movable(&mut self, p: *mut u8) -> bool {
        // SAFETY: per the contract; `dst` is live.
        unsafe {
            let from = block_of_ptr(p);
            if (*from).closed {
                return false;
            }
            if !(*self.dst).parent.is_null() {
                self.into_slots.push(Remembered { original: p, from });
            }
            true
        }
    }

    /// The new value of an edge to an object forwarded to `copy`: this
    /// session's copy (in dst, out of the domain), or an earlier move's,
    /// which is decided again (it may itself lie in the domain).
    ///
    /// # Safety
    /// `copy` is what a forwarded header or pair mark of this session
    /// names: a live object.
    #[inline(never)]
    unsafe fn forwarded_edge(&mut self, copy: *mut u8) -> MemResult<Value> {
        // SAFETY: `copy` is a live object (a copy outlives what moved to it).
        unsafe {
            if self.in_domain(copy) {
                return self.forward(Value::from_heap(copy));
            }
            self.moved_target(copy);
            Ok(Value::from_heap(copy))
        }
    }

    /// A forwarding was followed to `p`, out of the domain, for an edge of
    /// a copy: unless `p` is this session's copy, it is an earlier move's,
    /// which may lie in a slot region that the edge now points into
    /// without a read: pin it (`slots::note_moved_to`).
    ///
    /// # Safety
    /// `p` is a live object.
    #[cold]
    #[inline(never)]
    unsafe fn moved_target(&self, p: *mut u8) {
        // SAFETY: per the contract.
        unsafe {
            if block_of_ptr(p) != self.dst {
                crate::slots::note_moved_to(p);
            }
        }
    }

    /// The copy of `p` made by this transmigration, if any.
    ///
    /// # Safety
    /// `p` is a live object, the one last found in the domain
    /// (`pair_forwarded` reads its region's answer from the memo).
    #[inline]
    unsafe fn forwarded(&self, p: *mut u8) -> Option<*mut u8> {
        // SAFETY: the header word is read whole as a pointer, so a stored
        // forwarding address keeps its provenance and an ordinary header
        // reads as a provenance-free word.
        let w = unsafe { p.cast::<*mut u8>().read() };
        if w.addr() & FORWARDED != 0 {
            return Some(w.map_addr(|a| a & !FORWARDED));
        }
        self.pair_forwarded(w.addr())
    }

    /// The copy of the pair whose header word is `w`, if this
    /// transmigration made one: `w` is a mark of this session's epoch in a
    /// region that takes marks (`memo_in_fast`: the pair was the last
    /// object found in the domain). Such a region holds marks of this
    /// thread's sessions only, all less than `MARK_WINDOW` sessions apart
    /// (`region::marks_trusted`), so no earlier session's mark has this
    /// epoch. The mark locates the copy: block `segs[ordinal]`, word
    /// `offset`.
    #[inline(always)]
    fn pair_forwarded(&self, w: usize) -> Option<*mut u8> {
        if w as u32 != self.mark_lo || !self.memo_in_fast {
            return None;
        }
        let w = w as u64;
        let off = ((w >> OFF_SHIFT) as usize) << 3;
        self.segs
            .get(((w >> ORD_SHIFT) & ORD_MASK) as usize)
            .map(|base| base.map_addr(|a| a + off))
    }

    /// Record `copy` as source pair `p`'s copy: a pair mark if `p`'s
    /// region takes them, else a forwarding (logged and restored).
    ///
    /// # Safety
    /// `p` is a live source pair of the domain not yet forwarded, the
    /// object last found in the domain; `copy` its copy in dst.
    #[inline(always)]
    unsafe fn mark_pair(&mut self, p: *mut u8, copy: *mut u8) {
        if MOVES
            || (segment_addr(copy) != self.mark_seg_if_fast
                && !(self.memo_in_fast && self.new_mark_seg(copy)))
        {
            // SAFETY: per this function's contract.
            unsafe { self.forward_pair(p, copy) };
            return;
        }
        self.pair_marks += 1;
        // SAFETY: `p` is a live source pair; its mark keeps its tag byte, so the pair reads as
        // before to everything but a transmigration.
        unsafe {
            p.cast::<u64>()
                .write(self.mark_base | (copy.addr() as u64) << (OFF_SHIFT - 3));
        }
    }

    /// Start marking copies in the block holding `copy`: give it the next
    /// ordinal; false once `MAX_MARK_SEGS` blocks have one.
    #[cold]
    #[inline(never)]
    fn new_mark_seg(&mut self, copy: *mut u8) -> bool {
        let ordinal = self.segs.len();
        if ordinal >= MAX_MARK_SEGS {
            return false;
        }
        self.segs.push(copy.map_addr(|a| a & !(SEG_SIZE - 1)));
        self.mark_seg = segment_addr(copy);
        self.mark_seg_if_fast = self.mark_seg;
        self.mark_base = self.mark_lo as u64 | (ordinal as u64) << ORD_SHIFT;
        true
    }

    /// `mark_pair` by forwarding: a move in a session that leaves moves,
    /// else logged and restored.
    ///
    /// # Safety
    /// As `mark_pair`.
    #[inline]
    unsafe fn forward_pair(&mut self, p: *mut u8, copy: *mut u8) {
        self.bytes += PAIR_BYTES as u64;
        // SAFETY: `p` is a live source pair whose contents `copy` carries.
        unsafe { self.set_forward(p, copy) };
    }

    /// Forward `src` to `copy`: for this session (put back by `restore`),
    /// or for good (a move) when this session leaves moves, `src` is
    /// movable and the session succeeds.
    ///
    /// # Safety
    /// `src` is a live source object of the domain not yet forwarded,
    /// `copy` its copy in dst.
    #[inline]
    unsafe fn set_forward(&mut self, src: *mut u8, copy: *mut u8) {
        // SAFETY: `src` is a live object whose original header is now in
        // `copy`; the restore log puts it back, or, for a move, every
        // reader follows it (`obj::resolve`).
        unsafe {
            src.cast::<*mut u8>()
                .write(copy.map_addr(|a| a | FORWARDED));
            if MOVES && self.movable(src) {
                self.moves.push(src);
            } else {
                self.log.push(src);
            }
        }
    }

    /// The choke point: the new value for an edge that held `v`.
    ///
    /// # Safety
    /// `v` is immediate or points to a live object (of this thread or a
    /// process region).
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
            if let Some(copy) = self.forwarded(p) {
                return self.forwarded_edge(copy);
            }
            let hdr = p.cast::<u64>().read();
            let copy = if header_tag(hdr) == HeapTag::Pair as u8 {
                // Pair micro-kernel, clone half: no metadata dispatch.
                let c = alloc_raw(self.dst, PAIR_BYTES)?;
                c.cast::<u64>().write(make_header(HeapTag::Pair, 0));
                std::ptr::copy_nonoverlapping(field(p, 0), field(c, 0), 2);
                self.mark_pair(p, c);
                c
            } else {
                let m = meta_of(header_tag(hdr))?;
                let c = (m.clone)(p, hdr, self.dst)?;
                self.bytes += copy_size(c, hdr);
                self.set_forward(p, c);
                c
            };
            self.stack.push(copy);
            Ok(Value::from_heap(copy))
        }
    }

    /// Rewrite one edge: `slot` gets the new value of what it held.
    ///
    /// # Safety
    /// `slot` is a value slot of a copy this session made.
    #[inline(always)]
    unsafe fn rewrite(&mut self, slot: *mut Value) -> MemResult<()> {
        // SAFETY: `slot` is a value slot of a copy we own.
        unsafe {
            let old = slot.read();
            // Immediates are the common case in list cars: no call.
            if !old.has_heap_tag() {
                return Ok(());
            }
            let v = self.forward(old)?;
            slot.write(v);
        }
        Ok(())
    }

    /// Rewrite every slot of `copy`; pairs run the micro-kernel.
    ///
    /// # Safety
    /// `copy` is a copy this session made, its header restored.
    unsafe fn scan(&mut self, copy: *mut u8) -> MemResult<()> {
        // SAFETY: `copy` is a fresh copy in dst with a restored header.
        unsafe {
            let hdr = copy.cast::<u64>().read();
            if header_tag(hdr) == HeapTag::Pair as u8 {
                return self.pair_kernel(copy);
            }
            let m = meta_of(header_tag(hdr))?;
            let s = (m.trace)(copy, hdr);
            for i in 0..s.count {
                let group = s.base.add(i * s.stride);
                for j in 0..s.width {
                    self.rewrite(group.add(j))?;
                }
            }
            Ok(())
        }
    }

    /// The pair micro-kernel. For the current copy: its car, if an
    /// unvisited in-domain pair, is copied in line (marked, pushed for a
    /// later scan), else rewritten through the choke point;
    /// while its cdr is an unvisited in-domain pair, that pair is copied in
    /// line and becomes the current copy (no push, no metadata dispatch).
    ///
    /// Stores per list pair: the copy's header and car, the previous
    /// copy's cdr (written once, with its final value), the source's
    /// mark.
    ///
    /// # Safety
    /// `copy` is a fresh pair copy in dst whose slots hold source values.
    unsafe fn pair_kernel(&mut self, mut copy: *mut u8) -> MemResult<()> {
        let pair_header = make_header(HeapTag::Pair, 0);
        // SAFETY: per the contract; of a source pair only the header is overwritten (with a pair
        // mark, which keeps its tag byte). `copy`'s cdr slot is written exactly once per copy, on
        // every path out of an iteration (`next` is its source value until then).
        unsafe {
            // The current copy's car and cdr are kept in registers (read from
            // the source), so the loop never reads back what it just wrote;
            // the destination's bump window is kept in registers too and
            // handed back around anything else that may allocate.
            let mut car = field(copy, 0).read();
            let mut next = field(copy, 1).read();
            let dst = self.dst;
            let (mut cur, mut end) = bump_window(dst);
            // The car's new value from a call that may allocate: the bump
            // window is handed back around it; on an error the copy's cdr
            // gets its source value and the loop ends.
            macro_rules! car_edge {
                ($edge:expr) => {{
                    set_bump_cur(dst, cur);
                    let r = $edge;
                    (cur, end) = bump_window(dst);
                    match r {
                        Ok(v) => field(copy, 0).write(v),
                        Err(e) => {
                            field(copy, 1).write(next);
                            break Err(e);
                        }
                    }
                }};
            }
            loop {
                if car.has_heap_tag() {
                    let cp = car.heap_ptr();
                    prefetch_tree_ahead(cp, cur);
                    if self.in_domain(cp) {
                        let w = cp.cast::<*mut u8>().read();
                        if w.addr() & FORWARDED != 0 {
                            // This session's copy, or an earlier move's
                            // (`forwarded_edge` decides it again).
                            car_edge!(self.forwarded_edge(w.map_addr(|a| a & !FORWARDED)));
                        } else if let Some(c) = self.pair_forwarded(w.addr()) {
                            field(copy, 0).write(Value::from_heap(c));
                        } else if w.addr() & 0xff == PAIR_TAG
                            && end.addr() - cur.addr() >= PAIR_BYTES
                        {
                            // A car pair (tree shapes): copied here, its
                            // slots scanned when it is popped; a pair of
                            // two immediates (a tree's leaf, an
                            // association) is final as copied and is not
                            // pushed.
                            let c = cur;
                            cur = cur.add(PAIR_BYTES);
                            let (ccar, ccdr) = (field(cp, 0).read(), field(cp, 1).read());
                            c.cast::<u64>().write(pair_header);
                            field(c, 0).write(ccar);
                            field(c, 1).write(ccdr);
                            self.mark_pair(cp, c);
                            if ccar.has_heap_tag() || ccdr.has_heap_tag() {
                                self.stack.push(c);
                            }
                            field(copy, 0).write(Value::from_heap(c));
                        } else {
                            car_edge!(self.forward(car));
                        }
                    }
                }
                if next.has_heap_tag() {
                    let np = next.heap_ptr();
                    if self.in_domain(np) {
                        let w = np.cast::<*mut u8>().read();
                        if w.addr() & 0xff == PAIR_TAG
                            && self.pair_forwarded(w.addr()).is_none()
                        {
                            let c = if cur.addr() + PAIR_BYTES <= end.addr() {
                                let c = cur;
                                cur = cur.add(PAIR_BYTES);
                                c
                            } else {
                                set_bump_cur(dst, cur);
                                let r = alloc_raw(dst, PAIR_BYTES);
                                (cur, end) = bump_window(dst);
                                match r {
                                    Ok(c) => c,
                                    Err(e) => {
                                        field(copy, 1).write(next);
                                        break Err(e);
                                    }
                                }
                            };
                            prefetch_near(np);
                            let ncar = field(np, 0).read();
                            let ncdr = field(np, 1).read();
                            c.cast::<u64>().write(pair_header);
                            field(c, 0).write(ncar);
                            self.mark_pair(np, c);
                            field(copy, 1).write(Value::from_heap(c));
                            copy = c;
                            car = ncar;
                            next = ncdr;
                            continue;
                        }
                    }
                }
                set_bump_cur(dst, cur);
                field(copy, 1).write(next);
                break self.rewrite(field(copy, 1));
            }
        }
    }

    /// Copy what each root reaches in the domain and rewrite the roots.
    ///
    /// # Safety
    /// As `transmigrate_into`: every root is immediate or points to a live
    /// object.
    unsafe fn run_all(&mut self, roots: &mut [Value]) -> MemResult<()> {
        // SAFETY: per `transmigrate_into`'s contract.
        unsafe {
            for r in roots.iter_mut() {
                *r = self.forward(*r)?;
                while let Some(c) = self.stack.pop() {
                    self.scan(c)?;
                }
            }
            Ok(())
        }
    }
}

/// Put every forwarded source header of `log` back (pair marks stay).
///
/// # Safety
/// Each object of `log` is live and forwarded to a live copy by the
/// session that logged it.
unsafe fn restore(log: &[*mut u8]) {
    for &src in log {
        // SAFETY: each logged object's header holds its copy's address;
        // the copy carries the original header word.
        unsafe {
            let copy = src.cast::<*mut u8>().read().map_addr(|a| a & !FORWARDED);
            src.cast::<u64>().write(copy.cast::<u64>().read());
        }
    }
}

/// Ask for the cache lines around `p` ahead of use. A list consed in one
/// region lies in descending addresses, so the pairs after `p` in the
/// chain are usually just below it: walking a chain is a chase of
/// dependent loads, and this turns its misses into hits. A hint only: it
/// never faults and changes no memory.
#[inline(always)]
fn prefetch_near(p: *mut u8) {
    prefetch::<false>(p.wrapping_sub(256));
}

/// Ask, at a car pair `cp` (a tree's step down), for the source lines
/// just above it and for the destination line 2 KiB past the bump
/// pointer `cur`. A tree built a level at a time lies in ascending
/// addresses within each level, and the walk goes through each level in
/// order, interleaving the levels, which hides it from the hardware's
/// stream detection; the copies are written in order, and asking for
/// their lines early takes the wait for them off the walk. (The
/// destination's is a write hint, `prefetchw`, where the build target has
/// it; on the x86-64 baseline it is a plain prefetch, and `prefetchw`
/// measured the same.) Measured: tree_d20 -19%, tree_d15 -11%, lists
/// within noise (BENCHMARKS.md, twenty-first session). Hints only.
#[inline(always)]
fn prefetch_tree_ahead(cp: *mut u8, cur: *mut u8) {
    prefetch::<false>(cp.wrapping_add(256));
    prefetch::<true>(cur.wrapping_add(2048));
}

/// A prefetch of the line holding `p`, for reading or for writing.
#[inline(always)]
fn prefetch<const WRITE: bool>(p: *mut u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch is a hint that never faults and changes no memory, whatever the
    // address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        if WRITE {
            _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
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
    let mut roots = [root];
    // SAFETY: forwarded contract.
    unsafe { transmigrate_all(&mut roots, dst, domain)? };
    Ok(roots[0])
}

/// Transmigrate several roots in one session: one forwarding table, so
/// objects shared between roots are copied once and stay shared.
///
/// # Safety
/// As `transmigrate_into`, for every root.
pub(crate) unsafe fn transmigrate_all(
    roots: &mut [Value],
    dst: *mut RegionBlock,
    domain: Domain,
) -> MemResult<()> {
    // SAFETY: dst is live (contract).
    let moves = matches!(domain, Domain::YoungerThan(_)) && unsafe { !(*dst).closed };
    // SAFETY: forwarded contract.
    unsafe {
        if moves {
            session::<true>(roots, dst, domain)
        } else {
            session::<false>(roots, dst, domain)
        }
    }
}

/// One transmigration session, leaving moves or not.
///
/// # Safety
/// As `transmigrate_all`.
unsafe fn session<const MOVES: bool>(
    roots: &mut [Value],
    dst: *mut RegionBlock,
    domain: Domain,
) -> MemResult<()> {
    let spare = SPARE.take().unwrap_or_default();
    // A session that leaves moves marks no pair and takes no mark
    // (`memo_in_fast` stays false): it needs no number.
    let (session, mark_lo, owner) = match MOVES {
        true => (0, 0, 0),
        false => {
            let (session, mark_lo) = next_session();
            (session, mark_lo, thread_token())
        }
    };
    let mut t = Transmigration::<MOVES> {
        dst,
        domain,
        stack: spare.stack,
        log: spare.log,
        segs: spare.segs,
        mark_seg: 0,
        mark_base: 0,
        mark_seg_if_fast: 1,
        pair_marks: 0,
        mark_lo,
        session,
        owner,
        bytes: 0,
        memo_in: std::ptr::null_mut(),
        memo_out: std::ptr::null_mut(),
        memo_in_fast: false,
        fast_block: std::ptr::null_mut(),
        fast_block_ok: false,
        moves: spare.moves,
        into_slots: spare.into_slots,
    };
    // SAFETY: per the contract; `restore` runs whatever `run` returned.
    let result = unsafe { t.run_all(roots) };
    // SAFETY: as above. A failed session's copies are unfinished: its
    // moves are put back too.
    unsafe {
        restore(&t.log);
        if result.is_err() {
            restore(&t.moves);
        } else if !t.into_slots.is_empty() {
            crate::moves::remember(dst, &t.into_slots);
        }
    }
    let objects = t.log.len() as u64 + t.pair_marks + t.moves.len() as u64;
    t.bytes += t.pair_marks * PAIR_BYTES as u64;
    let side = (t.log.capacity() + t.stack.capacity() + t.moves.capacity() + t.segs.capacity())
        * std::mem::size_of::<*mut u8>()
        + t.into_slots.capacity() * std::mem::size_of::<Remembered>();
    // SAFETY: dst is live.
    unsafe { note_transmigrated(dst, objects, t.bytes) };
    // SAFETY: dst is live.
    crate::region::trace_event(
        unsafe { crate::region::block_id(dst) },
        TraceKind::Transmigrate {
            objects,
            bytes: t.bytes,
        },
    );
    with_stats(|s| {
        s.transmigrations += 1;
        s.transmigrated_objects += objects;
        s.transmigrated_bytes += t.bytes;
        s.peak_transmigration_side_bytes = s.peak_transmigration_side_bytes.max(side);
    });
    if side <= SPARE_MAX_BYTES {
        let mut spare = SideBuffers {
            stack: t.stack,
            log: t.log,
            segs: t.segs,
            moves: t.moves,
            into_slots: t.into_slots,
        };
        spare.stack.clear();
        spare.log.clear();
        spare.segs.clear();
        spare.moves.clear();
        spare.into_slots.clear();
        SPARE.set(Some(spare));
    }
    result
}

/// The side buffers of a transmigration (work stack, restore logs), kept
/// per thread between transmigrations so that the barrier's many small
/// repairs do not each allocate and free them (that was a fifth of a
/// store-heavy program's instructions). Buffers that grew past
/// `SPARE_MAX_BYTES` in a big transmigration are dropped, not kept.
#[derive(Default)]
struct SideBuffers {
    stack: Vec<*mut u8>,
    log: Vec<*mut u8>,
    segs: Vec<*mut u8>,
    moves: Vec<*mut u8>,
    into_slots: Vec<Remembered>,
}

const SPARE_MAX_BYTES: usize = 64 * 1024;

thread_local! {
    static SPARE: std::cell::Cell<Option<SideBuffers>> = const { std::cell::Cell::new(None) };
}

/// Copy every object reachable from `roots` that lives in `src` into `dst`,
/// in one session (sharing between roots is preserved), and replace each
/// root by its image. This is compaction: afterwards nothing the roots
/// reach is in `src`, so `src` may be exited if nothing else points into
/// it (the caller's duty: see docs/REGION_COALESCE_POLICY.md).
pub fn transmigrate_roots(roots: &mut [Value], src: Region, dst: Region) -> MemResult<()> {
    let (s, d) = (src.block(), dst.block());
    if s == d {
        return Ok(());
    }
    // SAFETY: both regions are live and owned by this thread; the roots
    // are held by the mutator, so their graphs are live.
    unsafe { transmigrate_all(roots, d, Domain::Region(s)) }
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
    unsafe {
        let domain = if (*d).closed {
            Domain::AllBut
        } else {
            Domain::YoungerThan((*d).admit_rank)
        };
        transmigrate_into(root, d, domain)
    }
}

/// Copy every heap object reachable from `root` that is not already in
/// `dst` (a closed region) into `dst`: the whole graph, process regions
/// included. Used to build parcels.
///
/// # Safety
/// `dst` must be a live closed region owned by this thread; `root` must be
/// held by the mutator.
pub(crate) unsafe fn transmigrate_everything(
    root: Value,
    dst: *mut RegionBlock,
) -> MemResult<Value> {
    // SAFETY: forwarded contract.
    unsafe { transmigrate_into(root, dst, Domain::AllBut) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj::{alloc_pair, car, cdr, set_cdr};
    use crate::region::{merge, region_create, region_create_message, region_exit, region_of};
    use crate::testing::{assert_no_live_regions, int_list, list_ints};

    /// Let `n` sessions pass on this thread without a transmigration (the
    /// session number only grows, as in a long run).
    fn skip_sessions(n: u64) {
        MARK_SESSION.with(|c| c.set(c.get() + n));
    }

    /// The epoch the next transmigration on this thread will mark with.
    fn next_epoch() -> u32 {
        epoch_of_session(MARK_SESSION.with(|c| c.get()) + 1)
    }

    /// Let sessions pass until the next one marks with epoch `e`.
    fn skip_to_epoch(e: u32) {
        let w = MARK_WINDOW as i64;
        skip_sessions((e as i64 - next_epoch() as i64).rem_euclid(w) as u64);
        assert_eq!(next_epoch(), e);
    }

    fn header_of(p: Value) -> u64 {
        // SAFETY: `p` is a live pair.
        unsafe { p.heap_ptr().cast::<u64>().read() }
    }

    fn epoch_of(p: Value) -> u32 {
        (header_of(p) as u32) >> 8
    }

    /// The first `n` cars of `l` (fixnums), stopping early at its end.
    fn first_ints(mut l: Value, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while let (Some(a), true) = (car(l), out.len() < n) {
            out.push(a.as_fixnum().expect("a fixnum"));
            l = cdr(l).expect("a pair");
        }
        out
    }

    /// `(s . s)` with `s` = `(#t)`, in `r`: the root and `s`.
    fn root_sharing_a_pair(r: Region) -> (Value, Value) {
        let shared = alloc_pair(r, Value::TRUE, Value::EMPTY).expect("pair");
        (alloc_pair(r, shared, shared).expect("pair"), shared)
    }

    /// Copy a `root_sharing_a_pair` out of `src` into a new region, which
    /// must hold one copy of the shared pair; returns that region.
    fn copy_sharing_root(root: Value, src: Region) -> Region {
        let d = region_create();
        let c = transmigrate(root, src, d).expect("copy");
        assert_eq!(car(c), cdr(c), "one copy of the shared pair");
        assert_eq!(region_of(car(c).expect("pair")), Some(d));
        d
    }

    /// `l`'s pair `k` (from 0).
    fn nth_pair(mut l: Value, k: usize) -> Value {
        for _ in 0..k {
            l = cdr(l).expect("pair");
        }
        l
    }

    #[test]
    fn session_epochs_differ_within_the_window_and_are_never_zero() {
        let e = |s| epoch_of_session(s);
        assert_eq!(e(MARK_WINDOW - 1), MARK_WINDOW as u32);
        assert_eq!(e(MARK_WINDOW), 1);
        for s in [1, 77, MARK_WINDOW - 2, 5 * MARK_WINDOW + 3] {
            assert_ne!(e(s), 0);
            assert_ne!(e(s), e(s + 1));
            assert_ne!(e(s), e(s + MARK_WINDOW - 1), "a window apart but one");
            assert_eq!(e(s), e(s + MARK_WINDOW), "a window apart");
        }
    }

    /// Copy `m` = (100 ... 109 . tail) out of `src` with the session
    /// `MARK_WINDOW` after the one that marked `tail`'s pairs: the same
    /// epoch. The stale marks must not be taken for this session's (they
    /// would locate copies in an earlier, freed destination).
    fn copy_through_marks_a_window_old(src: Region, tail: Value, want_tail: &[i64]) {
        let mut m = tail;
        for i in (100..110).rev() {
            m = alloc_pair(src, Value::fixnum(i).expect("small"), m).expect("pair");
        }
        skip_to_epoch(epoch_of(tail));
        let d = region_create();
        let c = transmigrate(m, src, d).expect("copy");
        let want: Vec<i64> = (100..110).chain(want_tail.iter().copied()).collect();
        assert_eq!(first_ints(c, 40), want);
        assert_eq!(list_ints(c), want);
        assert_eq!(d.stats().transmigrated_objects_in, want.len() as u64);
        let mut v = c;
        while v != Value::EMPTY {
            assert_eq!(region_of(v), Some(d), "every pair is copied");
            v = cdr(v).expect("pair");
        }
        // The source's pairs were forwarded and put back, not marked.
        assert_eq!(header_of(m), make_header(HeapTag::Pair, 0));
        assert_eq!(header_of(tail), make_header(HeapTag::Pair, 0));
        region_exit(d);
    }

    /// Marks left by a session a window ago (the same epoch) are not taken
    /// for this one's: the region that holds them takes no marks any more.
    #[test]
    fn a_mark_a_window_old_is_not_a_forwarding() {
        let src = region_create();
        let l = int_list(src, 0, 10);
        let d1 = region_create();
        let e = next_epoch();
        let c1 = transmigrate(l, src, d1).expect("copy");
        assert_eq!(epoch_of(l), e, "the source keeps its pair marks");
        assert_eq!(list_ints(l), (0..10).collect::<Vec<_>>(), "and reads as before");
        assert_eq!(list_ints(c1), (0..10).collect::<Vec<_>>());
        region_exit(d1);
        copy_through_marks_a_window_old(src, nth_pair(l, 3), &[3, 4, 5, 6, 7, 8, 9]);
        // A cycle through the (now put back) pairs: (4 3 4 3 ...).
        let l3 = nth_pair(l, 3);
        set_cdr(cdr(l3).expect("pair"), l3).expect("same region");
        let d3 = region_create();
        let c3 = transmigrate(cdr(l3).expect("pair"), src, d3).expect("copy");
        let back = cdr(cdr(c3).expect("pair")).expect("pair");
        assert_eq!(back, c3, "the cycle closes on the copy");
        assert_eq!(region_of(cdr(c3).expect("pair")), Some(d3));
        assert_eq!(first_ints(c3, 4), vec![4, 3, 4, 3]);
        region_exit(d3);
        region_exit(src);
        assert_no_live_regions();
    }

    /// A merge keeps the older of the two regions' first marking sessions:
    /// marks that came in with the young region's objects age with them.
    #[test]
    fn a_merged_region_keeps_the_marks_window_of_its_objects() {
        let old = region_create();
        let young = region_create();
        let l = int_list(young, 0, 10);
        let d1 = region_create();
        let e = next_epoch();
        transmigrate(l, young, d1).expect("copy");
        assert_eq!(epoch_of(l), e);
        region_exit(d1);
        skip_sessions(10);
        // `old` has taken no marks yet; it now holds `young`'s marked pairs.
        merge(young, old).expect("merge");
        assert_eq!(region_of(l), Some(old));
        copy_through_marks_a_window_old(old, nth_pair(l, 5), &[5, 6, 7, 8, 9]);
        region_exit(young);
        region_exit(old);
        assert_no_live_regions();
    }

    /// A message region may move to another thread, whose sessions are
    /// numbered apart: its pairs are forwarded and put back, never marked.
    #[test]
    fn a_message_region_takes_no_marks() {
        let msg = region_create_message();
        let (root, shared) = root_sharing_a_pair(msg);
        let d = copy_sharing_root(root, msg);
        for p in [root, shared] {
            assert_eq!(header_of(p), make_header(HeapTag::Pair, 0), "put back, not marked");
        }
        region_exit(d);
        region_exit(msg);
        assert_no_live_regions();
    }

    /// Past `MAX_MARK_SEGS` destination blocks (one in unit tests) pairs
    /// are forwarded like other objects: logged, and their headers put back.
    #[test]
    fn pairs_past_the_mark_limit_are_forwarded_and_restored() {
        // Past one 16 KiB block (about 1,000 pairs): 2N spine pairs are four
        // blocks, or under Miri a little over two (enough for the counts
        // below, in half the interpreted time).
        const N: usize = if cfg!(miri) { 1200 } else { 2000 };
        let src = region_create();
        let shared = alloc_pair(src, Value::TRUE, Value::EMPTY).expect("pair");
        // (s 0 s 1 s 2 ...): 2N spine pairs, every other car shared.
        let mut l = Value::EMPTY;
        for i in (0..N as i64).rev() {
            l = alloc_pair(src, Value::fixnum(i).expect("small"), l).expect("pair");
            l = alloc_pair(src, shared, l).expect("pair");
        }
        let last = nth_pair(l, 2 * N - 1);
        set_cdr(last, l).expect("same region"); // and a cycle back
        let d = region_create();
        let e = next_epoch();
        let c = transmigrate(l, src, d).expect("copy");
        assert_eq!(d.stats().transmigrated_objects_in, 2 * N as u64 + 1);
        let (mut v, mut w) = (l, c);
        let (mut marked, mut put_back) = (0, 0);
        for k in 0..2 * N {
            assert_eq!(region_of(w), Some(d));
            if k % 2 == 0 {
                assert_eq!(car(w), car(c), "one copy of the shared pair");
                assert_eq!(region_of(car(w).expect("pair")), Some(d));
            } else {
                assert_eq!(car(w), car(v));
            }
            if header_of(v) == make_header(HeapTag::Pair, 0) {
                put_back += 1;
            } else {
                assert_eq!(epoch_of(v), e, "spine pair {k} is marked");
                assert_eq!(put_back, 0, "marks stop at the limit and do not resume");
                marked += 1;
            }
            v = cdr(v).expect("pair");
            w = cdr(w).expect("pair");
        }
        assert!(marked > 0 && put_back > N, "{marked} marked, {put_back} put back");
        assert_eq!(w, c, "the cycle closes on the copy");
        region_exit(src);
        region_exit(d);
        assert_no_live_regions();
    }

    /// Sharing is kept by marks at every epoch, across the wrap, while the
    /// region is inside its window; and by forwarding once it is not.
    #[test]
    fn a_shared_pair_is_copied_once_with_marks() {
        let src = region_create();
        let (root, shared) = root_sharing_a_pair(src);
        skip_to_epoch(MARK_WINDOW as u32 - 1);
        let copy_once = |marked: bool| {
            let e = next_epoch();
            let d = copy_sharing_root(root, src);
            if marked {
                assert_eq!(epoch_of(shared), e, "marked, not forwarded (epoch {e})");
            } else {
                assert_eq!(header_of(shared), make_header(HeapTag::Pair, 0), "put back");
            }
            region_exit(d);
            e
        };
        // `src`'s first session opens its window: epochs 2^24 - 2, 2^24 - 1, 1, 2.
        let epochs: Vec<u32> = (0..4).map(|_| copy_once(true)).collect();
        assert_eq!(epochs, [MARK_WINDOW as u32 - 1, MARK_WINDOW as u32, 1, 2]);
        // The session a window after the first has its epoch again.
        skip_sessions(MARK_WINDOW - 4);
        assert_eq!(copy_once(false), MARK_WINDOW as u32 - 1);
        region_exit(src);
        assert_no_live_regions();
    }
}
