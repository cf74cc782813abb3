//! Primitive implementations. Every allocation goes to the region the CTRR
//! schedule named (`dst`); every mutation goes through omni-mem's store
//! helper (the barrier).

use std::cmp::Ordering;
use std::io::Write;

use omni_mem::{
    alloc_array, alloc_array_from, alloc_box, alloc_dict, alloc_float, alloc_list, alloc_pair,
    alloc_str, array_get, array_items, array_len, array_push, array_set, box_get, box_set, car,
    cdr, dict_count, dict_entries, dict_get, dict_has, dict_remove, dict_set, equal, eqv,
    float_value, int_value, intern, is_str, kind, make_int, region_exit, set_car, set_cdr,
    str_is_ascii, symbol_name, with_str, Kind, MemError, Region, Value,
};

use crate::builtins::Prim;
use crate::printer::format_float;
use crate::reader::Span;
use crate::vm::{mem_err, Dst, LispError, Vm, VmResult};

#[derive(Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub(crate) fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(x) => x,
        }
    }
}

/// Floyd's cycle check for a walk down a list (`list?`, and every
/// primitive that walks a whole list): the walk is the hare, and
/// a tortoise moves one pair for every two of its steps. `step` says
/// whether the hare, now at `v`, has met the tortoise: the list is
/// circular. (A walk that stops at the list's end never meets it.)
struct CycleCheck {
    slow: Value,
    odd: bool,
}

impl CycleCheck {
    fn new(start: Value) -> Self {
        CycleCheck {
            slow: start,
            odd: false,
        }
    }

    fn step(&mut self, v: Value) -> bool {
        if self.odd {
            self.slow = cdr(self.slow).unwrap_or(Value::EMPTY);
        }
        self.odd = !self.odd;
        v.is_heap() && v == self.slow
    }
}

/// The one-value type tests that a value's kind answers (all but
/// `integer?`, which looks at a float's value): the primitives and the VM's
/// fast path (vm/eval.rs) both answer through this. `false` for any other
/// primitive.
pub(crate) fn kind_test(op: Prim, k: Kind) -> bool {
    use Prim::*;
    match op {
        IsSymbol => k == Kind::Symbol,
        IsString => k == Kind::Str,
        IsNumber => matches!(k, Kind::Fixnum | Kind::Int | Kind::Float),
        IsFloat => k == Kind::Float,
        IsChar => k == Kind::Char,
        IsProcedure => k == Kind::Closure,
        IsArray => k == Kind::Array,
        IsDict => k == Kind::Dict,
        IsBoolean => matches!(k, Kind::True | Kind::False),
        IsNothing => k == Kind::Nothing,
        _ => false,
    }
}

fn num(v: Value) -> Option<Num> {
    if let Some(i) = int_value(v) {
        Some(Num::I(i))
    } else {
        float_value(v).map(Num::F)
    }
}

fn type_name(v: Value) -> &'static str {
    match kind(v) {
        Kind::Fixnum | Kind::Int => "integer",
        Kind::Float => "float",
        Kind::Char => "character",
        Kind::Symbol => "symbol",
        Kind::Empty => "empty list",
        Kind::True | Kind::False => "boolean",
        Kind::Nothing => "nothing",
        Kind::Undefined => "undefined",
        Kind::Pair => "pair",
        Kind::Str => "string",
        Kind::Array => "array",
        Kind::Dict => "dict",
        Kind::Box => "box",
        Kind::Closure => "procedure",
        Kind::Handle => "handle",
        Kind::Other => "internal value",
    }
}

impl Vm {
    pub(crate) fn bad(&self, op: Prim, what: &str, v: Value, span: Span) -> Box<LispError> {
        LispError::new(
            format!(
                "{}: expected {what}, got {} ({})",
                op.name(),
                self.show_brief(v),
                type_name(v)
            ),
            span,
        )
    }

    pub(crate) fn num_arg(&self, op: Prim, v: Value, span: Span) -> VmResult<Num> {
        num(v).ok_or_else(|| self.bad(op, "a number", v, span))
    }

    pub(crate) fn int_arg(&self, op: Prim, v: Value, span: Span) -> VmResult<i64> {
        int_value(v).ok_or_else(|| self.bad(op, "an integer", v, span))
    }

    pub(crate) fn index_arg(&self, op: Prim, v: Value, span: Span) -> VmResult<usize> {
        let i = self.int_arg(op, v, span)?;
        usize::try_from(i)
            .map_err(|_| LispError::new(format!("{}: index {i} is negative", op.name()), span))
    }

    pub(crate) fn str_arg(&self, op: Prim, v: Value, span: Span) -> VmResult<String> {
        self.text(op, v, span, |s, _| s.to_owned())
    }

    /// An optional radix argument: 10 when absent, else an integer from
    /// 2 to 36.
    fn radix_arg(&self, op: Prim, v: Option<&Value>, span: Span) -> VmResult<u32> {
        let Some(&v) = v else { return Ok(10) };
        match v.as_fixnum().and_then(|r| u32::try_from(r).ok()) {
            Some(r @ 2..=36) => Ok(r),
            _ => Err(self.bad(op, "a radix from 2 to 36", v, span)),
        }
    }

    /// Run `f` on string `v`'s text, read in place, and whether it is all
    /// ASCII (`str_is_ascii`: its characters are its bytes); the type
    /// error if `v` is not a string.
    pub(crate) fn text<R>(
        &self,
        op: Prim,
        v: Value,
        span: Span,
        f: impl FnOnce(&str, bool) -> R,
    ) -> VmResult<R> {
        let ascii = str_is_ascii(v);
        with_str(v, |s| f(s, ascii)).ok_or_else(|| self.bad(op, "a string", v, span))
    }

    fn list_items(&self, op: Prim, v: Value, span: Span) -> VmResult<Vec<Value>> {
        let mut out = Vec::new();
        self.list_walk(op, v, span, |x| out.push(x))?;
        Ok(out)
    }

    /// Call `each` on the items of proper list `v` in order and return
    /// how many there are; an improper or cyclic `v` is `op`'s type error.
    fn list_walk(
        &self,
        op: Prim,
        mut v: Value,
        span: Span,
        mut each: impl FnMut(Value),
    ) -> VmResult<usize> {
        let whole = v;
        let mut n = 0;
        let mut cycle = CycleCheck::new(v);
        while let (Some(a), Some(d)) = (car(v), cdr(v)) {
            each(a);
            n += 1;
            v = d;
            if cycle.step(v) {
                return Err(self.bad(op, "a proper list", whole, span));
            }
        }
        if v != Value::EMPTY {
            return Err(self.bad(op, "a proper list", whole, span));
        }
        Ok(n)
    }

    fn emit(&mut self, s: &str, span: Span) -> VmResult<()> {
        self.rt
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(s.as_bytes())
            .map_err(|e| LispError::new(format!("output error: {e}"), span))
    }

    /// Run `f` on each of `items` with a fresh region per call for its
    /// (discarded) result.
    fn call_discard(&mut self, f: Value, args: Vec<Value>, span: Span) -> VmResult<Value> {
        let tmp = self.new_region();
        let r = self.apply(f, args, Dst::Region(tmp), span);
        // Only immediates survive the temporary region.
        let r = r.map(|v| if v.is_heap() { Value::TRUE } else { v });
        region_exit(tmp);
        r
    }

    #[inline(never)]
    pub(crate) fn call_prim(
        &mut self,
        op: Prim,
        a: &[Value],
        dst: Option<Region>,
        span: Span,
    ) -> VmResult<Value> {
        let me = |e: MemError| mem_err(e, span);
        let region = || result_region(dst, span);
        use Prim::*;
        Ok(match op {
            Add | Mul => {
                let mut acc = Num::I(if op == Add { 0 } else { 1 });
                for &v in a {
                    let x = self.num_arg(op, v, span)?;
                    acc = match (acc, x) {
                        (Num::I(p), Num::I(q)) => Num::I(
                            if op == Add {
                                p.checked_add(q)
                            } else {
                                p.checked_mul(q)
                            }
                            .ok_or_else(|| {
                                LispError::new(format!("integer overflow in {}", op.name()), span)
                            })?,
                        ),
                        (p, q) => Num::F(if op == Add {
                            p.f() + q.f()
                        } else {
                            p.f() * q.f()
                        }),
                    };
                }
                self.make_num(acc, region()?, span)?
            }
            Sub => {
                let first = self.num_arg(op, a[0], span)?;
                let mut acc = if a.len() == 1 {
                    match first {
                        Num::I(i) => Num::I(
                            i.checked_neg()
                                .ok_or_else(|| LispError::new("integer overflow in -", span))?,
                        ),
                        Num::F(x) => Num::F(-x),
                    }
                } else {
                    first
                };
                for &v in &a[1..] {
                    let x = self.num_arg(op, v, span)?;
                    acc = match (acc, x) {
                        (Num::I(p), Num::I(q)) => Num::I(
                            p.checked_sub(q)
                                .ok_or_else(|| LispError::new("integer overflow in -", span))?,
                        ),
                        (p, q) => Num::F(p.f() - q.f()),
                    };
                }
                self.make_num(acc, region()?, span)?
            }
            Div => {
                let first = self.num_arg(op, a[0], span)?;
                let (mut acc, rest) = if a.len() == 1 {
                    (Num::I(1), a)
                } else {
                    (first, &a[1..])
                };
                for &v in rest {
                    let x = self.num_arg(op, v, span)?;
                    acc = match (acc, x) {
                        (_, Num::I(0)) => return Err(LispError::new("division by zero", span)),
                        (Num::I(p), Num::I(q)) if p.checked_rem(q) == Some(0) => Num::I(
                            p.checked_div(q)
                                .ok_or_else(|| LispError::new("integer overflow in /", span))?,
                        ),
                        (p, q) => Num::F(p.f() / q.f()),
                    };
                }
                self.make_num(acc, region()?, span)?
            }
            Quotient | Remainder | Modulo => {
                let p = self.int_arg(op, a[0], span)?;
                let q = self.int_arg(op, a[1], span)?;
                if q == 0 {
                    return Err(LispError::new("division by zero", span));
                }
                let r = match op {
                    Quotient => p.checked_div(q),
                    Remainder => p.checked_rem(q),
                    _ => p.checked_rem(q).map(|r| {
                        if r != 0 && (r < 0) != (q < 0) {
                            r + q
                        } else {
                            r
                        }
                    }),
                }
                .ok_or_else(|| {
                    LispError::new(format!("integer overflow in {}", op.name()), span)
                })?;
                make_int(region()?, r).map_err(me)?
            }
            NumEq | Lt | Gt | Le | Ge => {
                let mut ok = true;
                for w in a.windows(2) {
                    let x = self.num_arg(op, w[0], span)?;
                    let y = self.num_arg(op, w[1], span)?;
                    let ord = match (x, y) {
                        (Num::I(p), Num::I(q)) => Some(p.cmp(&q)),
                        (p, q) => p.f().partial_cmp(&q.f()),
                    };
                    let hold = match (op, ord) {
                        (_, None) => false,
                        (NumEq, Some(o)) => o == Ordering::Equal,
                        (Lt, Some(o)) => o == Ordering::Less,
                        (Gt, Some(o)) => o == Ordering::Greater,
                        (Le, Some(o)) => o != Ordering::Greater,
                        (_, Some(o)) => o != Ordering::Less,
                    };
                    ok &= hold;
                }
                if a.len() == 1 {
                    self.num_arg(op, a[0], span)?;
                }
                Value::bool(ok)
            }
            Abs => match self.num_arg(op, a[0], span)? {
                Num::I(i) => make_int(
                    region()?,
                    i.checked_abs()
                        .ok_or_else(|| LispError::new("integer overflow in abs", span))?,
                )
                .map_err(me)?,
                Num::F(x) => alloc_float(region()?, x.abs()).map_err(me)?,
            },
            Min | Max => {
                let mut best = self.num_arg(op, a[0], span)?;
                let mut any_float = matches!(best, Num::F(_));
                for &v in &a[1..] {
                    let x = self.num_arg(op, v, span)?;
                    any_float |= matches!(x, Num::F(_));
                    let better = if op == Min {
                        x.f() < best.f()
                    } else {
                        x.f() > best.f()
                    };
                    if better {
                        best = x;
                    }
                }
                let best = if any_float { Num::F(best.f()) } else { best };
                self.make_num(best, region()?, span)?
            }
            IsZero | IsPositive | IsNegative => {
                let x = self.num_arg(op, a[0], span)?.f();
                Value::bool(match op {
                    IsZero => x == 0.0,
                    IsPositive => x > 0.0,
                    _ => x < 0.0,
                })
            }
            IsEven | IsOdd => {
                let i = self.int_arg(op, a[0], span)?;
                Value::bool((i % 2 == 0) == (op == IsEven))
            }
            NumberToString => {
                let radix = self.radix_arg(op, a.get(1), span)?;
                let s = match self.num_arg(op, a[0], span)? {
                    Num::I(i) => int_in_radix(i, radix),
                    Num::F(x) if radix == 10 => format_float(x),
                    Num::F(_) => {
                        return Err(LispError::new(
                            format!("{}: a float is written only in radix 10", op.name()),
                            span,
                        ))
                    }
                };
                alloc_str(region()?, &s).map_err(me)?
            }
            ExactToInexact => {
                let x = self.num_arg(op, a[0], span)?.f();
                alloc_float(region()?, x).map_err(me)?
            }
            Sqrt => {
                let n = self.num_arg(op, a[0], span)?;
                if let Num::I(i) = n {
                    if i >= 0 {
                        let r = (i as f64).sqrt().round() as i64;
                        if r.checked_mul(r) == Some(i) {
                            return make_int(region()?, r).map_err(me);
                        }
                    }
                }
                alloc_float(region()?, n.f().sqrt()).map_err(me)?
            }
            IsEq => Value::bool(a[0].is(a[1])),
            IsEqv => Value::bool(eqv(a[0], a[1])),
            IsEqual => Value::bool(equal(a[0], a[1])),
            IsNull => Value::bool(a[0] == Value::EMPTY),
            IsPair => Value::bool(kind(a[0]) == Kind::Pair),
            IsList => {
                // Proper and finite.
                let mut v = a[0];
                let mut cycle = CycleCheck::new(v);
                let proper = loop {
                    if v == Value::EMPTY {
                        break true;
                    }
                    let Some(d) = cdr(v) else { break false };
                    v = d;
                    if cycle.step(v) {
                        break false;
                    }
                };
                Value::bool(proper)
            }
            IsInteger => Value::bool(
                int_value(a[0]).is_some()
                    || float_value(a[0]).is_some_and(|x| x.is_finite() && x == x.trunc()),
            ),
            IsSymbol | IsString | IsNumber | IsFloat | IsChar | IsProcedure | IsArray | IsDict
            | IsBoolean | IsNothing => Value::bool(kind_test(op, kind(a[0]))),
            Not => Value::bool(!a[0].is_truthy()),
            Cons => alloc_pair(region()?, a[0], a[1]).map_err(me)?,
            Car => car(a[0]).ok_or_else(|| self.bad(op, "a pair", a[0], span))?,
            Cdr => cdr(a[0]).ok_or_else(|| self.bad(op, "a pair", a[0], span))?,
            Caar | Cadr | Cdar | Cddr | Caddr => {
                let path: &[bool] = match op {
                    // true = car, applied right to left
                    Caar => &[true, true],
                    Cadr => &[false, true],
                    Cdar => &[true, false],
                    Cddr => &[false, false],
                    _ => &[false, false, true],
                };
                let mut v = a[0];
                for &is_car in path {
                    v = if is_car { car(v) } else { cdr(v) }
                        .ok_or_else(|| self.bad(op, "a deep enough list", a[0], span))?;
                }
                v
            }
            List => {
                let r = region()?;
                alloc_list(r, a).map_err(me)?
            }
            Length => Value::fixnum(self.list_walk(op, a[0], span, |_| ())? as i64)
                .unwrap_or(Value::NOTHING),
            Append => {
                let Some((&last, init)) = a.split_last() else {
                    return Ok(Value::EMPTY);
                };
                let r = region()?;
                let mut items = Vec::new();
                for &l in init {
                    items.extend(self.list_items(op, l, span)?);
                }
                let mut out = last;
                for x in items.into_iter().rev() {
                    out = alloc_pair(r, x, out).map_err(me)?;
                }
                out
            }
            Reverse => {
                let r = region()?;
                let mut out = Value::EMPTY;
                for x in self.list_items(op, a[0], span)? {
                    out = alloc_pair(r, x, out).map_err(me)?;
                }
                out
            }
            ListRef => {
                let i = self.index_arg(op, a[1], span)?;
                let mut v = a[0];
                for _ in 0..i {
                    v = cdr(v).ok_or_else(|| {
                        LispError::new(format!("list-ref: index {i} out of range"), span)
                    })?;
                }
                car(v).ok_or_else(|| {
                    LispError::new(format!("list-ref: index {i} out of range"), span)
                })?
            }
            Map | ForEach => {
                let f = a[0];
                let lists = a[1..]
                    .iter()
                    .map(|&l| self.list_items(op, l, span))
                    .collect::<VmResult<Vec<_>>>()?;
                let n = lists.iter().map(Vec::len).min().unwrap_or(0);
                if op == ForEach {
                    for i in 0..n {
                        let args = lists.iter().map(|l| l[i]).collect();
                        self.call_discard(f, args, span)?;
                    }
                    Value::NOTHING
                } else {
                    let r = region()?;
                    let mut results = Vec::with_capacity(n);
                    for i in 0..n {
                        let args = lists.iter().map(|l| l[i]).collect();
                        results.push(self.apply(f, args, Dst::Region(r), span)?);
                    }
                    let mut out = Value::EMPTY;
                    for x in results.into_iter().rev() {
                        out = alloc_pair(r, x, out).map_err(me)?;
                    }
                    out
                }
            }
            Filter => {
                let r = region()?;
                let mut keep = Vec::new();
                for x in self.list_items(op, a[1], span)? {
                    if self.call_discard(a[0], vec![x], span)?.is_truthy() {
                        keep.push(x);
                    }
                }
                let mut out = Value::EMPTY;
                for x in keep.into_iter().rev() {
                    out = alloc_pair(r, x, out).map_err(me)?;
                }
                out
            }
            FoldLeft => {
                let r = region()?;
                let mut acc = a[1];
                for x in self.list_items(op, a[2], span)? {
                    acc = self.apply(a[0], vec![acc, x], Dst::Region(r), span)?;
                }
                acc
            }
            // `assq`/`memq` compare with `eqv?` too, so `assv`/`memv` are
            // the same primitive under the R7RS name.
            Assoc | Assq | Assv | Member | Memq | Memv => {
                let mut l = a[1];
                let mut found = Value::FALSE;
                let mut cycle = CycleCheck::new(l);
                while let (Some(x), Some(d)) = (car(l), cdr(l)) {
                    let (probe, hit) = match op {
                        Assoc | Assq | Assv => match car(x) {
                            Some(k) => (k, x),
                            None => return Err(self.bad(op, "a list of pairs", a[1], span)),
                        },
                        _ => (x, l),
                    };
                    let same = if matches!(op, Assoc | Member) {
                        equal(probe, a[0])
                    } else {
                        eqv(probe, a[0])
                    };
                    if same {
                        found = hit;
                        break;
                    }
                    l = d;
                    if cycle.step(l) {
                        return Err(self.bad(op, "a proper list", a[1], span));
                    }
                }
                found
            }
            Apply => {
                let (&last, init) = a[1..].split_last().unwrap_or((&Value::EMPTY, &[]));
                let mut args = init.to_vec();
                args.extend(self.list_items(op, last, span)?);
                self.apply(a[0], args, Dst::Region(region()?), span)?
            }
            SetCar | SetCdr => {
                let done = if op == SetCar {
                    set_car(a[0], a[1])
                } else {
                    set_cdr(a[0], a[1])
                }
                .map_err(me)?;
                if !done {
                    return Err(self.bad(op, "a pair", a[0], span));
                }
                Value::NOTHING
            }
            Array => alloc_array_from(region()?, a).map_err(me)?,
            MakeArray => {
                let n = self.index_arg(op, a[0], span)?;
                if n > (1 << 32) {
                    return Err(LispError::new(
                        format!("make-array: size {n} is too large"),
                        span,
                    ));
                }
                alloc_array(region()?, n, a.get(1).copied().unwrap_or(Value::NOTHING))
                    .map_err(me)?
            }
            ArrayRef => {
                let len = array_len(a[0]).ok_or_else(|| self.bad(op, "an array", a[0], span))?;
                let i = self.index_arg(op, a[1], span)?;
                array_get(a[0], i).ok_or_else(|| {
                    LispError::new(
                        format!("array-ref: index {i} out of range for length {len}"),
                        span,
                    )
                })?
            }
            ArraySet => {
                let len = array_len(a[0]).ok_or_else(|| self.bad(op, "an array", a[0], span))?;
                let i = self.index_arg(op, a[1], span)?;
                if !array_set(a[0], i, a[2]).map_err(me)? {
                    return Err(LispError::new(
                        format!("array-set!: index {i} out of range for length {len}"),
                        span,
                    ));
                }
                Value::NOTHING
            }
            ArrayLength => Value::fixnum(
                array_len(a[0]).ok_or_else(|| self.bad(op, "an array", a[0], span))? as i64,
            )
            .unwrap_or(Value::NOTHING),
            ArrayPush => {
                if !array_push(a[0], a[1]).map_err(me)? {
                    return Err(self.bad(op, "an array", a[0], span));
                }
                Value::NOTHING
            }
            ArrayToList => {
                let items =
                    array_items(a[0]).ok_or_else(|| self.bad(op, "an array", a[0], span))?;
                let r = region()?;
                let mut out = Value::EMPTY;
                for x in items.into_iter().rev() {
                    out = alloc_pair(r, x, out).map_err(me)?;
                }
                out
            }
            ListToArray => {
                let items = self.list_items(op, a[0], span)?;
                alloc_array_from(region()?, &items).map_err(me)?
            }
            Dict => {
                if !a.len().is_multiple_of(2) {
                    return Err(LispError::new("dict: expected key/value pairs", span));
                }
                let d = alloc_dict(region()?).map_err(me)?;
                for kv in a.chunks(2) {
                    dict_set(d, kv[0], kv[1]).map_err(me)?;
                }
                d
            }
            DictRef => {
                dict_count(a[0]).ok_or_else(|| self.bad(op, "a dict", a[0], span))?;
                match dict_get(a[0], a[1]) {
                    Some(v) => v,
                    None => match a.get(2) {
                        Some(&default) => default,
                        None => {
                            return Err(LispError::new(
                                format!("dict-ref: key {} not found", self.show_brief(a[1])),
                                span,
                            ))
                        }
                    },
                }
            }
            DictSet => {
                if !dict_set(a[0], a[1], a[2]).map_err(me)? {
                    return Err(self.bad(op, "a dict", a[0], span));
                }
                Value::NOTHING
            }
            DictRemove => {
                dict_count(a[0]).ok_or_else(|| self.bad(op, "a dict", a[0], span))?;
                Value::bool(dict_remove(a[0], a[1]))
            }
            DictHas => Value::bool(
                dict_has(a[0], a[1]).ok_or_else(|| self.bad(op, "a dict", a[0], span))?,
            ),
            DictKeys => {
                let entries =
                    dict_entries(a[0]).ok_or_else(|| self.bad(op, "a dict", a[0], span))?;
                let r = region()?;
                let mut out = Value::EMPTY;
                for (k, _) in entries.into_iter().rev() {
                    out = alloc_pair(r, k, out).map_err(me)?;
                }
                out
            }
            DictCount => Value::fixnum(
                dict_count(a[0]).ok_or_else(|| self.bad(op, "a dict", a[0], span))? as i64,
            )
            .unwrap_or(Value::NOTHING),
            // The string primitives read the text in place (`text`), and
            // an ASCII string's characters are its bytes: length, indexing
            // and slicing cost no decoding.
            StringLength => {
                let n = self.text(op, a[0], span, char_len)?;
                Value::fixnum(n as i64).unwrap_or(Value::NOTHING)
            }
            StringAppend => {
                let mut s = String::new();
                for &x in a {
                    self.text(op, x, span, |t, _| s.push_str(t))?;
                }
                alloc_str(region()?, &s).map_err(me)?
            }
            Substring => {
                if !is_str(a[0]) {
                    return Err(self.bad(op, "a string", a[0], span));
                }
                let start = self.index_arg(op, a[1], span)?;
                let end = match a.get(2) {
                    Some(&e) => Some(self.index_arg(op, e, span)?),
                    None => None,
                };
                let sub = self.text(op, a[0], span, |s, ascii| {
                    char_span(s, ascii, start, end).map(|(b0, b1)| s[b0..b1].to_owned())
                })?;
                let sub = sub.map_err(|n| {
                    LispError::new(
                        format!(
                            "substring: range {start}..{} out of bounds for length {n}",
                            end.unwrap_or(n)
                        ),
                        span,
                    )
                })?;
                alloc_str(region()?, &sub).map_err(me)?
            }
            StringEq | StringLt | StringGt | StringLe | StringGe => {
                let mut ok = true;
                for w in a.windows(2) {
                    ok &= self.text(op, w[0], span, |x, _| {
                        self.text(op, w[1], span, |y, _| match op {
                            StringEq => x == y,
                            StringLt => x < y,
                            StringGt => x > y,
                            StringLe => x <= y,
                            _ => x >= y,
                        })
                    })??;
                }
                Value::bool(ok)
            }
            StringRef => {
                if !is_str(a[0]) {
                    return Err(self.bad(op, "a string", a[0], span));
                }
                let i = self.index_arg(op, a[1], span)?;
                let c = self.text(op, a[0], span, |s, ascii| {
                    let c = if ascii {
                        s.as_bytes().get(i).map(|&b| char::from(b))
                    } else {
                        s.chars().nth(i)
                    };
                    c.ok_or_else(|| char_len(s, ascii))
                })?;
                let c = c.map_err(|n| {
                    LispError::new(format!("string-ref: index {i} out of range for length {n}"), span)
                })?;
                Value::char(c)
            }
            StringToSymbol => self.text(op, a[0], span, |s, _| intern(s))?,
            SymbolToString => {
                let name = symbol_name(a[0]).ok_or_else(|| self.bad(op, "a symbol", a[0], span))?;
                alloc_str(region()?, name).map_err(me)?
            }
            StringToList => {
                let s = self.str_arg(op, a[0], span)?;
                let r = region()?;
                let mut out = Value::EMPTY;
                for c in s.chars().rev() {
                    out = alloc_pair(r, Value::char(c), out).map_err(me)?;
                }
                out
            }
            ListToString => {
                let mut s = String::new();
                for x in self.list_items(op, a[0], span)? {
                    s.push(
                        x.as_char()
                            .ok_or_else(|| self.bad(op, "a list of characters", a[0], span))?,
                    );
                }
                alloc_str(region()?, &s).map_err(me)?
            }
            StringToNumber => {
                let s = self.str_arg(op, a[0], span)?;
                let radix = self.radix_arg(op, a.get(1), span)?;
                let r = region()?;
                if let Ok(i) = i64::from_str_radix(&s, radix) {
                    make_int(r, i).map_err(me)?
                } else if radix != 10 {
                    Value::FALSE
                } else if let Some(x) = s.parse::<f64>().ok().filter(|x| x.is_finite()) {
                    alloc_float(r, x).map_err(me)?
                } else {
                    Value::FALSE
                }
            }
            Box => alloc_box(region()?, a[0]).map_err(me)?,
            Unbox => box_get(a[0]).ok_or_else(|| self.bad(op, "a box", a[0], span))?,
            SetBox => {
                if !box_set(a[0], a[1]).map_err(me)? {
                    return Err(self.bad(op, "a box", a[0], span));
                }
                Value::NOTHING
            }
            Display | Write => {
                let s = self.show(a[0], op == Write);
                self.emit(&s, span)?;
                Value::NOTHING
            }
            Println => {
                let mut s = String::new();
                for (i, &x) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(&self.show(x, false));
                }
                s.push('\n');
                self.emit(&s, span)?;
                Value::NOTHING
            }
            Newline => {
                self.emit("\n", span)?;
                Value::NOTHING
            }
            Error => {
                let mut msg = match with_str(a[0], str::to_owned) {
                    Some(s) => s,
                    None => self.show(a[0], true),
                };
                for &x in &a[1..] {
                    msg.push(' ');
                    msg.push_str(&self.show(x, true));
                }
                return Err(LispError::new(msg, span));
            }
            Exit => {
                let status = match a.first() {
                    None => 0,
                    Some(&v) if v == Value::TRUE => 0,
                    Some(&v) if v == Value::FALSE => 1,
                    Some(&v) => match v.as_fixnum().and_then(|n| u8::try_from(n).ok()) {
                        Some(n) => n,
                        None => {
                            return Err(LispError::new(
                                format!(
                                    "exit: expected a status from 0 to 255 or a boolean, got {}",
                                    self.show_brief(v)
                                ),
                                span,
                            ))
                        }
                    },
                };
                // Every thread of the program stops at its next call; this
                // one unwinds now (no handler catches it: guard-error below).
                self.rt.request_exit(status);
                return Err(LispError::new("exit", span));
            }
            GuardError => {
                let r = region()?;
                match self.apply(a[0], vec![], Dst::Region(r), span) {
                    Ok(v) => v,
                    // An exit or an interrupt is not the program's error to
                    // handle.
                    Err(e) if self.stop_reason(crate::interrupt::count()).is_some() => {
                        return Err(e)
                    }
                    Err(e) => {
                        let msg = alloc_str(r, &e.message).map_err(me)?;
                        self.apply(a[1], vec![msg], Dst::Region(r), span)?
                    }
                }
            }
            CommandLine => {
                let r = region()?;
                let mut out = Value::EMPTY;
                for s in self.args.clone().iter().rev() {
                    let v = alloc_str(r, s).map_err(me)?;
                    out = alloc_pair(r, v, out).map_err(me)?;
                }
                out
            }
            Chan => self.prim_chan(a, span)?,
            Send => self.prim_send(a[0], a[1], span)?,
            Recv => self.prim_recv(a[0], region()?, span)?,
            Close => self.prim_close(a[0], span)?,
            Spawn => self.prim_spawn(a[0], span)?,
            Join => self.prim_join(a[0], region()?, span)?,
            Floor | Ceiling | Round | Truncate | Exact | Inexact | Expt | Gcd | Lcm | Square
            | IsExactInteger | CharToInteger | IntegerToChar | CharEq | CharLt | CharGt | CharLe
            | CharGe | IsCharAlphabetic | IsCharNumeric | IsCharWhitespace | IsCharUpperCase
            | IsCharLowerCase | CharUpcase | CharDowncase | StringOf | StringUpcase
            | StringDowncase | StringCopy | ListTail | ReadLine | ReadChar | PeekChar | Read | EofObject
            | IsEofObject => return self.call_r7rs(op, a, dst, span),
            Coalesce => {
                return Err(LispError::new(
                    "coalesce! is only allowed as a top-level form (no activation may hold values then)",
                    span,
                ))
            }
        })
    }

    fn make_num(&self, n: Num, r: Region, span: Span) -> VmResult<Value> {
        match n {
            Num::I(i) => make_int(r, i),
            Num::F(x) => alloc_float(r, x),
        }
        .map_err(|e| LispError::new(e.to_string(), span))
    }
}

/// The region a primitive builds its result in: the schedule names one
/// for every primitive that allocates (`Prim::allocates`).
pub(crate) fn result_region(dst: Option<Region>, span: Span) -> VmResult<Region> {
    dst.ok_or_else(|| LispError::new("internal: allocation without a region", span))
}

/// The length of `s` in characters (`ascii`: every character is a byte).
fn char_len(s: &str, ascii: bool) -> usize {
    if ascii {
        s.len()
    } else {
        s.chars().count()
    }
}

/// The byte range of characters `start..end` of `s` (`end` defaults to its
/// length), or its length in characters when that range is out of bounds.
fn char_span(
    s: &str,
    ascii: bool,
    start: usize,
    end: Option<usize>,
) -> Result<(usize, usize), usize> {
    let n = char_len(s, ascii);
    let end = end.unwrap_or(n);
    if start > end || end > n {
        return Err(n);
    }
    if ascii {
        return Ok((start, end));
    }
    let byte = |k: usize| s.char_indices().nth(k).map_or(s.len(), |(b, _)| b);
    Ok((byte(start), byte(end)))
}

/// `i` written in base `radix` (2 to 36), lowercase digits, with a `-`
/// when negative (R7RS `number->string`).
fn int_in_radix(i: i64, radix: u32) -> String {
    if radix == 10 {
        return i.to_string();
    }
    let mut n = i.unsigned_abs();
    let mut digits = Vec::new();
    loop {
        let d = (n % u64::from(radix)) as u32;
        digits.push(char::from_digit(d, radix).unwrap_or('?'));
        n /= u64::from(radix);
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        digits.push('-');
    }
    digits.iter().rev().collect()
}
