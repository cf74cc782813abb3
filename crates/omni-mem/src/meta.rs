//! Per-tag metadata: how to copy an object and where its child slots are.
//! Transmigration is driven entirely by this table (DESIGN.md rule 5); a
//! heap tag without an entry is an error, and a panic in debug builds.

use std::ptr;

use crate::error::{MemError, MemResult};
use crate::obj::{
    array_copy_storage, array_parts, dict_copy_storage, dict_view, field, header_extra,
    object_size, HeapTag, ENTRY_WORDS, HDR,
};
use crate::region::{alloc_raw, RegionBlock};
use crate::value::Value;

/// The child slots of an object: `count` groups of `width` adjacent value
/// words, `stride` words apart, starting at `base`.
#[derive(Clone, Copy)]
pub(crate) struct Slots {
    pub(crate) base: *mut Value,
    pub(crate) count: usize,
    pub(crate) width: usize,
    pub(crate) stride: usize,
}

impl Slots {
    const NONE: Slots = Slots {
        base: ptr::null_mut(),
        count: 0,
        width: 0,
        stride: 0,
    };
}

pub(crate) struct TagMeta {
    pub(crate) name: &'static str,
    /// Shallow copy into region `b`, including private storage (array and
    /// dict buffers). Child slots of the copy still hold the source's values.
    ///
    /// Safety: `src` is a live object of this tag whose header word is
    /// `hdr` (its saved header when the word itself is forwarded), and
    /// `b` a live control block owned by this thread.
    pub(crate) clone: unsafe fn(src: *mut u8, hdr: u64, b: *mut RegionBlock) -> MemResult<*mut u8>,
    /// Every child slot of a (copied) object.
    ///
    /// Safety: `obj` is a live object of this tag with header `hdr`; the
    /// slots stay valid while it is neither freed nor resized.
    pub(crate) trace: unsafe fn(obj: *mut u8, hdr: u64) -> Slots,
}

/// `TagMeta::clone` of an object whose bytes are all its own.
///
/// # Safety
/// As `TagMeta::clone`.
unsafe fn clone_flat(src: *mut u8, hdr: u64, b: *mut RegionBlock) -> MemResult<*mut u8> {
    let tag = HeapTag::from_u8(hdr as u8).ok_or(MemError::NoMetadata { tag: hdr as u8 })?;
    let size = object_size(tag, hdr);
    // SAFETY: `src` is a live object of `size` bytes whose header word is
    // (possibly) forwarded, so the saved header is written explicitly.
    unsafe {
        let p = alloc_raw(b, size)?;
        ptr::copy_nonoverlapping(src.add(HDR), p.add(HDR), size - HDR);
        p.cast::<u64>().write(hdr);
        Ok(p)
    }
}

/// `TagMeta::clone` of an array: its buffer copied too.
///
/// # Safety
/// As `TagMeta::clone`.
unsafe fn clone_array(src: *mut u8, hdr: u64, b: *mut RegionBlock) -> MemResult<*mut u8> {
    // SAFETY: src is a live array; the copy gets its own compact buffer.
    unsafe {
        let p = clone_flat(src, hdr, b)?;
        let (len, data) = array_parts(src);
        array_copy_storage(p, b, len, data)?;
        Ok(p)
    }
}

/// `TagMeta::clone` of a dict: its storage copied too, compacted.
///
/// # Safety
/// As `TagMeta::clone`.
unsafe fn clone_dict(src: *mut u8, hdr: u64, b: *mut RegionBlock) -> MemResult<*mut u8> {
    // SAFETY: src is a live dict; the copy gets compacted storage in `b`.
    unsafe {
        let p = clone_flat(src, hdr, b)?;
        dict_copy_storage(p, b)?;
        Ok(p)
    }
}

/// `TagMeta::clone` of a box: the copy has no slot region.
///
/// # Safety
/// As `TagMeta::clone`.
unsafe fn clone_box(src: *mut u8, hdr: u64, b: *mut RegionBlock) -> MemResult<*mut u8> {
    // SAFETY: src is a live box; the copy starts with no slot region (its
    // value is copied with it, into `b`).
    unsafe {
        let p = clone_flat(src, hdr, b)?;
        field(p, 1).cast::<usize>().write(0);
        Ok(p)
    }
}

/// `TagMeta::trace` of an object with no child slot.
///
/// # Safety
/// None needed: it reads nothing (unsafe only to fit `TagMeta::trace`).
unsafe fn trace_none(_: *mut u8, _: u64) -> Slots {
    Slots::NONE
}

/// The `n` consecutive value fields of `obj` from field `first`.
///
/// # Safety
/// `obj` is a live object with at least `first + n` fields.
unsafe fn trace_fields(n: usize, first: usize, obj: *mut u8) -> Slots {
    Slots {
        base: field(obj, first),
        count: n,
        width: 1,
        stride: 1,
    }
}

/// `TagMeta::trace` of a pair: car and cdr.
///
/// # Safety
/// As `TagMeta::trace`.
unsafe fn trace_pair(obj: *mut u8, _: u64) -> Slots {
    // SAFETY: pairs have two value fields.
    unsafe { trace_fields(2, 0, obj) }
}

/// `TagMeta::trace` of a box: its value.
///
/// # Safety
/// As `TagMeta::trace`.
unsafe fn trace_box(obj: *mut u8, _: u64) -> Slots {
    // SAFETY: boxes have one value field.
    unsafe { trace_fields(1, 0, obj) }
}

/// `TagMeta::trace` of a closure: its captures.
///
/// # Safety
/// As `TagMeta::trace`.
unsafe fn trace_closure(obj: *mut u8, hdr: u64) -> Slots {
    // SAFETY: word 0 is the code reference, then `extra` captures.
    unsafe { trace_fields(header_extra(hdr) as usize, 1, obj) }
}

/// `TagMeta::trace` of an array: its elements.
///
/// # Safety
/// As `TagMeta::trace`.
unsafe fn trace_array(obj: *mut u8, _: u64) -> Slots {
    // SAFETY: live array: `len` initialised elements in its buffer.
    let (len, data) = unsafe { array_parts(obj) };
    Slots {
        base: data,
        count: len,
        width: 1,
        stride: 1,
    }
}

/// `TagMeta::trace` of a dict: each live entry's key and value.
///
/// # Safety
/// As `TagMeta::trace`.
unsafe fn trace_dict(obj: *mut u8, _: u64) -> Slots {
    // SAFETY: live dict: `used` entries of (key, value, hash).
    let d = unsafe { dict_view(obj) };
    Slots {
        base: d.entries,
        count: d.used,
        width: 2,
        stride: ENTRY_WORDS,
    }
}

const fn meta(
    name: &'static str,
    clone: unsafe fn(*mut u8, u64, *mut RegionBlock) -> MemResult<*mut u8>,
    trace: unsafe fn(*mut u8, u64) -> Slots,
) -> Option<TagMeta> {
    Some(TagMeta { name, clone, trace })
}

/// Indexed by heap tag. Odd and unassigned tags have no metadata.
static TABLE: [Option<TagMeta>; 18] = [
    None,
    None,
    meta("pair", clone_flat, trace_pair),
    None,
    meta("string", clone_flat, trace_none),
    None,
    meta("float", clone_flat, trace_none),
    None,
    meta("int", clone_flat, trace_none),
    None,
    meta("array", clone_array, trace_array),
    None,
    meta("dict", clone_dict, trace_dict),
    None,
    meta("box", clone_box, trace_box),
    None,
    meta("closure", clone_flat, trace_closure),
    None,
];

/// The metadata of heap tag `tag`. Missing metadata fails loudly.
#[inline]
pub(crate) fn meta_of(tag: u8) -> MemResult<&'static TagMeta> {
    match TABLE.get(tag as usize).and_then(Option::as_ref) {
        Some(m) => Ok(m),
        None => {
            debug_assert!(
                false,
                "omni-mem: heap tag {tag} has no clone/trace metadata"
            );
            Err(MemError::NoMetadata { tag })
        }
    }
}

/// Names of the tags that have metadata (for docs and tests).
pub fn registered_tags() -> Vec<(u8, &'static str)> {
    TABLE
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.as_ref().map(|m| (i as u8, m.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_heap_tag_has_metadata() {
        for t in [
            HeapTag::Pair,
            HeapTag::Str,
            HeapTag::Float,
            HeapTag::Int,
            HeapTag::Array,
            HeapTag::Dict,
            HeapTag::Box,
            HeapTag::Closure,
        ] {
            assert!(meta_of(t as u8).is_ok(), "{t:?}");
        }
        assert_eq!(registered_tags().len(), 8);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "no clone/trace metadata"))]
    fn missing_metadata_fails_loudly() {
        // Release builds report it as an error value instead.
        assert_eq!(meta_of(3).err(), Some(MemError::NoMetadata { tag: 3 }));
    }
}
