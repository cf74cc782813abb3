//! Compiler with the CTRR pass: resolves variables to frame slots, closure
//! captures or globals, and gives every allocation site a region
//! (docs/CTRR.md, docs/CTRR_REGION_INFERENCE_ROADMAP.md).
//!
//! Region inference, per function activation:
//! * Each expression is compiled in a *context*: `Escape` (its value may
//!   flow into the function's result, so it belongs in the caller-named
//!   destination region `dst`), `Local` (it dies with the activation: the
//!   scratch region), or `Global` (it is stored in a global).
//! * The body's tail is `Escape`. Arguments of primitives inherit the
//!   context when the primitive embeds them in its result, are `Local`
//!   otherwise. Arguments of calls to unknown functions inherit the call's
//!   context (the callee may return them). Tail-call arguments are
//!   `Escape`: the scratch region is exited before the jump; or `Iter`
//!   (the next iteration's region) when what they build can hold nothing
//!   of the activation, as can the initialiser of a `let` variable that
//!   leaves only as a whole tail-call argument (`let_init_ctx`).
//! * A variable referenced in an `Escape`/`Global` context *escapes*; its
//!   initialiser is then compiled in `Escape`, or in `Global` when the
//!   reference is a global store of the whole value that every run of the
//!   variable's scope makes (`to_global`: same function, no `if` branch or
//!   call argument in between), so the store copies nothing. A variable
//!   captured by a closure that escapes also escapes. Escape facts are found by
//!   recompiling until they stop changing (a monotone fixpoint).
//! * A fresh value stored straight into a structure (`(array-set! a i
//!   (cons x y))`) is allocated in the structure's own region.
//! * Calls pass their context's region as the callee's `dst`: results are
//!   built where they will live (destination passing).
//!
//! Everything the analysis cannot prove is repaired at run time by
//! omni-mem's barrier at the boundaries: return (admit into `dst`), tail
//! call (admit arguments into `dst`), global store, mutation, capture.

use std::collections::HashSet;
use std::rc::Rc;

use omni_mem::Value;

use crate::builtins::{Flow, Prim};
use crate::ir::{BoxAt, CapSrc, Node, Proto, Target};
use crate::reader::{Datum, Span};
use crate::syntax::{Ast, CompileError, Lambda};

type R<T> = Result<T, CompileError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Local,
    Escape,
    Global,
    /// A tail-call argument built only from fresh data (it names none of
    /// this activation's locals): it lives in the next iteration's region,
    /// which dies at the next iteration's end, so values a loop replaces on
    /// every round are not retained.
    Iter,
    /// A value being stored into the container held in this slot: built in
    /// the container's region (calls get it as their destination).
    Into(u32),
    /// A value being stored into the array or dict held in this slot, by
    /// an expression that stores nothing and calls no procedure: built in
    /// the container's slot region (`Compiler::slot_part`).
    IntoSlots(u32),
    /// Part of a fresh message being sent: built in the send's message
    /// region, which travels to the receiver whole. Nothing referenced
    /// here needs to outlive the activation: the barrier copies whatever
    /// is stored into a message region.
    Message,
}

impl Ctx {
    fn target(self) -> Target {
        match self {
            Ctx::Local => Target::Scratch,
            Ctx::Escape => Target::Dst,
            Ctx::Global => Target::Global,
            Ctx::Iter => Target::Iter,
            Ctx::Into(slot) => Target::RegionOfSlot(slot),
            Ctx::IntoSlots(slot) => Target::SlotsOf(slot),
            Ctx::Message => Target::Message,
        }
    }

    fn escapes(self) -> bool {
        !matches!(self, Ctx::Local | Ctx::Message)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BindingInfo {
    captured: bool,
    mutated: bool,
    escapes: bool,
    letrec: bool,
    /// Referenced in a `Global` context (`(set! g x)`) on every path
    /// through the binding's scope: its value ends up in the global
    /// region whatever happens, so it is built there (and keeps its
    /// identity: no copy is made at the store).
    to_global: bool,
    /// Passed whole as a tail-call argument by its own function
    /// (`(loop t)`): it outlives the activation's scratch, like an
    /// escaping variable, but a `let` variable that leaves only this way
    /// may be built in the next iteration's region (`let_init_ctx`).
    tail_passed: bool,
}

struct Var {
    name: String,
    slot: u32,
    bid: usize,
}

struct FnState {
    scopes: Vec<Vec<Var>>,
    nslots: u32,
    /// (name, binding id, where the parent finds it)
    captures: Vec<(String, usize, CapSrc)>,
    self_name: Option<(String, usize)>,
    /// Context in which this function's lambda expression appears.
    ctx_in_parent: Ctx,
    /// How many `if` branches, and arguments whose value is not stored
    /// whole (arguments of procedure calls, `car`, `apply`, ...), the
    /// expression being compiled is inside, in this function. A binding
    /// used in a `Global` context at its own level is stored whole into a
    /// global on every run of its scope.
    cond: u32,
}

enum Resolved {
    Local(u32, usize),
    Capture(u32, usize),
    SelfRef,
    Global(u32),
}

/// Converts quoted data to values in the global region.
pub trait ConstSink {
    /// The node that produces a quoted datum's value.
    fn constant(&mut self, d: &Datum) -> Node;
    fn global_id(&mut self, name: &str) -> u32;
    /// Whether global `g` holds its value in a box (`Node::SetGlobalBox`).
    fn global_boxed(&self, g: u32) -> bool;
    /// The first free procedure id.
    fn proto_base(&self) -> usize;
    /// The escape summary of the top-level procedure named `name`
    /// (escape.rs), if it has one.
    fn escapes(&self, name: &str) -> Option<crate::escape::Summary>;
    /// The global procedures registered so far whose bodies a call may
    /// inline (`Proto::inline_as`).
    fn inlinable(&self) -> &crate::pure_code::Inlinable;
}

pub struct Compiler<'s> {
    sink: &'s mut dyn ConstSink,
    fns: Vec<FnState>,
    info: Vec<BindingInfo>,
    next_info: Vec<BindingInfo>,
    bid_counter: usize,
    /// Globals the program defines or assigns: calls to them are never
    /// inlined as primitives.
    redefined: &'s HashSet<String>,
    protos: Vec<Rc<Proto>>,
    proto_counter: usize,
    /// Captures of the function compiled last (its parent builds the closure).
    last_captures: Vec<(String, usize, CapSrc)>,
    /// Where each binding was made (`level` when it was made).
    birth: Vec<(usize, u32)>,
    /// The global a top-level `define` is binding to the procedure about
    /// to be compiled (taken by that procedure): its pure code may inline
    /// its calls of that global (`pure_code`).
    defining: Option<u32>,
}

impl<'s> Compiler<'s> {
    pub fn new(sink: &'s mut dyn ConstSink, redefined: &'s HashSet<String>) -> Self {
        Compiler {
            sink,
            fns: Vec::new(),
            info: Vec::new(),
            next_info: Vec::new(),
            bid_counter: 0,
            redefined,
            protos: Vec::new(),
            last_captures: Vec::new(),
            proto_counter: 0,
            birth: Vec::new(),
            defining: None,
        }
    }

    /// Compile one top-level form into a zero-argument procedure. Returns
    /// it and every procedure it contains (the top-level one last).
    pub fn toplevel(&mut self, ast: &Ast, span: Span) -> R<Vec<Rc<Proto>>> {
        // Fixpoint over binding facts: recompile until they are stable. The
        // facts only ever grow (5 flags per binding), so this terminates;
        // code is only used from a round whose input facts were complete.
        self.info.clear();
        let mut stable = false;
        for _ in 0..256 {
            self.next_info = self.info.clone();
            self.bid_counter = 0;
            self.proto_counter = 0;
            self.protos.clear();
            self.function(
                Some("toplevel".into()),
                &[],
                None,
                ast,
                Ctx::Escape,
                None,
                span,
            )?;
            stable = self.next_info == self.info;
            self.info = std::mem::take(&mut self.next_info);
            if stable {
                break;
            }
        }
        if !stable {
            return Err(CompileError {
                span,
                message: "region analysis did not converge for this form".into(),
            });
        }
        Ok(std::mem::take(&mut self.protos))
    }

    fn new_binding(&mut self, letrec: bool) -> usize {
        let bid = self.bid_counter;
        self.bid_counter += 1;
        if self.next_info.len() <= bid {
            self.next_info.resize(bid + 1, BindingInfo::default());
        }
        if letrec {
            self.next_info[bid].letrec = true;
        }
        let here = self.level();
        if self.birth.len() <= bid {
            self.birth.resize(bid + 1, here);
        }
        self.birth[bid] = here;
        bid
    }

    /// Where the expression being compiled is: (function depth, `cond`
    /// level in that function).
    fn level(&self) -> (usize, u32) {
        (self.fns.len(), self.fns.last().map_or(0, |f| f.cond))
    }

    fn prev(&self, bid: usize) -> BindingInfo {
        self.info.get(bid).copied().unwrap_or_default()
    }

    fn boxed(&self, bid: usize) -> bool {
        let i = self.prev(bid);
        i.captured && (i.mutated || i.letrec)
    }

    fn var_ctx(&self, bid: usize) -> Ctx {
        let i = self.prev(bid);
        if i.to_global {
            Ctx::Global
        } else if i.escapes || i.tail_passed {
            Ctx::Escape
        } else {
            Ctx::Local
        }
    }

    /// The context `let` variable `bid`'s initialiser is built in: the
    /// variable's (`var_ctx`), except for a variable that leaves the
    /// activation only by being passed whole to a tail call, as loop
    /// state made in a `let` is (`(let ((t (string-append s "x")))
    /// (loop t))`). Its value is built in the next iteration's region,
    /// which lives through the rest of this iteration and the next, when
    /// what the initialiser builds can hold none of this activation's
    /// values (`embeds_own_locals`, the test tail-call arguments take);
    /// else in `dst`, as an escaping variable's.
    fn let_init_ctx(&mut self, bid: usize, init: &Ast) -> Ctx {
        let i = self.prev(bid);
        if i.tail_passed && !i.escapes && !i.to_global && !self.boxed(bid) {
            if self.embeds_own_locals(init) {
                Ctx::Escape
            } else {
                Ctx::Iter
            }
        } else {
            self.var_ctx(bid)
        }
    }

    /// The binding of `a` if it is a variable of the function being
    /// compiled (a parameter or a `let`/`letrec` variable of its own, not
    /// a capture).
    fn own_variable(&mut self, a: &Ast) -> Option<usize> {
        let Ast::Var(name, _) = a else { return None };
        match self.resolve(name) {
            Resolved::Local(_, bid) if self.birth.get(bid).map(|b| b.0) == Some(self.fns.len()) => {
                Some(bid)
            }
            _ => None,
        }
    }

    fn cur(&mut self) -> &mut FnState {
        self.fns.last_mut().expect("inside a function")
    }

    fn bind(&mut self, name: &str, letrec: bool) -> (u32, usize) {
        let bid = self.new_binding(letrec);
        let f = self.cur();
        let slot = f.nslots;
        f.nslots += 1;
        f.scopes.last_mut().expect("scope").push(Var {
            name: name.into(),
            slot,
            bid,
        });
        (slot, bid)
    }

    #[allow(clippy::too_many_arguments)]
    fn function(
        &mut self,
        name: Option<String>,
        params: &[String],
        rest: Option<&String>,
        body: &Ast,
        ctx_in_parent: Ctx,
        self_name: Option<(String, usize)>,
        span: Span,
    ) -> R<Rc<Proto>> {
        let own_global = self.defining.take();
        self.fns.push(FnState {
            scopes: vec![Vec::new()],
            nslots: 0,
            captures: Vec::new(),
            self_name,
            ctx_in_parent,
            cond: 0,
        });
        let mut prologue = Vec::new();
        let mut param_bids = Vec::new();
        for p in params.iter().chain(rest) {
            let (slot, bid) = self.bind(p, false);
            param_bids.push((slot, bid));
        }
        for (slot, bid) in param_bids {
            if self.boxed(bid) {
                let t = self.var_ctx(bid).target();
                prologue.push(Node::BindBox(slot, Box::new(Node::Local(slot)), t, span));
            }
        }
        let body_node = self.expr(body, Ctx::Escape, true)?;
        let f = self.fns.pop().expect("pushed above");
        let body_node = crate::fuse::fuse(if prologue.is_empty() {
            body_node
        } else {
            prologue.push(body_node);
            Node::Seq(prologue)
        });
        // (A rest list is made by the general call: no pure tier.)
        let pure_code = match rest {
            None => crate::pure_code::compile(
                &body_node,
                (f.nslots as usize, params.len(), f.captures.len()),
                own_global,
                self.sink.inlinable(),
            ),
            Some(_) => None,
        };
        // A global procedure that captures nothing and whose recursion, if
        // any, is a loop: once registered, a later procedure's pure code may
        // inline its body at a call of that global (guarded at run time by
        // the closure's code: `Op::InlineOther`).
        let inline_as = match (own_global, &pure_code) {
            (Some(g), Some(code))
                if rest.is_none() && f.captures.is_empty() && !code.recurses(g) =>
            {
                Some(g)
            }
            _ => None,
        };
        let proto = Rc::new(Proto {
            id: {
                self.proto_counter += 1;
                self.sink.proto_base() + self.proto_counter - 1
            },
            name: name.unwrap_or_else(|| "lambda".into()),
            nparams: params.len(),
            rest: rest.is_some(),
            nslots: f.nslots as usize,
            tier: crate::ir::TierState::new(pure_code.is_some()),
            pure_code,
            body: body_node,
            span,
            inline_as,
        });
        // Stash captures for the caller (the parent builds the closure).
        self.last_captures = f.captures;
        self.protos.push(proto.clone());

        Ok(proto)
    }

    fn resolve(&mut self, name: &str) -> Resolved {
        let depth = self.fns.len();
        self.resolve_at(name, depth - 1)
    }

    fn lookup_local(&self, level: usize, name: &str) -> Option<(u32, usize)> {
        for scope in self.fns[level].scopes.iter().rev() {
            if let Some(v) = scope.iter().rev().find(|v| v.name == name) {
                return Some((v.slot, v.bid));
            }
        }
        None
    }

    fn resolve_at(&mut self, name: &str, level: usize) -> Resolved {
        if let Some((slot, bid)) = self.lookup_local(level, name) {
            return Resolved::Local(slot, bid);
        }
        if let Some((n, bid)) = &self.fns[level].self_name {
            if n == name && !self.prev(*bid).mutated {
                return Resolved::SelfRef;
            }
        }
        if let Some(i) = self.fns[level].captures.iter().position(|c| c.0 == name) {
            let bid = self.fns[level].captures[i].1;
            return Resolved::Capture(i as u32, bid);
        }
        if level == 0 {
            return Resolved::Global(self.sink.global_id(name));
        }
        let from_parent = match self.resolve_at(name, level - 1) {
            Resolved::Global(g) => return Resolved::Global(g),
            Resolved::Local(slot, bid) => {
                // Captured from the function that binds it: the closure
                // created at `level` holds it, so it must outlive that
                // closure's region.
                if self.fns[level].ctx_in_parent.escapes() {
                    self.next_info[bid].escapes = true;
                }
                (CapSrc::Local(slot), bid)
            }
            Resolved::Capture(i, bid) => (CapSrc::Capture(i), bid),
            Resolved::SelfRef => {
                let bid = usize::MAX;
                (CapSrc::SelfRef, bid)
            }
        };
        let (src, bid) = from_parent;
        if bid != usize::MAX {
            self.next_info[bid].captured = true;
        }
        let f = &mut self.fns[level];
        f.captures.push((name.to_string(), bid, src));
        Resolved::Capture((f.captures.len() - 1) as u32, bid)
    }

    /// `expr` one `cond` level down: an `if` branch, or an argument whose
    /// value is not stored whole.
    fn nested(&mut self, a: &Ast, ctx: Ctx, tail: bool) -> R<Node> {
        self.cur().cond += 1;
        let n = self.expr(a, ctx, tail);
        self.cur().cond -= 1;
        n
    }

    fn note_use(&mut self, bid: usize, ctx: Ctx) {
        if bid != usize::MAX && ctx.escapes() {
            self.next_info[bid].escapes = true;
            // A global store in the binding's own function, on the path
            // every run of its scope takes.
            if ctx == Ctx::Global && self.birth.get(bid) == Some(&self.level()) {
                self.next_info[bid].to_global = true;
            }
        }
    }

    /// Whether evaluating `e` allocates nothing but its value: a constant,
    /// a variable, a `lambda`, or a constructor that embeds its arguments
    /// whole (`cons`, `list`, `array`, `make-array`, `dict`, `box`) applied
    /// to such expressions.
    fn leaves_nothing(&mut self, e: &Ast) -> bool {
        match e {
            Ast::Quote(_) | Ast::Var(..) | Ast::Lambda(_) => true,
            Ast::App(f, args, _) => {
                matches!(
                    self.is_prim_call(f),
                    Some(
                        Prim::Cons
                            | Prim::List
                            | Prim::Array
                            | Prim::MakeArray
                            | Prim::Dict
                            | Prim::Box
                    )
                ) && args.iter().all(|a| self.leaves_nothing(a))
            }
            _ => false,
        }
    }

    /// Whether evaluating `e` stores nothing anywhere: no `set!`, no
    /// store primitive, no call of a procedure not known to store nothing.
    /// Known: primitives other than stores and `apply`/`guard-error`;
    /// `map`, `for-each`, `filter`, `fold-left` given such a procedure or a
    /// `lambda` whose body stores nothing; top-level procedures whose
    /// escape summaries say so (escape.rs). `bound` holds the names bound
    /// inside `e` around the expression (a call of one is not known).
    fn stores_nothing<'a>(&mut self, e: &'a Ast, bound: &mut Vec<&'a str>) -> bool {
        match e {
            Ast::Quote(_) | Ast::Var(..) | Ast::Lambda(_) => true,
            Ast::Set(..) | Ast::Define(..) => false,
            Ast::If(c, t, f) => {
                self.stores_nothing(c, bound)
                    && self.stores_nothing(t, bound)
                    && self.stores_nothing(f, bound)
            }
            Ast::Begin(xs) => xs.iter().all(|x| self.stores_nothing(x, bound)),
            Ast::Let(bs, b) | Ast::Letrec(bs, b) => {
                // A `letrec`'s names are bound in its initialisers too.
                let depth = bound.len();
                let recursive = matches!(e, Ast::Letrec(..));
                if recursive {
                    bound.extend(bs.iter().map(|(n, _)| n.as_str()));
                }
                let inits = bs.iter().all(|(_, x)| self.stores_nothing(x, bound));
                if !recursive {
                    bound.extend(bs.iter().map(|(n, _)| n.as_str()));
                }
                let body = inits && self.stores_nothing(b, bound);
                bound.truncate(depth);
                body
            }
            Ast::App(f, args, _) => {
                self.calls_store_nothing(f, args, bound)
                    && args.iter().all(|a| self.stores_nothing(a, bound))
            }
        }
    }

    /// Whether `f`, called on `args`, is known to store nothing.
    fn calls_store_nothing<'a>(
        &mut self,
        f: &'a Ast,
        args: &'a [Ast],
        bound: &mut Vec<&'a str>,
    ) -> bool {
        let Ast::Var(name, _) = f else { return false };
        if bound.contains(&name.as_str()) {
            return false;
        }
        match self.is_prim_call(f) {
            Some(Prim::Map | Prim::ForEach | Prim::Filter | Prim::FoldLeft) => match args.first() {
                Some(Ast::Lambda(l)) => {
                    let depth = bound.len();
                    bound.extend(l.params.iter().map(String::as_str));
                    bound.extend(l.rest.as_deref());
                    let ok = self.stores_nothing(&l.body, bound);
                    bound.truncate(depth);
                    ok
                }
                Some(g @ Ast::Var(..)) => self.calls_store_nothing(g, &[], bound),
                _ => false,
            },
            Some(op) => !matches!(op.flow(), Flow::Stores | Flow::Higher),
            // A procedure passed to `map` and its kin (no arguments
            // here) may be called with any number of them.
            None => self
                .global_summary(f)
                .filter(|s| args.is_empty() || s.escapes.len() == args.len())
                .is_some_and(|s| s.stores_nothing),
        }
    }

    fn is_prim_call(&mut self, f: &Ast) -> Option<Prim> {
        let Ast::Var(name, _) = f else { return None };
        let p = Prim::by_name(name)?;
        if self.redefined.contains(name.as_str()) {
            return None;
        }
        match self.resolve(name) {
            Resolved::Global(_) => Some(p),
            _ => None,
        }
    }

    fn expr(&mut self, ast: &Ast, ctx: Ctx, tail: bool) -> R<Node> {
        Ok(match ast {
            Ast::Quote(d) => self.sink.constant(d),
            Ast::Var(name, span) => match self.resolve(name) {
                Resolved::Local(slot, bid) => {
                    self.note_use(bid, ctx);
                    if self.boxed(bid) {
                        Node::LocalBox(slot)
                    } else {
                        Node::Local(slot)
                    }
                }
                Resolved::Capture(i, bid) => {
                    self.note_use(bid, ctx);
                    if bid != usize::MAX && self.boxed(bid) {
                        Node::CaptureBox(i)
                    } else {
                        Node::Capture(i)
                    }
                }
                Resolved::SelfRef => Node::SelfRef,
                Resolved::Global(g) if self.sink.global_boxed(g) => Node::GlobalBox(g, *span),
                Resolved::Global(g) => Node::Global(g, *span),
            },
            Ast::Set(name, value, span) => match self.resolve(name) {
                Resolved::Local(slot, bid) => {
                    self.next_info[bid].mutated = true;
                    let v = self.expr(value, self.var_ctx(bid), false)?;
                    if self.boxed(bid) {
                        Node::SetLocalBox(slot, Box::new(v), *span)
                    } else {
                        Node::SetLocal(slot, Box::new(v))
                    }
                }
                Resolved::Capture(i, bid) => {
                    if bid != usize::MAX {
                        self.next_info[bid].mutated = true;
                    }
                    let v = self.expr(value, Ctx::Local, false)?;
                    // Captured and mutated => boxed once the fixpoint sees it.
                    Node::SetCaptureBox(i, Box::new(v), *span)
                }
                Resolved::SelfRef => {
                    return Err(CompileError {
                        span: *span,
                        message: format!(
                            "set! of the function's own name '{name}' inside its body"
                        ),
                    })
                }
                Resolved::Global(g) if self.sink.global_boxed(g) => {
                    // The result of a primitive that keeps none of its
                    // arguments (`(string-append s "x")`, `(+ x 0.5)`) is
                    // a fresh value nothing else holds: built here and
                    // copied into the box's slot region by the barrier,
                    // where it is given back once replaced. Anything else
                    // is built in the global region as for a plain global,
                    // so a global and a variable (or a structure holding
                    // it) stored there stay one object (program 107).
                    let c = match &**value {
                        Ast::App(f, ..)
                            if self
                                .is_prim_call(f)
                                .is_some_and(|op| op.flow() == Flow::Inspects) =>
                        {
                            Ctx::Local
                        }
                        _ => Ctx::Global,
                    };
                    let v = self.expr(value, c, false)?;
                    Node::SetGlobalBox(g, Box::new(v), *span)
                }
                Resolved::Global(g) => {
                    let v = self.expr(value, Ctx::Global, false)?;
                    Node::SetGlobal(g, Box::new(v), *span)
                }
            },
            Ast::Define(name, value, span) => {
                if self.fns.len() != 1 {
                    return Err(CompileError {
                        span: *span,
                        message: "define is only allowed at top level or at the start of a body"
                            .into(),
                    });
                }
                let g = self.sink.global_id(name);
                // A value whose computation may leave something behind (a
                // sort's intermediate lists) but stores nothing anywhere is
                // built in the form's scratch region and admitted into the
                // global region (`Vm::admit_define`): what it left behind
                // dies with the scratch instead of staying in the global
                // region. Any other value is built straight in the global
                // region: one that leaves nothing behind (a procedure, a
                // constructor of such values) costs no copy there, and a
                // computation that may store could keep a part of the
                // value elsewhere (`(define cell (make-and-register))`):
                // a copy would stay one object with it only through a move,
                // which every later read would follow (and which may pin
                // a slot region), so it is built where it lives.
                let c =
                    if !self.leaves_nothing(value) && self.stores_nothing(value, &mut Vec::new()) {
                        Ctx::Local
                    } else {
                        Ctx::Global
                    };
                if matches!(**value, Ast::Lambda(_)) {
                    self.defining = Some(g);
                }
                let v = self.expr(value, c, false)?;
                self.defining = None;
                if self.sink.global_boxed(g) {
                    Node::DefGlobalBox(g, Box::new(v), *span)
                } else {
                    Node::DefGlobal(g, Box::new(v), *span)
                }
            }
            Ast::If(c, t, e) => {
                let c = self.expr(c, Ctx::Local, false)?;
                let t = self.nested(t, ctx, tail)?;
                let e = self.nested(e, ctx, tail)?;
                Node::If(Box::new(c), Box::new(t), Box::new(e))
            }
            Ast::Begin(items) => {
                if items.is_empty() {
                    return Ok(Node::Const(Value::NOTHING));
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, x) in items.iter().enumerate() {
                    let last = i + 1 == items.len();
                    out.push(self.expr(x, if last { ctx } else { Ctx::Local }, tail && last)?);
                }
                Node::Seq(out)
            }
            Ast::Lambda(l) => self.lambda(l, ctx, None)?,
            Ast::Let(bindings, body) => {
                let mut out = Vec::new();
                let mut inits = Vec::new();
                for (_, init) in bindings {
                    inits.push(init);
                }
                // Inits are compiled before the names are in scope; their
                // context comes from the bindings created below (same bids
                // in every fixpoint round, since binding order is fixed).
                let first_bid = self.bid_counter;
                let mut compiled = Vec::new();
                for (i, init) in inits.iter().enumerate() {
                    let bid = first_bid + i;
                    compiled.push((self.let_init_ctx(bid, init), init));
                }
                let mut nodes = Vec::new();
                // Reserve the bids now so nested bindings inside the inits
                // get later numbers.
                for _ in bindings {
                    self.new_binding(false);
                }
                for (i, (c, init)) in compiled.into_iter().enumerate() {
                    let n = self.expr(init, c, false)?;
                    nodes.push(
                        if reads_slot(&n) && self.used_up_by_borrows(bindings, i, body) {
                            self.borrow_reads(n, init)
                        } else {
                            n
                        },
                    );
                }
                self.cur().scopes.push(Vec::new());
                for (i, ((name, _), node)) in bindings.iter().zip(nodes).enumerate() {
                    let bid = first_bid + i;
                    let f = self.cur();
                    let slot = f.nslots;
                    f.nslots += 1;
                    f.scopes.last_mut().expect("scope").push(Var {
                        name: name.clone(),
                        slot,
                        bid,
                    });
                    out.push(self.bind_node(slot, bid, node));
                }
                out.push(self.expr(body, ctx, tail)?);
                self.cur().scopes.pop();
                Node::Seq(out)
            }
            Ast::Letrec(bindings, body) => {
                self.cur().scopes.push(Vec::new());
                let mut slots = Vec::new();
                for (name, _) in bindings {
                    slots.push(self.bind(name, true));
                }
                let mut out = Vec::new();
                // Boxed letrec variables get their box first, so closures
                // created by earlier inits can capture it.
                for &(slot, bid) in &slots {
                    if self.boxed(bid) {
                        let t = self.var_ctx(bid).target();
                        out.push(Node::BindBox(
                            slot,
                            Box::new(Node::Const(Value::UNDEFINED)),
                            t,
                            Span::default(),
                        ));
                    }
                }
                for ((name, init), &(slot, bid)) in bindings.iter().zip(&slots) {
                    let c = self.var_ctx(bid);
                    let node = match init {
                        Ast::Lambda(l) => self.lambda(l, c, Some((name.clone(), bid)))?,
                        _ => self.expr(init, c, false)?,
                    };
                    if self.boxed(bid) {
                        out.push(Node::SetLocalBox(slot, Box::new(node), Span::default()));
                    } else {
                        out.push(Node::Bind(slot, Box::new(node)));
                    }
                }
                out.push(self.expr(body, ctx, tail)?);
                self.cur().scopes.pop();
                Node::Seq(out)
            }
            Ast::App(f, args, span) => self.app(f, args, ctx, tail, *span)?,
        })
    }

    fn bind_node(&mut self, slot: u32, bid: usize, init: Node) -> Node {
        if self.boxed(bid) {
            let t = self.var_ctx(bid).target();
            Node::BindBox(slot, Box::new(init), t, Span::default())
        } else {
            Node::Bind(slot, Box::new(init))
        }
    }

    fn lambda(&mut self, l: &Rc<Lambda>, ctx: Ctx, self_name: Option<(String, usize)>) -> R<Node> {
        let proto = self.function(
            l.name
                .clone()
                .or_else(|| self_name.as_ref().map(|s| s.0.clone())),
            &l.params,
            l.rest.as_ref(),
            &l.body,
            ctx,
            self_name,
            l.span,
        )?;
        let caps = std::mem::take(&mut self.last_captures);
        let srcs = caps.iter().map(|c| c.2).collect();
        // The captured variables' values are read in this context.
        for (_, bid, _) in &caps {
            self.note_use(*bid, ctx);
        }
        Ok(Node::Closure(proto, srcs, ctx.target(), l.span))
    }

    fn app(&mut self, f: &Ast, args: &[Ast], ctx: Ctx, tail: bool, span: Span) -> R<Node> {
        if let Some(op) = self.is_prim_call(f) {
            let (min, max) = op.arity();
            if args.len() < min || args.len() > max {
                let expect = if min == max {
                    format!("{min}")
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                };
                return Err(CompileError {
                    span,
                    message: format!(
                        "{}: expected {expect} argument(s), got {}",
                        op.name(),
                        args.len()
                    ),
                });
            }
            if op == Prim::Send && self.fresh_message(&args[1]) {
                let chan = self.expr(&args[0], Ctx::Local, false)?;
                let msg = self.expr(&args[1], Ctx::Message, false)?;
                return Ok(Node::SendFresh {
                    chan: Box::new(chan),
                    msg: Box::new(msg),
                    span,
                });
            }
            return self.prim(op, args, ctx, span);
        }
        // A tail call's callee and arguments outlive this activation's
        // scratch region (it is exited before the jump): they escape, or,
        // when what an argument builds can hold none of this activation's
        // values, live in the next iteration's region.
        let actx = if tail { Ctx::Escape } else { ctx };
        // An argument of a call that is not a tail call, for a parameter
        // the callee's summary says does not escape, dies with the call:
        // it is built in this activation's scratch rather than where the
        // call's result goes (escape.rs). A wrong summary costs a copy at
        // the return boundary, never safety: anything older that comes to
        // point into scratch is repaired by the barrier. (Not so for a
        // tail call's argument: built in the next iteration's region, it
        // must not point into this iteration's, which dies first and is
        // not repaired: `embeds_own_locals` alone decides that.)
        let summary = if tail {
            None
        } else {
            self.callee_summary(f, args.len())
        };
        let fnode = self.expr(f, if tail { Ctx::Escape } else { Ctx::Local }, false)?;
        let mut a = Vec::with_capacity(args.len());
        for (i, x) in args.iter().enumerate() {
            let stays = summary.as_ref().is_some_and(|s| !s.escapes[i]);
            // A variable of this function passed whole: it is read, and the
            // boundary admits its value; what it leaves to its binding is
            // `tail_passed` (`let_init_ctx`).
            if let Some(bid) = tail.then(|| self.own_variable(x)).flatten() {
                self.next_info[bid].tail_passed = true;
                a.push(self.nested(x, Ctx::Local, false)?);
                continue;
            }
            let c = if tail && !self.embeds_own_locals(x) {
                Ctx::Iter
            } else if stays {
                Ctx::Local
            } else {
                actx
            };
            a.push(self.nested(x, c, false)?);
        }
        Ok(Node::Call {
            f: Box::new(fnode),
            args: a,
            target: ctx.target(),
            tail,
            span,
        })
    }

    fn prim(&mut self, op: Prim, args: &[Ast], ctx: Ctx, span: Span) -> R<Node> {
        let target = ctx.target();
        match op.flow() {
            Flow::Stores => {
                // Evaluate the container into a hidden slot, then allocate a
                // fresh stored value directly in the container's region.
                // Array and dict slots differ: their values belong in the
                // container's slot region, where an overwritten value can
                // be reclaimed (docs/REGION_COALESCE_POLICY.md); built in
                // the container's region it would stay there as long as the
                // container. A value made without calls or stores is built
                // straight there; any other is built here and copied there
                // by the barrier (a call could store into the container and
                // compact its slot region under a value being built).
                let slot_region = op.has_slot_region();
                self.cur().scopes.push(Vec::new());
                let (slot, _) = self.bind(" container", false);
                let container = self.expr(&args[0], Ctx::Local, false)?;
                let mut a = vec![Node::Local(slot)];
                for x in &args[1..] {
                    let n = match x {
                        Ast::Var(..) => {
                            // A variable stored into a structure outlives
                            // this activation unless the structure is local.
                            let c = self.stored_var_ctx(&args[0]);
                            self.expr(x, c, false)?
                        }
                        _ if slot_region && self.slot_part(x) => {
                            self.expr(x, Ctx::IntoSlots(slot), false)?
                        }
                        _ if slot_region => self.expr(x, Ctx::Local, false)?,
                        // Anything else is built where it will live.
                        _ => self.expr(x, Ctx::Into(slot), false)?,
                    };
                    a.push(n);
                }
                self.cur().scopes.pop();
                Ok(Node::Seq(vec![
                    Node::Bind(slot, Box::new(container)),
                    Node::Prim {
                        op,
                        args: a,
                        target,
                        span,
                    },
                ]))
            }
            flow => {
                let mut a = Vec::with_capacity(args.len());
                for (i, x) in args.iter().enumerate() {
                    let c = match flow {
                        Flow::Embeds => ctx,
                        // map/for-each/filter/fold-left build their result
                        // afresh: the procedure and the input lists die here
                        // (an element that ends up in the result is admitted
                        // by the barrier). apply and guard-error pass their
                        // arguments on to a callee that may return them.
                        Flow::Higher
                            if matches!(
                                op,
                                Prim::Map | Prim::ForEach | Prim::Filter | Prim::FoldLeft
                            ) =>
                        {
                            Ctx::Local
                        }
                        Flow::Higher => ctx,
                        Flow::ReadsFirst if i == 0 => ctx,
                        _ => Ctx::Local,
                    };
                    // Only a constructor stores its arguments whole.
                    let n = if flow == Flow::Embeds {
                        self.expr(x, c, false)?
                    } else {
                        self.nested(x, c, false)?
                    };
                    a.push(if op.borrows_args() && self.borrowable(&args[i + 1..]) {
                        self.borrow_reads(n, x)
                    } else {
                        n
                    });
                }
                Ok(Node::Prim {
                    op,
                    args: a,
                    target,
                    span,
                })
            }
        }
    }

    /// Whether `a` is a fresh message: a call of an allocating primitive
    /// (not a higher-order one), or of a named procedure, whose arguments
    /// are constants, variables, lambdas or such calls again. `recv` and
    /// `join` count: what they receive is adopted straight into the message
    /// region, so relaying a message is a transfer too. Building it
    /// binds no variable of this activation, so once it is built nothing
    /// but its root can reach the message region: every heap edge into a
    /// message region is copied out by the barrier, and a called
    /// procedure's own variables die when it returns into the region
    /// (its `dst`). Then the region can travel whole (Option A).
    fn fresh_message(&mut self, a: &Ast) -> bool {
        // A message part that is a call, and makes a new value.
        let Ast::App(f, ..) = a else { return false };
        let allocates = self.is_prim_call(f).is_none_or(|op| op.allocates());
        allocates && self.message_part(a)
    }

    /// Whether `a` is made by primitives alone, with no procedure call and
    /// no store: nothing can run a store into a container while it is
    /// built (see `Ctx::IntoSlots`).
    fn slot_part(&mut self, a: &Ast) -> bool {
        self.built_of_parts(a, false)
    }

    /// Whether a boxed variable read may borrow its value when `later` are
    /// the arguments evaluated after it: none of them can call a procedure
    /// or store, so nothing stores into the box (and compacts its slot
    /// region) before the primitive has used the value (see
    /// `Prim::borrows_args`).
    fn borrowable(&mut self, later: &[Ast]) -> bool {
        later.iter().all(|x| self.slot_part(x))
    }

    /// `n`, compiled from `x`, whose value a primitive uses up before
    /// anything can store into a container (`Prim::borrows_args`,
    /// `borrowable`), with its reads made borrowing: a read of an assigned
    /// variable (`Node::BoxBorrow`), a container read (`Node::Borrow`),
    /// and, through a projection (`car`, `array-ref`, ...; `projects`),
    /// the read its first argument makes when the projection's later
    /// arguments can neither call nor store: `(string-length (car
    /// (array-ref a i)))` pins nothing. The projection's value is part of
    /// the borrowed one and is used up at once, as the borrowed value
    /// would have been.
    fn borrow_reads(&mut self, n: Node, x: &Ast) -> Node {
        let Node::Prim {
            op,
            mut args,
            target,
            span,
        } = n
        else {
            return box_borrowed(n, x);
        };
        if !projects(op) {
            return Node::Prim {
                op,
                args,
                target,
                span,
            };
        }
        if let Ast::App(_, xs, _) = x {
            if xs.len() == args.len() && !args.is_empty() && self.borrowable(&xs[1..]) {
                let first = std::mem::replace(&mut args[0], Node::Const(Value::NOTHING));
                args[0] = self.borrow_reads(first, &xs[0]);
            }
        }
        let n = Node::Prim {
            op,
            args,
            target,
            span,
        };
        if matches!(op, Prim::ArrayRef | Prim::DictRef | Prim::Unbox) {
            Node::Borrow(Box::new(n))
        } else {
            n
        }
    }

    /// Whether the value of `let` binding `i` may be read without a pin:
    /// the body uses the variable only where a primitive that borrows its
    /// arguments uses it up (`Prim::borrows_args`, through projections as
    /// in `borrow_reads`) or as an `if` test, and nothing that can call a
    /// procedure or store is evaluated between the binding and the last
    /// such use (`uses_up`). Later bindings of the same `let` are
    /// evaluated in between, so they must be such parts too. So `(let
    /// ((old (array-ref a i))) (array-set! a i (string-append old "x")))`
    /// reads without a pin: the store comes after the last use.
    fn used_up_by_borrows(&mut self, bindings: &[(String, Ast)], i: usize, body: &Ast) -> bool {
        let name = bindings[i].0.as_str();
        // A binding that shadows a primitive would make the body's calls
        // of it look like primitive calls here.
        if bindings
            .iter()
            .enumerate()
            .any(|(j, (n, _))| Prim::by_name(n).is_some() || (j != i && n == name))
        {
            return false;
        }
        let mut danger = !bindings[i + 1..].iter().all(|(_, x)| self.slot_part(x));
        self.uses_up(name, body, &mut danger)
    }

    /// Walk `a` in evaluation order for `used_up_by_borrows`: `danger`
    /// says whether something that may call a procedure or store has been
    /// evaluated since the binding (in either branch of an `if`). False if
    /// `name` is used otherwise than used up by a borrowing primitive or an
    /// `if` test, or used up after a danger, or captured, assigned or
    /// rebound (conservative: shadowing counts as a use).
    fn uses_up(&mut self, name: &str, a: &Ast, danger: &mut bool) -> bool {
        match a {
            Ast::Quote(_) => true,
            Ast::Var(n, _) => n != name,
            Ast::Set(n, v, _) => {
                let ok = n != name && self.uses_up(name, v, danger);
                *danger = true;
                ok
            }
            Ast::Define(..) => false,
            Ast::If(c, t, e) => {
                let test = match &**c {
                    Ast::Var(n, _) if n == name => !*danger,
                    c => self.uses_up(name, c, danger),
                };
                let mut other = *danger;
                let ok = test && self.uses_up(name, t, danger) && self.uses_up(name, e, &mut other);
                *danger |= other;
                ok
            }
            Ast::Begin(xs) => xs.iter().all(|x| self.uses_up(name, x, danger)),
            Ast::Lambda(_) => !mentions(a, name),
            Ast::Let(bs, b) | Ast::Letrec(bs, b) => {
                if bs
                    .iter()
                    .any(|(n, _)| n == name || Prim::by_name(n).is_some())
                {
                    return false;
                }
                bs.iter().all(|(_, x)| self.uses_up(name, x, danger))
                    && self.uses_up(name, b, danger)
            }
            Ast::App(f, xs, _) => match self.is_prim_call(f) {
                Some(op) => {
                    let mut consumes = false;
                    for x in xs {
                        if op.borrows_args() && self.projects_var(name, x) {
                            consumes = true;
                        } else if !self.uses_up(name, x, danger) {
                            return false;
                        }
                    }
                    // The primitive uses its arguments up when it runs,
                    // after all of them are evaluated.
                    if consumes && *danger {
                        return false;
                    }
                    if op.is_store() || op.flow() == Flow::Higher {
                        *danger = true;
                    }
                    true
                }
                None => {
                    let ok = self.uses_up(name, f, danger)
                        && xs.iter().all(|x| self.uses_up(name, x, danger));
                    *danger = true;
                    ok
                }
            },
        }
    }

    /// Whether `x` is variable `name`, or a projection (`projects`) of
    /// such an `x` whose later arguments neither call nor store nor
    /// mention `name`: what `borrow_reads` makes borrowing in a borrowing
    /// primitive's argument.
    fn projects_var(&mut self, name: &str, x: &Ast) -> bool {
        match x {
            Ast::Var(n, _) => n == name,
            Ast::App(f, xs, _) => {
                let Some(op) = self.is_prim_call(f) else {
                    return false;
                };
                let Some((first, later)) = xs.split_first() else {
                    return false;
                };
                projects(op)
                    && later
                        .iter()
                        .all(|y| !mentions(y, name) && self.slot_part(y))
                    && self.projects_var(name, first)
            }
            _ => false,
        }
    }

    fn message_part(&mut self, a: &Ast) -> bool {
        self.built_of_parts(a, true)
    }

    /// Whether `a` is constants, variables and primitives that neither
    /// store nor call procedures, applied to such parts; with `calls`,
    /// lambdas and calls of named procedures on such parts count too (a
    /// message part's call gets the message region as its `dst`).
    fn built_of_parts(&mut self, a: &Ast, calls: bool) -> bool {
        match a {
            Ast::Quote(_) | Ast::Var(..) => true,
            Ast::Lambda(_) => calls,
            Ast::App(f, args, _) => match self.is_prim_call(f) {
                Some(op) if op.flow() != Flow::Higher && !op.is_store() => {
                    args.iter().all(|x| self.built_of_parts(x, calls))
                }
                Some(_) => false,
                None => {
                    calls
                        && matches!(&**f, Ast::Var(..))
                        && args.iter().all(|x| self.built_of_parts(x, calls))
                }
            },
            _ => false,
        }
    }

    /// Whether tail-call argument `a`, built in the next iteration's
    /// region (`Ctx::Iter`), could make an object there that holds a value
    /// of this activation (which may die at the jump): whether it mentions
    /// one of this activation's variables, unless it is a call of a
    /// primitive whose result holds none of its arguments
    /// (`Flow::Inspects`: `(string-append s "x")`, `(+ x 0.5)`). Such a
    /// primitive's arguments are compiled in `Ctx::Local` and only read,
    /// and its result is either fresh, holding nothing of theirs, or one
    /// of them (`(min a b)`), which is not in the next iteration's region,
    /// so the tail-call boundary admits it into `dst` as before. Only the
    /// whole argument qualifies: nested in a constructor, such a returned
    /// argument would be copied into the next iteration's region by the
    /// constructor's barrier on every round.
    fn embeds_own_locals(&mut self, a: &Ast) -> bool {
        if let Ast::App(f, ..) = a {
            if self
                .is_prim_call(f)
                .is_some_and(|op| op.flow() == Flow::Inspects)
            {
                return false;
            }
        }
        self.names_own_locals(a)
    }

    /// The escape summary of the procedure a call of `f` with `n`
    /// arguments runs: `f` names a top-level procedure (not a primitive,
    /// not shadowed) whose summary has `n` parameters.
    fn callee_summary(&mut self, f: &Ast, n: usize) -> Option<crate::escape::Summary> {
        self.global_summary(f).filter(|s| s.escapes.len() == n)
    }

    /// The escape summary of the top-level procedure `f` names (not a
    /// primitive, not shadowed), if it has one.
    fn global_summary(&mut self, f: &Ast) -> Option<crate::escape::Summary> {
        let Ast::Var(name, _) = f else { return None };
        if self.is_prim_call(f).is_some() || !matches!(self.resolve(name), Resolved::Global(_)) {
            return None;
        }
        self.sink.escapes(name)
    }

    /// Whether `a` mentions a variable bound by the current activation
    /// (conservative: any name that is bound here counts, even if an inner
    /// binding shadows it).
    fn names_own_locals(&self, a: &Ast) -> bool {
        let level = self.fns.len() - 1;
        let mut found = false;
        walk_vars(a, &mut |name| {
            if self.lookup_local(level, name).is_some() {
                found = true;
            }
        });
        found
    }

    /// A stored variable escapes unless the container is a local variable
    /// that does not escape itself.
    fn stored_var_ctx(&mut self, container: &Ast) -> Ctx {
        if let Ast::Var(name, _) = container {
            if let Resolved::Local(_, bid) = self.resolve(name) {
                return self.var_ctx(bid);
            }
        }
        Ctx::Escape
    }
}

/// Whether primitive `op` hands out a part of its first argument, running
/// no procedure and storing nothing: `car` and its kin, `list-ref`, and
/// the container reads (`array-ref`, `dict-ref`, `unbox`).
fn projects(op: Prim) -> bool {
    use Prim::*;
    matches!(
        op,
        Car | Cdr | Caar | Cadr | Cdar | Cddr | Caddr | ListRef | ArrayRef | DictRef | Unbox
    )
}

/// Whether compiled node `n` hands out a slot's value, through
/// projections (what `borrow_reads` can make borrowing).
fn reads_slot(n: &Node) -> bool {
    match n {
        Node::LocalBox(_) | Node::CaptureBox(_) | Node::GlobalBox(..) => true,
        Node::Prim { op, args, .. } if projects(*op) => {
            matches!(op, Prim::ArrayRef | Prim::DictRef | Prim::Unbox)
                || args.first().is_some_and(reads_slot)
        }
        _ => false,
    }
}

/// `n`, the compiled read of an assigned variable (compiled from `x`), as
/// a borrowing read (`Node::BoxBorrow`); anything else as it is.
fn box_borrowed(n: Node, x: &Ast) -> Node {
    let span = match x {
        Ast::Var(_, span) => *span,
        _ => Span::default(),
    };
    match n {
        Node::LocalBox(at) => Node::BoxBorrow {
            at: BoxAt::Local(at),
            span,
        },
        Node::CaptureBox(at) => Node::BoxBorrow {
            at: BoxAt::Capture(at),
            span,
        },
        Node::GlobalBox(g, span) => Node::BoxBorrow {
            at: BoxAt::Global(g),
            span,
        },
        n => n,
    }
}

/// Visit `a` and every sub-form, including the bodies of nested lambdas
/// (pre-order). The one traversal the pre-passes share.
fn visit(a: &Ast, f: &mut dyn FnMut(&Ast)) {
    f(a);
    match a {
        Ast::Quote(_) | Ast::Var(..) => {}
        Ast::Set(_, v, _) | Ast::Define(_, v, _) => visit(v, f),
        Ast::If(c, t, e) => {
            visit(c, f);
            visit(t, f);
            visit(e, f);
        }
        Ast::Begin(xs) => xs.iter().for_each(|x| visit(x, f)),
        Ast::Lambda(l) => visit(&l.body, f),
        Ast::Let(bs, b) | Ast::Letrec(bs, b) => {
            bs.iter().for_each(|(_, x)| visit(x, f));
            visit(b, f);
        }
        Ast::App(g, xs, _) => {
            visit(g, f);
            xs.iter().for_each(|x| visit(x, f));
        }
    }
}

/// Whether `a` mentions variable `name` anywhere (`walk_vars`).
fn mentions(a: &Ast, name: &str) -> bool {
    let mut found = false;
    walk_vars(a, &mut |n| found |= n == name);
    found
}

/// Call `f` on every variable name `a` mentions (including `set!` targets
/// and names inside nested lambdas).
pub(crate) fn walk_vars(a: &Ast, f: &mut dyn FnMut(&str)) {
    visit(a, &mut |x| match x {
        Ast::Var(n, _) | Ast::Set(n, ..) | Ast::Define(n, ..) => f(n),
        _ => {}
    });
}

/// The names a program `set!`s. The globals among them hold their values
/// in boxes (`Node::SetGlobalBox`).
pub fn assigned_names<'a>(forms: impl IntoIterator<Item = &'a Ast>) -> HashSet<String> {
    let mut out = HashSet::new();
    for form in forms {
        visit(form, &mut |x| {
            if let Ast::Set(n, ..) = x {
                out.insert(n.clone());
            }
        });
    }
    out
}

/// Globals a program defines or assigns (so primitives named like them are
/// not inlined).
pub fn redefined_globals<'a>(forms: impl IntoIterator<Item = &'a Ast>) -> HashSet<String> {
    let mut out = HashSet::new();
    for form in forms {
        visit(form, &mut |x| {
            if let Ast::Define(n, ..) | Ast::Set(n, ..) = x {
                out.insert(n.clone());
            }
        });
    }
    out
}
