//! OmniLisp language: reader -> syntax -> CTRR/compile -> VM, on omni-mem.
//! See docs/ARCHITECTURE.md for the data flow and docs/CTRR.md for the
//! region contract the compiler and VM keep.

pub mod builtins;
pub mod compile;
pub mod conc;
mod escape;
pub mod explain;
mod fuse;
pub mod input;
pub mod interrupt;
pub mod ir;
mod lazy_code;
mod prims;
mod prims_r7rs;
pub mod printer;
pub mod pure_code;
mod pure_peephole;
pub mod reader;
pub mod repl;
pub mod syntax;
pub mod vm;
mod vm_conc;
mod worker_pool;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use omni_mem::Value;

use crate::compile::{assigned_names, redefined_globals, Compiler};
use crate::ir::Proto;
use crate::reader::Span;
use crate::syntax::{Ast, Desugar};
use crate::vm::{LispError, Vm};

/// Longest source line a diagnostic shows whole; a longer one is shown
/// as a window of this many characters around the caret.
const SNIPPET_CHARS: usize = 100;

/// The part of `line` to show for a caret before character `col` (0-based),
/// and the padding that puts the caret under it. A long line (a generated
/// program on one line, say) is cut to a window around the caret, with
/// `...` where it was cut.
fn snippet(line: &str, col: usize) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let col = col.min(chars.len());
    let (start, end) = if chars.len() <= SNIPPET_CHARS {
        (0, chars.len())
    } else {
        let start = col.saturating_sub(SNIPPET_CHARS / 2);
        let end = (start + SNIPPET_CHARS).min(chars.len());
        (end.saturating_sub(SNIPPET_CHARS).min(start), end)
    };
    let cut_before = if start > 0 { "..." } else { "" };
    let cut_after = if end < chars.len() { "..." } else { "" };
    let shown: String = chars[start..end].iter().collect();
    let pad: String = " ".repeat(cut_before.len())
        + &chars[start..col]
            .iter()
            .map(|&c| if c == '\t' { '\t' } else { ' ' })
            .collect::<String>();
    (format!("{cut_before}{shown}{cut_after}"), pad)
}

/// A message tied to a source position, rendered like a compiler error.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub kind: &'static str,
    pub message: String,
    pub span: Option<Span>,
    pub trace: Vec<(String, Span)>,
    /// Further positions worth showing (`note: TEXT at file:line:col`).
    pub notes: Vec<(String, Span)>,
}

impl Diagnostic {
    /// `file:line:col: kind: message`, the source line, a caret, then the
    /// Lisp backtrace.
    pub fn render(&self, file: &str, src: &str) -> String {
        let mut out = String::new();
        match self.span {
            Some(s) => {
                out.push_str(&format!(
                    "{file}:{}:{}: {}: {}\n",
                    s.line, s.col, self.kind, self.message
                ));
                if let Some(line) = src.lines().nth(s.line.saturating_sub(1) as usize) {
                    let num = s.line.to_string();
                    out.push_str(&format!("{} |\n", " ".repeat(num.len())));
                    let (shown, caret_pad) = snippet(line, s.col.saturating_sub(1) as usize);
                    out.push_str(&format!("{num} | {shown}\n"));
                    out.push_str(&format!("{} | {caret_pad}^\n", " ".repeat(num.len())));
                }
            }
            None => out.push_str(&format!("{file}: {}: {}\n", self.kind, self.message)),
        }
        // Collapse runs of identical frames (deep recursion) and keep the
        // innermost and outermost frames when the trace is long.
        let mut runs: Vec<(&(String, Span), usize)> = Vec::new();
        for f in &self.trace {
            match runs.last_mut() {
                Some((g, n)) if *g == f => *n += 1,
                _ => runs.push((f, 1)),
            }
        }
        let shown: Vec<usize> = if runs.len() > 20 {
            (0..10).chain(runs.len() - 10..runs.len()).collect()
        } else {
            (0..runs.len()).collect()
        };
        for (k, &i) in shown.iter().enumerate() {
            if k > 0 && i != shown[k - 1] + 1 {
                out.push_str(&format!(
                    "  ... {} frames omitted ...\n",
                    i - shown[k - 1] - 1
                ));
            }
            let ((name, span), n) = runs[i];
            out.push_str(&format!(
                "  in {name} called at {file}:{}:{}",
                span.line, span.col
            ));
            if n > 1 {
                out.push_str(&format!(" (repeated {n} times)"));
            }
            out.push('\n');
        }
        for (text, span) in &self.notes {
            out.push_str(&format!(
                "  note: {text} at {file}:{}:{}\n",
                span.line, span.col
            ));
        }
        out
    }
}

impl From<Box<LispError>> for Diagnostic {
    fn from(e: Box<LispError>) -> Self {
        let e = *e;
        Diagnostic {
            kind: "error",
            message: e.message,
            span: e.span,
            trace: e.trace,
            notes: Vec::new(),
        }
    }
}

/// One compiled top-level form.
pub struct Compiled {
    pub protos: Vec<Rc<Proto>>,
    pub defines: bool,
    /// The form is `(coalesce!)`: compact the global region here.
    pub coalesce: bool,
}

/// Read and compile a whole program. Reports every compile error at once.
pub fn compile_program(vm: &mut Vm, src: &str) -> Result<Vec<Compiled>, Vec<Diagnostic>> {
    let data = reader::read(src).map_err(|e| {
        vec![Diagnostic {
            kind: "read error",
            message: e.message,
            span: Some(e.span),
            trace: vec![],
            notes: Vec::new(),
        }]
    })?;
    let mut desugar = Desugar::new();
    let mut errors = Vec::new();
    let mut forms = Vec::new();
    // Each form's data, its syntax tree and then its compiled code are the
    // only copies of it held at once: data is dropped once desugared, a
    // tree once compiled (a program of 20,000 definitions peaked at 109 MB
    // of heap holding all three).
    for d in data {
        match desugar.toplevel(&d) {
            Ok(a) => forms.push((a, d.span)),
            Err(e) => errors.push(compile_diag(e)),
        }
    }
    let redefined = redefined_globals(forms.iter().map(|f| &f.0));
    let assigned = assigned_names(forms.iter().map(|f| &f.0));
    vm.set_summaries(&redefined, summaries(&forms, &assigned, &redefined));
    vm.set_assigned(assigned);
    let mut out = Vec::new();
    // What a spawned thread needs to compile any of these forms again with
    // the same procedure ids (lazy_code.rs).
    let mut codes = Vec::new();
    for (ast, span) in forms {
        if is_coalesce_form(&ast, &redefined) {
            out.push(Compiled {
                protos: vec![],
                defines: false,
                coalesce: true,
            });
            continue;
        }
        // One set for every form (a copy per form made compiling a program
        // of n definitions O(n^2)).
        let mut c = Compiler::new(vm, &redefined);
        match c.toplevel(&ast, span) {
            Ok(protos) => {
                if vm.record_batches {
                    codes.extend(lazy_code::FormCode::of(span, &protos));
                }
                vm.register(protos.clone());
                out.push(Compiled {
                    protos,
                    defines: defines(&ast),
                    coalesce: false,
                });
            }
            Err(e) => errors.push(compile_diag(e)),
        }
    }
    if vm.record_batches {
        vm.rt.record_batch(lazy_code::Batch {
            src: Arc::from(src),
            redefined,
            forms: codes,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        // Desugaring errors were found in a pass before the compiler's:
        // report them all in source order.
        errors.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
        Err(errors)
    }
}

/// The escape summaries of a batch's procedures (escape.rs): those defined
/// once, as `(define (f ...) ...)`, and never assigned.
fn summaries(
    forms: &[(syntax::Ast, reader::Span)],
    assigned: &HashSet<String>,
    redefined: &HashSet<String>,
) -> HashMap<String, escape::Summary> {
    let mut defs: Vec<(&str, &syntax::Lambda)> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (ast, _) in forms {
        if let syntax::Ast::Define(name, value, _) = ast {
            *seen.entry(name.as_str()).or_default() += 1;
            if let syntax::Ast::Lambda(l) = &**value {
                defs.push((name.as_str(), l));
            }
        }
    }
    defs.retain(|(n, _)| seen.get(n) == Some(&1) && !assigned.contains(*n));
    escape::summarize(&defs, redefined)
}

fn compile_diag(e: syntax::CompileError) -> Diagnostic {
    Diagnostic {
        kind: "compile error",
        message: e.message,
        span: Some(e.span),
        trace: vec![],
        notes: Vec::new(),
    }
}

/// `(coalesce!)` as a whole top-level form, unless the program redefines it.
fn is_coalesce_form(a: &Ast, redefined: &std::collections::HashSet<String>) -> bool {
    matches!(a, Ast::App(f, args, _) if args.is_empty()
        && matches!(&**f, Ast::Var(n, _) if n == "coalesce!")
        && !redefined.contains("coalesce!"))
}

fn defines(a: &Ast) -> bool {
    match a {
        Ast::Define(..) => true,
        Ast::Begin(xs) => xs.iter().any(defines),
        _ => false,
    }
}

/// Run compiled forms in order; `each` sees each expression form's value.
pub fn run_compiled(
    vm: &mut Vm,
    forms: &[Compiled],
    each: &mut dyn FnMut(&Vm, Value),
) -> Result<(), Diagnostic> {
    for f in forms {
        if f.coalesce {
            vm.coalesce().map_err(|e| Diagnostic {
                kind: "error",
                message: format!("coalesce!: {e}"),
                span: None,
                trace: vec![],
                notes: Vec::new(),
            })?;
            continue;
        }
        let Some(top) = f.protos.last() else { continue };
        vm.run_toplevel(top, f.defines, each)?;
    }
    vm.flush();
    Ok(())
}

/// Compile and run a program, writing its output to `out`. Frees every
/// region before returning (success or error).
pub fn run_source(
    src: &str,
    out: Box<dyn Write + Send>,
    args: Vec<String>,
) -> Result<vm::VmStats, Vec<Diagnostic>> {
    run_source_with(src, out, args, Limits::default())
}

/// Resource limits for running untrusted or generated programs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nested non-tail calls before `stack overflow`.
    pub max_depth: usize,
    /// Calls (including tail calls) before `step budget exhausted`, of
    /// the whole program: a spawned thread takes half the steps its
    /// spawner has left, and `join` gives back the ones it did not use.
    /// A spawned thread's compiling of a top-level form it needs costs one
    /// step per datum of the form (lazy_code.rs).
    pub fuel: Option<u64>,
    /// A byte quota for every region the program uses (the global region
    /// included): exceeding it is the error "region exceeded quota; likely
    /// escape/retention".
    pub region_quota: Option<usize>,
    /// Whether procedures that only read, call and build in their
    /// destination run in the pure tier (CTRR.md, runtime duty 7). Off,
    /// every call takes the general path: the same output, to compare.
    pub pure_tier: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            fuel: None,
            region_quota: None,
            pure_tier: true,
        }
    }
}

/// `run_source` with explicit limits.
pub fn run_source_with(
    src: &str,
    out: Box<dyn Write + Send>,
    args: Vec<String>,
    limits: Limits,
) -> Result<vm::VmStats, Vec<Diagnostic>> {
    run_source_report(src, out, args, limits).result
}

/// What running a program produced besides its output.
pub struct RunReport {
    pub result: Result<vm::VmStats, Vec<Diagnostic>>,
    /// Warnings that do not change the outcome (the retention smell).
    pub warnings: Vec<Diagnostic>,
    /// Region event logs of the spawned threads (thread number, events),
    /// when the calling thread was recording (`omni_mem::trace_start`).
    pub thread_traces: Vec<(u32, Vec<omni_mem::TraceEvent>)>,
    /// The status a thread of the program asked for with `(exit)`; the
    /// result is then `Ok` (the errors that stopped its threads are the
    /// exit's, and not reported).
    pub exit: Option<u8>,
}

/// `run_source_with`, also returning warnings.
pub fn run_source_report(
    src: &str,
    out: Box<dyn Write + Send>,
    args: Vec<String>,
    limits: Limits,
) -> RunReport {
    run_source_io(src, input::Source::Stdin, out, args, limits)
}

/// `run_source_report`, the program reading `input` (`read-line`, ...)
/// instead of standard input.
pub fn run_source_io(
    src: &str,
    input: input::Source,
    out: Box<dyn Write + Send>,
    args: Vec<String>,
    limits: Limits,
) -> RunReport {
    let mut vm = Vm::new(out);
    vm.rt.set_input(input);
    vm.args = args;
    vm.max_depth = depth_cap(limits.max_depth);
    vm.set_fuel(limits.fuel);
    vm.set_region_quota(limits.region_quota);
    vm.pure_tier = limits.pure_tier;
    let r = compile_program(&mut vm, src)
        .and_then(|forms| run_compiled(&mut vm, &forms, &mut |_, _| {}).map_err(|d| vec![d]));
    let unjoined = finish_threads(&vm);
    let mut thread_traces = vm.rt.take_traces();
    thread_traces.sort_by_key(|t| t.0);
    let warnings: Vec<Diagnostic> = vm.retention_warning().into_iter().collect();
    let mut stats = vm.stats;
    let (children, heaps) = vm.rt.children_stats();
    stats.add(&children);
    for h in &heaps {
        stats.add_thread_heap(h);
    }
    let exit = vm.rt.exit_status();
    vm.shutdown();
    let result = match r {
        _ if exit.is_some() => Ok(stats),
        Ok(_) if unjoined.is_empty() => Ok(stats),
        Ok(_) => Err(unjoined),
        Err(mut d) => {
            d.extend(unjoined);
            Err(d)
        }
    };
    RunReport {
        result,
        warnings,
        thread_traces,
        exit,
    }
}

/// Wait for every thread the program spawned (a program ends when all its
/// threads have) and report those that failed without being joined.
pub fn finish_threads(vm: &Vm) -> Vec<Diagnostic> {
    let failed = vm.rt.finish();
    worker_pool::drain();
    failed
        .into_iter()
        .map(|(id, e)| Diagnostic {
            kind: "error",
            message: format!("thread {id} failed (never joined): {}", e.message),
            span: e.span.filter(|s| s.line > 0),
            trace: e.trace,
            notes: Vec::new(),
        })
        .collect()
}

/// The explain listing of a whole program.
pub fn explain_source(src: &str) -> Result<String, Vec<Diagnostic>> {
    let mut vm = Vm::new(Box::new(std::io::sink()));
    let r = compile_program(&mut vm, src).map(|forms| {
        let mut out = String::new();
        for (i, f) in forms.iter().enumerate() {
            if let Some(top) = f.protos.last() {
                out.push_str(&format!(
                    "form {} ({}):\n",
                    i + 1,
                    if f.defines {
                        "definition: dst = global region"
                    } else {
                        "expression: dst = temporary region"
                    }
                ));
                explain::explain_proto(top, &mut out, 1);
            }
        }
        out
    });
    vm.shutdown();
    r
}

/// Stack of the VM thread: enough for the VM's recursion limit
/// (`MAX_DEPTH`): about 12 KiB per Lisp call in debug builds, under 1 KiB
/// in release builds. Only the pages actually touched are ever backed by
/// memory.
pub const VM_STACK_BYTES: usize = 4 << 30;

/// The default limit on nested (non-tail) calls, for a thread with a
/// `VM_STACK_BYTES` stack: 1,000,000 in release builds (a recursion that
/// deep touches about 860 MB of stack; a runaway one stops after about
/// 1.4 s), 100,000 in debug builds, whose frames are over ten times larger.
pub const MAX_DEPTH: usize = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};

/// Stack sizes a VM thread asks for, largest first. Where the address
/// space is limited (`ulimit -v`), 4 GiB may be refused; a smaller stack
/// is then taken, and calls may nest proportionally less deep
/// (`depth_cap`), so deep recursion still ends in the `stack overflow`
/// error rather than a crash.
const VM_STACK_FALLBACKS: [usize; 4] = [VM_STACK_BYTES, 1 << 30, 256 << 20, 64 << 20];

thread_local! {
    /// The stack this thread was started with, if it is a VM thread that
    /// got less than `VM_STACK_BYTES` (other threads count as full size:
    /// tests start theirs with `VM_STACK_BYTES`).
    static STACK_GRANTED: std::cell::Cell<usize> = const { std::cell::Cell::new(VM_STACK_BYTES) };
}

/// Stack the guard keeps free below the lowest point a call may start
/// at: more than one Lisp call can use between two checks (a call's
/// expressions nest at most 400 deep: about 50 KiB in release builds, and
/// under 1 MiB in debug builds).
const STACK_MARGIN: usize = 4 << 20;

/// The lowest stack address a Lisp call may start at on this thread: the
/// guard that turns deep recursion into the `stack overflow` error even
/// when each call nests its expressions deeply enough that the
/// `MAX_DEPTH` calls would not fit (`depth_cap` counts calls, this counts
/// bytes). Computed when a VM is made, near the top of its thread's stack.
pub(crate) fn stack_limit() -> usize {
    stack_here()
        .saturating_sub(STACK_GRANTED.get())
        .saturating_add(STACK_MARGIN)
}

/// Where the stack is now: the stack pointer (the stack grows down on
/// every target the VM runs on). Not the address of a local: under
/// AddressSanitizer a local may live on the sanitizer's heap-allocated
/// fake stack (`omni_mem::stack_pointer`).
#[inline(always)]
pub(crate) fn stack_here() -> usize {
    omni_mem::stack_pointer()
}

/// `limit` nested calls, or proportionally fewer if this thread's stack is
/// smaller than `VM_STACK_BYTES` (the same stack per call). A limit more
/// calls than the stack holds ends in the stack guard's error instead.
pub fn depth_cap(limit: usize) -> usize {
    let granted = STACK_GRANTED.get().min(VM_STACK_BYTES) as u128;
    let cap = limit as u128 * granted / VM_STACK_BYTES as u128;
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Start a thread named `name` for a VM, with the largest stack of
/// `VM_STACK_FALLBACKS` the system grants; `f` runs there. Errs only if
/// even the smallest is refused.
pub fn spawn_vm_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    // `spawn` consumes its closure even when it fails, so `f` waits in a
    // slot that the closure of the one attempt that starts takes it from
    // (a refused attempt never runs its closure).
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(f)));
    let mut refused = None;
    for size in VM_STACK_FALLBACKS {
        let mine = slot.clone();
        let r = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(size)
            .spawn(move || {
                STACK_GRANTED.set(size);
                let f = mine.lock().unwrap_or_else(|e| e.into_inner()).take();
                f.expect("only the attempt that started runs")()
            });
        match r {
            Ok(h) => return Ok(h),
            Err(e) => refused = Some(e),
        }
    }
    Err(refused.unwrap_or_else(|| std::io::Error::other("no stack size to try")))
}

/// Run `f` on a VM thread (`spawn_vm_thread`): regions are per thread, so
/// everything `f` does stays there. Errs if no thread could be started.
pub fn with_big_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let handle = spawn_vm_thread("omni-vm".into(), f)?;
    match handle.join() {
        Ok(v) => Ok(v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caret_at(shown: &str, pad: &str) -> char {
        // The character the caret points at.
        shown.chars().nth(pad.chars().count()).unwrap_or(' ')
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        let (shown, pad) = snippet("(car 1)", 1);
        assert_eq!(shown, "(car 1)");
        assert_eq!(pad, " ");
        assert_eq!(caret_at(&shown, &pad), 'c');
        // Tabs are kept in the padding so the caret lines up.
        let (shown, pad) = snippet("\t(x)", 2);
        assert_eq!(pad, "\t ");
        assert_eq!(caret_at(&shown, &pad), 'x');
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_caret() {
        let line: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for col in [0, 10, 49, 50, 51, 500, 950, 999, 1000] {
            let (shown, pad) = snippet(&line, col);
            let inner = shown.trim_start_matches("...").trim_end_matches("...");
            assert_eq!(inner.chars().count(), SNIPPET_CHARS, "col {col}");
            assert_eq!(
                shown.starts_with("..."),
                col > SNIPPET_CHARS / 2,
                "col {col}"
            );
            assert_eq!(
                shown.ends_with("..."),
                col + SNIPPET_CHARS / 2 < 1000,
                "col {col}"
            );
            // The caret points at the same character as in the whole line.
            let want = line.chars().nth(col).unwrap_or(' ');
            assert_eq!(caret_at(&shown, &pad), want, "col {col}");
        }
    }

    #[test]
    fn a_caret_past_the_end_of_the_line_stays_on_it() {
        let (shown, pad) = snippet("(list 1 2", 9);
        assert_eq!(shown, "(list 1 2");
        assert_eq!(pad.len(), 9);
    }
}
