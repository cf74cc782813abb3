//! The REPL's core, independent of the terminal: feed it lines, it says
//! what to print. Input accumulates until the forms are balanced; errors
//! never end the session; definitions persist in the VM's global region,
//! and an expression's value lives in a temporary region that dies after it
//! is printed, so the global region grows only by what globals hold.

use std::io::Write;

use omni_mem::{heap_stats, Value};

use crate::vm::Vm;
use crate::{compile_program, explain_source, reader, run_compiled};

/// What the REPL wants shown after a line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Text for standard output (values, command results).
    pub out: String,
    /// Text for standard error (diagnostics).
    pub err: String,
    /// The input so far is incomplete: show the continuation prompt.
    pub more: bool,
    /// The user asked to leave.
    pub quit: bool,
}

pub struct Repl {
    vm: Vm,
    buffer: String,
    /// Every input evaluated so far, in order. Lines are numbered across
    /// the session (an input's first line follows the last one's), so a
    /// position in code entered earlier, reported by an error now, names
    /// and shows the line it is on.
    session: String,
    /// Lines in `session`.
    lines: usize,
}

pub const HELP: &str = "\
:stats           regions and bytes live now, and totals
:explain EXPR    the region schedule of EXPR (not run)
:quit            leave (also end of input)
:help            this message";

impl Repl {
    /// A REPL whose programs write to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Repl {
        Repl {
            vm: Vm::new(out),
            buffer: String::new(),
            session: String::new(),
            lines: 0,
        }
    }

    pub fn prompt(&self) -> &'static str {
        if self.buffer.is_empty() {
            "omni> "
        } else {
            "  ... "
        }
    }

    pub fn feed(&mut self, line: &str) -> Reply {
        let mut reply = Reply::default();
        if self.buffer.is_empty() {
            let cmd = line.trim();
            if let Some(rest) = cmd.strip_prefix(':') {
                self.command(rest, &mut reply);
                return reply;
            }
            if cmd.is_empty() {
                return reply;
            }
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        if let Err(e) = reader::read(&self.buffer) {
            if reader::needs_more(&e) {
                reply.more = true;
                return reply;
            }
        }
        let src = std::mem::take(&mut self.buffer);
        self.eval(&src, &mut reply);
        reply
    }

    fn eval(&mut self, input: &str, reply: &mut Reply) {
        // The input is compiled after as many empty lines as the session
        // has, so its positions are the session's; diagnostics show lines
        // of the whole session.
        let src = format!("{}{input}", "\n".repeat(self.lines));
        self.session.push_str(input);
        self.lines += input.lines().count();
        let src = src.as_str();
        match compile_program(&mut self.vm, src) {
            Err(diags) => {
                for d in diags {
                    reply.err.push_str(&d.render("<repl>", &self.session));
                }
            }
            Ok(forms) => {
                let mut shown = String::new();
                // Only an interrupt requested during this input stops it
                // (Ctrl-C during an evaluation; at the prompt the line
                // editor takes it).
                let requests = crate::interrupt::count();
                crate::interrupt::acknowledge(requests);
                self.vm.set_interrupts_seen(requests);
                let r = run_compiled(&mut self.vm, &forms, &mut |vm: &Vm, v: Value| {
                    if v != Value::NOTHING {
                        shown.push_str(&vm.show(v, true));
                        shown.push('\n');
                    }
                });
                self.vm.flush();
                reply.out.push_str(&shown);
                if self.exit_status().is_some() {
                    // `(exit)` ends the session (its unwinding is no error).
                    reply.quit = true;
                } else if let Err(d) = r {
                    reply.err.push_str(&d.render("<repl>", &self.session));
                }
            }
        }
    }

    fn command(&mut self, cmd: &str, reply: &mut Reply) {
        let (name, arg) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
        match name {
            "quit" | "q" | "exit" => reply.quit = true,
            "help" | "h" => {
                reply.out.push_str(HELP);
                reply.out.push('\n');
            }
            "stats" => {
                let s = heap_stats();
                reply.out.push_str(&format!(
                    "live regions {} | live bytes {} | segment bytes {} | peak live bytes {} | regions created {} | bytes transmigrated {} | merges {}\n",
                    s.live_regions,
                    s.live_bytes,
                    s.live_segment_bytes,
                    s.peak_live_bytes,
                    s.regions_created,
                    s.transmigrated_bytes,
                    s.merges
                ));
            }
            "explain" => match explain_source(arg) {
                Ok(text) => reply.out.push_str(&text),
                Err(diags) => {
                    for d in diags {
                        reply.err.push_str(&d.render("<explain>", arg));
                    }
                }
            },
            _ => reply
                .err
                .push_str(&format!("unknown command :{name} (try :help)\n")),
        }
    }

    /// The status the session's code asked to exit with, once it called
    /// `(exit)`.
    pub fn exit_status(&self) -> Option<u8> {
        self.vm.rt.exit_status()
    }

    /// End the session: wait for the threads it spawned (they keep
    /// running between inputs), free everything, and return the rendered
    /// errors of threads nobody joined (none after an `(exit)`: they
    /// were stopped by it).
    pub fn finish(mut self) -> String {
        let diags = crate::finish_threads(&self.vm);
        let errors = if self.exit_status().is_some() {
            String::new()
        } else {
            diags
                .iter()
                .map(|d| d.render("<repl>", &self.session))
                .collect()
        };
        self.vm.shutdown();
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repl() -> Repl {
        Repl::new(Box::new(std::io::sink()))
    }

    #[test]
    fn values_print_and_definitions_persist() {
        let mut r = repl();
        assert_eq!(r.feed("(define (sq x) (* x x))").out, "");
        assert_eq!(r.feed("(sq 12)").out, "144\n");
        assert_eq!(r.feed("(list \"a\" 'b)").out, "(\"a\" b)\n");
        r.finish();
        assert_eq!(heap_stats().live_bytes, 0);
    }

    #[test]
    fn a_global_keeps_the_form_it_was_made_with_across_inputs() {
        // `a` is made by an input that does not assign it: a plain global,
        // read as one by `f`, even once a later input assigns it. `b` is
        // assigned by the input that makes it: a boxed global, read and
        // assigned through its box by every later input.
        let mut r = repl();
        r.feed("(define a \"x\") (define (f) a)");
        r.feed("(set! a (string-append a \"y\"))");
        assert_eq!(r.feed("(list a (f))").out, "(\"xy\" \"xy\")\n");
        r.feed("(define b \"p\") (set! b (string-append b \"q\")) (define (g) b)");
        r.feed("(set! b (string-append b \"r\"))");
        assert_eq!(r.feed("(list b (g))").out, "(\"pqr\" \"pqr\")\n");
        r.finish();
        assert_eq!(heap_stats().live_bytes, 0);
    }

    #[test]
    fn input_continues_until_balanced() {
        let mut r = repl();
        let a = r.feed("(define (f x)");
        assert!(a.more);
        assert_eq!(r.prompt(), "  ... ");
        let b = r.feed("  (+ x 1))");
        assert!(!b.more);
        assert_eq!(r.feed("(f 41)").out, "42\n");
        // A quote at the end of a line waits for its datum.
        assert!(r.feed("'").more);
        assert_eq!(r.feed("sym").out, "sym\n");
        r.finish();
    }

    #[test]
    fn errors_do_not_end_the_session() {
        let mut r = repl();
        let e = r.feed("(car 5)");
        assert!(e.err.contains("car: expected a pair, got 5"), "{}", e.err);
        let e = r.feed(")");
        assert!(e.err.contains("unexpected ')'"), "{}", e.err);
        assert_eq!(r.feed("(+ 1 1)").out, "2\n");
        r.finish();
    }

    #[test]
    fn an_error_in_code_entered_earlier_shows_that_line() {
        let mut r = repl();
        r.feed("(define x 5)");
        r.feed("(define (f)");
        r.feed("  (g))");
        let e = r.feed("(f)");
        // `(g)` is on the session's third line; the call on its fourth.
        assert!(
            e.err.starts_with("<repl>:3:4: error: unbound variable 'g'"),
            "{}",
            e.err
        );
        assert!(e.err.contains("3 |   (g))\n"), "{}", e.err);
        assert!(e.err.contains("in f called at <repl>:4:1"), "{}", e.err);
        let e = r.feed("(car x)");
        assert!(e.err.starts_with("<repl>:5:1: error: car"), "{}", e.err);
        assert!(e.err.contains("5 | (car x)\n"), "{}", e.err);
        r.finish();
    }

    #[test]
    fn exit_ends_the_session_with_its_status() {
        let mut r = repl();
        let a = r.feed("(define (f) (println \"bye\") (exit 4) (println \"not shown\"))");
        assert!(!a.quit);
        let b = r.feed("(guard-error f (fn [m] (println \"caught\" m)))");
        assert!(b.quit, "(exit) ends the session");
        assert_eq!(b.err, "", "the exit is no error");
        assert_eq!(r.exit_status(), Some(4));
        assert_eq!(r.finish(), "");
        assert_eq!(heap_stats().live_bytes, 0);
    }

    #[test]
    fn commands() {
        let mut r = repl();
        assert!(r.feed(":stats").out.starts_with("live regions"));
        assert!(r.feed(":explain (cons 1 2)").out.contains("alloc cons"));
        assert!(r.feed(":nope").err.contains("unknown command"));
        assert!(r.feed(":quit").quit);
        r.finish();
    }

    #[test]
    fn expression_results_do_not_grow_the_global_region() {
        let mut r = repl();
        r.feed("(define keep (list 1 2 3))");
        r.feed("(length (list 1 2 3 4 5 6 7 8 9 10))");
        let before = heap_stats().live_bytes;
        for _ in 0..50 {
            r.feed("(reverse (list 1 2 3 4 5 6 7 8 9 10))");
        }
        assert_eq!(heap_stats().live_bytes, before, "temporaries were retained");
        r.finish();
    }
}
