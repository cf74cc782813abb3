//! A spawned thread's code, compiled form by form when first needed.
//!
//! A spawned thread runs closures its spawner made, whose code numbers are
//! the spawner's procedure ids. It used to compile the whole program again
//! first, so a spawn cost time in proportion to the program (2,000 spawns
//! in a program of 2,000 definitions took 45 s). Now the spawner records,
//! for each batch it compiled, where each top-level form starts and which
//! procedure ids compiling it gave; the new thread starts with the
//! spawner's table of global names, and compiles a form only when one of
//! its procedures is first called (`Vm::compile_lazily`). Compiling a
//! form depends only on the global table, the batch's redefined names and
//! the first procedure id, so the form's procedures get the same ids as in
//! the spawner; that is checked.

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use crate::compile::Compiler;
use crate::ir::Proto;
use crate::reader::{read_at, Span};
use crate::syntax::Desugar;
use crate::vm::Vm;

/// A batch (a program, or one REPL input) as a spawned thread needs it.
pub struct Batch {
    pub src: Arc<str>,
    /// Globals the batch defines or assigns (`compile::redefined_globals`).
    pub redefined: HashSet<String>,
    /// The forms that compiled, in order of their procedure ids.
    pub forms: Vec<FormCode>,
}

/// One compiled top-level form.
pub struct FormCode {
    /// Where the form's datum starts in the batch's source.
    pub start: Span,
    /// Its procedures, ids `first_id ..`, in id order.
    pub first_id: usize,
    pub procs: Vec<ProcInfo>,
}

/// What a procedure's value shows before its code is compiled.
pub struct ProcInfo {
    pub name: String,
    pub nparams: usize,
}

impl FormCode {
    pub fn of(start: Span, protos: &[Rc<Proto>]) -> Option<FormCode> {
        let first_id = protos.iter().map(|p| p.id).min()?;
        let mut procs: Vec<(usize, ProcInfo)> = protos
            .iter()
            .map(|p| {
                (
                    p.id,
                    ProcInfo {
                        name: p.name.clone(),
                        nparams: p.nparams,
                    },
                )
            })
            .collect();
        procs.sort_by_key(|p| p.0);
        Some(FormCode {
            start,
            first_id,
            procs: procs.into_iter().map(|p| p.1).collect(),
        })
    }

    /// The procedure ids compiling the form gives.
    fn ids(&self) -> std::ops::Range<usize> {
        self.first_id..self.first_id + self.procs.len()
    }
}

/// The form that made procedure `id`, and its batch.
pub(crate) fn form_of(batches: &[Arc<Batch>], id: usize) -> Option<(&Arc<Batch>, &FormCode)> {
    batches.iter().find_map(|b| {
        let i = b
            .forms
            .partition_point(|f| f.first_id <= id)
            .checked_sub(1)?;
        let f = &b.forms[i];
        f.ids().contains(&id).then_some((b, f))
    })
}

impl Vm {
    /// The code of procedure `id`, compiling the form that made it if this
    /// is a spawned thread that has not yet (`None`: no such procedure).
    pub(crate) fn compile_lazily(&mut self, id: usize) -> Option<Rc<Proto>> {
        let (batch, form) = form_of(&self.lazy_code, id)?;
        let (batch, start, ids) = (batch.clone(), form.start, form.ids());
        let datum = read_at(&batch.src, start).ok()?;
        let ast = Desugar::new().toplevel(&datum).ok()?;
        self.next_proto_base = Some(ids.start);
        let protos = Compiler::new(self, &batch.redefined).toplevel(&ast, start);
        self.next_proto_base = None;
        let protos = protos.ok()?;
        // The spawner's ids, or nothing (a mismatch would run other code).
        if protos.len() != ids.len() || protos.iter().any(|p| !ids.contains(&p.id)) {
            return None;
        }
        self.register(protos);
        self.protos.get(id).and_then(|p| p.clone())
    }

    /// Name and arity of procedure `id` when its code is not compiled here
    /// yet (a spawned thread's procedure not called so far).
    pub(crate) fn lazy_info(&self, id: usize) -> Option<&ProcInfo> {
        let (_, f) = form_of(&self.lazy_code, id)?;
        f.procs.get(id - f.first_id)
    }
}
