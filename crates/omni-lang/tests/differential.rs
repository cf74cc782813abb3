//! Differential test: random well-typed programs over a pure subset
//! (integers, booleans, lists, strings, `let`, `if`, `fn`, named-let
//! loops, `map`, `fold-left`, ...)
//! must print the same as a small reference evaluator written here, which
//! uses plain Rust `Rc` values and no regions at all. Seeded: failures are
//! reproducible and print the program.

mod common;
use common::SharedBuf;

use std::rc::Rc;

/// A tiny deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
enum E {
    Int(i64),
    Var(String),
    Nil,
    Add(Box<E>, Box<E>),
    Sub(Box<E>, Box<E>),
    Mul(Box<E>, Box<E>),
    Lt(Box<E>, Box<E>),
    NumEq(Box<E>, Box<E>),
    Not(Box<E>),
    And(Box<E>, Box<E>),
    IsNull(Box<E>),
    If(Box<E>, Box<E>, Box<E>),
    Let(String, Box<E>, Box<E>),
    /// ((fn [x] body) arg)
    App(String, Box<E>, Box<E>),
    Cons(Box<E>, Box<E>),
    List(Vec<E>),
    Length(Box<E>),
    Reverse(Box<E>),
    Append(Box<E>, Box<E>),
    /// (map (fn [x] body) list)
    Map(String, Box<E>, Box<E>),
    /// (fold-left + 0 list)
    Sum(Box<E>),
    /// (if (null? l) d (car l)) with l bound fresh
    SafeCar(String, Box<E>, Box<E>),
    /// (if (null? l) '() (cdr l))
    SafeCdr(String, Box<E>),
    Str(&'static str),
    StrAppend(Box<E>, Box<E>),
    NumToStr(Box<E>),
    StrLen(Box<E>),
    StrEq(Box<E>, Box<E>),
    /// (let ((s str)) (if (= (string-length s) 0) s (substring s 1)))
    StrTail(String, Box<E>),
    /// `(let loop ((i count) (acc init)) (if (= i 0) acc (loop (- i 1) step)))`
    /// with names (loop, i, acc): a tail loop whose state `step` makes
    /// from `i` and the last round's `acc` (the next-iteration region).
    /// With a fourth name `t`, the step is bound first:
    /// `(let ((t step)) (loop (- i 1) t))`.
    /// `Recursive`: the same rounds made by non-tail recursion,
    /// `(let loop ((i count)) (if (= i 0) init (let ((acc (loop (- i 1)))) step)))`,
    /// so the rounds run from `i` = 1 up to `count`.
    Loop(Vec<String>, i64, Box<E>, Box<E>, Shape),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Tail,
    Recursive,
}

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Bool,
    List,
    Str,
}

struct Gen {
    rng: Rng,
    fresh: usize,
}

impl Gen {
    fn name(&mut self) -> String {
        self.fresh += 1;
        format!("v{}", self.fresh)
    }

    fn var(&mut self, env: &[(String, Ty)], ty: Ty) -> Option<E> {
        let cands: Vec<&String> = env
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n)
            .collect();
        if cands.is_empty() {
            None
        } else {
            Some(E::Var(
                cands[self.rng.below(cands.len() as u64) as usize].clone(),
            ))
        }
    }

    /// A `Loop` of `shape` whose value has type `ty`.
    fn rounds(&mut self, ty: Ty, d: u32, env: &mut Vec<(String, Ty)>, shape: Shape) -> E {
        let count = self.rng.below(6) as i64;
        let init = self.expr(ty, d, env);
        let mut names = vec![self.name(), self.name(), self.name()];
        if shape == Shape::Tail && self.rng.below(2) == 0 {
            names.push(self.name());
        }
        env.push((names[1].clone(), Ty::Int));
        env.push((names[2].clone(), ty));
        let step = self.expr(ty, d.min(3), env);
        env.pop();
        env.pop();
        E::Loop(names, count, Box::new(init), Box::new(step), shape)
    }

    fn expr(&mut self, ty: Ty, depth: u32, env: &mut Vec<(String, Ty)>) -> E {
        let b = |e: E| Box::new(e);
        if depth == 0 || self.rng.below(5) == 0 {
            if self.rng.below(2) == 0 {
                if let Some(v) = self.var(env, ty) {
                    return v;
                }
            }
            return match ty {
                Ty::Int => E::Int(self.rng.below(21) as i64 - 10),
                Ty::Bool => E::Lt(
                    b(E::Int(self.rng.below(5) as i64)),
                    b(E::Int(self.rng.below(5) as i64)),
                ),
                Ty::List => {
                    if self.rng.below(3) == 0 {
                        E::Nil
                    } else {
                        let n = self.rng.below(4);
                        E::List((0..n).map(|_| E::Int(self.rng.below(10) as i64)).collect())
                    }
                }
                Ty::Str => E::Str(["", "a", "bc", "x y"][self.rng.below(4) as usize]),
            };
        }
        let d = depth - 1;
        match self.rng.below(4) {
            // Forms valid at every type.
            0 => {
                let c = self.expr(Ty::Bool, d, env);
                let t = self.expr(ty, d, env);
                let e = self.expr(ty, d, env);
                return E::If(b(c), b(t), b(e));
            }
            1 => {
                let vt = [Ty::Int, Ty::List, Ty::Str][self.rng.below(3) as usize];
                let init = self.expr(vt, d, env);
                let n = self.name();
                env.push((n.clone(), vt));
                let body = self.expr(ty, d, env);
                env.pop();
                return E::Let(n, b(init), b(body));
            }
            2 if ty != Ty::Bool && self.rng.below(3) == 0 => {
                let shape = match self.rng.below(3) {
                    0 => Shape::Recursive,
                    _ => Shape::Tail,
                };
                return self.rounds(ty, d, env, shape);
            }
            2 if ty != Ty::Bool => {
                let arg = self.expr(Ty::Int, d, env);
                let n = self.name();
                env.push((n.clone(), Ty::Int));
                let body = self.expr(ty, d, env);
                env.pop();
                return E::App(n, b(body), b(arg));
            }
            _ => {}
        }
        match ty {
            Ty::Int => match self.rng.below(7) {
                0 => E::Add(b(self.expr(Ty::Int, d, env)), b(self.expr(Ty::Int, d, env))),
                1 => E::Sub(b(self.expr(Ty::Int, d, env)), b(self.expr(Ty::Int, d, env))),
                2 => E::Mul(
                    b(self.expr(Ty::Int, d.min(2), env)),
                    b(E::Int(self.rng.below(5) as i64)),
                ),
                3 => E::Length(b(self.expr(Ty::List, d, env))),
                4 if self.rng.below(2) == 0 => E::StrLen(b(self.expr(Ty::Str, d, env))),
                4 => E::Sum(b(self.expr(Ty::List, d, env))),
                _ => {
                    let l = self.expr(Ty::List, d, env);
                    let dflt = self.expr(Ty::Int, d, env);
                    let n = self.name();
                    E::SafeCar(n, b(l), b(dflt))
                }
            },
            Ty::Bool => match self.rng.below(4) {
                0 => E::Lt(b(self.expr(Ty::Int, d, env)), b(self.expr(Ty::Int, d, env))),
                1 => E::NumEq(b(self.expr(Ty::Int, d, env)), b(self.expr(Ty::Int, d, env))),
                2 if self.rng.below(3) == 0 => {
                    E::StrEq(b(self.expr(Ty::Str, d, env)), b(self.expr(Ty::Str, d, env)))
                }
                2 => E::And(
                    b(self.expr(Ty::Bool, d, env)),
                    b(self.expr(Ty::Bool, d, env)),
                ),
                _ => {
                    if self.rng.below(2) == 0 {
                        E::Not(b(self.expr(Ty::Bool, d, env)))
                    } else {
                        E::IsNull(b(self.expr(Ty::List, d, env)))
                    }
                }
            },
            Ty::List => match self.rng.below(6) {
                0 => E::Cons(
                    b(self.expr(Ty::Int, d, env)),
                    b(self.expr(Ty::List, d, env)),
                ),
                1 => E::Reverse(b(self.expr(Ty::List, d, env))),
                2 => E::Append(
                    b(self.expr(Ty::List, d, env)),
                    b(self.expr(Ty::List, d, env)),
                ),
                3 => {
                    let l = self.expr(Ty::List, d, env);
                    let n = self.name();
                    env.push((n.clone(), Ty::Int));
                    let body = self.expr(Ty::Int, d.min(2), env);
                    env.pop();
                    E::Map(n, b(body), b(l))
                }
                4 => {
                    let l = self.expr(Ty::List, d, env);
                    let n = self.name();
                    E::SafeCdr(n, b(l))
                }
                _ => E::List(vec![self.expr(Ty::Int, d, env), self.expr(Ty::Int, d, env)]),
            },
            Ty::Str => match self.rng.below(3) {
                0 => E::StrAppend(b(self.expr(Ty::Str, d, env)), b(self.expr(Ty::Str, d, env))),
                1 => E::NumToStr(b(self.expr(Ty::Int, d, env))),
                _ => {
                    let s = self.expr(Ty::Str, d, env);
                    E::StrTail(self.name(), b(s))
                }
            },
        }
    }
}

fn src(e: &E) -> String {
    match e {
        E::Int(n) => n.to_string(),
        E::Var(v) => v.clone(),
        E::Nil => "'()".into(),
        E::Add(a, b) => format!("(+ {} {})", src(a), src(b)),
        E::Sub(a, b) => format!("(- {} {})", src(a), src(b)),
        E::Mul(a, b) => format!("(* {} {})", src(a), src(b)),
        E::Lt(a, b) => format!("(< {} {})", src(a), src(b)),
        E::NumEq(a, b) => format!("(= {} {})", src(a), src(b)),
        E::Not(a) => format!("(not {})", src(a)),
        E::And(a, b) => format!("(and {} {})", src(a), src(b)),
        E::IsNull(a) => format!("(null? {})", src(a)),
        E::If(c, t, e) => format!("(if {} {} {})", src(c), src(t), src(e)),
        E::Let(n, i, b) => format!("(let (({n} {})) {})", src(i), src(b)),
        E::App(n, body, arg) => format!("((fn [{n}] {}) {})", src(body), src(arg)),
        E::Cons(a, b) => format!("(cons {} {})", src(a), src(b)),
        E::List(xs) => format!(
            "(list{})",
            xs.iter()
                .map(|x| format!(" {}", src(x)))
                .collect::<String>()
        ),
        E::Length(a) => format!("(length {})", src(a)),
        E::Reverse(a) => format!("(reverse {})", src(a)),
        E::Append(a, b) => format!("(append {} {})", src(a), src(b)),
        E::Map(n, body, l) => format!("(map (fn [{n}] {}) {})", src(body), src(l)),
        E::Sum(l) => format!("(fold-left + 0 {})", src(l)),
        E::SafeCar(n, l, d) => format!(
            "(let (({n} {})) (if (null? {n}) {} (car {n})))",
            src(l),
            src(d)
        ),
        E::SafeCdr(n, l) => format!("(let (({n} {})) (if (null? {n}) '() (cdr {n})))", src(l)),
        E::Str(t) => format!("{t:?}"),
        E::StrAppend(a, b) => format!("(string-append {} {})", src(a), src(b)),
        E::NumToStr(a) => format!("(number->string {})", src(a)),
        E::StrLen(a) => format!("(string-length {})", src(a)),
        E::StrEq(a, b) => format!("(string=? {} {})", src(a), src(b)),
        E::StrTail(n, a) => format!(
            "(let (({n} {})) (if (= (string-length {n}) 0) {n} (substring {n} 1)))",
            src(a)
        ),
        E::Loop(names, count, init, step, Shape::Recursive) => {
            let (lp, i, acc) = (&names[0], &names[1], &names[2]);
            format!(
                "(let {lp} (({i} {count})) (if (= {i} 0) {} (let (({acc} ({lp} (- {i} 1)))) {})))",
                src(init),
                src(step)
            )
        }
        E::Loop(names, count, init, step, Shape::Tail) => {
            let (lp, i, acc) = (&names[0], &names[1], &names[2]);
            let next = match names.get(3) {
                Some(t) => format!("(let (({t} {})) ({lp} (- {i} 1) {t}))", src(step)),
                None => format!("({lp} (- {i} 1) {})", src(step)),
            };
            format!(
                "(let {lp} (({i} {count}) ({acc} {})) (if (= {i} 0) {acc} {next}))",
                src(init)
            )
        }
    }
}

// ----- reference evaluator -------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum V {
    Int(i64),
    Bool(bool),
    List(Rc<Vec<i64>>),
    Str(Rc<String>),
}

fn eval(e: &E, env: &mut Vec<(String, V)>) -> V {
    let int = |v: V| match v {
        V::Int(n) => n,
        other => panic!("reference: expected int, got {other:?}"),
    };
    let list = |v: V| match v {
        V::List(l) => l,
        other => panic!("reference: expected list, got {other:?}"),
    };
    let string = |v: V| match v {
        V::Str(s) => s,
        other => panic!("reference: expected string, got {other:?}"),
    };
    let truthy = |v: &V| !matches!(v, V::Bool(false));
    match e {
        E::Int(n) => V::Int(*n),
        E::Var(x) => env
            .iter()
            .rev()
            .find(|(n, _)| n == x)
            .map(|(_, v)| v.clone())
            .expect("bound"),
        E::Nil => V::List(Rc::new(vec![])),
        E::Add(a, b) => V::Int(int(eval(a, env)) + int(eval(b, env))),
        E::Sub(a, b) => V::Int(int(eval(a, env)) - int(eval(b, env))),
        E::Mul(a, b) => V::Int(int(eval(a, env)) * int(eval(b, env))),
        E::Lt(a, b) => V::Bool(int(eval(a, env)) < int(eval(b, env))),
        E::NumEq(a, b) => V::Bool(int(eval(a, env)) == int(eval(b, env))),
        E::Not(a) => V::Bool(!truthy(&eval(a, env))),
        E::And(a, b) => {
            let x = eval(a, env);
            if truthy(&x) {
                eval(b, env)
            } else {
                x
            }
        }
        E::IsNull(a) => V::Bool(list(eval(a, env)).is_empty()),
        E::If(c, t, f) => {
            if truthy(&eval(c, env)) {
                eval(t, env)
            } else {
                eval(f, env)
            }
        }
        E::Let(n, i, b) | E::App(n, b, i) => {
            let v = eval(i, env);
            env.push((n.clone(), v));
            let r = eval(b, env);
            env.pop();
            r
        }
        E::Cons(a, b) => {
            let x = int(eval(a, env));
            let mut l = (*list(eval(b, env))).clone();
            l.insert(0, x);
            V::List(Rc::new(l))
        }
        E::List(xs) => V::List(Rc::new(xs.iter().map(|x| int(eval(x, env))).collect())),
        E::Length(a) => V::Int(list(eval(a, env)).len() as i64),
        E::Reverse(a) => V::List(Rc::new(list(eval(a, env)).iter().rev().copied().collect())),
        E::Append(a, b) => {
            let mut l = (*list(eval(a, env))).clone();
            l.extend(list(eval(b, env)).iter());
            V::List(Rc::new(l))
        }
        E::Map(n, body, l) => {
            let items = list(eval(l, env));
            let mut out = Vec::new();
            for &x in items.iter() {
                env.push((n.clone(), V::Int(x)));
                out.push(int(eval(body, env)));
                env.pop();
            }
            V::List(Rc::new(out))
        }
        E::Sum(l) => V::Int(list(eval(l, env)).iter().sum()),
        E::SafeCar(_, l, d) => {
            let items = list(eval(l, env));
            match items.first() {
                Some(&x) => V::Int(x),
                None => eval(d, env),
            }
        }
        E::SafeCdr(_, l) => {
            let items = list(eval(l, env));
            V::List(Rc::new(items.iter().skip(1).copied().collect()))
        }
        E::Str(t) => V::Str(Rc::new(t.to_string())),
        E::StrAppend(a, b) => V::Str(Rc::new(format!(
            "{}{}",
            string(eval(a, env)),
            string(eval(b, env))
        ))),
        E::NumToStr(a) => V::Str(Rc::new(int(eval(a, env)).to_string())),
        E::StrLen(a) => V::Int(string(eval(a, env)).chars().count() as i64),
        E::StrEq(a, b) => V::Bool(string(eval(a, env)) == string(eval(b, env))),
        E::StrTail(_, a) => {
            let t = string(eval(a, env));
            V::Str(Rc::new(t.chars().skip(1).collect()))
        }
        E::Loop(names, count, init, step, shape) => {
            let (i, acc) = (&names[1], &names[2]);
            let mut state = eval(init, env);
            let rounds: Vec<i64> = match shape {
                Shape::Tail => (1..=*count).rev().collect(),
                Shape::Recursive => (1..=*count).collect(),
            };
            for k in rounds {
                env.push((i.clone(), V::Int(k)));
                env.push((acc.clone(), state));
                state = eval(step, env);
                env.pop();
                env.pop();
            }
            state
        }
    }
}

fn show(v: &V) -> String {
    match v {
        V::Int(n) => n.to_string(),
        V::Bool(b) => b.to_string(),
        V::List(l) => format!(
            "({})",
            l.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        V::Str(s) => s.to_string(),
    }
}

#[test]
fn random_programs_match_the_reference_evaluator() {
    // OMNI_DIFFERENTIAL_PROGRAMS=N runs N programs instead (a longer soak).
    let programs: u64 = std::env::var("OMNI_DIFFERENTIAL_PROGRAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut loops = 0;
    let mut recursive_globals = 0;
    let mut tail_globals = 0;
    for seed in 0..programs {
        let mut g = Gen {
            rng: Rng(seed * 7919 + 1),
            fresh: 0,
        };
        // A few global definitions, then printed expressions that use them.
        let mut program = String::new();
        let mut expected = String::new();
        let mut genv: Vec<(String, Ty)> = Vec::new();
        let mut venv: Vec<(String, V)> = Vec::new();
        for _ in 0..3 {
            let ty = [Ty::Int, Ty::List, Ty::Str][g.rng.below(3) as usize];
            let e = match g.rng.below(5) {
                0 => g.rounds(ty, 3, &mut genv.clone(), Shape::Recursive),
                1 => g.rounds(ty, 3, &mut genv.clone(), Shape::Tail),
                _ => g.expr(ty, 4, &mut genv.clone()),
            };
            let name = g.name();
            match &e {
                // A procedure that calls itself through its global, and
                // its value at `count`.
                E::Loop(names, count, init, step, Shape::Recursive) => {
                    let (f, i, acc) = (&names[0], &names[1], &names[2]);
                    program.push_str(&format!(
                        "(define ({f} {i}) (if (= {i} 0) {} (let (({acc} ({f} (- {i} 1)))) {})))\n(define {name} ({f} {count}))\n",
                        src(init),
                        src(step)
                    ));
                    recursive_globals += 1;
                }
                // A loop that is a global procedure (one a caller's pure
                // code inlines: it captures nothing, its recursion is a
                // tail call), called by another one, not in tail position.
                E::Loop(names, count, init, step, Shape::Tail) => {
                    let (f, i, acc) = (&names[0], &names[1], &names[2]);
                    let next = match names.get(3) {
                        Some(t) => format!("(let (({t} {})) ({f} (- {i} 1) {t}))", src(step)),
                        None => format!("({f} (- {i} 1) {})", src(step)),
                    };
                    program.push_str(&format!(
                        "(define ({f} {i} {acc}) (if (= {i} 0) {acc} {next}))\n\
                         (define ({name}-of) (let (({acc} ({f} {count} {}))) {acc}))\n\
                         (define {name} ({name}-of))\n",
                        src(init)
                    ));
                    tail_globals += 1;
                }
                _ => program.push_str(&format!("(define {name} {})\n", src(&e))),
            }
            let v = eval(&e, &mut venv);
            venv.push((name.clone(), v));
            genv.push((name, ty));
        }
        for _ in 0..4 {
            let ty = [Ty::Int, Ty::Bool, Ty::List, Ty::Str][g.rng.below(4) as usize];
            let e = g.expr(ty, 5, &mut genv.clone());
            program.push_str(&format!("(println {})\n", src(&e)));
            expected.push_str(&show(&eval(&e, &mut venv)));
            expected.push('\n');
        }
        loops += program.matches("(let v").count();
        // With the pure tier and without it (every call general).
        for pure_tier in [true, false] {
            let buf = SharedBuf::default();
            let out = buf.clone();
            let prog = program.clone();
            let limits = omni_lang::Limits {
                pure_tier,
                ..omni_lang::Limits::default()
            };
            let (result, live) = std::thread::Builder::new()
                .stack_size(omni_lang::VM_STACK_BYTES)
                .spawn(move || {
                    let r = omni_lang::run_source_with(&prog, Box::new(out), vec![], limits)
                        .map(|_| ())
                        .map_err(|d| format!("{d:?}"));
                    (r, omni_mem::heap_stats().live_bytes)
                })
                .unwrap()
                .join()
                .unwrap();
            let got = buf.text();
            let tier = if pure_tier { "pure tier" } else { "general" };
            assert!(
                result.is_ok(),
                "seed {seed} ({tier}): error {result:?}\n{program}"
            );
            assert_eq!(
                got, expected,
                "seed {seed} ({tier}): output differs\n{program}"
            );
            assert_eq!(
                live, 0,
                "seed {seed} ({tier}): live bytes at exit\n{program}"
            );
        }
    }
    // The generator reaches every form; named-let loops are the rarest.
    assert!(
        loops as u64 >= programs * 5 / 3,
        "only {loops} loops generated"
    );
    assert!(
        recursive_globals as u64 >= programs / 2,
        "only {recursive_globals} recursive procedures defined"
    );
    assert!(
        tail_globals as u64 >= programs / 2,
        "only {tail_globals} global loops defined"
    );
}
