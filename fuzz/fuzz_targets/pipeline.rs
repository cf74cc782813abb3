//! The whole pipeline on generated programs: bytes drive a grammar of the
//! language, the program runs with a step budget and a heap limit, and
//! must end without a panic and with zero live bytes, printing the same
//! and ending the same way with the pure tier and without it. `OMNI_FUZZ_PRINT=1`
//! prints each generated program (to see what an artifact runs).
#![no_main]
use libfuzzer_sys::fuzz_target;

struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
}

const VARS: &[&str] = &["a", "b", "c", "x", "y", "lst", "tbl", "f", "g"];
const UNARY: &[&str] = &[
    "car",
    "cdr",
    "length",
    "reverse",
    "null?",
    "pair?",
    "list?",
    "not",
    "abs",
    "array-length",
    "dict-count",
    "dict-keys",
    "string-length",
    "number->string",
    "unbox",
    "box",
    "list->array",
    "array->list",
    "symbol->string",
    "string->list",
    "exact->inexact",
    "zero?",
    "round",
    "exact",
    "integer->char",
    "string-upcase",
    "eof-object?",
    // Ends the program when its argument is a status (a small integer or
    // a boolean): every thread must still end with nothing live.
    "exit",
];
const BINARY: &[&str] = &[
    "cons",
    "+",
    "-",
    "*",
    "/",
    "quotient",
    "modulo",
    "<",
    "=",
    "eq?",
    "equal?",
    "append",
    "list-ref",
    "array-ref",
    "dict-ref",
    "string-append",
    "max",
    "assoc",
    "member",
    "expt",
    "list-tail",
    "char<?",
    "gcd",
];
const STORES: &[&str] = &["set-car!", "set-cdr!", "set-box!", "array-push!"];

impl Gen<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[self.byte() as usize % xs.len()]
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn expr(&mut self, depth: u32, out: &mut String) {
        if depth == 0 || self.done() {
            return self.atom(out);
        }
        let d = depth - 1;
        match self.byte() % 21 {
            0 => self.atom(out),
            1 => {
                // `case` (R7RS), with `=>` in its else clause.
                out.push_str("(case ");
                self.expr(d, out);
                out.push_str(" ((1 2 sym) ");
                self.expr(d, out);
                out.push_str(") ((\"str\" 1.5) ");
                self.expr(d, out);
                out.push_str(") (else => (fn [k] (list k ");
                self.expr(d, out);
                out.push_str("))))");
            }
            2 => {
                out.push_str(&format!("({} ", self.pick(UNARY)));
                self.expr(d, out);
                out.push(')');
            }
            3 | 4 => {
                out.push_str(&format!("({} ", self.pick(BINARY)));
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(')');
            }
            5 => {
                out.push_str("(if ");
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(')');
            }
            6 => {
                out.push_str(&format!("(let (({} ", self.pick(VARS)));
                self.expr(d, out);
                out.push_str(")) ");
                self.expr(d, out);
                out.push(')');
            }
            7 => {
                out.push_str(&format!("(fn [{}] ", self.pick(VARS)));
                self.expr(d, out);
                out.push(')');
            }
            8 => {
                out.push('(');
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(')');
            }
            9 => {
                out.push_str("(list ");
                for _ in 0..self.byte() % 4 {
                    self.expr(d, out);
                    out.push(' ');
                }
                out.push(')');
            }
            10 => {
                out.push_str(&format!("(set! {} ", self.pick(VARS)));
                self.expr(d, out);
                out.push(')');
            }
            11 => {
                out.push_str(&format!("({} ", self.pick(STORES)));
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(')');
            }
            12 => {
                out.push_str("(array-set! ");
                self.expr(d, out);
                out.push_str(" 0 ");
                self.expr(d, out);
                out.push(')');
            }
            13 => {
                out.push_str("(dict-set! ");
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(' ');
                self.expr(d, out);
                out.push(')');
            }
            14 => {
                out.push_str("(let loop ((i ");
                out.push_str(&(self.byte() % 50).to_string());
                out.push_str(") (acc ");
                self.expr(d, out);
                out.push_str(")) (if (< i 1) acc (loop (- i 1) ");
                self.expr(d, out);
                out.push_str(")))");
            }
            15 => {
                out.push_str("(guard-error (fn [] ");
                self.expr(d, out);
                out.push_str(") (fn [m] m))");
            }
            16 => {
                // A channel round trip on one thread: handoff (fresh
                // messages by transfer, others by copy) and adoption.
                out.push_str("(let ((ch (chan 2))) (send ch ");
                self.expr(d, out);
                out.push_str(") (recv ch))");
            }
            17 => {
                // A variable a loop `set!`s from its own value (a box whose
                // slot region is compacted as the loop replaces it; reads
                // in `string-append` borrow), and a global updated alike.
                let v = self.pick(VARS);
                out.push_str(&format!(
                    "(let (({v} \"s\")) (let loop ((i {})) (if (< i 1) {v} (begin (set! {v} (string-append {v} ",
                    self.byte() % 40
                ));
                self.expr(d, out);
                out.push_str(")) (set! x (string-append x \"xy\")) (loop (- i 1))))))");
            }
            18 => {
                // An array updated from its own values through a `let`
                // (the read borrows when nothing calls or stores before
                // its last use) and through `car` (borrowed when used up
                // at once), with a generated expression in between that
                // may read `y` or store into it: then the read must pin.
                out.push_str(&format!(
                    "(let ((y (make-array 2 \"s\")) (z (make-array 2 (list 0)))) (let loop ((i {})) \
                     (if (< i 1) (array-ref y 0) (begin (let ((v (array-ref y (remainder i 2)))) ",
                    self.byte() % 40
                ));
                self.expr(d, out);
                out.push_str(
                    " (array-set! y (remainder i 2) (string-append v \"xy\"))) \
                     (array-set! z (remainder i 2) (list (+ 1 (car (array-ref z (remainder i 2)))) ",
                );
                self.expr(d, out);
                out.push_str(")) (loop (- i 1))))))");
            }
            19 => {
                // Non-tail recursion through a named `let` (the pure
                // tier inlines its body at its calls of itself), and a
                // call of `h`, which the program may define again.
                out.push_str(&format!(
                    "(list (let rec ((i {})) (if (< i 1) ",
                    self.byte() % 30
                ));
                self.expr(d, out);
                out.push_str(" (cons (rec (- i 1)) ");
                self.expr(d, out);
                out.push_str(&format!("))) (h {}))", self.byte() % 30));
            }
            _ => {
                // A thread: compiles the program again, gets a copy of the
                // globals, hands its result back.
                out.push_str("(join (spawn (fn [] ");
                self.expr(d, out);
                out.push_str(")))");
            }
        }
    }

    fn atom(&mut self, out: &mut String) {
        let s = match self.byte() % 14 {
            0 => (self.byte() as i64 - 128).to_string(),
            1 => "1.5".into(),
            2 => "\"str\"".into(),
            3 => "'()".into(),
            4 => "'sym".into(),
            5 => "[1 2 3]".into(),
            6 => "#{:k 1}".into(),
            7 => "nothing".into(),
            8 => "true".into(),
            9 => "4611686018427387904".into(),
            10 => "(read-line)".into(),
            11 => "(read)".into(),
            _ => self.pick(VARS).to_string(),
        };
        out.push_str(&s);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut g = Gen { data, pos: 0 };
    let mut src = String::from(
        "(define a 1) (define b (list 1 2)) (define c (box 0)) (define x \"s\") (define y [1 2]) \
         (define lst '(1 2 3)) (define tbl (dict)) (define (f v) (cons v v)) (define (g v) (f v)) \
         (define (h n) (if (< n 1) '() (cons n (h (- n 1)))))\n",
    );
    while !g.done() && src.len() < 4000 {
        if g.byte() % 8 == 0 {
            // A recursive procedure, defined again (its inlined calls of
            // itself then call what the global holds).
            src.push_str("(define (h n) (if (< n 1) ");
            g.expr(3, &mut src);
            src.push_str(" (+ (length (list (h (- n 1)) ");
            g.expr(3, &mut src);
            src.push_str(")) (h (- n 2)))))\n");
        } else if g.byte() % 3 == 0 {
            src.push_str(&format!("(define {} ", g.pick(VARS)));
            g.expr(5, &mut src);
            src.push_str(")\n");
        } else {
            src.push_str("(display ");
            g.expr(5, &mut src);
            src.push_str(")\n");
        }
    }
    if std::env::var_os("OMNI_FUZZ_PRINT").is_some() {
        // To see what an artifact runs: OMNI_FUZZ_PRINT=1 pipeline FILE.
        eprintln!("{src}");
    }
    // The program runs twice, with the pure tier and without it: both must
    // print the same and fail the same way (vm/pure.rs: a fallback, stores
    // put back included, leaves nothing the general path could see) unless
    // one met a limit of the machine's resources, which the two tiers use
    // differently: the native stack (a pure run's frames are not the general
    // path's; in this instrumented build a spawned thread's stack is nearly
    // full before its program runs) and the heap limit (a run holds
    // slot-region compaction until it commits).
    let runs = [true, false].map(|pure_tier| run(&src, pure_tier));
    // (A limit's message may also be printed: `guard-error` catches it.)
    let resources = ["stack overflow", "heap limit exceeded", "exceeded quota"];
    let met_a_limit = runs.iter().any(|(printed, end)| {
        let printed = String::from_utf8_lossy(printed);
        let end = end.as_deref().unwrap_or("");
        resources.iter().any(|r| printed.contains(r) || end.contains(r))
    });
    if !met_a_limit {
        assert_eq!(runs[0], runs[1], "the two tiers differ");
    }
});

/// What `src` prints and how it ends (the first error's message and
/// backtrace, or the exit status), run on a thread of its own with the
/// pure tier or without it, after checking that it leaves nothing live.
fn run(src: &str, pure_tier: bool) -> (Vec<u8>, Option<String>) {
    let src = src.to_string();
    let out = Shared::default();
    let sink = out.clone();
    let (end, live) = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            omni_mem::set_heap_limit(Some(64 << 20));
            let limits = omni_lang::Limits {
                max_depth: 2_000,
                fuel: Some(20_000),
                pure_tier,
                ..omni_lang::Limits::default()
            };
            // An empty input: a program that reads never waits.
            let input = omni_lang::input::Source::Given(Box::new(std::io::empty()));
            let r = omni_lang::run_source_io(&src, input, Box::new(sink), vec![], limits);
            let s = omni_mem::heap_stats();
            // Spawned threads report their own leftovers (programs that
            // failed report none, so only successful runs are checked).
            let (tr, tb) = r.result.as_ref().map_or((0, 0), |v| {
                (v.thread_live_regions_at_exit, v.thread_live_bytes_at_exit)
            });
            assert_eq!(omni_mem::parcels_in_flight(), 0, "a message was lost");
            let end = match (&r.result, r.exit) {
                (_, Some(code)) => Some(format!("exit {code}")),
                (Ok(_), None) => None,
                (Err(d), None) => d.first().map(|d| format!("{} {:?}", d.message, d.trace)),
            };
            (end, (s.live_regions + tr, s.live_bytes + tb))
        })
        .expect("spawn")
        .join()
        .expect("the VM thread panicked");
    assert_eq!(
        live,
        (0, 0),
        "regions or bytes still live after the program"
    );
    let printed = out.0.lock().map(|b| b.clone()).unwrap_or_default();
    (printed, end)
}

/// An output buffer the VM writes to and the harness reads after.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
