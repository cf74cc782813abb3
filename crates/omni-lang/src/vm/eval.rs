//! Evaluating the IR: `eval` (leaves and superinstructions in line), the
//! thin `eval_node` dispatcher and its small per-kind functions, and the
//! primitive calls with their fast paths. Calls are made in `call.rs`.

use super::*;
use crate::ir::BoxAt;

impl Vm {
    /// Evaluate a node. A call the compiler marked as a tail call (only
    /// ever in tail position of a procedure body, through `if`, `begin`
    /// and `let` bodies) is not made here: its callee and arguments are
    /// left in `tail_call` and on the stack for the activation, and the
    /// value returned is a placeholder.
    ///
    /// The most frequent leaves and primitive calls are handled in line;
    /// the rest goes through `eval_node`.
    #[inline(always)]
    pub(crate) fn eval(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        match n {
            Node::Const(v) => Ok(*v),
            Node::Local(s) => Ok(self.stack[fr.base + *s as usize]),
            Node::FixOp2 { .. } => self.eval_fixop2(n, fr),
            Node::LocalOp1 { .. } => self.eval_localop1(n, fr),
            Node::LocalOp2 { .. } => self.eval_localop2(n, fr),
            Node::Prim { .. } => self.eval_prim(n, fr),
            Node::If(c, t, e) => self.eval_if(c, t, e, fr),
            Node::Call { .. } => self.eval_call(n, fr),
            Node::Seq(items) => self.eval_seq(items, fr),
            Node::Or(a, b) => self.eval_or(a, b, fr),
            _ => self.eval_node(n, fr),
        }
    }

    /// `begin`, and the bindings then body of a `let`: every form but the
    /// last for effect, the last (in tail position if the whole is) for
    /// the value.
    #[inline(never)]
    fn eval_seq(&mut self, items: &[Node], fr: &mut Frame) -> VmResult<Value> {
        let Some((last, init)) = items.split_last() else {
            return Ok(Value::NOTHING);
        };
        for x in init {
            self.eval(x, fr)?;
        }
        self.eval(last, fr)
    }

    /// `Node::FixOp2`: out of line but lean (no call on the fast path).
    /// (Nodes are passed whole: three register arguments.)
    #[inline(never)]
    fn eval_fixop2(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::FixOp2 { op, a, b, general } = n else {
            return self.eval_node(n, fr);
        };
        let (x, y) = (self.operand(*a, fr), self.operand(*b, fr));
        match fixop(*op, x, y) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    /// `Node::LocalOp1`: as `eval_fixop2`.
    #[inline(never)]
    fn eval_localop1(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::LocalOp1 { op, slot, general } = n else {
            return self.eval_node(n, fr);
        };
        match self.localop1_fast(*op, *slot, fr) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    /// The fast half of `Node::LocalOp1` (`None`: run `general`). It and
    /// `localop2_fast` are shared by their nodes' own functions and by the
    /// places that decide them in line (`eval_if`'s test, `eval_call`'s
    /// arguments).
    #[inline(always)]
    fn localop1_fast(&self, op: Prim, slot: u32, fr: &Frame) -> Option<Value> {
        unary_fast_path(op, self.stack[fr.base + slot as usize])
    }

    /// The fast half of `Node::LocalOp2`.
    #[inline(always)]
    fn localop2_fast(&self, outer: Prim, inner: Prim, slot: u32, fr: &Frame) -> Option<Value> {
        self.localop1_fast(inner, slot, fr)
            .and_then(|y| unary_fast_path(outer, y))
    }

    /// `Node::LocalOp2`: as `eval_localop1`, two operations.
    #[inline(never)]
    fn eval_localop2(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::LocalOp2 {
            outer,
            inner,
            slot,
            general,
        } = n
        else {
            return self.eval_node(n, fr);
        };
        match self.localop2_fast(*outer, *inner, *slot, fr) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    #[inline(always)]
    fn operand(&self, o: Operand, fr: &Frame) -> Value {
        match o {
            Operand::Local(s) => self.stack[fr.base + s as usize],
            Operand::Const(v) => v,
        }
    }

    /// `Node::FixExpr`'s operation on its operands, computed on `i64`s;
    /// `None` when it does not apply (the general node runs instead): an
    /// operand that is not a fixnum (`car` of a non-pair, a nested
    /// operation whose result is not one), or a result that is not one.
    /// (`eval_if` does not decide a `FixExpr` test in line as it does a
    /// `FixOp2` one: the extra arm cost the programs without such tests
    /// more than it saved.)
    #[inline(always)]
    fn fix_expr(&self, op: FixOp, a: &FixArg, b: &FixArg, fr: &Frame) -> Option<Value> {
        fix_apply(op, self.fix_int(a, fr)?, self.fix_int(b, fr)?)
    }

    /// An operand's fixnum, if it is one. A nested operation on leaves
    /// (`(+ row dist)` in `(= (car l) (+ row dist))`) is computed in line.
    #[inline(always)]
    fn fix_int(&self, o: &FixArg, fr: &Frame) -> Option<i64> {
        match o {
            FixArg::Fix(n) => match &**n {
                (op, x, y) if !x.is_nested() && !y.is_nested() => {
                    fix_apply(*op, self.leaf_int(x, fr)?, self.leaf_int(y, fr)?)?.as_fixnum()
                }
                _ => self.nested_int(n, fr),
            },
            leaf => self.leaf_int(leaf, fr),
        }
    }

    /// A leaf operand's fixnum, if it is one (`None` for a nested
    /// operation too).
    #[inline(always)]
    fn leaf_int(&self, o: &FixArg, fr: &Frame) -> Option<i64> {
        match o {
            FixArg::Local(s) => self.stack[fr.base + *s as usize].as_fixnum(),
            FixArg::Const(v) => v.as_fixnum(),
            FixArg::Unary(op, s) => pair_path(*op, self.stack[fr.base + *s as usize])?.as_fixnum(),
            FixArg::Fix(_) => None,
        }
    }

    /// A nested operation with nested operands, as `fix_int`.
    #[inline(never)]
    fn nested_int(&self, n: &(FixOp, FixArg, FixArg), fr: &Frame) -> Option<i64> {
        fix_apply(n.0, self.fix_int(&n.1, fr)?, self.fix_int(&n.2, fr)?)?.as_fixnum()
    }

    /// A leaf operand's value (`None` for a nested operation).
    #[inline(always)]
    fn fix_leaf(&self, o: &FixArg, fr: &Frame) -> Option<Value> {
        Some(match o {
            FixArg::Local(s) => self.stack[fr.base + *s as usize],
            FixArg::Const(v) => *v,
            FixArg::Unary(op, s) => {
                unary_fast_path(*op, self.stack[fr.base + *s as usize]).unwrap_or(Value::UNDEFINED)
            }
            FixArg::Fix(_) => return None,
        })
    }

    /// `Node::FixExpr`: as `eval_fixop2`.
    #[inline(never)]
    fn eval_fixexpr(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::FixExpr { op, a, b, general } = n else {
            return self.eval_node(n, fr);
        };
        match self.fix_expr(*op, a, b, fr) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    /// `Node::EqConst`: as `eval_fixexpr`.
    #[inline(never)]
    fn eval_eqconst(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::EqConst { a, k, general } = n else {
            return self.eval_node(n, fr);
        };
        match self.fix_leaf(a, fr) {
            Some(x) if x != Value::UNDEFINED => Ok(Value::bool(x.is(*k))),
            _ => self.eval_node(general, fr),
        }
    }

    /// The nodes `eval` does not handle in line. A thin dispatcher: the
    /// frequent kinds go to small functions of their own (called in tail
    /// position, so this one needs no frame of its own), the rest to
    /// `eval_misc`.
    fn eval_node(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        match n {
            Node::If(c, t, e) => self.eval_if(c, t, e, fr),
            Node::Call { .. } => self.eval_call(n, fr),
            Node::Global(g, span) => self.eval_global(*g, *span),
            Node::FixExpr { .. } => self.eval_fixexpr(n, fr),
            Node::EqConst { .. } => self.eval_eqconst(n, fr),
            Node::SelfRef => Ok(fr.closure),
            Node::Capture(i) => {
                Ok(closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING))
            }
            _ => self.eval_misc(n, fr),
        }
    }

    #[inline(never)]
    fn eval_if(&mut self, c: &Node, t: &Node, e: &Node, fr: &mut Frame) -> VmResult<Value> {
        // A fixnum comparison as the test is decided here, without a call.
        let fast = match c {
            Node::FixOp2 { op, a, b, .. } => fixop(*op, self.operand(*a, fr), self.operand(*b, fr)),
            Node::LocalOp1 { op, slot, .. } => self.localop1_fast(*op, *slot, fr),
            // `eval_eqconst`'s fast half, spelled out: the same lines as a
            // shared helper, even `#[inline(always)]`, cost deriv +1.0%
            // (instruction counts, seventh session).
            Node::EqConst { a, k, .. } => match self.fix_leaf(a, fr) {
                Some(x) if x != Value::UNDEFINED => Some(Value::bool(x.is(*k))),
                _ => None,
            },
            Node::LocalOp2 {
                outer, inner, slot, ..
            } => self.localop2_fast(*outer, *inner, *slot, fr),
            _ => None,
        };
        let c = match fast {
            Some(v) => v,
            None => self.eval(c, fr)?,
        };
        debug_assert!(self.tail_call.is_none(), "tail call in a condition");
        self.eval(if c.is_truthy() { t } else { e }, fr)
    }

    /// `(or a b)`: `b` is in tail position if the whole is.
    #[inline(never)]
    fn eval_or(&mut self, a: &Node, b: &Node, fr: &mut Frame) -> VmResult<Value> {
        let v = self.eval(a, fr)?;
        debug_assert!(self.tail_call.is_none(), "tail call in an or's test");
        if v.is_truthy() {
            Ok(v)
        } else {
            self.eval(b, fr)
        }
    }

    /// The box of boxed global `g`, or the unbound-variable error.
    fn global_cell(&mut self, g: u32, span: Span) -> VmResult<Value> {
        match self.globals[g as usize] {
            v if v == Value::UNDEFINED => self.eval_global(g, span),
            b => Ok(b),
        }
    }

    #[cold]
    fn set_undefined(&self, g: u32, span: Span) -> Box<LispError> {
        LispError::new(
            format!(
                "set! of undefined variable '{}'",
                self.global_names[g as usize]
            ),
            span,
        )
    }

    #[inline(never)]
    fn eval_global(&mut self, g: u32, span: Span) -> VmResult<Value> {
        let v = self.globals[g as usize];
        if v == Value::UNDEFINED {
            return Err(LispError::new(
                format!("unbound variable '{}'", self.global_names[g as usize]),
                span,
            ));
        }
        Ok(v)
    }

    /// A call: callee, then arguments straight onto the value stack (on
    /// an error the enclosing activation truncates the stack). A tail
    /// call is left in `tail_call` for the activation (see `eval`).
    /// (It takes the whole node, so `eval_node` reaches it by a jump.)
    #[inline(never)]
    fn eval_call(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Call {
            f,
            args,
            target,
            tail,
            span,
        } = n
        else {
            return Err(LispError::new("internal: not a call", Span::default()));
        };
        let (target, tail, span) = (*target, *tail, *span);
        // Most callees are globals: read them here rather than through
        // two dispatches.
        let fv = match &**f {
            Node::Global(g, gspan) => match self.globals[*g as usize] {
                v if v == Value::UNDEFINED => return self.eval_global(*g, *gspan),
                v => v,
            },
            f => self.eval(f, fr)?,
        };
        for a in args {
            // A fixnum operation as an argument (`(f (- n 1))`) in line.
            let v = match a {
                Node::FixOp2 { op, a: x, b: y, .. } => {
                    match fixop(*op, self.operand(*x, fr), self.operand(*y, fr)) {
                        Some(v) => v,
                        None => self.eval(a, fr)?,
                    }
                }
                Node::LocalOp1 { op, slot, .. } => match self.localop1_fast(*op, *slot, fr) {
                    Some(v) => v,
                    None => self.eval(a, fr)?,
                },
                _ => self.eval(a, fr)?,
            };
            self.stack.push(v);
        }
        if tail {
            self.tail_call = Some(TailCall {
                f: fv,
                argc: args.len(),
                span,
            });
            return Ok(Value::NOTHING);
        }
        let dst = self.call_dst(target, fr);
        self.call_owning(fv, args.len(), dst, span, None)
    }

    #[inline(never)]
    fn eval_misc(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        Ok(match n {
            Node::Const(v) => *v,
            Node::HeapConst(i) => self.consts[*i as usize],
            Node::Local(s) => self.stack[fr.base + *s as usize],
            Node::LocalBox(s) => {
                self.unbox_var(self.stack[fr.base + *s as usize], Span::default())?
            }
            Node::Capture(i) => closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING),
            Node::CaptureBox(i) => {
                let b = closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING);
                self.unbox_var(b, Span::default())?
            }
            Node::Borrow(x) => return self.eval_borrow(x, fr),
            Node::BoxBorrow { at, span } => {
                let b = match *at {
                    BoxAt::Local(s) => self.stack[fr.base + s as usize],
                    BoxAt::Capture(i) => {
                        closure_capture(fr.closure, i as usize).unwrap_or(Value::NOTHING)
                    }
                    BoxAt::Global(g) => self.global_cell(g, *span)?,
                };
                self.borrow_var(b, *span)?
            }
            Node::GlobalBox(g, span) => {
                let b = self.global_cell(*g, *span)?;
                self.unbox_var(b, *span)?
            }
            Node::SetGlobalBox(g, x, span) => {
                if self.globals[*g as usize] == Value::UNDEFINED {
                    return Err(self.set_undefined(*g, *span));
                }
                let v = self.eval(x, fr)?;
                box_set(self.globals[*g as usize], v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::DefGlobalBox(g, x, span) => {
                let v = self.eval(x, fr)?;
                let b = self.globals[*g as usize];
                if b == Value::UNDEFINED {
                    let v = self.admit_define(v, *span, fr)?;
                    self.globals[*g as usize] =
                        alloc_box(self.global_region, v).map_err(|e| mem_err(e, *span))?;
                } else {
                    box_set(b, v).map_err(|e| mem_err(e, *span))?;
                }
                Value::NOTHING
            }
            Node::SelfRef => fr.closure,
            Node::SetLocal(s, x) => {
                let v = self.eval(x, fr)?;
                self.stack[fr.base + *s as usize] = v;
                Value::NOTHING
            }
            Node::SetLocalBox(s, x, span) => {
                let v = self.eval(x, fr)?;
                box_set(self.stack[fr.base + *s as usize], v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::SetCaptureBox(i, x, span) => {
                let v = self.eval(x, fr)?;
                let b = closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING);
                box_set(b, v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::SetGlobal(g, x, span) => {
                if self.globals[*g as usize] == Value::UNDEFINED {
                    return Err(self.set_undefined(*g, *span));
                }
                let v = self.eval(x, fr)?;
                self.globals[*g as usize] = self.admit_global(v, *span)?;
                Value::NOTHING
            }
            Node::DefGlobal(g, x, span) => {
                let v = self.eval(x, fr)?;
                self.globals[*g as usize] = self.admit_define(v, *span, fr)?;
                Value::NOTHING
            }
            Node::Seq(items) => return self.eval_seq(items, fr),
            Node::Bind(s, x) => {
                let v = self.eval(x, fr)?;
                self.stack[fr.base + *s as usize] = v;
                Value::NOTHING
            }
            Node::BindBox(s, x, t, span) => {
                let v = self.eval(x, fr)?;
                let r = self.target(*t, fr);
                self.stack[fr.base + *s as usize] =
                    alloc_box(r, v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::Closure(proto, caps, t, span) => self.make_closure(proto, caps, *t, *span, fr)?,
            Node::SendFresh { chan, msg, span } => self.send_fresh(chan, msg, *span, fr)?,
            Node::FixOp2 { general, .. }
            | Node::LocalOp1 { general, .. }
            | Node::LocalOp2 { general, .. } => {
                // Reached only through `eval`'s general case of these
                // nodes: run the primitive itself.
                self.eval(general, fr)?
            }
            Node::If(..) | Node::Call { .. } | Node::Global(..) => self.eval_node(n, fr)?,
            Node::FixExpr { .. } => return self.eval_fixexpr(n, fr),
            Node::EqConst { .. } => return self.eval_eqconst(n, fr),
            Node::Or(a, b) => return self.eval_or(a, b, fr),
            Node::Prim { .. } => self.eval_prim(n, fr)?,
        })
    }

    /// `Node::Borrow`: the container read without a pin; anything the
    /// borrowing accessor does not answer (a missing key, a bad index or
    /// type) goes to the primitive itself, which pins nothing then.
    #[inline(never)]
    fn eval_borrow(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim { op, args, .. } = n else {
            return self.eval(n, fr);
        };
        let mut vals = [Value::NOTHING; 3];
        for (slot, a) in vals.iter_mut().zip(args) {
            *slot = self.eval(a, fr)?;
        }
        let vals = &vals[..args.len().min(3)];
        let got = match (op, vals) {
            (Prim::ArrayRef, [a, i]) => i
                .as_fixnum()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| omni_mem::array_borrow(*a, i)),
            (Prim::DictRef, [d, k, ..]) => omni_mem::dict_borrow(*d, *k),
            (Prim::Unbox, [b]) => omni_mem::box_borrow(*b),
            _ => None,
        };
        match got {
            Some(v) => Ok(v),
            None => self.prim_general(n, vals, fr),
        }
    }

    #[inline(never)]
    fn make_closure(
        &mut self,
        proto: &Rc<Proto>,
        caps: &[CapSrc],
        t: Target,
        span: Span,
        fr: &mut Frame,
    ) -> VmResult<Value> {
        let mut vals = Vec::with_capacity(caps.len());
        for c in caps {
            vals.push(match c {
                CapSrc::Local(s) => self.stack[fr.base + *s as usize],
                CapSrc::Capture(i) => {
                    closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING)
                }
                CapSrc::SelfRef => fr.closure,
            });
        }
        let r = self.target(t, fr);
        alloc_closure(r, proto.id as u64, &vals).map_err(|e| mem_err(e, span))
    }

    /// Primitive calls: arguments, the fast paths, then the general
    /// implementation with the region the schedule named. (It takes the
    /// whole node, so it is reached by a jump and its frame stays small:
    /// the general case is out of line.)
    #[inline(never)]
    fn eval_prim(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim {
            op, args, target, ..
        } = n
        else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        let op = *op;
        // One- and two-argument calls: the common list and fixnum
        // operations need neither an argument buffer nor a region.
        match args.as_slice() {
            [a] => {
                let x = self.eval(a, fr)?;
                if let Some(v) = unary_fast_path(op, x) {
                    return Ok(v);
                }
                self.prim_general(n, &[x], fr)
            }
            [a, b] => {
                let x = self.eval(a, fr)?;
                let y = self.eval(b, fr)?;
                if let Some(v) = fixnum_op2(op, x, y) {
                    return Ok(v);
                }
                if let Some(v) = binary_fast_path(op, x, y) {
                    return Ok(v);
                }
                if op == Prim::Cons && !watched(op, *target) {
                    let r = self.target(*target, fr);
                    if let Ok(v) = omni_mem::alloc_pair(r, x, y) {
                        return Ok(v);
                    }
                }
                self.prim_general(n, &[x, y], fr)
            }
            // A short `list` straight into its region, from a fixed
            // buffer (reached from here: `eval_prim_n`'s frame is large).
            _ if op == Prim::List && args.len() <= 4 && !watched(op, *target) => {
                self.short_list(n, args, *target, fr)
            }
            _ => self.eval_prim_n(n, fr),
        }
    }

    /// A primitive call with any number of arguments.
    #[inline(never)]
    fn eval_prim_n(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim { op, args, .. } = n else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        // Three-operand sums and products (`(+ 1 (f l) (f r))`) without
        // the argument buffer.
        if let ([a, b, c], Prim::Add | Prim::Mul) = (args.as_slice(), *op) {
            let x = self.eval(a, fr)?;
            let y = self.eval(b, fr)?;
            let z = self.eval(c, fr)?;
            return match fixnum_fast_path(*op, &[x, y, z]) {
                Some(v) => Ok(v),
                None => self.prim_general(n, &[x, y, z], fr),
            };
        }
        let mut av: smallvec_like::Args = smallvec_like::Args::new();
        for a in args {
            av.push(self.eval(a, fr)?);
        }
        // `list` straight into its region (an allocation error takes the
        // general path, which reports it).
        if let (Prim::List, Node::Prim { target, .. }) = (*op, n) {
            if !watched(Prim::List, *target) {
                let r = self.target(*target, fr);
                return match omni_mem::alloc_list(r, av.as_slice()) {
                    Ok(l) => Ok(l),
                    Err(_) => self.prim_general(n, av.as_slice(), fr),
                };
            }
        }
        self.prim_general(n, av.as_slice(), fr)
    }

    /// `(list a ...)` of at most four elements, built in `target` (an
    /// allocation error takes the general path, which reports it).
    #[inline(never)]
    fn short_list(
        &mut self,
        n: &Node,
        args: &[Node],
        target: Target,
        fr: &mut Frame,
    ) -> VmResult<Value> {
        let mut vals = [Value::NOTHING; 4];
        for (slot, a) in vals.iter_mut().zip(args) {
            *slot = self.eval(a, fr)?;
        }
        let vals = &vals[..args.len()];
        let r = self.target(target, fr);
        match omni_mem::alloc_list(r, vals) {
            Ok(l) => Ok(l),
            Err(_) => self.prim_general(n, vals, fr),
        }
    }

    /// The general case of primitive node `n` on evaluated arguments:
    /// n-ary fixnum sums and products, else the primitive itself in the
    /// region the schedule named (watched for the retention warning).
    #[inline(never)]
    fn prim_general(&mut self, n: &Node, a: &[Value], fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim {
            op, target, span, ..
        } = n
        else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        let (op, target, span) = (*op, *target, *span);
        if let Some(v) = fixnum_fast_path(op, a).or_else(|| flonum_fast_path(op, a)) {
            return Ok(v);
        }
        let dst = if op.allocates() {
            Some(self.target(target, fr))
        } else {
            None
        };
        self.call_prim_watched(op, a, dst, target, span)
    }

    /// `call_prim`, measuring what a store or a global-targeted allocation
    /// adds to the global region (arguments are already evaluated, so
    /// nested sites are not counted twice).
    #[inline]
    fn call_prim_watched(
        &mut self,
        op: Prim,
        a: &[Value],
        dst: Option<Region>,
        target: Target,
        span: Span,
    ) -> VmResult<Value> {
        if !watched(op, target) {
            return self.call_prim(op, a, dst, span);
        }
        let before = self.global_region.bytes_allocated();
        let r = self.call_prim(op, a, dst, span);
        self.note_global_growth(span, before);
        r
    }
}

/// Whether a primitive call may grow the global region in a way worth
/// attributing to its site: stores (into a structure that may be global)
/// and allocations aimed at the global region or at a container's region.
#[inline(always)]
fn watched(op: Prim, target: Target) -> bool {
    (matches!(target, Target::Global | Target::RegionOfSlot(_)) && op.allocates()) || op.is_store()
}

/// Type tests and pair accessors that cannot fail or allocate; errors and
/// everything else take the general path.
#[inline(always)]
pub(super) fn unary_fast_path(op: Prim, x: Value) -> Option<Value> {
    match op {
        Prim::Car | Prim::Cdr | Prim::Cadr | Prim::Cddr | Prim::Caddr => pair_path(op, x),
        Prim::IsNull => Some(Value::bool(x == Value::EMPTY)),
        Prim::IsPair => Some(Value::bool(omni_mem::is_pair(x))),
        Prim::Not => Some(Value::bool(!x.is_truthy())),
        Prim::IsZero => x.as_fixnum().map(|n| Value::bool(n == 0)),
        Prim::IsSymbol => Some(Value::bool(x.as_symbol().is_some())),
        Prim::IsNumber => Some(Value::bool(omni_mem::is_number(x))),
        Prim::IsInteger if x.is_fixnum() => Some(Value::TRUE),
        // The other type tests, answered by the primitives' own
        // `kind_test` (`integer?` of a float is left to the primitive).
        Prim::IsString
        | Prim::IsFloat
        | Prim::IsChar
        | Prim::IsProcedure
        | Prim::IsArray
        | Prim::IsDict
        | Prim::IsBoolean
        | Prim::IsNothing => Some(Value::bool(crate::prims::kind_test(op, omni_mem::kind(x)))),
        _ => None,
    }
}

/// Identity and type tests of two values that cannot fail or allocate.
#[inline]
fn binary_fast_path(op: Prim, x: Value, y: Value) -> Option<Value> {
    match op {
        Prim::IsEq => Some(Value::bool(x.is(y))),
        _ => None,
    }
}

/// `fixnum_fast_path` for exactly two values.
#[inline(always)]
fn fixnum_op2(op: Prim, x: Value, y: Value) -> Option<Value> {
    let (a, b) = (x.as_fixnum()?, y.as_fixnum()?);
    match op {
        Prim::Add => Value::fixnum(a + b),
        Prim::Sub => Value::fixnum(a - b),
        Prim::Lt => Some(Value::bool(a < b)),
        Prim::Gt => Some(Value::bool(a > b)),
        Prim::Le => Some(Value::bool(a <= b)),
        Prim::Ge => Some(Value::bool(a >= b)),
        Prim::NumEq => Some(Value::bool(a == b)),
        _ => fixop(FixOp::of_prim(op)?, x, y),
    }
}

/// `Node::FixOp2`'s operation on two values: `None` unless both are
/// fixnums and the result is one (then exactly what `prims.rs` computes).
#[inline(always)]
pub(super) fn fixop(op: FixOp, x: Value, y: Value) -> Option<Value> {
    fix_apply(op, x.as_fixnum()?, y.as_fixnum()?)
}

/// `fixop` on the fixnums' values: `None` unless the result is a fixnum
/// or a boolean.
#[inline(always)]
pub(super) fn fix_apply(op: FixOp, x: i64, y: i64) -> Option<Value> {
    match op {
        FixOp::Add => Value::fixnum(x + y),
        FixOp::Sub => Value::fixnum(x - y),
        FixOp::Mul => x.checked_mul(y).and_then(Value::fixnum),
        FixOp::Lt => Some(Value::bool(x < y)),
        FixOp::Gt => Some(Value::bool(x > y)),
        FixOp::Le => Some(Value::bool(x <= y)),
        FixOp::Ge => Some(Value::bool(x >= y)),
        FixOp::Eq => Some(Value::bool(x == y)),
        FixOp::Ne => Some(Value::bool(x != y)),
        // Division by zero (and overflow) take the general path, which
        // reports it.
        FixOp::Quotient => x.checked_div(y).and_then(Value::fixnum),
        FixOp::Remainder => x.checked_rem(y).and_then(Value::fixnum),
        FixOp::Modulo => x
            .checked_rem(y)
            .map(|r| {
                if r != 0 && (r < 0) != (y < 0) {
                    r + y
                } else {
                    r
                }
            })
            .and_then(Value::fixnum),
    }
}

/// The pair accessors a `FixExpr` operand may apply to a local
/// (`FixArg::Unary`, `Prim::is_pair_path`): `None` off a pair.
#[inline(always)]
fn pair_path(op: Prim, x: Value) -> Option<Value> {
    match op {
        Prim::Car => omni_mem::car(x),
        Prim::Cdr => omni_mem::cdr(x),
        Prim::Cadr => omni_mem::cdr(x).and_then(omni_mem::car),
        Prim::Cddr => omni_mem::cdr(x).and_then(omni_mem::cdr),
        Prim::Caddr => omni_mem::cdr(x)
            .and_then(omni_mem::cdr)
            .and_then(omni_mem::car),
        _ => None,
    }
}

/// Arithmetic and comparison on two fixnums need no region; everything
/// else (overflow, floats, errors) takes the general path.
#[inline]
fn fixnum_fast_path(op: Prim, a: &[Value]) -> Option<Value> {
    if let [x, y] = a {
        return fixnum_op2(op, *x, *y);
    }
    // n-ary sums and products of fixnums (overflow takes the general path,
    // which reports it or boxes the result).
    let mut acc: i64 = match op {
        Prim::Add => 0,
        Prim::Mul => 1,
        _ => return None,
    };
    for v in a {
        let n = v.as_fixnum()?;
        acc = if op == Prim::Add {
            acc.checked_add(n)?
        } else {
            acc.checked_mul(n)?
        };
    }
    Value::fixnum(acc)
}

/// Two-operand float arithmetic whose result is a flonum: answered before
/// the primitive's region is looked up, which for a loop's next-iteration
/// region would create it for nothing. Operands are fixnums or flonums, at
/// least one a flonum; the result is what the primitive computes (both
/// operands as `f64`). Division by an exact zero, and results that are not
/// flonums, take the general path.
fn flonum_fast_path(op: Prim, a: &[Value]) -> Option<Value> {
    let [x, y] = a else { return None };
    if x.as_flonum().is_none() && y.as_flonum().is_none() {
        return None;
    }
    let f = |v: &Value| v.as_flonum().or_else(|| v.as_fixnum().map(|n| n as f64));
    let (p, q) = (f(x)?, f(y)?);
    let r = match op {
        Prim::Add => p + q,
        Prim::Sub => p - q,
        Prim::Mul => p * q,
        Prim::Div if *y != Value::fixnum(0)? => p / q,
        _ => return None,
    };
    Value::flonum(r)
}

/// A tiny inline argument buffer (no heap allocation for up to 4 args).
mod smallvec_like {
    use omni_mem::Value;

    pub struct Args {
        inline: [Value; 4],
        len: usize,
        heap: Vec<Value>,
    }

    impl Args {
        pub fn new() -> Self {
            Args {
                inline: [Value::NOTHING; 4],
                len: 0,
                heap: Vec::new(),
            }
        }

        pub fn push(&mut self, v: Value) {
            if self.len < 4 && self.heap.is_empty() {
                self.inline[self.len] = v;
                self.len += 1;
            } else {
                if self.heap.is_empty() {
                    self.heap.extend_from_slice(&self.inline[..self.len]);
                }
                self.heap.push(v);
            }
        }

        pub fn as_slice(&self) -> &[Value] {
            if self.heap.is_empty() {
                &self.inline[..self.len]
            } else {
                &self.heap
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Prim::has_unary_fast_path` (what `fuse.rs` fuses) names exactly the
    /// primitives `unary_fast_path` answers for some value.
    #[test]
    fn the_fused_unary_primitives_are_the_ones_with_a_fast_path() {
        let r = omni_mem::region_create();
        // (1 2 3): long enough for `caddr`.
        let mut list = Value::EMPTY;
        for k in [3, 2, 1] {
            let k = Value::fixnum(k).expect("fixnum");
            list = omni_mem::alloc_pair(r, k, list).expect("pair");
        }
        let samples = [
            Value::fixnum(0).expect("fixnum"),
            Value::fixnum(7).expect("fixnum"),
            Value::EMPTY,
            Value::TRUE,
            Value::FALSE,
            Value::NOTHING,
            list,
        ];
        let mut i = 0;
        while let Some(op) = Prim::from_index(i) {
            let answered = samples.iter().any(|&x| unary_fast_path(op, x).is_some());
            assert_eq!(
                answered,
                op.has_unary_fast_path(),
                "{}: fast path and fusion disagree",
                op.name()
            );
            i += 1;
        }
        omni_mem::region_exit(r);
    }
}
