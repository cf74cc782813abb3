//! Tagged 64-bit values.
//!
//! A `Value` is one machine word. The low three bits say what it is:
//!
//! | low bits | meaning                                    |
//! |----------|--------------------------------------------|
//! | `000`    | pointer to a heap object (8-aligned)       |
//! | `001`    | fixnum: a signed 61-bit integer            |
//! | `010`    | character (Unicode scalar value)           |
//! | `011`    | constant: `()`, false, true, nothing, ...  |
//! | `100`    | symbol: index into the intern table        |
//! | `101`    | handle: a channel or thread of the runtime |
//! | `110`    | flonum: a float whose exponent is in range |
//!
//! A flonum holds a float's sign, its 52 mantissa bits and 8 of its 11
//! exponent bits: every float from 2^-126 to just under 2^129 in
//! magnitude, and ±0.0, exactly (the SmallFloat64 encoding of Spur
//! Smalltalk). Other floats (subnormals, huge ones, infinities, NaNs) are
//! heap objects. A float is a flonum whenever it can be one, so the two
//! forms never hold the same number.
//!
//! Immediates never allocate. The word is stored as a raw pointer so heap
//! pointers keep their provenance (strict-provenance clean under Miri);
//! immediates are pointers without provenance.

use std::fmt;
use std::ptr;

pub(crate) const TAG_BITS: usize = 3;
const TAG_MASK: usize = 0b111;
const TAG_HEAP: usize = 0b000;
const TAG_FIX: usize = 0b001;
const TAG_CHAR: usize = 0b010;
const TAG_CONST: usize = 0b011;
const TAG_SYM: usize = 0b100;
const TAG_HANDLE: usize = 0b101;
const TAG_FLO: usize = 0b110;
/// Biased exponents of the floats that are flonums (2^-126 ..= 2^128).
const FLO_EXP: std::ops::RangeInclusive<u64> = 897..=1151;
/// Taken from a float's bits rotated left by one (sign in bit 0, the
/// exponent in bits 53..64), this leaves its exponent as 1..=255 in bits
/// 53..61, so the top three bits are free for the tag. A payload whose
/// exponent is 0 is ±0.0.
const FLO_OFFSET: u64 = (*FLO_EXP.start() - 1) << 53;
/// Bits of a handle's payload that name its kind (the rest is an index).
const HANDLE_KIND_BITS: usize = 8;

/// Smallest and largest integer that fits in a fixnum.
pub const FIXNUM_MIN: i64 = -(1 << 60);
pub const FIXNUM_MAX: i64 = (1 << 60) - 1;

/// One tagged word: an immediate or a pointer into a region.
///
/// A heap `Value` is valid while the region holding its object is alive
/// (docs/REGION_RC_MODEL.md). omni-mem keeps the Region Closure Property for
/// every edge it stores (the barrier); the mutator (the VM) keeps it for the
/// values it holds in registers by exiting a region only when none of its
/// values are still in use. Debug builds check segment liveness on access.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Value(pub(crate) *mut u8);

// SAFETY-free note: `Value` is deliberately !Send and !Sync (raw pointer);
// values cross threads only inside a region handed off as a whole.

const fn konst(n: usize) -> Value {
    Value(ptr::without_provenance_mut((n << TAG_BITS) | TAG_CONST))
}

impl Value {
    pub const EMPTY: Value = konst(0);
    pub const FALSE: Value = konst(1);
    pub const TRUE: Value = konst(2);
    pub const NOTHING: Value = konst(3);
    /// Marks a variable slot that has not been initialised yet (`letrec`).
    pub const UNDEFINED: Value = konst(4);
    /// Internal: a deleted dict entry. Never visible to programs.
    pub(crate) const TOMBSTONE: Value = konst(5);

    #[inline]
    pub(crate) fn bits(self) -> usize {
        self.0.addr()
    }

    /// Tag `TAG_HEAP` and not null. Spelled as one compare: rotating the
    /// tag bits to the top leaves a heap pointer in `1..=usize::MAX >> 3`
    /// and sends every other word outside it (null to 0, any other tag to
    /// `2^61` or above).
    #[inline]
    pub fn is_heap(self) -> bool {
        const _: () = assert!(TAG_HEAP == 0 && TAG_MASK == 0b111);
        self.bits().rotate_right(3).wrapping_sub(1) < usize::MAX >> 3
    }

    /// `is_heap`, for a word known to be a `Value`: its tag alone, one
    /// test where `is_heap` takes four instructions (the constant does not
    /// stay in a register in a busy loop). The two agree on every `Value`,
    /// since no `Value` is the null word: `from_heap` takes non-null
    /// pointers only and every other constructor sets a non-zero tag
    /// (checked here in debug builds). `is_heap` also refuses null, for
    /// callers that test words of unknown origin. The hot paths use this:
    /// transmigration on the slots it copies (57.8 -> 47.8 instructions
    /// per tree object), the store barrier and the object accessors on
    /// the values they are given (BENCHMARKS.md, twenty-second session).
    #[inline(always)]
    pub(crate) fn has_heap_tag(self) -> bool {
        let tagged = self.bits() & TAG_MASK == TAG_HEAP;
        debug_assert_eq!(tagged, self.is_heap(), "a Value is never the null word");
        tagged
    }

    #[inline]
    pub(crate) fn heap_ptr(self) -> *mut u8 {
        debug_assert!(self.is_heap());
        self.0
    }

    #[inline]
    pub(crate) fn from_heap(p: *mut u8) -> Value {
        debug_assert!(!p.is_null() && p.addr() & TAG_MASK == 0);
        Value(p)
    }

    /// A fixnum if `n` fits in 61 bits. Larger integers are boxed by
    /// [`crate::alloc_int`].
    #[inline]
    pub fn fixnum(n: i64) -> Option<Value> {
        if (FIXNUM_MIN..=FIXNUM_MAX).contains(&n) {
            Some(Value(ptr::without_provenance_mut(
                ((n << TAG_BITS) as usize) | TAG_FIX,
            )))
        } else {
            None
        }
    }

    #[inline]
    pub fn as_fixnum(self) -> Option<i64> {
        if self.bits() & TAG_MASK == TAG_FIX {
            Some((self.bits() as i64) >> TAG_BITS)
        } else {
            None
        }
    }

    #[inline]
    pub fn is_fixnum(self) -> bool {
        self.bits() & TAG_MASK == TAG_FIX
    }

    /// A fixnum or a flonum: an immediate number (one test for the two
    /// tags, `0b001` and `0b110`).
    #[inline]
    pub fn is_immediate_number(self) -> bool {
        const _: () = assert!(TAG_FIX == 0b001 && TAG_FLO == 0b110);
        (0b0100_0010u8 >> (self.bits() & TAG_MASK)) & 1 == 1
    }

    // Fixnum arithmetic on the tagged words. A fixnum `n` is the word
    // `n << 3 | 1`, so for two fixnums: `a + (b - 1)` is the tagged sum,
    // `(a - b) | 1` the tagged difference, and the words order as their
    // integers do. A tagged result fits in an i64 exactly when its integer
    // is in `FIXNUM_MIN..=FIXNUM_MAX` (61 bits shifted by 3), so i64
    // overflow *is* the fixnum range test. `None`: an operand is not a
    // fixnum, or the result is not one (the caller's general path boxes it).

    /// Both `x` and `y` are fixnums (one test for the two tags: a word
    /// less one ends in `000` exactly when its tag is `001`; a tag of
    /// `000` borrows and ends in `111`).
    #[inline]
    pub fn both_fixnums(x: Value, y: Value) -> bool {
        const _: () = assert!(TAG_FIX == 1);
        (x.bits().wrapping_sub(TAG_FIX) | y.bits().wrapping_sub(TAG_FIX)) & TAG_MASK == 0
    }

    #[inline]
    fn from_word(w: i64) -> Value {
        Value(ptr::without_provenance_mut(w as usize))
    }

    /// `x + y` for fixnums `x` and `y`.
    #[inline]
    pub fn fixnum_add(x: Value, y: Value) -> Option<Value> {
        if !Value::both_fixnums(x, y) {
            return None;
        }
        let (a, b) = (x.bits() as i64, y.bits() as i64);
        a.checked_add(b - TAG_FIX as i64).map(Value::from_word)
    }

    /// `x - y` for fixnums `x` and `y`.
    #[inline]
    pub fn fixnum_sub(x: Value, y: Value) -> Option<Value> {
        if !Value::both_fixnums(x, y) {
            return None;
        }
        let (a, b) = (x.bits() as i64, y.bits() as i64);
        a.checked_sub(b)
            .map(|d| Value::from_word(d | TAG_FIX as i64))
    }

    /// `x < y` (or `x <= y` with `or_equal`) for fixnums `x` and `y`.
    #[inline]
    pub fn fixnum_less(x: Value, y: Value, or_equal: bool) -> Option<bool> {
        if !Value::both_fixnums(x, y) {
            return None;
        }
        let (a, b) = (x.bits() as i64, y.bits() as i64);
        Some(a < b || (or_equal && a == b))
    }

    /// `x` as a flonum, if its exponent is in range (or it is ±0.0).
    #[inline]
    pub fn flonum(x: f64) -> Option<Value> {
        let bits = x.to_bits();
        let payload = if bits << 1 == 0 {
            bits.rotate_left(1)
        } else if FLO_EXP.contains(&((bits >> 52) & 0x7ff)) {
            bits.rotate_left(1) - FLO_OFFSET
        } else {
            return None;
        };
        Some(Value(ptr::without_provenance_mut(
            ((payload << TAG_BITS) as usize) | TAG_FLO,
        )))
    }

    #[inline]
    pub fn as_flonum(self) -> Option<f64> {
        if self.bits() & TAG_MASK != TAG_FLO {
            return None;
        }
        let payload = (self.bits() >> TAG_BITS) as u64;
        let rotated = if payload >> 53 == 0 {
            payload
        } else {
            payload + FLO_OFFSET
        };
        Some(f64::from_bits(rotated.rotate_right(1)))
    }

    #[inline]
    pub fn char(c: char) -> Value {
        Value(ptr::without_provenance_mut(
            ((c as usize) << TAG_BITS) | TAG_CHAR,
        ))
    }

    #[inline]
    pub fn as_char(self) -> Option<char> {
        if self.bits() & TAG_MASK == TAG_CHAR {
            char::from_u32((self.bits() >> TAG_BITS) as u32)
        } else {
            None
        }
    }

    #[inline]
    pub fn symbol(id: u32) -> Value {
        Value(ptr::without_provenance_mut(
            ((id as usize) << TAG_BITS) | TAG_SYM,
        ))
    }

    #[inline]
    pub fn as_symbol(self) -> Option<u32> {
        if self.bits() & TAG_MASK == TAG_SYM {
            Some((self.bits() >> TAG_BITS) as u32)
        } else {
            None
        }
    }

    /// A handle: an immediate naming an entry of a runtime table (a
    /// channel, a thread). `kind` says which table; handles are plain
    /// words, so they cross threads like any immediate.
    #[inline]
    pub fn handle(kind: u8, index: u32) -> Value {
        let payload = ((index as usize) << HANDLE_KIND_BITS) | kind as usize;
        Value(ptr::without_provenance_mut(
            (payload << TAG_BITS) | TAG_HANDLE,
        ))
    }

    /// `(kind, index)` of a handle.
    #[inline]
    pub fn as_handle(self) -> Option<(u8, u32)> {
        if self.bits() & TAG_MASK == TAG_HANDLE {
            let payload = self.bits() >> TAG_BITS;
            Some((payload as u8, (payload >> HANDLE_KIND_BITS) as u32))
        } else {
            None
        }
    }

    #[inline]
    pub fn bool(b: bool) -> Value {
        if b {
            Value::TRUE
        } else {
            Value::FALSE
        }
    }

    /// Only `false` and `nothing` are false in a test.
    #[inline]
    pub fn is_truthy(self) -> bool {
        self != Value::FALSE && self != Value::NOTHING
    }

    /// Identity comparison (`eq?`): the same word, or two words that name
    /// one object, one of them (or both) a moved original
    /// (`obj::resolve`).
    #[inline]
    pub fn is(self, other: Value) -> bool {
        self.0 == other.0
            || (self.is_heap() && other.is_heap() && crate::obj::same_object_moved(self, other))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.as_fixnum() {
            write!(f, "{n}")
        } else if let Some(c) = self.as_char() {
            write!(f, "#\\{c}")
        } else if let Some(s) = self.as_symbol() {
            write!(f, "sym#{s}")
        } else if *self == Value::EMPTY {
            write!(f, "()")
        } else if *self == Value::FALSE {
            write!(f, "false")
        } else if *self == Value::TRUE {
            write!(f, "true")
        } else if *self == Value::NOTHING {
            write!(f, "nothing")
        } else if let Some(x) = self.as_flonum() {
            write!(f, "{x:?}")
        } else if let Some((k, i)) = self.as_handle() {
            write!(f, "#<handle {k}:{i}>")
        } else if self.is_heap() {
            write!(f, "#<obj {:#x}>", self.bits())
        } else {
            write!(f, "#<imm {:#x}>", self.bits())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixnum_roundtrip_and_range() {
        for n in [0, 1, -1, 42, FIXNUM_MAX, FIXNUM_MIN] {
            assert_eq!(Value::fixnum(n).and_then(|v| v.as_fixnum()), Some(n));
        }
        assert!(Value::fixnum(FIXNUM_MAX + 1).is_none());
        assert!(Value::fixnum(FIXNUM_MIN - 1).is_none());
        assert!(Value::fixnum(i64::MAX).is_none());
    }

    #[test]
    fn tagged_fixnum_arithmetic_is_integer_arithmetic_in_range() {
        let ns = [
            0,
            1,
            -1,
            2,
            -7,
            1000,
            FIXNUM_MAX,
            FIXNUM_MAX - 1,
            FIXNUM_MIN,
            FIXNUM_MIN + 1,
            FIXNUM_MAX / 2 + 1,
            FIXNUM_MIN / 2 - 1,
        ];
        let fix = |n: i64| Value::fixnum(n).unwrap();
        for &x in &ns {
            for &y in &ns {
                let (vx, vy) = (fix(x), fix(y));
                assert!(Value::both_fixnums(vx, vy));
                assert_eq!(Value::fixnum_add(vx, vy), Value::fixnum(x + y), "{x}+{y}");
                assert_eq!(Value::fixnum_sub(vx, vy), Value::fixnum(x - y), "{x}-{y}");
                assert_eq!(Value::fixnum_less(vx, vy, false), Some(x < y));
                assert_eq!(Value::fixnum_less(vx, vy, true), Some(x <= y));
            }
        }
        // The tag test on every pair of tags, at the edges of the word.
        let word = |high: usize, tag: usize| Value(ptr::without_provenance_mut((high & !7) | tag));
        for high in [0usize, 8, 1 << 40, usize::MAX] {
            for (t, u) in (0..8).flat_map(|t| (0..8).map(move |u| (t, u))) {
                let both = Value::both_fixnums(word(high, t), word(!high, u));
                assert_eq!(both, t == TAG_FIX && u == TAG_FIX, "tags {t} {u}");
            }
        }
        // Any other tag on either side: no answer.
        let others = [
            Value::EMPTY,
            Value::FALSE,
            Value::char('a'),
            Value::symbol(3),
            Value::handle(1, 3),
            Value::flonum(1.5).unwrap(),
            Value(ptr::without_provenance_mut(0x1000)),
            Value(ptr::without_provenance_mut(0b111)),
        ];
        for o in others {
            for n in [fix(1), o] {
                assert!(!Value::both_fixnums(o, n) && !Value::both_fixnums(n, o));
                assert_eq!(Value::fixnum_add(o, n), None);
                assert_eq!(Value::fixnum_sub(n, o), None);
                assert_eq!(Value::fixnum_less(o, n, true), None);
            }
        }
    }

    #[test]
    fn is_heap_is_tag_heap_and_not_null() {
        // The one-compare spelling agrees with the definition on every tag
        // at the edges of the word.
        let mut words = vec![0usize, usize::MAX];
        for high in [0usize, 1 << 3, 1 << 20, 1 << 60, usize::MAX & !0b111] {
            for tag in 0..8usize {
                words.push(high | tag);
                words.push((high | tag).wrapping_add(8));
                words.push((high | tag).wrapping_sub(8));
            }
        }
        for w in words {
            let v = Value(ptr::without_provenance_mut(w));
            let expected = w & TAG_MASK == TAG_HEAP && w != 0;
            assert_eq!(v.is_heap(), expected, "word {w:#x}");
        }
    }

    #[test]
    fn no_value_is_the_null_word_so_the_tag_alone_says_heap() {
        // Every constructor at the edges of its input: a non-zero word, and
        // `has_heap_tag` agrees with `is_heap` (its debug check runs too).
        let fix = |n: i64| Value::fixnum(n).unwrap();
        let mut values = vec![
            Value::EMPTY,
            Value::FALSE,
            Value::TRUE,
            Value::NOTHING,
            Value::UNDEFINED,
            Value::TOMBSTONE,
            Value::char('\0'),
            Value::char(char::MAX),
            Value::symbol(0),
            Value::symbol(u32::MAX),
            Value::handle(0, 0),
            Value::bool(false),
            fix(0),
            fix(-1),
            fix(FIXNUM_MIN),
            fix(FIXNUM_MAX),
            Value::flonum(0.0).unwrap(),
            Value::flonum(-0.0).unwrap(),
            Value::from_heap(ptr::without_provenance_mut(8)),
        ];
        for (x, y) in [(0, 0), (-1, 1), (FIXNUM_MIN, 0), (FIXNUM_MAX, FIXNUM_MIN)] {
            values.extend(Value::fixnum_add(fix(x), fix(y)));
            values.extend(Value::fixnum_sub(fix(x), fix(y)));
        }
        for v in values {
            assert_ne!(v.bits(), 0, "{v:?}");
            assert_eq!(v.has_heap_tag(), v.is_heap(), "{v:?}");
        }
        // On other words, too, the two differ only at null.
        for w in [8usize, 0x1000, usize::MAX & !7, 1, 0b111, usize::MAX] {
            let v = Value(ptr::without_provenance_mut(w));
            assert_eq!(v.has_heap_tag(), v.is_heap(), "word {w:#x}");
        }
    }

    #[test]
    fn an_immediate_number_is_a_fixnum_or_a_flonum() {
        let words = [0usize, 1, 0b110, 0b111, 0x1000, usize::MAX, usize::MAX - 1];
        let values = words
            .iter()
            .flat_map(|&w| (0..8).map(move |t| Value(ptr::without_provenance_mut((w & !7) | t))))
            .chain([Value::fixnum(-5).unwrap(), Value::flonum(2.5).unwrap(), Value::EMPTY]);
        for v in values {
            let want = v.is_fixnum() || v.as_flonum().is_some();
            assert_eq!(v.is_immediate_number(), want, "{v:?}");
        }
    }

    #[test]
    fn immediates_are_distinct_and_not_heap() {
        let all = [
            Value::EMPTY,
            Value::FALSE,
            Value::TRUE,
            Value::NOTHING,
            Value::UNDEFINED,
            Value::char('a'),
            Value::symbol(3),
            Value::fixnum(0).unwrap(),
            Value::handle(1, 3),
            Value::handle(2, 3),
            Value::flonum(0.0).unwrap(),
            Value::flonum(-0.0).unwrap(),
            Value::flonum(1.5).unwrap(),
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.is_heap());
            for (j, b) in all.iter().enumerate() {
                assert_eq!(i == j, a == b);
            }
        }
    }

    #[test]
    fn truthiness_follows_the_language() {
        assert!(!Value::FALSE.is_truthy());
        assert!(!Value::NOTHING.is_truthy());
        assert!(Value::EMPTY.is_truthy());
        assert!(Value::fixnum(0).unwrap().is_truthy());
    }

    #[test]
    fn flonums_hold_every_float_in_range_exactly() {
        let inside = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            std::f64::consts::PI,
            1e38,
            -3.4e38,
            f64::from_bits(897 << 52),                  // 2^-126, the smallest
            f64::from_bits((1151 << 52) | ((1 << 52) - 1)), // just under 2^129
            1e-37,
            123_456_789.123_456_78,
        ];
        for x in inside {
            let v = Value::flonum(x).unwrap_or_else(|| panic!("{x} is in range"));
            assert!(!v.is_heap());
            assert_eq!(v.as_flonum().map(f64::to_bits), Some(x.to_bits()), "{x}");
            assert_eq!(v.as_fixnum(), None);
            assert_eq!(v.as_char(), None);
        }
        let outside = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            1e300,
            1e-300,
            f64::MIN_POSITIVE / 2.0, // subnormal
            f64::from_bits(896 << 52), // 2^-127
            f64::from_bits(1152 << 52), // 2^129
        ];
        for x in outside {
            assert!(Value::flonum(x).is_none(), "{x} is out of range");
        }
        // Neighbouring floats stay distinct.
        let a = Value::flonum(1.0).unwrap();
        let b = Value::flonum(f64::from_bits(1.0f64.to_bits() + 1)).unwrap();
        assert_ne!(a, b);
        assert_ne!(Value::flonum(0.0), Value::flonum(-0.0));
        assert_eq!(Value::fixnum(1).unwrap().as_flonum(), None);
    }

    #[test]
    fn chars_and_symbols_roundtrip() {
        assert_eq!(Value::char('λ').as_char(), Some('λ'));
        assert_eq!(Value::symbol(77).as_symbol(), Some(77));
        assert_eq!(Value::symbol(77).as_char(), None);
        assert_eq!(Value::handle(2, u32::MAX).as_handle(), Some((2, u32::MAX)));
        assert_eq!(Value::handle(2, 9).as_symbol(), None);
        assert_eq!(Value::symbol(9).as_handle(), None);
    }
}
