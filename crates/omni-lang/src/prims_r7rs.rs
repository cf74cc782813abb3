//! Scheme (R7RS small) primitives beyond ../shared/LANGUAGE.md, which
//! says to do what Scheme does where it is silent: rounding and exactness,
//! `expt`, `gcd`/`lcm`, characters (`char->integer`, comparisons,
//! classes, case), more string operations, `list-tail`, and reading the
//! program's input (`read-line`, `read-char`, `peek-char`: input.rs). (`assv`, `memv`
//! and the string comparisons share `prims.rs`'s arms with their kin.)
//! Choices where R7RS needs what this language lacks (rationals) are in
//! docs/LANGUAGE_NOTES.md. Every result is made afresh (`Prim::borrows_args`
//! relies on it for the numeric and string ones).

use omni_mem::{alloc_float, alloc_str, cdr, int_value, make_int, MemError, Region, Value};

use crate::builtins::Prim;
use crate::prims::{result_region, Num};
use crate::reader::Span;
use crate::vm::{mem_err, LispError, Vm, VmResult};

impl Vm {
    /// The primitives of this module (`call_prim` sends them here).
    pub(crate) fn call_r7rs(
        &mut self,
        op: Prim,
        a: &[Value],
        dst: Option<Region>,
        span: Span,
    ) -> VmResult<Value> {
        let me = |e: MemError| mem_err(e, span);
        let region = || result_region(dst, span);
        let input_err = |e: String| LispError::new(format!("{}: {e}", op.name()), span);
        use Prim::*;
        Ok(match op {
            Floor | Ceiling | Round | Truncate => match self.num_arg(op, a[0], span)? {
                Num::I(i) => make_int(region()?, i).map_err(me)?,
                Num::F(x) => {
                    let y = match op {
                        Floor => x.floor(),
                        Ceiling => x.ceil(),
                        // R7RS: halfway cases go to the even integer.
                        Round => x.round_ties_even(),
                        _ => x.trunc(),
                    };
                    alloc_float(region()?, y).map_err(me)?
                }
            },
            Exact => match self.num_arg(op, a[0], span)? {
                Num::I(i) => make_int(region()?, i).map_err(me)?,
                Num::F(x) => {
                    // No rationals: only a float with an integer value has
                    // an exact counterpart.
                    let fits = x.is_finite() && x == x.trunc() && x.abs() < 9.2e18;
                    if !fits {
                        return Err(LispError::new(
                            format!(
                                "exact: {} has no exact integer value",
                                self.show_brief(a[0])
                            ),
                            span,
                        ));
                    }
                    make_int(region()?, x as i64).map_err(me)?
                }
            },
            Inexact => {
                let x = self.num_arg(op, a[0], span)?.f();
                alloc_float(region()?, x).map_err(me)?
            }
            Expt => {
                let (b, e) = (self.num_arg(op, a[0], span)?, self.num_arg(op, a[1], span)?);
                match (b, e) {
                    (Num::I(b), Num::I(e)) if e >= 0 => {
                        let r = u32::try_from(e).ok().and_then(|e| b.checked_pow(e));
                        let r = match (r, b) {
                            (Some(r), _) => r,
                            // A huge exponent stays in range only for these.
                            (None, 0 | 1) => b,
                            (None, -1) => {
                                if e % 2 == 0 {
                                    1
                                } else {
                                    -1
                                }
                            }
                            (None, _) => {
                                return Err(LispError::new("integer overflow in expt", span))
                            }
                        };
                        make_int(region()?, r).map_err(me)?
                    }
                    (b, e) => alloc_float(region()?, b.f().powf(e.f())).map_err(me)?,
                }
            }
            Gcd | Lcm => {
                let mut acc: i64 = if op == Gcd { 0 } else { 1 };
                for &v in a {
                    let n = self.int_arg(op, v, span)?;
                    acc = if op == Gcd {
                        gcd(acc, n)
                    } else if acc == 0 || n == 0 {
                        0
                    } else {
                        (acc / gcd(acc, n))
                            .checked_mul(n)
                            .and_then(i64::checked_abs)
                            .ok_or_else(|| LispError::new("integer overflow in lcm", span))?
                    };
                }
                if acc < 0 {
                    // gcd of i64::MIN alone.
                    return Err(LispError::new(
                        format!("integer overflow in {}", op.name()),
                        span,
                    ));
                }
                make_int(region()?, acc).map_err(me)?
            }
            Square => match self.num_arg(op, a[0], span)? {
                Num::I(i) => make_int(
                    region()?,
                    i.checked_mul(i)
                        .ok_or_else(|| LispError::new("integer overflow in square", span))?,
                )
                .map_err(me)?,
                Num::F(x) => alloc_float(region()?, x * x).map_err(me)?,
            },
            IsExactInteger => Value::bool(int_value(a[0]).is_some()),
            CharToInteger => Value::fixnum(i64::from(u32::from(self.char_arg(op, a[0], span)?)))
                .unwrap_or(Value::NOTHING),
            IntegerToChar => {
                let n = self.int_arg(op, a[0], span)?;
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        LispError::new(
                            format!("integer->char: {n} is not a Unicode scalar value"),
                            span,
                        )
                    })?;
                Value::char(c)
            }
            CharEq | CharLt | CharGt | CharLe | CharGe => {
                let mut ok = true;
                for w in a.windows(2) {
                    let (x, y) = (
                        self.char_arg(op, w[0], span)?,
                        self.char_arg(op, w[1], span)?,
                    );
                    ok &= match op {
                        CharEq => x == y,
                        CharLt => x < y,
                        CharGt => x > y,
                        CharLe => x <= y,
                        _ => x >= y,
                    };
                }
                Value::bool(ok)
            }
            IsCharAlphabetic | IsCharNumeric | IsCharWhitespace | IsCharUpperCase
            | IsCharLowerCase => {
                let c = self.char_arg(op, a[0], span)?;
                Value::bool(match op {
                    IsCharAlphabetic => c.is_alphabetic(),
                    IsCharNumeric => c.is_numeric(),
                    IsCharWhitespace => c.is_whitespace(),
                    IsCharUpperCase => c.is_uppercase(),
                    _ => c.is_lowercase(),
                })
            }
            CharUpcase | CharDowncase => {
                let c = self.char_arg(op, a[0], span)?;
                // A character whose case mapping is several characters
                // (`ß` upcases to `SS`) maps to itself, as in R7RS.
                let mut m: Vec<char> = if op == CharUpcase {
                    c.to_uppercase().collect()
                } else {
                    c.to_lowercase().collect()
                };
                Value::char(if m.len() == 1 { m.remove(0) } else { c })
            }
            StringOf => {
                let mut s = std::string::String::new();
                for &v in a {
                    s.push(self.char_arg(op, v, span)?);
                }
                alloc_str(region()?, &s).map_err(me)?
            }
            StringUpcase | StringDowncase => {
                let s = self.text(op, a[0], span, |s, _| {
                    if op == StringUpcase {
                        s.to_uppercase()
                    } else {
                        s.to_lowercase()
                    }
                })?;
                alloc_str(region()?, &s).map_err(me)?
            }
            StringCopy => {
                if a.len() == 1 {
                    let s = self.str_arg(op, a[0], span)?;
                    alloc_str(region()?, &s).map_err(me)?
                } else {
                    // `(string-copy s start [end])` is `substring`.
                    let r = region()?;
                    self.call_prim(Substring, a, Some(r), span)
                        .map_err(|mut e| {
                            e.message = e.message.replacen("substring", "string-copy", 1);
                            e
                        })?
                }
            }
            ListTail => {
                let k = self.index_arg(op, a[1], span)?;
                let mut l = a[0];
                for _ in 0..k {
                    l = cdr(l).ok_or_else(|| {
                        LispError::new(format!("list-tail: index {k} out of range"), span)
                    })?;
                }
                l
            }
            ReadLine => match self.rt.with_input(|i| i.read_line()).map_err(input_err)? {
                Some(line) => alloc_str(region()?, &line).map_err(me)?,
                None => crate::input::eof(),
            },
            ReadChar | PeekChar => {
                let c = self.rt.with_input(|i| i.read_char(op == PeekChar));
                c.map_err(input_err)?
                    .map_or(crate::input::eof(), Value::char)
            }
            Read => match self.rt.with_input(|i| i.read_datum()).map_err(input_err)? {
                Some(d) => self.datum_value_in(region()?, &d).map_err(me)?,
                None => crate::input::eof(),
            },
            EofObject => crate::input::eof(),
            IsEofObject => Value::bool(a[0] == crate::input::eof()),
            _ => return Err(LispError::new("internal: not an R7RS primitive", span)),
        })
    }

    fn char_arg(&self, op: Prim, v: Value, span: Span) -> VmResult<char> {
        v.as_char()
            .ok_or_else(|| self.bad(op, "a character", v, span))
    }
}

/// The greatest common divisor of `|a|` and `|b|` (negative only for
/// `i64::MIN`, whose magnitude does not fit).
fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    i64::try_from(a).unwrap_or(-1)
}
