//! Escape summaries of top-level procedures (docs/CTRR.md, compiler duty
//! 2; CTRR_REGION_INFERENCE_ROADMAP.md, "Interprocedural summaries"): for
//! each parameter, whether what the procedure is given there may *escape*
//! it, that is be part of its result or be stored where it outlives the
//! call (a global, a structure, a closure, another procedure that may do
//! either). An argument for a parameter that does not escape dies with
//! the call, so the compiler builds it in the caller's scratch region
//! instead of in the call's destination, where it would stay as long as
//! the result (`Compiler::app`; calls that are not tail calls only). A
//! summary also says whether a call may store anything anywhere, which
//! decides where a `define`'s value is built (`Compiler::stores_nothing`).
//!
//! The analysis follows which parameters each expression's value may
//! carry, as a bit set: a variable carries what it was bound to; a
//! constructor, an accessor (`car`, `array-ref`, ...) and an unknown call
//! carry what their arguments carry; an inspecting primitive (`+`,
//! `length`, `string-append`, ...) carries nothing. What is stored
//! (`set!`, `set-car!`, `array-set!`, ...), captured by a `lambda`, or
//! passed to an unknown procedure escapes. `map`, `for-each`, `filter`
//! and `fold-left` inspect their lists, as the compiler assumes
//! (compile.rs, `Compiler::prim`): an element that ends up in their result
//! is copied by the barrier. Local procedures bound by `letrec` and named
//! `let` get summaries of their own, and calls of top-level procedures
//! use theirs: the summaries of a batch are a fixpoint over all its
//! definitions, from "nothing escapes" up, so recursion and mutual
//! recursion are covered.
//!
//! A summary is a placement hint for scratch regions, never a safety
//! argument: a value built in a scratch region that dies too early is
//! still copied out by the return boundary or the barrier. (Not so for
//! the next iteration's region, which a tail call's argument may be built
//! in: summaries are never used there.) Only procedures defined once by `(define (f
//! ...) ...)`, never assigned, without a rest parameter, get one; anything
//! the analysis does not follow (a local procedure used as a value, more
//! than 64 parameters and local procedure parameters in one definition)
//! leaves that procedure without a summary, as if everything escaped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::rc::Rc;

use crate::builtins::{Flow, Prim};
use crate::syntax::{Ast, Lambda};
use crate::vm::SiteHasher;

/// What is known of a top-level procedure.
#[derive(Debug)]
pub struct ProcSummary {
    /// Per parameter: whether it may escape.
    pub escapes: Box<[bool]>,
    /// Whether a call stores nothing anywhere (no `set!` of a global, no
    /// store primitive, no call of anything not known to store nothing):
    /// what it makes is then only in its result, so the result may be
    /// built anywhere and copied, leaving no move that something else
    /// would read through.
    pub stores_nothing: bool,
}

pub type Summary = Rc<ProcSummary>;

/// Bits of parameters (of the definition and of its local procedures).
type Bits = u64;

/// What is known of a top-level procedure while the fixpoint runs: the
/// parameters that may reach its result, and those that may be stored.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Facts {
    returns: Bits,
    stored: Bits,
    stores: bool,
}

/// A local procedure's facts, as bits of the enclosing definition's
/// numbering: what reaches its result (its own parameters' bits and the
/// enclosing variables' bits).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct LocalProc {
    first_bit: u32,
    nparams: usize,
    returns: Bits,
}

enum Bind {
    Val(Bits),
    Proc(usize),
}

/// One definition's analysis state, kept across fixpoint rounds.
#[derive(Clone, PartialEq, Eq, Default)]
struct DefState {
    stored: Bits,
    procs: Vec<LocalProc>,
    returns: Bits,
    /// Whether it may store anything anywhere (`ProcSummary::stores_nothing`).
    stores: bool,
}

/// Names from the program hash with the VM's cheap hasher (an
/// adversarial program would only slow its own compilation).
type Names<'a, V> = HashMap<&'a str, V, BuildHasherDefault<SiteHasher>>;

/// The batch's procedures by name, and each one's parameter count and
/// facts so far (`None`: not followed); the primitives the program
/// redefines.
struct Table<'a> {
    index: Names<'a, usize>,
    facts: Vec<Option<(usize, Facts)>>,
    redefined_prims: Vec<Prim>,
}

struct Walk<'a, 't> {
    table: &'t Table<'a>,
    env: Vec<(&'a str, Bind)>,
    state: DefState,
    next_bit: u32,
    next_proc: usize,
    failed: bool,
    used: Vec<usize>,
}

/// The summaries of a batch's top-level procedures: `defs` are the
/// eligible definitions (name, lambda); `redefined` the globals the
/// program defines or assigns (a name among them is not a primitive).
pub fn summarize(
    defs: &[(&str, &Lambda)],
    redefined: &HashSet<String>,
) -> HashMap<String, Summary> {
    let mut states: Vec<Option<DefState>> = vec![Some(DefState::default()); defs.len()];
    let mut table = Table {
        index: defs.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect(),
        facts: defs
            .iter()
            .map(|(_, l)| Some((l.params.len(), Facts::default())))
            .collect(),
        redefined_prims: redefined.iter().filter_map(|n| Prim::by_name(n)).collect(),
    };
    // A worklist: a definition is analysed again only when the facts of
    // a procedure it calls (itself included) have grown.
    let n = defs.len();
    let mut callers: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut seen = vec![false; n];
    let mut queued = vec![true; n];
    let mut queue: VecDeque<usize> = (0..n).collect();
    let mut budget = MAX_ROUNDS * n;
    let mut bufs = Buffers::default();
    while let Some(i) = queue.pop_front() {
        queued[i] = false;
        if budget == 0 {
            return HashMap::new();
        }
        budget -= 1;
        let Some(prev) = states[i].clone() else {
            continue;
        };
        let l = defs[i].1;
        let next = analyse_stable(l, prev.clone(), &table, &mut bufs);
        if !seen[i] {
            // The calls a definition makes are the same in every round.
            seen[i] = true;
            for &j in &bufs.used {
                if callers[j].last() != Some(&i) {
                    callers[j].push(i);
                }
            }
        }
        if next.as_ref() != Some(&prev) {
            table.facts[i] = next.as_ref().map(|s| {
                let facts = Facts {
                    returns: s.returns,
                    stored: s.stored,
                    stores: s.stores,
                };
                (l.params.len(), facts)
            });
            states[i] = next;
            for &c in &callers[i] {
                if !queued[c] {
                    queued[c] = true;
                    queue.push_back(c);
                }
            }
        }
    }
    // A summary in which every parameter escapes and that may store says
    // nothing: left out.
    defs.iter()
        .zip(&states)
        .filter_map(|((name, l), s)| {
            let s = s.as_ref()?;
            let escapes = s.returns | s.stored;
            let v: Vec<bool> = (0..l.params.len())
                .map(|i| escapes & (1 << i) != 0)
                .collect();
            (v.contains(&false) || !s.stores).then(|| {
                let summary = ProcSummary {
                    escapes: v.into(),
                    stores_nothing: !s.stores,
                };
                (name.to_string(), Rc::new(summary))
            })
        })
        .collect()
}

/// Analyses per definition, on average, before giving up (each one after
/// the first follows a growth of some facts; programs need a handful).
const MAX_ROUNDS: usize = 64;

/// `analyse` repeated until the definition's local procedures' facts
/// stop growing, with the table as it is (without local procedures, one
/// analysis is stable: its calls of itself go through the table, and the
/// worklist analyses it again when its facts grow).
/// The procedures of the batch it calls are left in `bufs.used`.
fn analyse_stable<'a>(
    l: &'a Lambda,
    prev: DefState,
    table: &Table<'a>,
    bufs: &mut Buffers<'a>,
) -> Option<DefState> {
    bufs.used.clear();
    let mut state = analyse(l, prev, table, bufs);
    if state.as_ref().is_some_and(|s| s.procs.is_empty()) {
        return state;
    }
    let used = std::mem::take(&mut bufs.used);
    let mut result = None;
    for _ in 0..MAX_ROUNDS {
        let Some(cur) = state.clone() else { break };
        let next = analyse(l, cur.clone(), table, bufs);
        if next.as_ref() == Some(&cur) {
            result = Some(cur);
            break;
        }
        state = next;
    }
    bufs.used = used;
    result
}

/// One round for one definition: its facts from the table's, or `None`
/// when the analysis cannot follow it.
fn analyse<'a>(
    l: &'a Lambda,
    prev: DefState,
    table: &Table<'a>,
    bufs: &mut Buffers<'a>,
) -> Option<DefState> {
    if l.rest.is_some() || l.params.len() > 64 {
        return None;
    }
    let mut w = Walk {
        table,
        env: std::mem::take(&mut bufs.env),
        state: prev,
        next_bit: l.params.len() as u32,
        next_proc: 0,
        failed: false,
        used: std::mem::take(&mut bufs.used),
    };
    for (i, p) in l.params.iter().enumerate() {
        w.env.push((p.as_str(), Bind::Val(1 << i)));
    }
    let r = w.carried(&l.body);
    w.state.returns |= r;
    w.env.clear();
    bufs.env = w.env;
    bufs.used = w.used;
    (!w.failed).then_some(w.state)
}

/// The vectors an analysis works in, kept from one to the next (most
/// definitions are small: allocating them was a third of the cost).
#[derive(Default)]
struct Buffers<'a> {
    env: Vec<(&'a str, Bind)>,
    /// The batch's procedures whose facts the last analysis read.
    used: Vec<usize>,
}

impl<'a> Walk<'a, '_> {
    fn lookup(&self, name: &str) -> Option<&Bind> {
        self.env
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b)
    }

    /// A primitive named by `f`, unless a local or the program binds it.
    fn prim(&self, f: &Ast) -> Option<Prim> {
        let Ast::Var(name, _) = f else { return None };
        // A procedure of the batch is no primitive (its name is defined).
        if self.table.index.contains_key(name.as_str()) {
            return None;
        }
        let op = Prim::by_name(name)?;
        if self.lookup(name).is_some() || self.table.redefined_prims.contains(&op) {
            return None;
        }
        Some(op)
    }

    /// Fresh bits for `n` parameters.
    fn bits(&mut self, n: usize) -> Option<u32> {
        let first = self.next_bit;
        if first as usize + n > 64 {
            self.failed = true;
            return None;
        }
        self.next_bit += n as u32;
        Some(first)
    }

    /// The parameters `e`'s value may carry; what `e` stores or lets
    /// escape is added to `state.stored`.
    fn carried(&mut self, e: &'a Ast) -> Bits {
        if self.failed {
            return 0;
        }
        match e {
            Ast::Quote(_) => 0,
            Ast::Var(name, _) => match self.lookup(name) {
                Some(Bind::Val(b)) => *b,
                // A local procedure used as a value: not followed.
                Some(Bind::Proc(_)) => {
                    self.failed = true;
                    0
                }
                None => 0,
            },
            Ast::Set(name, v, _) => {
                let c = self.carried(v);
                self.state.stored |= c;
                // A `set!` of a variable of this definition stores into
                // no object; of a global, it does.
                if self.lookup(name).is_none() {
                    self.state.stores = true;
                }
                0
            }
            Ast::Define(_, v, _) => {
                let c = self.carried(v);
                self.state.stored |= c;
                self.state.stores = true;
                0
            }
            Ast::If(c, t, f) => {
                self.carried(c);
                self.carried(t) | self.carried(f)
            }
            Ast::Begin(xs) => xs.iter().fold(0, |_, x| self.carried(x)),
            Ast::Let(bs, body) => {
                let vals: Vec<Bits> = bs.iter().map(|(_, x)| self.carried(x)).collect();
                let depth = self.env.len();
                for ((n, _), b) in bs.iter().zip(vals) {
                    self.env.push((n.as_str(), Bind::Val(b)));
                }
                let r = self.carried(body);
                self.env.truncate(depth);
                r
            }
            Ast::Letrec(bs, body) => {
                let depth = self.env.len();
                self.letrec(bs);
                let r = self.carried(body);
                self.env.truncate(depth);
                r
            }
            Ast::Lambda(l) => self.captured(l),
            Ast::App(f, args, _) => self.app(f, args),
        }
    }

    /// Bind `letrec` bindings: lambdas become local procedures (their
    /// bodies analysed), anything else a value.
    fn letrec(&mut self, bs: &'a [(String, Ast)]) {
        let procs: Vec<Option<usize>> = bs
            .iter()
            .map(|(_, x)| match x {
                Ast::Lambda(l) if l.rest.is_none() => {
                    let first_bit = self.bits(l.params.len())?;
                    let k = self.next_proc;
                    self.next_proc += 1;
                    if self.state.procs.len() <= k {
                        self.state.procs.push(LocalProc {
                            first_bit,
                            nparams: l.params.len(),
                            returns: 0,
                        });
                    }
                    Some(k)
                }
                _ => None,
            })
            .collect();
        for ((n, _), k) in bs.iter().zip(&procs) {
            let b = match k {
                Some(k) => Bind::Proc(*k),
                None => Bind::Val(0),
            };
            self.env.push((n.as_str(), b));
        }
        let base = self.env.len() - bs.len();
        for (i, ((_, x), k)) in bs.iter().zip(&procs).enumerate() {
            match (x, k) {
                (Ast::Lambda(l), Some(k)) => {
                    let p = self.state.procs[*k];
                    let depth = self.env.len();
                    for (j, name) in l.params.iter().enumerate() {
                        self.env
                            .push((name.as_str(), Bind::Val(1 << (p.first_bit + j as u32))));
                    }
                    let r = self.carried(&l.body);
                    self.env.truncate(depth);
                    self.state.procs[*k].returns |= r;
                }
                _ => {
                    let c = self.carried(x);
                    self.env[base + i].1 = Bind::Val(c);
                }
            }
        }
    }

    /// A `lambda` as a value: it carries every variable it mentions, and
    /// what its body stores escapes.
    fn captured(&mut self, l: &'a Lambda) -> Bits {
        let Some(first) = self.bits(l.params.len()) else {
            return 0;
        };
        let depth = self.env.len();
        for (j, name) in l.params.iter().enumerate() {
            self.env
                .push((name.as_str(), Bind::Val(1 << (first + j as u32))));
        }
        if let Some(r) = &l.rest {
            self.env.push((r.as_str(), Bind::Val(0)));
        }
        // What the body returns is what a call returns: it escapes with
        // the closure, as does every variable of ours it mentions.
        let r = self.carried(&l.body);
        self.env.truncate(depth);
        let mut mentioned = 0;
        crate::compile::walk_vars(&l.body, &mut |n| {
            if let Some(Bind::Val(b)) = self.lookup(n) {
                mentioned |= *b;
            }
        });
        r | mentioned
    }

    fn app(&mut self, f: &'a Ast, args: &'a [Ast]) -> Bits {
        if let Some(op) = self.prim(f) {
            return self.prim_app(op, args);
        }
        // A named `let`: ((letrec ((loop (fn ...))) loop) init ...).
        if let Ast::Letrec(bs, body) = f {
            if let Ast::Var(n, _) = &**body {
                let depth = self.env.len();
                self.letrec(bs);
                let r = match self.lookup(n) {
                    Some(Bind::Proc(k)) => {
                        let k = *k;
                        self.call_local(k, args)
                    }
                    _ => self.unknown(f, args),
                };
                self.env.truncate(depth);
                return r;
            }
        }
        if let Ast::Var(name, _) = f {
            match self.lookup(name) {
                Some(Bind::Proc(k)) => {
                    let k = *k;
                    return self.call_local(k, args);
                }
                Some(Bind::Val(_)) => {}
                None => {
                    if let Some(&i) = self.table.index.get(name.as_str()) {
                        self.used.push(i);
                        if let Some((n, facts)) = self.table.facts[i] {
                            if n == args.len() {
                                return self.call_known(facts, args);
                            }
                        }
                    }
                }
            }
        }
        self.unknown(f, args)
    }

    fn call_known(&mut self, facts: Facts, args: &'a [Ast]) -> Bits {
        self.state.stores |= facts.stores;
        let mut r = 0;
        for (j, a) in args.iter().enumerate() {
            let c = self.carried(a);
            if facts.returns & (1 << j) != 0 {
                r |= c;
            }
            if facts.stored & (1 << j) != 0 {
                self.state.stored |= c;
            }
        }
        r
    }

    fn call_local(&mut self, k: usize, args: &'a [Ast]) -> Bits {
        let p = self.state.procs[k];
        if p.nparams != args.len() {
            return self.unknown_args(args);
        }
        let own = ((1u128 << p.nparams) - 1) as u64;
        let own = own.checked_shl(p.first_bit).unwrap_or(0);
        let mut r = p.returns & !own;
        for (j, a) in args.iter().enumerate() {
            let c = self.carried(a);
            let bit = 1u64 << (p.first_bit + j as u32);
            if p.returns & bit != 0 {
                r |= c;
            }
            if self.state.stored & bit != 0 {
                self.state.stored |= c;
            }
        }
        r
    }

    /// A call of something not followed: everything given to it escapes,
    /// and its result may be any of it.
    fn unknown(&mut self, f: &'a Ast, args: &'a [Ast]) -> Bits {
        self.state.stores = true;
        let c = self.carried(f);
        self.state.stored |= c;
        c | self.unknown_args(args)
    }

    fn unknown_args(&mut self, args: &'a [Ast]) -> Bits {
        self.state.stores = true;
        let mut c = 0;
        for a in args {
            c |= self.carried(a);
        }
        self.state.stored |= c;
        c
    }

    fn prim_app(&mut self, op: Prim, args: &'a [Ast]) -> Bits {
        match op.flow() {
            Flow::Inspects => {
                for a in args {
                    self.carried(a);
                }
                0
            }
            Flow::Embeds | Flow::ReadsFirst => args.iter().fold(0, |acc, a| acc | self.carried(a)),
            Flow::Stores => {
                self.state.stores = true;
                let mut all = 0;
                for (i, a) in args.iter().enumerate() {
                    let c = self.carried(a);
                    if i > 0 {
                        self.state.stored |= c;
                    }
                    all |= c;
                }
                all
            }
            Flow::Higher
                if matches!(
                    op,
                    Prim::Map | Prim::ForEach | Prim::Filter | Prim::FoldLeft
                ) =>
            {
                // The procedure may keep what it captured; the lists are
                // inspected (compile.rs builds them in scratch too).
                // `fold-left` may return its initial value. The procedure
                // may store, unless it is a `lambda` (its body is analysed
                // here) or a primitive that does not.
                let stores = match args.first() {
                    Some(Ast::Lambda(_)) => false,
                    Some(f) => self
                        .prim(f)
                        .is_none_or(|p| matches!(p.flow(), Flow::Stores | Flow::Higher)),
                    None => true,
                };
                self.state.stores |= stores;
                let mut r = 0;
                for (i, a) in args.iter().enumerate() {
                    let c = self.carried(a);
                    if i == 0 {
                        self.state.stored |= c;
                        r |= c;
                    } else if i == 1 && op == Prim::FoldLeft {
                        r |= c;
                    }
                }
                r
            }
            Flow::Higher => self.unknown_args(args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::read;
    use crate::syntax::Desugar;

    /// The summaries of `src`'s definitions.
    fn summarize_src(src: &str) -> HashMap<String, Summary> {
        let mut d = Desugar::new();
        let forms: Vec<Ast> = read(src)
            .expect("reads")
            .iter()
            .map(|x| d.toplevel(x).expect("desugars"))
            .collect();
        let defs: Vec<(&str, &Lambda)> = forms
            .iter()
            .filter_map(|f| match f {
                Ast::Define(n, v, _) => match &**v {
                    Ast::Lambda(l) => Some((n.as_str(), &**l)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let redefined = crate::compile::redefined_globals(forms.iter());
        summarize(&defs, &redefined)
    }

    /// The summaries that keep a parameter, as "x" (escapes) and "."
    /// (stays) per parameter.
    fn summaries(src: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = summarize_src(src)
            .into_iter()
            .filter(|(_, v)| v.escapes.contains(&false))
            .map(|(n, v)| {
                let marks = v.escapes.iter().map(|&e| if e { 'x' } else { '.' });
                (n, marks.collect())
            })
            .collect();
        out.sort();
        out
    }

    /// `name`'s summary; `None` when it has none, which is also how a
    /// summary in which every parameter escapes is left out.
    fn of(src: &str, name: &str) -> Option<String> {
        summaries(src)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    #[test]
    fn returned_or_embedded_parameters_escape_inspected_ones_stay() {
        let src = "(define (id x) x)
                   (define (pair a b) (cons a 1))
                   (define (len l) (if (null? l) 0 (+ 1 (len (cdr l)))))
                   (define (first l) (car l))
                   (define (choose c a b) (if c a b))";
        assert_eq!(of(src, "id"), None);
        assert_eq!(of(src, "pair").as_deref(), Some("x."));
        assert_eq!(of(src, "len").as_deref(), Some("."));
        assert_eq!(of(src, "first"), None);
        assert_eq!(of(src, "choose").as_deref(), Some(".xx"));
    }

    #[test]
    fn stored_or_captured_parameters_escape() {
        let src = "(define g 0)
                   (define (keep! x) (set! g x) 0)
                   (define (put! v x) (array-set! v 0 x) 0)
                   (define (later x) (fn [] 1))
                   (define (later-x x) (fn [] x))
                   (define (call f x) (f x))
                   (define (apply-it x) (apply list x))";
        assert_eq!(of(src, "keep!"), None);
        assert_eq!(of(src, "put!").as_deref(), Some(".x"));
        assert_eq!(of(src, "later").as_deref(), Some("."));
        assert_eq!(of(src, "later-x"), None);
        assert_eq!(of(src, "call"), None);
        assert_eq!(of(src, "apply-it"), None);
    }

    #[test]
    fn loops_and_calls_of_known_procedures_are_followed() {
        let src = "(define (sum l) (let loop ((l l) (acc 0)) (if (null? l) acc (loop (cdr l) (+ acc (car l))))))
                   (define (last l) (let loop ((l l)) (if (null? (cdr l)) (car l) (loop (cdr l)))))
                   (define (total l) (sum l))
                   (define (squares l) (map (fn [x] (* x x)) l))
                   (define (rev l) (let loop ((l l) (acc '())) (if (null? l) acc (loop (cdr l) (cons (car l) acc)))))
                   (define (even-odd n l) (if (= n 0) 0 (odd-even (- n 1) l)))
                   (define (odd-even n l) (if (= n 0) l (even-odd (- n 1) l)))";
        assert_eq!(of(src, "sum").as_deref(), Some("."));
        assert_eq!(of(src, "last"), None);
        assert_eq!(of(src, "total").as_deref(), Some("."));
        assert_eq!(of(src, "squares").as_deref(), Some("."));
        assert_eq!(of(src, "rev"), None);
        // Mutual recursion: odd-even returns l, so both pass it on.
        assert_eq!(of(src, "even-odd").as_deref(), Some(".x"));
        assert_eq!(of(src, "odd-even").as_deref(), Some(".x"));
    }

    /// Whether `name` is known to store nothing.
    fn stores_nothing(src: &str, name: &str) -> bool {
        summarize_src(src)
            .get(name)
            .is_some_and(|s| s.stores_nothing)
    }

    #[test]
    fn procedures_that_store_nothing_are_told_apart() {
        let src = "(define reg (make-array 1 0))
                   (define g 0)
                   (define (merge a b) (cond ((null? a) b) ((null? b) a)
                                             ((< (car a) (car b)) (cons (car a) (merge (cdr a) b)))
                                             (else (cons (car b) (merge a (cdr b))))))
                   (define (count l) (let loop ((l l) (n 0)) (if (null? l) n (begin (set! n (+ n 1)) (loop (cdr l) n)))))
                   (define (squares l) (map (fn [x] (* x x)) l))
                   (define (register! x) (array-set! reg 0 x) x)
                   (define (make-cell) (let ((b (box 0))) (register! b) b))
                   (define (remember x) (set! g x) x)
                   (define (call f) (f 1))
                   (define (via-map l) (map car l))
                   (define (via-param f l) (map f l))";
        for pure in ["merge", "count", "squares", "via-map"] {
            assert!(stores_nothing(src, pure), "{pure}");
        }
        for stores in ["register!", "make-cell", "remember", "call", "via-param"] {
            assert!(!stores_nothing(src, stores), "{stores}");
        }
    }

    #[test]
    fn what_the_analysis_does_not_follow_has_no_summary() {
        let src = "(define (rest . xs) 0)
                   (define (helper-as-value l) (letrec ((h (fn [x] x))) (map h l)))";
        assert_eq!(of(src, "rest"), None);
        assert_eq!(of(src, "helper-as-value"), None);
    }
}
