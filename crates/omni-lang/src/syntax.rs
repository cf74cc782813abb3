//! Syntax: reader data -> core forms. Every derived form of
//! ../shared/LANGUAGE.md is desugared here into a handful of core forms
//! (`Ast`), so the CTRR pass and the compiler see a small language.

use std::rc::Rc;

use crate::reader::{Datum, DatumKind, Span};

#[derive(Debug, Clone)]
pub struct CompileError {
    pub span: Span,
    pub message: String,
}

type R<T> = Result<T, CompileError>;

/// Parsed `let` bindings and the body forms after them.
type Bindings<'d> = (Vec<(String, Ast)>, &'d [Datum]);

fn err<T>(span: Span, message: impl Into<String>) -> R<T> {
    Err(CompileError {
        span,
        message: message.into(),
    })
}

#[derive(Debug, Clone)]
pub struct Lambda {
    pub name: Option<String>,
    pub params: Vec<String>,
    pub rest: Option<String>,
    pub body: Box<Ast>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Ast {
    /// A literal or quoted datum.
    Quote(Datum),
    Var(String, Span),
    Set(String, Box<Ast>, Span),
    /// Top-level definition (internal defines become `Letrec`).
    Define(String, Box<Ast>, Span),
    If(Box<Ast>, Box<Ast>, Box<Ast>),
    Begin(Vec<Ast>),
    Lambda(Rc<Lambda>),
    /// Parallel `let`.
    Let(Vec<(String, Ast)>, Box<Ast>),
    /// `letrec*`: bindings initialised in order, all in scope everywhere.
    Letrec(Vec<(String, Ast)>, Box<Ast>),
    App(Box<Ast>, Vec<Ast>, Span),
}

impl Ast {
    fn nothing(span: Span) -> Ast {
        Ast::Quote(Datum {
            kind: DatumKind::Nothing,
            span,
        })
    }

    fn call(name: &str, args: Vec<Ast>, span: Span) -> Ast {
        Ast::App(Box::new(Ast::Var(name.into(), span)), args, span)
    }

    fn quote_bool(b: bool, span: Span) -> Ast {
        Ast::Quote(Datum {
            kind: DatumKind::Bool(b),
            span,
        })
    }
}

/// Names of the special forms (cannot be used as variables in head position).
pub const SPECIAL_FORMS: &[&str] = &[
    "quote",
    "quasiquote",
    "unquote",
    "unquote-splicing",
    "define",
    "fn",
    "lambda",
    "let",
    "let*",
    "letrec",
    "letrec*",
    "if",
    "cond",
    "case",
    "when",
    "unless",
    "and",
    "or",
    "do",
    "begin",
    "set!",
    "match",
];

pub struct Desugar {
    gensym: usize,
}

impl Default for Desugar {
    fn default() -> Self {
        Self::new()
    }
}

impl Desugar {
    pub fn new() -> Self {
        Desugar { gensym: 0 }
    }

    fn fresh(&mut self, base: &str) -> String {
        self.gensym += 1;
        format!(" {base}{}", self.gensym) // a leading space: never a user symbol
    }

    /// A top-level form.
    pub fn toplevel(&mut self, d: &Datum) -> R<Ast> {
        if let Some((head, rest)) = split_head(d) {
            if head == "define" {
                let (name, value) = self.define(d, rest)?;
                return Ok(Ast::Define(name, Box::new(value), d.span));
            }
            if head == "begin" || head == "do" {
                let forms = rest
                    .iter()
                    .map(|x| self.toplevel(x))
                    .collect::<R<Vec<_>>>()?;
                return Ok(Ast::Begin(forms));
            }
        }
        self.expr(d)
    }

    fn define(&mut self, d: &Datum, rest: &[Datum]) -> R<(String, Ast)> {
        let Some(target) = rest.first() else {
            return err(d.span, "define: expected a name");
        };
        match &target.kind {
            DatumKind::Sym(name) => {
                // (define x expr) or (define f [a b] body...)
                if rest.len() >= 3 && matches!(rest[1].kind, DatumKind::Array(_)) {
                    let lam = self.lambda(Some(name.clone()), &rest[1], &rest[2..], d.span)?;
                    return Ok((name.clone(), lam));
                }
                match rest.len() {
                    1 => Ok((name.clone(), Ast::nothing(d.span))),
                    2 => {
                        let mut v = self.expr(&rest[1])?;
                        if let Ast::Lambda(l) = &mut v {
                            if l.name.is_none() {
                                Rc::make_mut(l).name = Some(name.clone());
                            }
                        }
                        Ok((name.clone(), v))
                    }
                    _ => err(d.span, format!("define: too many forms after '{name}'")),
                }
            }
            DatumKind::List(items, tail) if !items.is_empty() => {
                // (define (f a b . rest) body...)
                let Some(name) = items[0].sym() else {
                    return err(items[0].span, "define: expected a function name");
                };
                let params = Datum {
                    kind: DatumKind::List(items[1..].to_vec(), tail.clone()),
                    span: target.span,
                };
                let lam = self.lambda(Some(name.into()), &params, &rest[1..], d.span)?;
                Ok((name.into(), lam))
            }
            _ => err(target.span, "define: expected a name or (name params...)"),
        }
    }

    fn params(&self, p: &Datum) -> R<(Vec<String>, Option<String>)> {
        let (items, tail): (&[Datum], Option<&Datum>) = match &p.kind {
            DatumKind::Array(items) => (items, None),
            DatumKind::List(items, tail) => (items, tail.as_deref()),
            DatumKind::Sym(s) => return Ok((vec![], Some(s.clone()))),
            _ => return err(p.span, "expected a parameter list"),
        };
        let mut names = Vec::new();
        let mut rest = None;
        let mut i = 0;
        while i < items.len() {
            let Some(s) = items[i].sym() else {
                return err(items[i].span, "parameter must be a symbol");
            };
            if s == "&" {
                match items.get(i + 1).and_then(Datum::sym) {
                    Some(r) if i + 2 == items.len() => rest = Some(r.to_string()),
                    _ => return err(items[i].span, "'&' must be followed by exactly one name"),
                }
                break;
            }
            if names.iter().any(|n| n == s) {
                return err(items[i].span, format!("duplicate parameter '{s}'"));
            }
            names.push(s.to_string());
            i += 1;
        }
        if let Some(t) = tail {
            match t.sym() {
                Some(s) => rest = Some(s.to_string()),
                None => return err(t.span, "rest parameter must be a symbol"),
            }
        }
        Ok((names, rest))
    }

    fn lambda(
        &mut self,
        name: Option<String>,
        params: &Datum,
        body: &[Datum],
        span: Span,
    ) -> R<Ast> {
        let (params, rest) = self.params(params)?;
        let body = self.body(body, span)?;
        Ok(Ast::Lambda(Rc::new(Lambda {
            name,
            params,
            rest,
            body: Box::new(body),
            span,
        })))
    }

    /// A body: internal defines become a `letrec*` around the rest.
    fn body(&mut self, forms: &[Datum], span: Span) -> R<Ast> {
        if forms.is_empty() {
            return err(span, "empty body");
        }
        let mut defs = Vec::new();
        let mut exprs = Vec::new();
        for f in forms {
            match split_head(f) {
                Some(("define", rest)) => {
                    if !exprs.is_empty() {
                        // A define after expressions: keep order by
                        // flushing expressions into a dummy binding.
                        let e = Ast::Begin(std::mem::take(&mut exprs));
                        defs.push((self.fresh("seq"), e));
                    }
                    defs.push(self.define(f, rest)?);
                }
                _ => exprs.push(self.expr(f)?),
            }
        }
        let tail = match exprs.len() {
            0 => Ast::nothing(span),
            1 => exprs.pop().unwrap_or_else(|| Ast::nothing(span)),
            _ => Ast::Begin(exprs),
        };
        if defs.is_empty() {
            Ok(tail)
        } else {
            Ok(Ast::Letrec(defs, Box::new(tail)))
        }
    }

    pub fn expr(&mut self, d: &Datum) -> R<Ast> {
        match &d.kind {
            DatumKind::Sym(s) => Ok(Ast::Var(s.clone(), d.span)),
            DatumKind::List(items, None) if items.is_empty() => Ok(Ast::Quote(d.clone())),
            DatumKind::List(_, Some(_)) => {
                err(d.span, "a dotted list is not an expression (quote it)")
            }
            DatumKind::Array(items) => {
                let args = items.iter().map(|x| self.expr(x)).collect::<R<Vec<_>>>()?;
                Ok(Ast::call("array", args, d.span))
            }
            DatumKind::Dict(items) => {
                let args = items.iter().map(|x| self.expr(x)).collect::<R<Vec<_>>>()?;
                Ok(Ast::call("dict", args, d.span))
            }
            DatumKind::List(items, None) => {
                if let Some(head) = items[0].sym() {
                    if SPECIAL_FORMS.contains(&head) {
                        return self.special(head, d, &items[1..]);
                    }
                }
                let f = self.expr(&items[0])?;
                let args = items[1..]
                    .iter()
                    .map(|x| self.expr(x))
                    .collect::<R<Vec<_>>>()?;
                Ok(Ast::App(Box::new(f), args, d.span))
            }
            _ => Ok(Ast::Quote(d.clone())),
        }
    }

    fn seq(&mut self, forms: &[Datum], span: Span) -> R<Ast> {
        if forms.is_empty() {
            return Ok(Ast::nothing(span));
        }
        let mut v = forms.iter().map(|x| self.expr(x)).collect::<R<Vec<_>>>()?;
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Ast::Begin(v)
        })
    }

    fn special(&mut self, head: &str, d: &Datum, args: &[Datum]) -> R<Ast> {
        let span = d.span;
        let want = |n: usize| -> R<()> {
            if args.len() == n {
                Ok(())
            } else {
                err(
                    span,
                    format!("{head}: expected {n} argument(s), got {}", args.len()),
                )
            }
        };
        match head {
            "quote" => {
                want(1)?;
                Ok(Ast::Quote(args[0].clone()))
            }
            "quasiquote" => {
                want(1)?;
                self.quasi(&args[0])
            }
            "unquote" | "unquote-splicing" => err(span, format!("{head} outside quasiquote")),
            "define" => err(
                span,
                "define is only allowed at top level or at the start of a body",
            ),
            "fn" | "lambda" => {
                if args.len() < 2 {
                    return err(span, format!("{head}: expected parameters and a body"));
                }
                self.lambda(None, &args[0], &args[1..], span)
            }
            "if" => {
                if args.len() != 2 && args.len() != 3 {
                    return err(span, "if: expected (if test then [else])");
                }
                let c = self.expr(&args[0])?;
                let t = self.expr(&args[1])?;
                let e = match args.get(2) {
                    Some(x) => self.expr(x)?,
                    None => Ast::nothing(span),
                };
                Ok(Ast::If(Box::new(c), Box::new(t), Box::new(e)))
            }
            "do" | "begin" => self.seq(args, span),
            "set!" => {
                want(2)?;
                let Some(name) = args[0].sym() else {
                    return err(args[0].span, "set!: expected a variable name");
                };
                Ok(Ast::Set(name.into(), Box::new(self.expr(&args[1])?), span))
            }
            "when" | "unless" => {
                if args.is_empty() {
                    return err(span, format!("{head}: expected a test"));
                }
                let c = self.expr(&args[0])?;
                let body = self.seq(&args[1..], span)?;
                let (t, e) = if head == "when" {
                    (body, Ast::nothing(span))
                } else {
                    (Ast::nothing(span), body)
                };
                Ok(Ast::If(Box::new(c), Box::new(t), Box::new(e)))
            }
            "and" => {
                let mut out = Ast::quote_bool(true, span);
                for (i, a) in args.iter().enumerate().rev() {
                    let x = self.expr(a)?;
                    out = if i + 1 == args.len() {
                        x
                    } else {
                        Ast::If(
                            Box::new(x),
                            Box::new(out),
                            Box::new(Ast::quote_bool(false, span)),
                        )
                    };
                }
                Ok(out)
            }
            "or" => {
                let mut out = Ast::quote_bool(false, span);
                for (i, a) in args.iter().enumerate().rev() {
                    let x = self.expr(a)?;
                    out = if i + 1 == args.len() {
                        x
                    } else {
                        self.if_bound("or", x, |t| t, out, span)
                    };
                }
                Ok(out)
            }
            "cond" => {
                let mut out = Ast::nothing(span);
                for clause in args.iter().rev() {
                    let Some(parts) = clause.list().filter(|p| !p.is_empty()) else {
                        return err(clause.span, "cond: each clause must be (test body...)");
                    };
                    if parts[0].sym() == Some("else") {
                        out = self.seq(&parts[1..], clause.span)?;
                        continue;
                    }
                    let test = self.expr(&parts[0])?;
                    if parts.get(1).and_then(|a| a.sym()) == Some("=>") {
                        // `(test => f)`: `f` called on the test's value.
                        let [_, _, f] = parts else {
                            return err(parts[1].span, "cond: => takes one procedure");
                        };
                        let f = self.expr(f)?;
                        let call = |t| Ast::App(Box::new(f), vec![t], clause.span);
                        out = self.if_bound("cond", test, call, out, span);
                    } else if parts.len() == 1 {
                        out = self.if_bound("cond", test, |t| t, out, span);
                    } else {
                        let body = self.seq(&parts[1..], clause.span)?;
                        out = Ast::If(Box::new(test), Box::new(body), Box::new(out));
                    }
                }
                Ok(out)
            }
            "case" => self.case_form(args, span),
            "let" => self.let_form(d, args),
            "let*" => {
                let (bindings, body) = self.bindings(d, args, false)?;
                let mut out = self.body(body, span)?;
                for (n, v) in bindings.into_iter().rev() {
                    out = Ast::Let(vec![(n, v)], Box::new(out));
                }
                Ok(out)
            }
            "letrec" | "letrec*" => {
                let (bindings, body) = self.bindings(d, args, true)?;
                let body = self.body(body, span)?;
                Ok(Ast::Letrec(bindings, Box::new(body)))
            }
            "match" => self.match_form(d, args),
            _ => err(span, format!("unknown special form {head}")),
        }
    }

    /// `(let ((t test)) (if t (then t) otherwise))`, `t` fresh: what `or`
    /// and the `cond` clauses without a body or with `=>` become
    /// (`fuse.rs` makes `Node::Or` of `(if t t b)`).
    fn if_bound(
        &mut self,
        base: &str,
        test: Ast,
        then: impl FnOnce(Ast) -> Ast,
        otherwise: Ast,
        span: Span,
    ) -> Ast {
        let t = self.fresh(base);
        Ast::Let(
            vec![(t.clone(), test)],
            Box::new(Ast::If(
                Box::new(Ast::Var(t.clone(), span)),
                Box::new(then(Ast::Var(t, span))),
                Box::new(otherwise),
            )),
        )
    }

    /// `(case key ((datum ...) body ...) ... (else body ...))` (R7RS): the
    /// first clause with a datum `eqv?` to the key; a body `=> f` calls `f`
    /// on the key. No clause: `nothing`.
    fn case_form(&mut self, args: &[Datum], span: Span) -> R<Ast> {
        let Some((key, clauses)) = args.split_first() else {
            return err(span, "case: expected a key and clauses");
        };
        let key = self.expr(key)?;
        let t = self.fresh("case");
        let var = || Ast::Var(t.clone(), span);
        let mut out = Ast::nothing(span);
        for clause in clauses.iter().rev() {
            let Some((head, rest)) = clause.list().and_then(|p| p.split_first()) else {
                return err(
                    clause.span,
                    "case: each clause must be ((datum ...) body ...) or (else body ...)",
                );
            };
            let body = match rest {
                [arrow, f] if arrow.sym() == Some("=>") => {
                    Ast::App(Box::new(self.expr(f)?), vec![var()], clause.span)
                }
                [arrow, ..] if arrow.sym() == Some("=>") => {
                    return err(arrow.span, "case: => takes one procedure");
                }
                _ => self.seq(rest, clause.span)?,
            };
            if head.sym() == Some("else") {
                out = body;
                continue;
            }
            let Some(data) = head.list() else {
                return err(
                    head.span,
                    "case: a clause starts with a list of data, or else",
                );
            };
            let mut test = Ast::quote_bool(false, head.span);
            for datum in data.iter().rev() {
                let same = Ast::call("eqv?", vec![var(), Ast::Quote(datum.clone())], datum.span);
                test = Ast::If(
                    Box::new(same),
                    Box::new(Ast::quote_bool(true, datum.span)),
                    Box::new(test),
                );
            }
            out = Ast::If(Box::new(test), Box::new(body), Box::new(out));
        }
        Ok(Ast::Let(vec![(t, key)], Box::new(out)))
    }

    /// Bindings in either style, then the body forms. With `distinct`
    /// (`let`, `letrec`, named `let`, but not `let*`, whose bindings nest),
    /// a name bound twice is an error, as for a lambda's parameters.
    fn bindings<'d>(&mut self, d: &Datum, args: &'d [Datum], distinct: bool) -> R<Bindings<'d>> {
        let Some(first) = args.first() else {
            return err(d.span, "let: expected bindings and a body");
        };
        let mut out = Vec::new();
        let mut push = |this: &mut Self, pair: &[Datum], span: Span| -> R<()> {
            if !pair.len().is_multiple_of(2) || pair.is_empty() {
                return err(span, "let: a binding is [name value]");
            }
            for nv in pair.chunks(2) {
                let Some(n) = nv[0].sym() else {
                    return err(nv[0].span, "let: binding name must be a symbol");
                };
                if distinct && out.iter().any(|(m, _): &(String, Ast)| m == n) {
                    return err(nv[0].span, format!("duplicate binding '{n}'"));
                }
                out.push((n.to_string(), this.expr(&nv[1])?));
            }
            Ok(())
        };
        match &first.kind {
            // Scheme style: ((x 1) (y 2))
            DatumKind::List(items, None) => {
                for b in items {
                    match b.list() {
                        Some(p) if p.len() == 2 => push(self, p, b.span)?,
                        _ => return err(b.span, "let: a binding is (name value)"),
                    }
                }
                Ok((out, &args[1..]))
            }
            // Bracket style: [x 1] [y 2] ... (or [x 1 y 2])
            DatumKind::Array(_) => {
                let mut i = 0;
                while let Some(DatumKind::Array(p)) = args.get(i).map(|a| &a.kind) {
                    if i + 1 == args.len() {
                        break; // the last form is the body, even if an array
                    }
                    push(self, p, args[i].span)?;
                    i += 1;
                }
                Ok((out, &args[i..]))
            }
            _ => err(first.span, "let: expected bindings"),
        }
    }

    fn let_form(&mut self, d: &Datum, args: &[Datum]) -> R<Ast> {
        if let Some(name) = args.first().and_then(Datum::sym) {
            // Named let: (let loop ((i 0)) body) -> ((letrec ((loop (fn ...))) loop) 0)
            let (bindings, body) = self.bindings(d, &args[1..], true)?;
            let (params, inits): (Vec<String>, Vec<Ast>) = bindings.into_iter().unzip();
            let body = self.body(body, d.span)?;
            let lam = Ast::Lambda(Rc::new(Lambda {
                name: Some(name.to_string()),
                params,
                rest: None,
                body: Box::new(body),
                span: d.span,
            }));
            let f = Ast::Letrec(
                vec![(name.to_string(), lam)],
                Box::new(Ast::Var(name.into(), d.span)),
            );
            return Ok(Ast::App(Box::new(f), inits, d.span));
        }
        let (bindings, body) = self.bindings(d, args, true)?;
        let body = self.body(body, d.span)?;
        Ok(Ast::Let(bindings, Box::new(body)))
    }

    fn quasi(&mut self, d: &Datum) -> R<Ast> {
        match &d.kind {
            DatumKind::List(items, tail) if !items.is_empty() => {
                if items[0].sym() == Some("unquote") && items.len() == 2 && tail.is_none() {
                    return self.expr(&items[1]);
                }
                let mut out = match tail {
                    Some(t) => self.quasi(t)?,
                    None => Ast::Quote(Datum {
                        kind: DatumKind::List(vec![], None),
                        span: d.span,
                    }),
                };
                for item in items.iter().rev() {
                    if let Some(parts) = item.list() {
                        if parts.len() == 2 && parts[0].sym() == Some("unquote-splicing") {
                            let spliced = self.expr(&parts[1])?;
                            out = Ast::call("append", vec![spliced, out], item.span);
                            continue;
                        }
                    }
                    let x = self.quasi(item)?;
                    out = Ast::call("cons", vec![x, out], item.span);
                }
                Ok(out)
            }
            DatumKind::Array(items) => {
                let as_list = Datum {
                    kind: DatumKind::List(items.clone(), None),
                    span: d.span,
                };
                let l = self.quasi(&as_list)?;
                Ok(Ast::call("list->array", vec![l], d.span))
            }
            _ => Ok(Ast::Quote(d.clone())),
        }
    }

    fn match_form(&mut self, d: &Datum, args: &[Datum]) -> R<Ast> {
        let span = d.span;
        let Some(subject) = args.first() else {
            return err(span, "match: expected a value and clauses");
        };
        let clauses = &args[1..];
        if !clauses.len().is_multiple_of(2) {
            return err(span, "match: expected pattern/body pairs");
        }
        let v = self.fresh("match");
        let mut out = Ast::call(
            "error",
            vec![Ast::Quote(Datum {
                kind: DatumKind::Str("match: no pattern matched".into()),
                span,
            })],
            span,
        );
        for pair in clauses.chunks(2).rev() {
            // Each clause: (let ((fail (fn [] <next>))) <test-and-bind or (fail)>)
            let fail = self.fresh("fail");
            let on_fail = Ast::App(Box::new(Ast::Var(fail.clone(), span)), vec![], span);
            let body = self.expr(&pair[1])?;
            let clause = self.pattern(&pair[0], Ast::Var(v.clone(), span), body, &on_fail)?;
            let thunk = Ast::Lambda(Rc::new(Lambda {
                name: None,
                params: vec![],
                rest: None,
                body: Box::new(out),
                span,
            }));
            out = Ast::Let(vec![(fail, thunk)], Box::new(clause));
        }
        let subject = self.expr(subject)?;
        Ok(Ast::Let(vec![(v, subject)], Box::new(out)))
    }

    /// Code that matches `subject` against `pat`, runs `then` with the
    /// pattern's variables bound, or runs `fail`.
    fn pattern(&mut self, pat: &Datum, subject: Ast, then: Ast, fail: &Ast) -> R<Ast> {
        let span = pat.span;
        let guard =
            |test: Ast, then: Ast| Ast::If(Box::new(test), Box::new(then), Box::new(fail.clone()));
        match &pat.kind {
            DatumKind::Sym(s) if s == "_" => Ok(then),
            DatumKind::Sym(s) => Ok(Ast::Let(vec![(s.clone(), subject)], Box::new(then))),
            DatumKind::Array(items) => {
                let n = items.len() as i64;
                let len_ok = Ast::call(
                    "=",
                    vec![
                        Ast::call("array-length", vec![subject.clone()], span),
                        int(n, span),
                    ],
                    span,
                );
                let mut inner = then;
                for (i, p) in items.iter().enumerate().rev() {
                    let elem = Ast::call(
                        "array-ref",
                        vec![subject.clone(), int(i as i64, span)],
                        span,
                    );
                    inner = self.pattern(p, elem, inner, fail)?;
                }
                let is_array = Ast::call("array?", vec![subject.clone()], span);
                Ok(guard(is_array, guard(len_ok, inner)))
            }
            DatumKind::List(items, tail) if items.first().and_then(Datum::sym) == Some("quote") => {
                let _ = tail;
                let lit = Ast::Quote(items.get(1).cloned().unwrap_or_else(|| pat.clone()));
                Ok(guard(Ast::call("equal?", vec![subject, lit], span), then))
            }
            DatumKind::List(items, tail) => {
                // (a b c) or (a b . rest) or (list a b c)
                let items: &[Datum] =
                    if items.first().and_then(Datum::sym) == Some("list") && tail.is_none() {
                        &items[1..]
                    } else {
                        items
                    };
                let t = self.fresh("m");
                let mut cur = Ast::Var(t.clone(), span);
                let mut steps: Vec<(Ast, &Datum)> = Vec::new();
                for p in items {
                    steps.push((Ast::call("car", vec![cur.clone()], span), p));
                    cur = Ast::call("cdr", vec![cur], span);
                }
                // Build inside-out: the tail check, then each element.
                let mut inner = match tail {
                    Some(rest) => self.pattern(rest, cur.clone(), then, fail)?,
                    None => guard(Ast::call("null?", vec![cur.clone()], span), then),
                };
                for (i, (elem, p)) in steps.into_iter().enumerate().rev() {
                    // The spine up to element i must be a pair.
                    let mut spine = Ast::Var(t.clone(), span);
                    for _ in 0..i {
                        spine = Ast::call("cdr", vec![spine], span);
                    }
                    inner = guard(
                        Ast::call("pair?", vec![spine], span),
                        self.pattern(p, elem, inner, fail)?,
                    );
                }
                Ok(Ast::Let(vec![(t, subject)], Box::new(inner)))
            }
            _ => Ok(guard(
                Ast::call("equal?", vec![subject, Ast::Quote(pat.clone())], span),
                then,
            )),
        }
    }
}

fn int(n: i64, span: Span) -> Ast {
    Ast::Quote(Datum {
        kind: DatumKind::Int(n),
        span,
    })
}

fn split_head(d: &Datum) -> Option<(&str, &[Datum])> {
    match &d.kind {
        DatumKind::List(items, None) if !items.is_empty() => Some((items[0].sym()?, &items[1..])),
        _ => None,
    }
}
