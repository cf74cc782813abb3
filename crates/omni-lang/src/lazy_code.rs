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
//!
//! A form is read from the batch's source once, by the first thread that
//! needs it, and its datum kept in the batch for every later thread
//! (`FormCode::datum`): a spawn in a loop of a long top-level form used to
//! read the whole form again each time (reading was 40% of compiling it).
//! Desugaring and compiling stay per thread: their results hold the
//! thread's own values. They are work the program asked for, so a step
//! budget (`Vm::set_fuel`) pays for them: compiling a form costs one step
//! per datum in it (`datum_count`), taken before the form is compiled.
//! Without this, a program spawning in a loop of a long top-level form
//! ran for seconds on a budget of 20,000 steps (each spawn compiled the
//! form again on a budget that counted one step).

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use crate::compile::Compiler;
use crate::ir::Proto;
use crate::reader::{read_at, Datum, DatumKind, Span};
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
    /// The form's datum and its number of data (`datum_count`), read by
    /// the first thread that compiles the form (`None` if it no longer
    /// reads, which a batch that compiled cannot give): forms no thread
    /// needs are never read again.
    datum: OnceLock<Option<(Datum, u64)>>,
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
            datum: OnceLock::new(),
        })
    }

    /// The procedure ids compiling the form gives.
    fn ids(&self) -> std::ops::Range<usize> {
        self.first_id..self.first_id + self.procs.len()
    }
}

/// The form that made procedure `id`: its batch and its index there.
pub(crate) fn form_of(batches: &[Arc<Batch>], id: usize) -> Option<(&Arc<Batch>, usize)> {
    batches.iter().find_map(|b| {
        let i = b
            .forms
            .partition_point(|f| f.first_id <= id)
            .checked_sub(1)?;
        b.forms[i].ids().contains(&id).then_some((b, i))
    })
}

/// The data in `d`: itself and everything inside it, a dotted tail
/// included. What compiling the form costs a step budget.
fn datum_count(d: &Datum) -> u64 {
    let mut n = 0;
    let mut todo = vec![d];
    while let Some(d) = todo.pop() {
        n += 1;
        match &d.kind {
            DatumKind::List(items, tail) => {
                todo.extend(items);
                todo.extend(tail.as_deref());
            }
            DatumKind::Array(items) | DatumKind::Dict(items) => todo.extend(items),
            _ => {}
        }
    }
    n
}

/// Why `compile_lazily` gave no code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LazyError {
    /// No form made the procedure, or it no longer compiles the same.
    Unknown,
    /// The step budget has fewer steps left than the form costs; it is
    /// spent.
    BudgetExhausted,
}

impl Vm {
    /// The code of procedure `id`, compiling the form that made it if this
    /// is a spawned thread that has not yet, paid from the step budget.
    pub(crate) fn compile_lazily(&mut self, id: usize) -> Result<Rc<Proto>, LazyError> {
        let (batch, i) = form_of(&self.lazy_code, id).ok_or(LazyError::Unknown)?;
        let batch = batch.clone();
        let form = &batch.forms[i];
        let (start, ids) = (form.start, form.ids());
        let (datum, cost) = form
            .datum
            .get_or_init(|| {
                read_at(&batch.src, start).ok().map(|d| {
                    let n = datum_count(&d);
                    (d, n)
                })
            })
            .as_ref()
            .ok_or(LazyError::Unknown)?;
        if !self.spend_fuel(*cost) {
            return Err(LazyError::BudgetExhausted);
        }
        let ast = Desugar::new()
            .toplevel(datum)
            .map_err(|_| LazyError::Unknown)?;
        self.next_proto_base = Some(ids.start);
        let protos = Compiler::new(self, &batch.redefined).toplevel(&ast, start);
        self.next_proto_base = None;
        let protos = protos.map_err(|_| LazyError::Unknown)?;
        // The spawner's ids, or nothing (a mismatch would run other code).
        if protos.len() != ids.len() || protos.iter().any(|p| !ids.contains(&p.id)) {
            return Err(LazyError::Unknown);
        }
        self.register(protos);
        self.protos
            .get(id)
            .and_then(|p| p.clone())
            .ok_or(LazyError::Unknown)
    }

    /// Name and arity of procedure `id` when its code is not compiled here
    /// yet (a spawned thread's procedure not called so far).
    pub(crate) fn lazy_info(&self, id: usize) -> Option<&ProcInfo> {
        let (b, i) = form_of(&self.lazy_code, id)?;
        let f = &b.forms[i];
        f.procs.get(id - f.first_id)
    }
}

#[cfg(test)]
mod tests {
    use crate::vm::Vm;

    /// Five threads run closures of the form `work`: the form is read
    /// once, for the first of them, and its datum kept in the batch for
    /// the others; a form no thread needs is not read again.
    #[test]
    fn a_form_is_read_once_and_its_datum_kept_for_later_threads() {
        // The program checks its own result: a wrong sum is an error.
        let src = "(define (unused) (list 1 2))\n\
                   (define (work n) (join (spawn (fn [] (* n 2)))))\n\
                   (define (go i acc) (if (= i 0) acc (go (- i 1) (+ acc (work i)))))\n\
                   (if (= (go 5 0) 30) 'ok (car 'wrong-sum))";
        let mut vm = Vm::new(Box::new(std::io::sink()));
        let forms = crate::compile_program(&mut vm, src).expect("compiles");
        crate::run_compiled(&mut vm, &forms, &mut |_, _| {}).expect("runs, with the sum 30");
        assert!(crate::finish_threads(&vm).is_empty());
        let batches = vm.rt.batches();
        let read: Vec<bool> = batches[0]
            .forms
            .iter()
            .map(|f| f.datum.get().is_some_and(|d| d.is_some()))
            .collect();
        // unused, work, go, the check: only `work` made a spawned closure.
        assert_eq!(read, [false, true, false, false]);
    }
}
