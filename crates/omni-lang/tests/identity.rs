//! Identity end to end (docs/CTRR_TRANSMIGRATION.md, "Moves"): seeded
//! random programs make boxes ("cells") in procedures and let them escape
//! through every boundary the compiler repairs: stored by the procedure
//! that made them or by a callee, twice, into arrays (whose slot regions
//! are compacted by the churn in between), into assigned globals, through
//! `map`'s procedure, and through a loop of tail calls; then they change
//! them through any of the places that hold them. A model in this file
//! says what every place must print and which places are the same cell
//! (`eq?`). Before moves, every cell that escaped twice was two. (Changes
//! made through the originals pin the slot regions they moved into, so
//! compaction under live originals is left to omni-mem's tests/moves.rs.)

mod common;
use common::{run_checked, Rng};

/// A place in the program's global data.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Cells(usize),
    Regs(usize),
    Global(usize),
}

impl Place {
    fn expr(self) -> String {
        match self {
            Place::Cells(j) => format!("(array-ref cells {j})"),
            Place::Regs(k) => format!("(array-ref regs {k})"),
            Place::Global(x) => format!("g{x}"),
        }
    }
}

/// What a place holds.
#[derive(Clone, Debug, PartialEq)]
enum Held {
    Empty,
    Cell(usize),
    List(String),
}

struct Model {
    cells: Vec<Held>,
    regs: Vec<Held>,
    globals: Vec<Held>,
    lst: Vec<usize>,
    values: Vec<i64>,
}

impl Model {
    fn at(&mut self, p: Place) -> &mut Held {
        match p {
            Place::Cells(j) => &mut self.cells[j],
            Place::Regs(k) => &mut self.regs[k],
            Place::Global(x) => &mut self.globals[x],
        }
    }

    fn new_cell(&mut self, v: i64) -> usize {
        self.values.push(v);
        self.values.len() - 1
    }

    fn show(&self, h: &Held) -> String {
        match h {
            Held::Empty => "()".into(),
            Held::Cell(id) => format!("#<box {}>", self.values[*id]),
            Held::List(s) => s.clone(),
        }
    }
}

const SLOTS: usize = 8;

fn program(seed: u64, steps: usize) -> (String, String) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut src = String::from(
        "(define cells (make-array 8 '()))\n\
         (define regs (make-array 8 '()))\n\
         (define g0 '()) (define g1 '()) (define g2 '()) (define g3 '())\n\
         (define lst '())\n\
         (define (make-cell v) (box v))\n\
         (define (keep-in! i c) (array-set! cells i c) c)\n\
         (define (keep-two! i j c) (array-set! cells i c) (array-set! regs j c) 'ok)\n\
         (define (remember! c) (set! lst (cons c lst)) c)\n\
         (define (via-map v) (car (map remember! (list (make-cell v)))))\n\
         (define (loop-store k c) (if (= k 0) c (begin (array-set! regs k c) (loop-store (- k 1) c))))\n",
    );
    let mut m = Model {
        cells: vec![Held::Empty; SLOTS],
        regs: vec![Held::Empty; SLOTS],
        globals: vec![Held::Empty; 4],
        lst: Vec::new(),
        values: Vec::new(),
    };
    let mut want = String::new();
    for i in 1..=steps as i64 {
        let (j, k, x) = (rng.below(SLOTS), rng.below(SLOTS), rng.below(4));
        let place = |r: &mut Rng| match r.below(3) {
            0 => Place::Cells(r.below(SLOTS)),
            1 => Place::Regs(r.below(SLOTS)),
            _ => Place::Global(r.below(4)),
        };
        let line = match rng.below(10) {
            0 => {
                // Made here, stored twice by a callee, changed here after.
                let id = m.new_cell(i + 1);
                m.cells[j] = Held::Cell(id);
                m.regs[k] = Held::Cell(id);
                format!(
                    "(let ((c (make-cell {i}))) (keep-two! {j} {k} c) (set-box! c {}))",
                    i + 1
                )
            }
            1 => {
                // Stored by the callee and returned into a global.
                let id = m.new_cell(i);
                m.cells[j] = Held::Cell(id);
                m.globals[x] = Held::Cell(id);
                format!("(set! g{x} (keep-in! {j} (make-cell {i})))")
            }
            2 | 3 => {
                // Changed through some place that holds a cell.
                let p = place(&mut rng);
                match m.at(p).clone() {
                    Held::Cell(id) => {
                        m.values[id] = i;
                        format!("(set-box! {} {i})", p.expr())
                    }
                    _ => continue,
                }
            }
            4 => {
                // Kept by `map`'s procedure and part of its result.
                let id = m.new_cell(i);
                m.lst.insert(0, id);
                m.regs[k] = Held::Cell(id);
                format!("(array-set! regs {k} (via-map {i}))")
            }
            5 | 6 => {
                // Churn: the cells array's slot region fills with
                // replaced values and is compacted.
                m.cells[j] = Held::List(format!("({i} {i})"));
                format!(
                    "(begin (array-set! cells {j} (make-array 60 {i})) \
                     (array-set! cells {j} (list {i} {i})))"
                )
            }
            7 => {
                // Stored on every round of a loop of tail calls.
                let id = m.new_cell(i);
                for r in 1..=3 {
                    m.regs[r] = Held::Cell(id);
                }
                m.globals[x] = Held::Cell(id);
                format!("(set! g{x} (loop-store 3 (make-cell {i})))")
            }
            8 => match m.lst.first() {
                Some(&id) => {
                    m.values[id] = i;
                    format!("(set-box! (car lst) {i})")
                }
                None => continue,
            },
            _ => {
                // Identity of two places that hold cells.
                let (p, q) = (place(&mut rng), place(&mut rng));
                match (m.at(p).clone(), m.at(q).clone()) {
                    (Held::Cell(a), Held::Cell(b)) => {
                        want.push_str(if a == b { "true\n" } else { "false\n" });
                        format!("(println (eq? {} {}))", p.expr(), q.expr())
                    }
                    _ => continue,
                }
            }
        };
        src.push_str(&line);
        src.push('\n');
    }
    src.push_str("(println cells)\n(println regs)\n(println g0 g1 g2 g3)\n(println lst)\n");
    let row = |v: &[Held]| v.iter().map(|h| m.show(h)).collect::<Vec<_>>().join(" ");
    want.push_str(&format!(
        "[{}]\n[{}]\n{}\n",
        row(&m.cells),
        row(&m.regs),
        row(&m.globals)
    ));
    let lst: Vec<String> = m.lst.iter().map(|&id| m.show(&Held::Cell(id))).collect();
    want.push_str(&format!("({})\n", lst.join(" ")));
    (src, want)
}

#[test]
fn random_escapes_keep_one_object_per_cell() {
    for seed in 0..3 {
        let (src, want) = program(seed, 3_000);
        let (out, stats) = run_checked(src);
        let repairs = stats.repairs_transmigrate;
        assert_eq!(out, want, "seed {seed}");
        assert!(repairs > 100, "seed {seed}: {repairs} repairs");
    }
}
