//! Heap objects: layouts, constructors and accessors.
//!
//! Every object starts with one header word: `tag | flags << 8 | extra << 32`.
//! Tags are even, so bit 0 of a header is 0; transmigration uses that bit to
//! mark a header temporarily replaced by a forwarding address. A pair's
//! flags and extra are 0 and are never read: transmigration leaves a pair
//! mark there (docs/CTRR_TRANSMIGRATION.md), so read a pair's header only
//! through `header_tag`.
//!
//! | tag     | layout (words)                                   |
//! |---------|--------------------------------------------------|
//! | Pair    | hdr, car, cdr                                    |
//! | Str     | hdr(extra = byte length), UTF-8 bytes (padded)   |
//! | Float   | hdr, f64                                         |
//! | Int     | hdr, i64 (only integers outside fixnum range)    |
//! | Box     | hdr, value, slot region                          |
//! | Closure | hdr(extra = n), code, n captured values          |
//! | Array   | hdr, len, cap, data -> cap values (same region), slot region |
//! | Dict    | hdr, count, used, cap, entries, index, index_mask, slot region |
//!
//! Every constructor and mutator admits the values it stores through the
//! barrier (`barrier::admit` / `barrier::store`; for array and dict slots
//! and box slots `slots::admit_slot`, which may copy into the container's
//! slot region): rule 6 of DESIGN.md. Every read that hands an array, dict
//! or box slot's value out goes through `slots::note_read` (but
//! `box_borrow`, whose caller promises the value dies before the box's next
//! store).

use std::ptr;

use crate::barrier::{admit, admits_as_is, admits_fresh_as_is, store};
use crate::slots::{admit_slot, after_slot_store, note_read, note_removed, write_slot};
use crate::equal::{equal, hash_value};
use crate::error::{MemError, MemResult};
use crate::region::{alloc_raw, block_of_ptr, debug_check_live, try_bump, Region, RegionBlock};
use crate::value::Value;

pub(crate) const HDR: usize = 8;
const WORD: usize = 8;

/// Heap object tags (even numbers; see module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum HeapTag {
    Pair = 2,
    Str = 4,
    Float = 6,
    Int = 8,
    Array = 10,
    Dict = 12,
    Box = 14,
    Closure = 16,
}

impl HeapTag {
    pub(crate) fn from_u8(t: u8) -> Option<HeapTag> {
        Some(match t {
            2 => HeapTag::Pair,
            4 => HeapTag::Str,
            6 => HeapTag::Float,
            8 => HeapTag::Int,
            10 => HeapTag::Array,
            12 => HeapTag::Dict,
            14 => HeapTag::Box,
            16 => HeapTag::Closure,
            _ => return None,
        })
    }
}

/// What a value is, for dispatch in the language.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Fixnum,
    Char,
    Symbol,
    Empty,
    False,
    True,
    Nothing,
    Undefined,
    Pair,
    Str,
    Float,
    Int,
    Array,
    Dict,
    Box,
    Closure,
    /// A runtime handle (channel, thread): an immediate.
    Handle,
    /// Internal markers and foreign words; never produced for programs.
    Other,
}

#[inline]
pub(crate) fn make_header(tag: HeapTag, extra: u32) -> u64 {
    (tag as u64) | ((extra as u64) << 32)
}

/// # Safety
/// `p` must be the start of an object. Its header may be forwarded (the
/// word is then an odd address: no tag matches it).
#[inline]
pub(crate) unsafe fn header(p: *mut u8) -> u64 {
    // SAFETY: per the contract the first word is a header.
    unsafe { p.cast::<u64>().read() }
}

#[inline]
pub(crate) fn header_tag(h: u64) -> u8 {
    h as u8
}

#[inline]
pub(crate) fn header_extra(h: u64) -> u32 {
    (h >> 32) as u32
}

/// Pointer to word `i` after the header of object `p`.
#[inline]
pub(crate) fn field(p: *mut u8, i: usize) -> *mut Value {
    p.wrapping_add(HDR + WORD * i).cast()
}

#[inline]
fn tag_of(v: Value) -> Option<HeapTag> {
    if !v.has_heap_tag() {
        return None;
    }
    debug_check_live(v.heap_ptr());
    // SAFETY: a heap value the mutator holds is an object start in a live
    // region. A moved object's header is odd and names no tag: callers
    // that take objects resolve them first (`resolve`, `obj`).
    HeapTag::from_u8(header_tag(unsafe { header(v.heap_ptr()) }))
}

#[inline]
fn is(v: Value, t: HeapTag) -> bool {
    tag_of(v) == Some(t)
}

/// Header bit 0: the object was moved (transmigrate.rs) and its header
/// holds its copy's address with this bit set. Real headers are even. (A
/// transmigration's own forwardings use the same bit while it runs.)
pub(crate) const MOVED: usize = 1;

/// The copy object `p`'s first word names, if that word is a forwarding
/// (bit 0 set): one step of a chain of moves.
///
/// # Safety
/// `p` is the start of a live object.
#[inline(always)]
pub(crate) unsafe fn moved_to(p: *mut u8) -> Option<*mut u8> {
    // SAFETY: per the contract; the word is read whole as a pointer, so a
    // forwarding keeps its provenance and a header reads as a
    // provenance-free word.
    let w = unsafe { p.cast::<*mut u8>().read() };
    (w.addr() & MOVED != 0).then(|| w.map_addr(|a| a & !MOVED))
}

/// The object `v` stands for: `v` itself, or, when `v` is a moved
/// original, its copy (a copy may have moved on again: the chain is
/// followed). Immediates are themselves. Every accessor that takes an
/// object resolves it, so a moved original reads, compares and updates
/// exactly as its copy does. The copy may be handed to the program: if it
/// lies in a slot region, that region is pinned as by a read (slots.rs).
#[inline(always)]
pub fn resolve(v: Value) -> Value {
    if v.is_heap() {
        // SAFETY: a heap value the mutator holds is a live object.
        if let Some(c) = unsafe { moved_to(v.heap_ptr()) } {
            return resolve_moved(c);
        }
    }
    v
}

/// `resolve` past the first move, to copy `c`.
#[cold]
#[inline(never)]
fn resolve_moved(c: *mut u8) -> Value {
    let p = follow_moves(c);
    // SAFETY: `p` is a live object of this thread.
    unsafe { crate::slots::note_moved_to(p) };
    Value::from_heap(p)
}

/// What `v` stands for, as `resolve`, for a look that hands nothing out
/// (identity, kind, reachability): no slot region is pinned.
#[inline(always)]
pub(crate) fn peek_resolved(v: Value) -> Value {
    if v.is_heap() {
        // SAFETY: a heap value the mutator holds is a live object.
        if let Some(c) = unsafe { moved_to(v.heap_ptr()) } {
            return Value::from_heap(follow_moves(c));
        }
    }
    v
}

/// The end of a chain of moves that reached copy `p`.
#[cold]
fn follow_moves(mut p: *mut u8) -> *mut u8 {
    loop {
        debug_check_live(p);
        // SAFETY: a move names a live copy in a region at least as old as
        // the original's (the region order), so it outlives the original.
        match unsafe { moved_to(p) } {
            Some(c) => p = c,
            None => return p,
        }
    }
}

/// The object `v` stands for, if it is a `t`: its address. The common
/// case (not moved) costs what a tag test costs.
#[inline(always)]
fn obj(v: Value, t: HeapTag) -> Option<*mut u8> {
    if !v.has_heap_tag() {
        return None;
    }
    let p = v.heap_ptr();
    debug_check_live(p);
    // SAFETY: as in `resolve`.
    let h = unsafe { header(p) };
    if header_tag(h) == t as u8 {
        Some(p)
    } else if h as usize & MOVED != 0 {
        obj_moved(v, t)
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn obj_moved(v: Value, t: HeapTag) -> Option<*mut u8> {
    let v = resolve(v);
    is(v, t).then(|| v.heap_ptr())
}

/// Whether `a` and `b` are one object (`eq?`) though they differ as words:
/// one of them, or both, moved (see `resolve`).
#[cold]
#[inline(never)]
pub(crate) fn same_object_moved(a: Value, b: Value) -> bool {
    peek_resolved(a) == peek_resolved(b)
}

pub fn kind(v: Value) -> Kind {
    if v.is_fixnum() {
        return Kind::Fixnum;
    }
    if v.as_char().is_some() {
        return Kind::Char;
    }
    if v.as_symbol().is_some() {
        return Kind::Symbol;
    }
    if v.as_handle().is_some() {
        return Kind::Handle;
    }
    if v.as_flonum().is_some() {
        return Kind::Float;
    }
    match v {
        Value::EMPTY => return Kind::Empty,
        Value::FALSE => return Kind::False,
        Value::TRUE => return Kind::True,
        Value::NOTHING => return Kind::Nothing,
        Value::UNDEFINED => return Kind::Undefined,
        _ => {}
    }
    match tag_of(v) {
        Some(HeapTag::Pair) => Kind::Pair,
        Some(HeapTag::Str) => Kind::Str,
        Some(HeapTag::Float) => Kind::Float,
        Some(HeapTag::Int) => Kind::Int,
        Some(HeapTag::Array) => Kind::Array,
        Some(HeapTag::Dict) => Kind::Dict,
        Some(HeapTag::Box) => Kind::Box,
        Some(HeapTag::Closure) => Kind::Closure,
        None => kind_moved(v),
    }
}

/// `number?`: a fixnum, a flonum, or a boxed integer or float (what
/// `kind` says, without its whole dispatch).
#[inline(always)]
pub fn is_number(v: Value) -> bool {
    if v.is_immediate_number() {
        return true;
    }
    match tag_of(v) {
        Some(t) => matches!(t, HeapTag::Int | HeapTag::Float),
        None if v.is_heap() => matches!(kind_moved(v), Kind::Int | Kind::Float),
        None => false,
    }
}

/// `kind` of a heap object with no tag: a moved original is of its
/// copy's kind.
#[cold]
#[inline(never)]
fn kind_moved(v: Value) -> Kind {
    let w = peek_resolved(v);
    if w != v {
        kind(w)
    } else {
        Kind::Other
    }
}

/// Allocate an object of `size` bytes with `hdr` in region block `b`.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
#[inline]
unsafe fn new_object(b: *mut RegionBlock, size: usize, hdr: u64) -> MemResult<*mut u8> {
    // SAFETY: per the contract; the fresh allocation is ours to initialise.
    unsafe {
        let p = alloc_raw(b, size)?;
        p.cast::<u64>().write(hdr);
        Ok(p)
    }
}

fn words(n: usize) -> MemResult<usize> {
    n.checked_mul(WORD)
        .filter(|b| *b <= u32::MAX as usize * WORD)
        .ok_or(MemError::TooLarge { requested: n })
}

// ---------------------------------------------------------------------------
// Pairs

/// A new pair in `r`. The common case (both fields storable in `r` as
/// they are, room in the current segment) is in line at the caller, with
/// no call and no `MemResult` through memory; anything else (a repair, a
/// new segment, a quota) is `alloc_pair_slow`.
#[inline(always)]
pub fn alloc_pair(r: Region, car: Value, cdr: Value) -> MemResult<Value> {
    let b = r.bump_block();
    // A bump succeeds only in a live, unmerged block (`Region::bump_block`): then `b` is the
    // region's block, and ours.
    // SAFETY: both fields are storable in `b` as they are (the barrier's own fast test);
    // `cur..end` lies inside `b`'s current segment: the 3 words are fresh memory of `b`, written
    // before the value is returned.
    unsafe {
        if admits_fresh_as_is(b, car) && admits_fresh_as_is(b, cdr) {
            if let Some(p) = try_bump(b, PAIR_BYTES) {
                p.cast::<u64>().write(make_header(HeapTag::Pair, 0));
                field(p, 0).write(car);
                field(p, 1).write(cdr);
                return Ok(Value::from_heap(p));
            }
        }
    }
    alloc_pair_slow(r.block(), car, cdr)
}

const PAIR_BYTES: usize = HDR + 2 * WORD;

#[cold]
#[inline(never)]
fn alloc_pair_slow(b: *mut RegionBlock, car: Value, cdr: Value) -> MemResult<Value> {
    // SAFETY: `b` is live and ours; fields are written before the value is
    // returned; both values were admitted into `b`.
    unsafe {
        let car = admit(b, car)?;
        let cdr = admit(b, cdr)?;
        let p = new_object(b, PAIR_BYTES, make_header(HeapTag::Pair, 0))?;
        field(p, 0).write(car);
        field(p, 1).write(cdr);
        Ok(Value::from_heap(p))
    }
}

#[inline(always)]
pub fn car(v: Value) -> Option<Value> {
    // SAFETY: tag checked; pairs have two fields.
    obj(v, HeapTag::Pair).map(|p| unsafe { field(p, 0).read() })
}

#[inline(always)]
pub fn cdr(v: Value) -> Option<Value> {
    // SAFETY: tag checked; pairs have two fields.
    obj(v, HeapTag::Pair).map(|p| unsafe { field(p, 1).read() })
}

/// `set-car!`. Returns `Ok(false)` if `v` is not a pair.
#[inline]
pub fn set_car(v: Value, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Pair) else {
        return Ok(false);
    };
    // SAFETY: tag checked; the barrier admits `x` into the pair's region.
    unsafe { store(p, field(p, 0), x)? };
    Ok(true)
}

/// `set-cdr!`. Returns `Ok(false)` if `v` is not a pair.
#[inline]
pub fn set_cdr(v: Value, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Pair) else {
        return Ok(false);
    };
    // SAFETY: tag checked; the barrier admits `x` into the pair's region.
    unsafe { store(p, field(p, 1), x)? };
    Ok(true)
}

pub fn is_pair(v: Value) -> bool {
    obj(v, HeapTag::Pair).is_some()
}

/// Build a proper list of `items` in region `r`. The common case (a few
/// items, each storable in `r` as it is, room for all the pairs in the
/// current segment) is in line at the caller: the region resolved and each
/// item tested once, one bump for all the pairs, laid out head first.
/// (Unlike `alloc_pair` it resolves the region first, `Region::block`:
/// taking `Region::bump_block` here too cost the VM's loop more in
/// register allocation than it saved, BENCHMARKS.md, twenty-seventh
/// session.)
/// Anything else is `alloc_pair` for each item from the last.
#[inline(always)]
pub fn alloc_list(r: Region, items: &[Value]) -> MemResult<Value> {
    let b = r.block();
    let n = items.len();
    // SAFETY: `b` is live and ours; each item is storable in `b` as it is (the barrier's fast
    // test); `try_bump` gave `n * PAIR_BYTES` fresh bytes of the current segment, written pair
    // by pair from the last (cdr: the empty list, else the next pair) before the value is returned.
    unsafe {
        if (1..=LIST_IN_LINE).contains(&n) && items.iter().all(|&x| admits_fresh_as_is(b, x)) {
            if let Some(p) = try_bump(b, n * PAIR_BYTES) {
                let mut next = Value::EMPTY;
                let mut q = p.add(n * PAIR_BYTES);
                for &x in items.iter().rev() {
                    q = q.sub(PAIR_BYTES);
                    q.cast::<u64>().write(make_header(HeapTag::Pair, 0));
                    field(q, 0).write(x);
                    field(q, 1).write(next);
                    next = Value::from_heap(q);
                }
                return Ok(next);
            }
        }
    }
    alloc_list_slow(r, items)
}

/// The most items `alloc_list` builds in line.
const LIST_IN_LINE: usize = 8;

#[inline(never)]
fn alloc_list_slow(r: Region, items: &[Value]) -> MemResult<Value> {
    let mut out = Value::EMPTY;
    for &x in items.iter().rev() {
        out = alloc_pair(r, x, out)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Strings, floats, big integers

/// Header bit of a string whose bytes are all ASCII, set when it is made
/// (strings are immutable, and copies keep their header): its characters
/// are its bytes, so its length and its `i`th character are found without
/// decoding it (`str_is_ascii`).
const STR_ASCII: u64 = 1 << 8;

pub fn alloc_str(r: Region, s: &str) -> MemResult<Value> {
    let len = s.len();
    let extra = u32::try_from(len).map_err(|_| MemError::TooLarge { requested: len })?;
    let size = HDR + len.div_ceil(WORD).max(1) * WORD;
    let ascii = if s.is_ascii() { STR_ASCII } else { 0 };
    // SAFETY: fresh object of `size` bytes; `len` bytes copied after the header.
    unsafe {
        let p = new_object(r.block(), size, make_header(HeapTag::Str, extra) | ascii)?;
        ptr::copy_nonoverlapping(s.as_ptr(), p.add(HDR), len);
        Ok(Value::from_heap(p))
    }
}

/// Run `f` on the string's text. Strings are immutable, so the slice is
/// stable for as long as the region lives.
pub fn with_str<R>(v: Value, f: impl FnOnce(&str) -> R) -> Option<R> {
    let p = obj(v, HeapTag::Str)?;
    // SAFETY: tag checked; the bytes were copied from a `&str` at creation
    // and are never mutated, so they are valid UTF-8.
    let s = unsafe {
        let len = header_extra(header(p)) as usize;
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.add(HDR), len))
    };
    Some(f(s))
}

pub fn is_str(v: Value) -> bool {
    obj(v, HeapTag::Str).is_some()
}

/// Whether `v` is a string of ASCII characters only (each one byte).
pub fn str_is_ascii(v: Value) -> bool {
    // SAFETY: tag checked: the header is the string's own.
    obj(v, HeapTag::Str).is_some_and(|p| unsafe { header(p) } & STR_ASCII != 0)
}

/// A float: a flonum (an immediate) when it can be one, else a two-word
/// object in `r`.
pub fn alloc_float(r: Region, x: f64) -> MemResult<Value> {
    if let Some(v) = Value::flonum(x) {
        return Ok(v);
    }
    // SAFETY: fresh two-word object.
    unsafe {
        let p = new_object(r.block(), HDR + WORD, make_header(HeapTag::Float, 0))?;
        p.add(HDR).cast::<f64>().write(x);
        Ok(Value::from_heap(p))
    }
}

pub fn float_value(v: Value) -> Option<f64> {
    if let Some(x) = v.as_flonum() {
        return Some(x);
    }
    // SAFETY: tag checked.
    obj(v, HeapTag::Float).map(|p| unsafe { p.add(HDR).cast::<f64>().read() })
}

/// An integer: a fixnum when it fits, else a boxed 64-bit integer in `r`.
pub fn make_int(r: Region, n: i64) -> MemResult<Value> {
    if let Some(v) = Value::fixnum(n) {
        return Ok(v);
    }
    // SAFETY: fresh two-word object.
    unsafe {
        let p = new_object(r.block(), HDR + WORD, make_header(HeapTag::Int, 0))?;
        p.add(HDR).cast::<i64>().write(n);
        Ok(Value::from_heap(p))
    }
}

/// The integer a fixnum or boxed integer holds.
#[inline]
pub fn int_value(v: Value) -> Option<i64> {
    if let Some(n) = v.as_fixnum() {
        return Some(n);
    }
    // SAFETY: tag checked.
    obj(v, HeapTag::Int).map(|p| unsafe { p.add(HDR).cast::<i64>().read() })
}

// ---------------------------------------------------------------------------
// Boxes

pub fn alloc_box(r: Region, x: Value) -> MemResult<Value> {
    let b = r.block();
    // SAFETY: fresh object; `x` admitted into `b`.
    unsafe {
        let x = admit(b, x)?;
        let p = new_object(b, HDR + 2 * WORD, make_header(HeapTag::Box, 0))?;
        field(p, 0).write(x);
        set_word(p, B_SLOTS, 0);
        Ok(Value::from_heap(p))
    }
}

/// A box's slot-region word (slots.rs): a box a program sets again and
/// again (`set!` of a captured variable in a loop) gives back the values it
/// replaces, as an array slot does.
const B_SLOTS: usize = 1;

/// `unbox`: the box's value, pinning the box's slot region if the value
/// lies in it (the program may keep it past the next store).
pub fn box_get(v: Value) -> Option<Value> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Box).map(|p| unsafe {
        let x = field(p, 0).read();
        note_read(p, x);
        x
    })
}

/// The box's value without pinning its slot region.
///
/// Contract (what keeps the slot-region invariant): the value is used only
/// until the next store into this box, and no pointer to it or into it is
/// kept: it is not stored, returned, captured or passed to a procedure. A
/// store may compact the slot region and free it. The compiler uses this
/// only for a variable read that is an argument of a primitive that keeps
/// none of its arguments, with no call or store between the read and the
/// primitive (omni-lang, `Node::BoxBorrow`).
pub fn box_borrow(v: Value) -> Option<Value> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Box).map(|p| unsafe { field(p, 0).read() })
}

/// `set-box!`. Returns `Ok(false)` if `v` is not a box.
pub fn box_set(v: Value, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Box) else {
        return Ok(false);
    };
    // SAFETY: tag checked; the value is admitted by the slot barrier before
    // the write, and the write checks compaction.
    unsafe {
        let slot = field(p, 0);
        if !x.is_heap() && !slot.read().is_heap() {
            // An immediate replacing an immediate (a counter): nothing to
            // admit, nothing replaced to count, no bytes to compact.
            slot.write(x);
            return Ok(true);
        }
        let x = admit_slot(p, x)?;
        write_slot(p, slot, x)?;
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Closures

/// A closure: an opaque code reference chosen by the language, plus captured
/// values (mutable captured variables are boxed by the compiler).
pub fn alloc_closure(r: Region, code: u64, captures: &[Value]) -> MemResult<Value> {
    let n = captures.len();
    let extra = u32::try_from(n).map_err(|_| MemError::TooLarge { requested: n })?;
    let b = r.block();
    // The captures are admitted into `b` before the object exists; in the
    // common case (every capture storable in `b` as it is: an immediate, or
    // an object of `b` or of a region that outlives it) they are written as
    // they are, with no side vector.
    // SAFETY: `b` is live and ours; the fresh object of 2 + n words gets
    // its code and every capture before it is returned (no slot is unset).
    unsafe {
        let repaired = match captures.iter().all(|&c| admits_as_is(b, c)) {
            true => None,
            false => Some(
                captures
                    .iter()
                    .map(|&c| admit(b, c))
                    .collect::<MemResult<Vec<Value>>>()?,
            ),
        };
        let captures = repaired.as_deref().unwrap_or(captures);
        let p = new_object(
            b,
            HDR + WORD + words(n)?,
            make_header(HeapTag::Closure, extra),
        )?;
        p.add(HDR).cast::<u64>().write(code);
        for (i, &c) in captures.iter().enumerate() {
            field(p, 1 + i).write(c);
        }
        Ok(Value::from_heap(p))
    }
}

pub fn closure_code(v: Value) -> Option<u64> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Closure).map(|p| unsafe { p.add(HDR).cast::<u64>().read() })
}

pub fn closure_len(v: Value) -> Option<usize> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Closure).map(|p| unsafe { header_extra(header(p)) as usize })
}

pub fn closure_capture(v: Value, i: usize) -> Option<Value> {
    let p = obj(v, HeapTag::Closure)?;
    // SAFETY: tag and bound checked.
    unsafe { (i < header_extra(header(p)) as usize).then(|| field(p, 1 + i).read()) }
}

/// Patch a captured slot (used to tie `letrec` knots). Through the barrier.
pub fn closure_set_capture(v: Value, i: usize, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Closure) else {
        return Ok(false);
    };
    // SAFETY: tag checked.
    match unsafe { header_extra(header(p)) } as usize {
        // SAFETY: tag and bound checked; store goes through the barrier.
        n if i < n => unsafe {
            store(p, field(p, 1 + i), x)?;
            Ok(true)
        },
        _ => Ok(false),
    }
}

// ---------------------------------------------------------------------------
// Arrays

const A_LEN: usize = 0;
const A_CAP: usize = 1;
const A_DATA: usize = 2;
/// The array's slot region (slots.rs), or null. Not a value slot.
const A_SLOTS: usize = 3;

/// Word field `i` of `p`, as a plain word.
///
/// # Safety
/// `p` is a live object with a field `i`.
#[inline]
unsafe fn word_at(p: *mut u8, i: usize) -> usize {
    // SAFETY: caller guarantees field i exists.
    unsafe { field(p, i).cast::<usize>().read() }
}

/// Write plain word `w` to field `i` of `p`.
///
/// # Safety
/// `p` is a live object with a field `i` that holds no value (a length,
/// a capacity, a slot-region pointer).
#[inline]
unsafe fn set_word(p: *mut u8, i: usize, w: usize) {
    // SAFETY: caller guarantees field i exists.
    unsafe { field(p, i).cast::<usize>().write(w) }
}

/// The buffer pointer in field `i` of `p`.
///
/// # Safety
/// `p` is a live array or dict and field `i` its buffer field.
#[inline]
unsafe fn data_ptr(p: *mut u8, i: usize) -> *mut Value {
    // SAFETY: caller guarantees field i holds a buffer pointer.
    unsafe { field(p, i).cast::<*mut Value>().read() }
}

/// Allocate a buffer of `cap` words in region `b`.
///
/// # Safety
/// `b` is a live control block owned by this thread. The buffer is
/// uninitialised: the caller writes each word it reads.
unsafe fn alloc_buffer(b: *mut RegionBlock, cap: usize) -> MemResult<*mut Value> {
    if cap == 0 {
        return Ok(ptr::NonNull::dangling().as_ptr());
    }
    // SAFETY: live block per the caller's contract.
    unsafe { Ok(alloc_raw(b, words(cap)?)?.cast()) }
}

/// An array of `len` copies of `fill`.
pub fn alloc_array(r: Region, len: usize, fill: Value) -> MemResult<Value> {
    let b = r.block();
    // SAFETY: fresh object and buffer, fully initialised before returning.
    unsafe {
        let fill = admit(b, fill)?;
        let data = alloc_buffer(b, len)?;
        for i in 0..len {
            data.add(i).write(fill);
        }
        array_object(b, len, len, data)
    }
}

/// An array holding `items`.
pub fn alloc_array_from(r: Region, items: &[Value]) -> MemResult<Value> {
    let b = r.block();
    // SAFETY: as in `alloc_array`.
    unsafe {
        let data = alloc_buffer(b, items.len())?;
        for (i, &x) in items.iter().enumerate() {
            data.add(i).write(admit(b, x)?);
        }
        array_object(b, items.len(), items.len(), data)
    }
}

/// A new array object in `b` over buffer `data` (`len` elements written,
/// room for `cap`).
///
/// # Safety
/// `b` is a live control block owned by this thread; `data` is a buffer
/// of `cap` words in `b` (or dangling when `cap` is 0) whose first `len`
/// hold values storable in `b`.
unsafe fn array_object(
    b: *mut RegionBlock,
    len: usize,
    cap: usize,
    data: *mut Value,
) -> MemResult<Value> {
    // SAFETY: fresh five-word object.
    unsafe {
        let p = new_object(b, HDR + 4 * WORD, make_header(HeapTag::Array, 0))?;
        set_word(p, A_LEN, len);
        set_word(p, A_CAP, cap);
        field(p, A_DATA).cast::<*mut Value>().write(data);
        set_word(p, A_SLOTS, 0);
        Ok(Value::from_heap(p))
    }
}

pub fn array_len(v: Value) -> Option<usize> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Array).map(|p| unsafe { word_at(p, A_LEN) })
}

pub fn array_get(v: Value, i: usize) -> Option<Value> {
    let p = obj(v, HeapTag::Array)?;
    // SAFETY: `p` is a live array (checked above) and `x` its slot's value.
    unsafe {
        let x = array_at(p, i)?;
        note_read(p, x);
        Some(x)
    }
}

/// Element `i` of array `p`, if in range.
///
/// # Safety
/// `p` is a live array.
#[inline]
unsafe fn array_at(p: *mut u8, i: usize) -> Option<Value> {
    // SAFETY: per the contract; the bound is checked.
    unsafe { (i < word_at(p, A_LEN)).then(|| data_ptr(p, A_DATA).add(i).read()) }
}

/// `array_get` without pinning the array's slot region, under
/// [`box_borrow`]'s contract: the value dies before the array's next
/// store, and no pointer to it or into it is kept (structural equality and
/// hashing, which hand nothing out, read this way too).
pub fn array_borrow(v: Value, i: usize) -> Option<Value> {
    let p = obj(v, HeapTag::Array)?;
    // SAFETY: tag checked.
    unsafe { array_at(p, i) }
}

/// `dict_get` without pinning, under [`box_borrow`]'s contract.
pub fn dict_borrow(v: Value, key: Value) -> Option<Value> {
    let p = obj(v, HeapTag::Dict)?;
    // SAFETY: tag checked.
    unsafe {
        let e = dict_find(p, key, hash_value(key))?;
        Some(data_ptr(p, D_ENTRIES).add(e * ENTRY_WORDS + 1).read())
    }
}

/// The key of dict `v`'s entry for `key` as the dict holds it (an equal
/// key stored earlier, admitted into the dict's region), without pinning,
/// under [`box_borrow`]'s contract.
pub fn dict_stored_key(v: Value, key: Value) -> Option<Value> {
    let p = obj(v, HeapTag::Dict)?;
    // SAFETY: tag checked.
    unsafe {
        let e = dict_find(p, key, hash_value(key))?;
        Some(data_ptr(p, D_ENTRIES).add(e * ENTRY_WORDS).read())
    }
}

/// `dict-has?`: whether `key` is in dict `v` (`None`: not a dict). Hands
/// no value out, so it pins nothing.
pub fn dict_has(v: Value, key: Value) -> Option<bool> {
    is_dict(v).then(|| dict_borrow(v, key).is_some())
}

/// `array-set!`. `Ok(false)` if `v` is not an array or `i` is out of range.
pub fn array_set(v: Value, i: usize, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Array) else {
        return Ok(false);
    };
    // SAFETY: tag checked.
    match unsafe { word_at(p, A_LEN) } {
        // SAFETY: tag and bound checked; the store goes through the barrier,
        // which never moves the buffer.
        len if i < len => unsafe {
            let x = admit_slot(p, x)?;
            write_slot(p, data_ptr(p, A_DATA).add(i), x)?;
            Ok(true)
        },
        _ => Ok(false),
    }
}

/// `array-push!`: grows the buffer (in the array's own region) when full.
pub fn array_push(v: Value, x: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Array) else {
        return Ok(false);
    };
    // SAFETY: tag checked; the array's region is live; new buffers are
    // allocated in that same region, so the array stays region-closed.
    unsafe {
        let len = word_at(p, A_LEN);
        let b = block_of_ptr(p);
        let x = admit_slot(p, x)?;
        let cap = word_at(p, A_CAP);
        if len == cap {
            let new_cap = cap.saturating_mul(2).max(4);
            let nd = alloc_buffer(b, new_cap)?;
            ptr::copy_nonoverlapping(data_ptr(p, A_DATA), nd, len);
            field(p, A_DATA).cast::<*mut Value>().write(nd);
            set_word(p, A_CAP, new_cap);
        }
        data_ptr(p, A_DATA).add(len).write(x);
        set_word(p, A_LEN, len + 1);
        after_slot_store(p, Value::NOTHING)?;
    }
    Ok(true)
}

/// The array's elements, in order.
pub fn array_items(v: Value) -> Option<Vec<Value>> {
    let p = obj(v, HeapTag::Array)?;
    // SAFETY: tag checked; `len` initialised elements.
    Some(unsafe {
        let len = word_at(p, A_LEN);
        let items = std::slice::from_raw_parts(data_ptr(p, A_DATA), len).to_vec();
        for &x in &items {
            note_read(p, x);
        }
        items
    })
}

// ---------------------------------------------------------------------------
// Dicts: insertion-ordered, open-addressing index, all storage in the
// dict's region. Entries are (key, value, hash) triples; a removed entry
// keeps its index slot with a TOMBSTONE key so probe chains stay intact.

const D_COUNT: usize = 0;
const D_USED: usize = 1;
const D_CAP: usize = 2;
const D_ENTRIES: usize = 3;
const D_INDEX: usize = 4;
const D_IMASK: usize = 5;
/// The dict's slot region (slots.rs), or null. Not a value slot.
const D_SLOTS: usize = 6;
pub(crate) const ENTRY_WORDS: usize = 3;

pub fn alloc_dict(r: Region) -> MemResult<Value> {
    // SAFETY: fresh eight-word object with empty storage.
    unsafe {
        let p = new_object(r.block(), HDR + 7 * WORD, make_header(HeapTag::Dict, 0))?;
        set_word(p, D_SLOTS, 0);
        set_word(p, D_COUNT, 0);
        set_word(p, D_USED, 0);
        set_word(p, D_CAP, 0);
        field(p, D_ENTRIES)
            .cast::<*mut Value>()
            .write(ptr::NonNull::dangling().as_ptr());
        field(p, D_INDEX)
            .cast::<*mut u32>()
            .write(ptr::NonNull::dangling().as_ptr());
        set_word(p, D_IMASK, 0);
        Ok(Value::from_heap(p))
    }
}

pub fn is_dict(v: Value) -> bool {
    obj(v, HeapTag::Dict).is_some()
}

pub fn dict_count(v: Value) -> Option<usize> {
    // SAFETY: tag checked.
    obj(v, HeapTag::Dict).map(|p| unsafe { word_at(p, D_COUNT) })
}

/// Raw view of a dict's storage for this module and transmigration.
pub(crate) struct DictView {
    pub(crate) used: usize,
    pub(crate) entries: *mut Value,
}

/// # Safety
/// `p` must be a live dict object.
pub(crate) unsafe fn dict_view(p: *mut u8) -> DictView {
    // SAFETY: per the contract.
    unsafe {
        DictView {
            used: word_at(p, D_USED),
            entries: data_ptr(p, D_ENTRIES),
        }
    }
}

/// Index of the live entry whose key is `equal?` to `key`.
///
/// # Safety
/// `p` is a live dict of this thread and `hash` the hash of `key`.
unsafe fn dict_find(p: *mut u8, key: Value, hash: u64) -> Option<usize> {
    // SAFETY: live dict per the caller.
    unsafe {
        if word_at(p, D_CAP) == 0 {
            return None;
        }
        let mask = word_at(p, D_IMASK);
        let index = field(p, D_INDEX).cast::<*mut u32>().read();
        let entries = data_ptr(p, D_ENTRIES);
        let mut i = (hash as usize) & mask;
        loop {
            let slot = index.add(i).read();
            if slot == 0 {
                return None;
            }
            let e = (slot - 1) as usize;
            let ent = entries.add(e * ENTRY_WORDS);
            if ent.add(2).cast::<u64>().read() == hash && equal(ent.read(), key) {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
    }
}

/// Point the first free slot of `index` (`mask + 1` slots, linear probing
/// from `hash`) at entry `e` (slots hold entry + 1; 0 is free).
///
/// # Safety
/// `index` is a dict's index buffer of `mask + 1` slots with a free one.
unsafe fn index_put(index: *mut u32, mask: usize, hash: u64, e: usize) {
    // SAFETY: per the contract; every probe is masked into the buffer.
    unsafe {
        let mut i = (hash as usize) & mask;
        while index.add(i).read() != 0 {
            i = (i + 1) & mask;
        }
        index.add(i).write(e as u32 + 1);
    }
}

/// Lay out fresh storage for `cap` entries and re-insert the live ones.
///
/// # Safety
/// `p` must be a live dict object in region `b`.
pub(crate) unsafe fn dict_rebuild(p: *mut u8, b: *mut RegionBlock, cap: usize) -> MemResult<()> {
    // SAFETY: per the contract; new buffers are in the dict's own region.
    unsafe {
        let ilen = cap
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or(MemError::TooLarge { requested: cap })?;
        let ewords = cap
            .checked_mul(ENTRY_WORDS)
            .ok_or(MemError::TooLarge { requested: cap })?;
        let new_entries = alloc_buffer(b, ewords)?;
        let ibytes = ilen
            .checked_mul(4)
            .ok_or(MemError::TooLarge { requested: cap })?;
        let new_index = alloc_raw(b, ibytes.div_ceil(WORD) * WORD)?.cast::<u32>();
        ptr::write_bytes(new_index, 0, ilen);
        let old = dict_view(p);
        let mask = ilen - 1;
        let mut n = 0usize;
        for e in 0..old.used {
            let src = old.entries.add(e * ENTRY_WORDS);
            if src.read() == Value::TOMBSTONE {
                continue;
            }
            ptr::copy_nonoverlapping(src, new_entries.add(n * ENTRY_WORDS), ENTRY_WORDS);
            index_put(new_index, mask, src.add(2).cast::<u64>().read(), n);
            n += 1;
        }
        set_word(p, D_USED, n);
        set_word(p, D_COUNT, n);
        set_word(p, D_CAP, cap);
        field(p, D_ENTRIES).cast::<*mut Value>().write(new_entries);
        field(p, D_INDEX).cast::<*mut u32>().write(new_index);
        set_word(p, D_IMASK, mask);
        Ok(())
    }
}

/// Drop the removed entries of dict `p` in place: live entries slide down
/// in order, and the index is rebuilt in its own buffer.
///
/// # Safety
/// `p` must be a live dict object with storage (`cap > 0`).
unsafe fn dict_squeeze(p: *mut u8) {
    // SAFETY: per the contract; entries below `used` are initialised, and
    // an entry only ever moves down, to a slot already read.
    unsafe {
        let d = dict_view(p);
        let mut n = 0usize;
        for e in 0..d.used {
            let src = d.entries.add(e * ENTRY_WORDS);
            if src.read() == Value::TOMBSTONE {
                continue;
            }
            if n != e {
                ptr::copy(src, d.entries.add(n * ENTRY_WORDS), ENTRY_WORDS);
            }
            n += 1;
        }
        let mask = word_at(p, D_IMASK);
        let index = field(p, D_INDEX).cast::<*mut u32>().read();
        ptr::write_bytes(index, 0, mask + 1);
        for e in 0..n {
            index_put(index, mask, d.entries.add(e * ENTRY_WORDS + 2).cast::<u64>().read(), e);
        }
        set_word(p, D_USED, n);
        set_word(p, D_COUNT, n);
    }
}

pub fn dict_get(v: Value, key: Value) -> Option<Value> {
    let p = obj(v, HeapTag::Dict)?;
    let x = dict_borrow(Value::from_heap(p), key)?;
    // SAFETY: `p` is a live dict (checked above) and `x` an entry's value.
    unsafe { note_read(p, x) };
    Some(x)
}

/// `dict-set!`: insert or replace. `Ok(false)` if `v` is not a dict.
pub fn dict_set(v: Value, key: Value, val: Value) -> MemResult<bool> {
    let Some(p) = obj(v, HeapTag::Dict) else {
        return Ok(false);
    };
    let hash = hash_value(key);
    // SAFETY: tag checked; key and value are admitted into the dict's region (or its slot region)
    // before any slot is written, the key only when it is new; storage grows in the dict's region.
    // Nothing between an admission and its slot write can compact the slot region.
    unsafe {
        let b = block_of_ptr(p);
        let val = admit_slot(p, val)?;
        if let Some(e) = dict_find(p, key, hash) {
            write_slot(p, data_ptr(p, D_ENTRIES).add(e * ENTRY_WORDS + 1), val)?;
            return Ok(true);
        }
        let key = admit_slot(p, key)?;
        let (used, cap, count) = (word_at(p, D_USED), word_at(p, D_CAP), word_at(p, D_COUNT));
        if used == cap {
            if count * 2 < cap {
                // Mostly removed entries: squeeze them out of the same
                // buffers (new ones would stay in the dict's region until
                // it dies: a dict that keeps removing and adding keys
                // grew its region by about 40 bytes per operation).
                dict_squeeze(p);
            } else {
                let new_cap = (cap * 2).max(4);
                if u32::try_from(new_cap).is_err() {
                    return Err(MemError::TooLarge { requested: new_cap });
                }
                dict_rebuild(p, b, new_cap)?;
            }
        }
        let used = word_at(p, D_USED);
        let ent = data_ptr(p, D_ENTRIES).add(used * ENTRY_WORDS);
        ent.write(key);
        ent.add(1).write(val);
        ent.add(2).cast::<u64>().write(hash);
        let mask = word_at(p, D_IMASK);
        let index = field(p, D_INDEX).cast::<*mut u32>().read();
        index_put(index, mask, hash, used);
        set_word(p, D_USED, used + 1);
        set_word(p, D_COUNT, word_at(p, D_COUNT) + 1);
        after_slot_store(p, Value::NOTHING)?;
    }
    Ok(true)
}

/// `dict-remove!`: `true` if the key was present.
pub fn dict_remove(v: Value, key: Value) -> bool {
    let Some(p) = obj(v, HeapTag::Dict) else {
        return false;
    };
    // SAFETY: tag checked; removal stores only immediates.
    unsafe {
        let Some(e) = dict_find(p, key, hash_value(key)) else {
            return false;
        };
        let ent = data_ptr(p, D_ENTRIES).add(e * ENTRY_WORDS);
        let (k, x) = (ent.read(), ent.add(1).read());
        ent.write(Value::TOMBSTONE);
        ent.add(1).write(Value::NOTHING);
        set_word(p, D_COUNT, word_at(p, D_COUNT) - 1);
        note_removed(p, k, x);
        true
    }
}

/// Live entries in insertion order.
pub fn dict_entries(v: Value) -> Option<Vec<(Value, Value)>> {
    let p = obj(v, HeapTag::Dict)?;
    // SAFETY: tag checked.
    let out = unsafe { dict_live_entries(p) };
    for &(k, x) in &out {
        // SAFETY: `p` is a live dict; these are its slots.
        unsafe {
            note_read(p, k);
            note_read(p, x);
        }
    }
    Some(out)
}

/// `dict_entries` for a reader that hands none of them out (structural
/// equality and hashing): no pin.
pub(crate) fn dict_entries_unpinned(v: Value) -> Option<Vec<(Value, Value)>> {
    let p = obj(v, HeapTag::Dict)?;
    // SAFETY: tag checked.
    Some(unsafe { dict_live_entries(p) })
}

/// Dict `p`'s live entries in insertion order.
///
/// # Safety
/// `p` is a live dict.
unsafe fn dict_live_entries(p: *mut u8) -> Vec<(Value, Value)> {
    // SAFETY: per the contract; `used` entries are initialised.
    unsafe {
        let d = dict_view(p);
        let mut out = Vec::with_capacity(d.used);
        for e in 0..d.used {
            let ent = d.entries.add(e * ENTRY_WORDS);
            let k = ent.read();
            if k != Value::TOMBSTONE {
                out.push((k, ent.add(1).read()));
            }
        }
        out
    }
}

/// Bytes the object itself occupies (header included, buffers excluded).
pub(crate) fn object_size(tag: HeapTag, h: u64) -> usize {
    match tag {
        HeapTag::Pair => HDR + 2 * WORD,
        HeapTag::Str => HDR + (header_extra(h) as usize).div_ceil(WORD).max(1) * WORD,
        HeapTag::Float | HeapTag::Int => HDR + WORD,
        HeapTag::Box => HDR + 2 * WORD,
        HeapTag::Closure => HDR + WORD + header_extra(h) as usize * WORD,
        HeapTag::Array => HDR + 4 * WORD,
        HeapTag::Dict => HDR + 7 * WORD,
    }
}

/// Used by `meta` to copy array storage.
///
/// # Safety
/// `p` must be a live array object.
pub(crate) unsafe fn array_parts(p: *mut u8) -> (usize, *mut Value) {
    // SAFETY: per the contract.
    unsafe { (word_at(p, A_LEN), data_ptr(p, A_DATA)) }
}

/// Used by `meta` to give a copied array fresh storage.
///
/// # Safety
/// `copy` must be a fresh array object in region `b` with `len` elements to
/// be copied from `src`.
pub(crate) unsafe fn array_copy_storage(
    copy: *mut u8,
    b: *mut RegionBlock,
    len: usize,
    src: *mut Value,
) -> MemResult<()> {
    // SAFETY: per the contract.
    unsafe {
        set_word(copy, A_SLOTS, 0);
        let nd = alloc_buffer(b, len)?;
        ptr::copy_nonoverlapping(src, nd, len);
        set_word(copy, A_LEN, len);
        set_word(copy, A_CAP, len);
        field(copy, A_DATA).cast::<*mut Value>().write(nd);
        Ok(())
    }
}

/// # Safety
/// `copy` must be a fresh shallow copy of a live dict, in region `b`.
pub(crate) unsafe fn dict_copy_storage(copy: *mut u8, b: *mut RegionBlock) -> MemResult<()> {
    // SAFETY: the copy still names the source's buffers, which rebuild reads
    // and replaces with compacted ones in `b`.
    unsafe {
        set_word(copy, D_SLOTS, 0);
        let count = word_at(copy, D_COUNT);
        if count == 0 {
            set_word(copy, D_USED, 0);
            set_word(copy, D_CAP, 0);
            set_word(copy, D_IMASK, 0);
            return Ok(());
        }
        dict_rebuild(copy, b, count)
    }
}

/// Where a container keeps its slot region: the array's, dict's or box's
/// slot-region word, or `None` for other objects.
///
/// # Safety
/// `p` must be a live object.
#[inline]
pub(crate) unsafe fn slot_region_field(p: *mut u8) -> Option<*mut *mut RegionBlock> {
    // SAFETY: per the contract; the word exists for these two tags.
    unsafe {
        match HeapTag::from_u8(header_tag(header(p))) {
            Some(HeapTag::Array) => Some(field(p, A_SLOTS).cast()),
            Some(HeapTag::Dict) => Some(field(p, D_SLOTS).cast()),
            Some(HeapTag::Box) => Some(field(p, B_SLOTS).cast()),
            _ => None,
        }
    }
}

/// Every value slot of an array, dict or box (elements; keys and values of
/// live entries; the box's value), for compaction: `f` may rewrite them in
/// place.
///
/// # Safety
/// `p` must be a live array, dict or box.
pub(crate) unsafe fn for_each_container_slot(p: *mut u8, mut f: impl FnMut(*mut Value)) {
    // SAFETY: per the contract; `len` / `used` slots are initialised.
    unsafe {
        match HeapTag::from_u8(header_tag(header(p))) {
            Some(HeapTag::Array) => {
                let (len, data) = array_parts(p);
                for i in 0..len {
                    f(data.add(i));
                }
            }
            Some(HeapTag::Dict) => {
                let d = dict_view(p);
                for e in 0..d.used {
                    let ent = d.entries.add(e * ENTRY_WORDS);
                    if ent.read() != Value::TOMBSTONE {
                        f(ent);
                        f(ent.add(1));
                    }
                }
            }
            Some(HeapTag::Box) => f(field(p, 0)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{region_create, region_exit};
    use crate::testing::leak_checked;

    /// The mean distance, in index slots, from each live key's home slot
    /// to the slot that holds it: what a look-up of a present key probes.
    fn mean_probe_distance(d: Value) -> f64 {
        let p = d.heap_ptr();
        // SAFETY: `d` is a live dict; every non-zero index slot names an
        // entry below `used`.
        unsafe {
            let mask = word_at(p, D_IMASK);
            let index = field(p, D_INDEX).cast::<*mut u32>().read();
            let entries = data_ptr(p, D_ENTRIES);
            let (mut total, mut n) = (0usize, 0usize);
            for i in 0..=mask {
                let slot = index.add(i).read();
                if slot == 0 {
                    continue;
                }
                let ent = entries.add((slot as usize - 1) * ENTRY_WORDS);
                let home = (ent.add(2).cast::<u64>().read() as usize) & mask;
                total += i.wrapping_sub(home) & mask;
                n += 1;
            }
            total as f64 / n.max(1) as f64
        }
    }

    /// `alloc_list` gives the same list whichever way it builds it: in
    /// line (short, every item storable as it is, room in the segment),
    /// or pair by pair (long, across a segment's end, an item the barrier
    /// repairs), and all of it in its region.
    #[test]
    fn a_list_is_built_in_its_region_in_line_or_pair_by_pair() {
        leak_checked(|| {
            let a = region_create();
            let young = region_create();
            let int = |i: usize| Value::fixnum(i as i64).expect("small");
            let in_a = |mut l: Value| {
                while l != Value::EMPTY {
                    assert_eq!(crate::region_of(l), Some(a));
                    l = cdr(l).expect("a proper list");
                }
            };
            // Every length up to past the in-line limit, enough times that
            // some lists reach past the end of a segment.
            for round in 0..30 {
                for n in 0..=LIST_IN_LINE + 2 {
                    let items: Vec<Value> = (0..n).map(|i| int(round * 100 + i)).collect();
                    let before = a.bytes_allocated();
                    let l = alloc_list(a, &items).expect("list");
                    let ints = crate::testing::list_ints(l);
                    let want: Vec<i64> = items.iter().filter_map(|v| v.as_fixnum()).collect();
                    assert_eq!(ints, want);
                    assert!(a.bytes_allocated() >= before + n * PAIR_BYTES);
                    in_a(l);
                }
            }
            // An item of a younger region is repaired into `a`: the list
            // outlives the region it came from.
            let inner = crate::testing::int_list(young, 7, 3);
            let l = alloc_list(a, &[int(1), inner, int(2)]).expect("list");
            region_exit(young);
            let item = car(cdr(l).expect("pair")).expect("pair");
            assert_eq!(crate::region_of(item), Some(a));
            assert_eq!(crate::testing::list_ints(item), vec![7, 8, 9]);
            in_a(l);
            region_exit(a);
        });
    }

    #[test]
    fn a_string_knows_whether_it_is_ascii_and_its_copies_too() {
        leak_checked(|| {
            let (a, b) = (region_create(), region_create());
            let plain = alloc_str(a, "plain text").expect("str");
            let accented = alloc_str(a, "héllo").expect("str");
            let empty = alloc_str(a, "").expect("str");
            assert!(str_is_ascii(plain) && str_is_ascii(empty));
            assert!(!str_is_ascii(accented));
            assert!(!str_is_ascii(Value::fixnum(1).expect("small")));
            for v in [plain, accented, empty] {
                let copy = crate::transmigrate(v, a, b).expect("copy");
                assert_ne!(copy, v);
                assert_eq!(str_is_ascii(copy), str_is_ascii(v));
                assert_eq!(with_str(copy, str::to_owned), with_str(v, str::to_owned));
            }
            region_exit(a);
            region_exit(b);
        });
    }

    #[test]
    fn floats_in_range_are_immediate_and_the_rest_are_objects() {
        leak_checked(|| {
            let (a, b) = (region_create(), region_create());
            let before = a.bytes_allocated();
            let x = alloc_float(a, 2.5).expect("float");
            assert!(!x.is_heap() && a.bytes_allocated() == before);
            assert_eq!((kind(x), float_value(x)), (Kind::Float, Some(2.5)));
            for big in [1e300, f64::INFINITY, f64::MIN_POSITIVE / 4.0] {
                let v = alloc_float(a, big).expect("float");
                assert!(v.is_heap());
                assert_eq!(kind(v), Kind::Float);
                let copy = crate::transmigrate(v, a, b).expect("copy");
                assert_ne!(copy, v);
                assert_eq!(float_value(copy).map(f64::to_bits), Some(big.to_bits()));
            }
            let nan = alloc_float(a, f64::NAN).expect("float");
            assert!(nan.is_heap() && float_value(nan).is_some_and(f64::is_nan));
            region_exit(a);
            region_exit(b);
        });
    }

    #[test]
    fn consecutive_integer_keys_do_not_cluster() {
        // With a hash whose low bits followed the key's, keys 0..n filled
        // one run of neighbouring slots and each insertion walked it:
        // `dict-set!` was O(n) (80,000 keys took seconds). At the index's
        // load (at most one half) linear probing averages well under one.
        leak_checked(|| {
            let n = if cfg!(miri) { 512 } else { 50_000 };
            let r = region_create();
            let d = alloc_dict(r).expect("dict");
            for k in 0..n {
                let key = Value::fixnum(k).expect("small");
                assert!(dict_set(d, key, key).expect("set"));
            }
            let mean = mean_probe_distance(d);
            assert!(mean < 2.0, "mean probe distance {mean}");
            for k in 0..n {
                let key = Value::fixnum(k).expect("small");
                assert_eq!(dict_get(d, key), Some(key));
            }
            region_exit(r);
        });
    }

    #[test]
    fn a_dict_that_removes_and_adds_keys_stays_in_its_storage() {
        // Five keys removed and added again, round after round: the removed
        // entries are squeezed out of the same buffers, so the dict's
        // region stops growing (it grew by about 40 bytes per operation
        // when each squeeze allocated new buffers), and order and look-ups
        // stay right.
        leak_checked(|| {
            let rounds = if cfg!(miri) { 200 } else { 20_000 };
            let r = region_create();
            let d = alloc_dict(r).expect("dict");
            let int = |n: i64| Value::fixnum(n).expect("small");
            for k in 0..5 {
                assert!(dict_set(d, int(k), int(k)).expect("set"));
            }
            let mut settled = 0;
            for i in 0..rounds {
                let k = i % 5;
                assert!(dict_remove(d, int(k)));
                assert!(dict_set(d, int(k), int(i)).expect("set"));
                // The storage grows once (to 16 entries), then never.
                if i == 100 {
                    settled = r.bytes_allocated();
                }
            }
            assert_eq!(r.bytes_allocated(), settled);
            let entries = dict_entries(d).expect("dict");
            let keys: Vec<i64> = entries.iter().filter_map(|e| e.0.as_fixnum()).collect();
            assert_eq!(keys, [0, 1, 2, 3, 4].map(|k| (rounds + k) % 5));
            for k in 0..5 {
                let last = rounds - 5 + (k - rounds % 5).rem_euclid(5);
                assert_eq!(dict_get(d, int(k)), Some(int(last)));
            }
            assert_eq!(dict_count(d), Some(5));
            region_exit(r);
        });
    }
}
