//! The symbol intern table: one per process, shared by all threads.
//! Symbols are immediates holding an index into this table.
//!
//! Read-mostly and lock-free for readers (docs/SMR_FOR_RUNTIME_STRUCTURES.md):
//!
//! * names live in an append-only array of chunks (chunk k holds
//!   `BASE << k` entries); a chunk or an entry, once published, never
//!   moves or changes, so `id -> name` needs no protection at all;
//! * `name -> id` is an open-addressing index of ids. Readers probe it
//!   inside an SMR read section (smr.rs); a writer (one at a time, under
//!   `writer`) fills free slots in place, or, past half full, builds a
//!   twice larger index, publishes it, waits for a grace period and frees
//!   the old one. Old indexes are the only nodes ever reclaimed.
//!
//! Publication order (each a release store, read with acquire): entry,
//! then its slot in the index, then `len`. A reader that sees an id in a
//! slot therefore sees its entry; `name` checks the entry itself, not
//! `len`, since a lookup can see the slot before `len` moves.

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

use crate::atomic::{Counter32, Published};
use crate::smr::Smr;

/// Entries in chunk 0; chunk k holds `BASE << k`.
const BASE: usize = 64;
const CHUNKS: usize = 32;
const INITIAL_SLOTS: usize = 256;

struct Entry {
    hash: u64,
    name: Box<str>,
}

struct Chunk {
    entries: Box<[Published<Entry>]>,
}

/// Slots hold `id + 1`; 0 is empty. The length is a power of two.
struct Index {
    slots: Box<[Counter32]>,
}

impl Index {
    fn with_slots(n: usize) -> *mut Index {
        let slots = (0..n).map(|_| Counter32::new(0)).collect();
        Box::into_raw(Box::new(Index { slots }))
    }
}

/// A concurrent intern table (the process has one, behind [`intern`]).
pub struct SymbolTable {
    writer: Mutex<()>,
    index: Published<Index>,
    chunks: [Published<Chunk>; CHUNKS],
    len: Counter32,
    smr: Smr,
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// (chunk, offset) of an id.
fn locate(id: u32) -> (usize, usize) {
    let n = id as usize / BASE + 1;
    let k = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (k, id as usize - BASE * ((1 << k) - 1))
}

impl Default for SymbolTable {
    fn default() -> Self {
        SymbolTable::with_index_slots(INITIAL_SLOTS)
    }
}

impl SymbolTable {
    /// A table whose first index has `slots` slots (rounded up to a power
    /// of two, at least 2): small values make tests resize early.
    pub fn with_index_slots(slots: usize) -> SymbolTable {
        SymbolTable {
            writer: Mutex::new(()),
            index: Published::new(Index::with_slots(slots.max(2).next_power_of_two())),
            chunks: std::array::from_fn(|_| Published::null()),
            len: Counter32::new(0),
            smr: Smr::new(),
        }
    }

    /// Number of interned names.
    pub fn len(&self) -> usize {
        self.len.load_acquire() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of a published id.
    fn entry(&self, id: u32) -> Option<&Entry> {
        let (k, off) = locate(id);
        let chunk = self.chunks.get(k)?.load_acquire();
        if chunk.is_null() {
            return None;
        }
        // SAFETY: a published chunk is never freed or moved before the
        // table is dropped.
        let chunk: &Chunk = unsafe { &*chunk };
        let e = chunk.entries.get(off)?.load_acquire();
        // SAFETY: a published entry is immutable and lives as long as the
        // table (`&self`).
        (!e.is_null()).then(|| unsafe { &*e })
    }

    /// Probe `idx` for `name`: `Ok(id)` if present, else `Err(free slot)`.
    fn probe(&self, idx: &Index, hash: u64, name: &str) -> Result<u32, usize> {
        let mask = idx.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let v = idx.slots[i].load_acquire();
            if v == 0 {
                return Err(i);
            }
            if let Some(e) = self.entry(v - 1) {
                if e.hash == hash && &*e.name == name {
                    return Ok(v - 1);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `name`, if interned. Lock-free.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.lookup_hashed(fnv1a(name), name)
    }

    fn lookup_hashed(&self, hash: u64, name: &str) -> Option<u32> {
        let _guard = self.smr.read();
        // SAFETY: the index pointer is never null, and an unpublished index
        // is freed only after `synchronize`, which waits for this section.
        let idx = unsafe { &*self.index.load_acquire() };
        self.probe(idx, hash, name).ok()
    }

    /// The name of id `id`. Wait-free: entries never move. Any id that
    /// `lookup` or `intern` returned has its entry published (the entry is
    /// published before the id appears in the index or in `len`).
    pub fn name(&self, id: u32) -> Option<&str> {
        self.entry(id).map(|e| &*e.name)
    }

    /// The id of `name`, interning it on first use.
    pub fn intern(&self, name: &str) -> u32 {
        let hash = fnv1a(name);
        if let Some(id) = self.lookup_hashed(hash, name) {
            return id;
        }
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Only writers replace the index, and we are the writer: it stays
        // valid while we hold the lock.
        let cur = self.index.load_relaxed();
        // SAFETY: as above.
        let idx = unsafe { &*cur };
        let free = match self.probe(idx, hash, name) {
            Ok(id) => return id,
            Err(slot) => slot,
        };
        let id = self.len.load_relaxed();
        assert!(id < u32::MAX - 1, "omni-mem: more than 2^32 symbols");
        self.publish_entry(id, hash, name);
        if (id as usize + 1) * 2 > idx.slots.len() {
            self.grow(cur, id);
        } else {
            idx.slots[free].store_release(id + 1);
        }
        self.len.store_release(id + 1);
        id
    }

    /// Store the entry for `id` (allocating its chunk on first use).
    fn publish_entry(&self, id: u32, hash: u64, name: &str) {
        let (k, off) = locate(id);
        let mut chunk = self.chunks[k].load_relaxed();
        if chunk.is_null() {
            let entries = (0..BASE << k).map(|_| Published::null()).collect();
            chunk = Box::into_raw(Box::new(Chunk { entries }));
            self.chunks[k].store_release(chunk);
        }
        let e = Box::into_raw(Box::new(Entry {
            hash,
            name: name.into(),
        }));
        // SAFETY: the chunk is published and never freed before the table.
        unsafe { (*chunk).entries[off].store_release(e) };
    }

    /// Replace the index by one twice as large holding ids `0..=last`,
    /// then reclaim the old one after a grace period.
    fn grow(&self, old: *mut Index, last: u32) {
        // SAFETY: `old` is the current index; only this writer frees it.
        let n = unsafe { &*old }.slots.len() * 2;
        let new = Index::with_slots(n);
        // SAFETY: `new` is not yet published: we own it exclusively.
        let fresh = unsafe { &*new };
        for id in 0..=last {
            if let Some(e) = self.entry(id) {
                let mut i = e.hash as usize & (n - 1);
                while fresh.slots[i].load_relaxed() != 0 {
                    i = (i + 1) & (n - 1);
                }
                fresh.slots[i].store_release(id + 1);
            }
        }
        self.index.store_release(new);
        self.smr.synchronize();
        // SAFETY: `old` was unpublished above and every read section that
        // could have loaded it has ended (synchronize).
        drop(unsafe { Box::from_raw(old) });
    }
}

impl Drop for SymbolTable {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left. Every pointer
        // below came from `Box::into_raw` and is freed exactly once.
        unsafe {
            drop(Box::from_raw(self.index.load_relaxed()));
            for c in &self.chunks {
                let chunk = c.load_relaxed();
                if chunk.is_null() {
                    continue;
                }
                for e in (*chunk).entries.iter() {
                    let p = e.load_relaxed();
                    if !p.is_null() {
                        drop(Box::from_raw(p));
                    }
                }
                drop(Box::from_raw(chunk));
            }
        }
    }
}

#[cfg(not(loom))]
mod global {
    use std::sync::OnceLock;

    use super::SymbolTable;
    use crate::value::Value;

    fn table() -> &'static SymbolTable {
        static TABLE: OnceLock<SymbolTable> = OnceLock::new();
        TABLE.get_or_init(SymbolTable::default)
    }

    /// The symbol named `name`, interning it on first use.
    pub fn intern(name: &str) -> Value {
        Value::symbol(table().intern(name))
    }

    /// The name of symbol `v`, if it is a symbol.
    pub fn symbol_name(v: Value) -> Option<&'static str> {
        table().name(v.as_symbol()?)
    }
}

#[cfg(not(loom))]
pub use global::{intern, symbol_name};

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn interning_is_idempotent() {
        let a = intern("hello");
        let b = intern("hello");
        let c = intern("world");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(symbol_name(a), Some("hello"));
        assert_eq!(symbol_name(Value::TRUE), None);
    }

    #[test]
    fn chunks_cover_every_id() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let (k, off) = locate(u32::MAX - 2);
        assert!(k < CHUNKS && off < BASE << k);
    }

    #[test]
    fn a_table_grows_and_keeps_every_name() {
        let t = SymbolTable::with_index_slots(2);
        let n = if cfg!(miri) { 300 } else { 5_000 };
        for i in 0..n {
            assert_eq!(t.intern(&format!("s{i}")), i);
        }
        for i in 0..n {
            assert_eq!(t.lookup(&format!("s{i}")), Some(i));
            assert_eq!(t.name(i), Some(format!("s{i}").as_str()));
        }
        assert_eq!(t.lookup("absent"), None);
        assert_eq!(t.name(n), None);
        assert_eq!(t.len(), n as usize);
    }

    #[test]
    fn concurrent_readers_while_the_index_grows() {
        let t = std::sync::Arc::new(SymbolTable::with_index_slots(2));
        let n: u32 = if cfg!(miri) { 60 } else { 3_000 };
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        // Both writers intern the same names: one id each.
                        let id = t.intern(&format!("n{i}"));
                        assert_eq!(t.name(id), Some(format!("n{i}").as_str()), "writer {w}");
                    }
                })
            })
            .collect();
        let reader = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < n {
                    if let Some(id) = t.lookup(&format!("n{seen}")) {
                        assert_eq!(t.name(id), Some(format!("n{seen}").as_str()));
                        seen += 1;
                    }
                }
            })
        };
        for h in writers {
            h.join().unwrap();
        }
        reader.join().unwrap();
        assert_eq!(t.len(), n as usize);
    }
}
