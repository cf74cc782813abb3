//! Slot regions end to end (docs/REGION_COALESCE_POLICY.md): seeded random
//! programs store fresh values into a global array and dict (built by
//! primitives, by calls, and by code that itself stores into the array),
//! read values out and keep them across thousands of later stores, and
//! print everything at the end. The expected output comes from a model of
//! the stores in this file; the debug build's use-after-free check and the
//! runner's zero-live-bytes check do the rest. Enough stores are made that
//! the slot regions are compacted many times, some of them while a local
//! list of more than 64 KiB that a stored value names is still in use.
//! A second array of strings, and a variable two closures share, are
//! updated from their own values: those reads borrow (no pin), directly
//! or through a `let` whose variable is used up before the store, except
//! those followed by a call that stores into the same array, which must
//! pin.

mod common;
use common::{run_checked, Rng};

/// What the program's global data must print as.
struct Model {
    arr: Vec<String>,
    dict: Vec<(usize, String)>,
    held: Vec<String>,
    strs: Vec<String>,
    kept: Vec<String>,
    shared: String,
}

impl Model {
    fn dict_set(&mut self, k: usize, v: String) {
        match self.dict.iter_mut().find(|(key, _)| *key == k) {
            Some(e) => e.1 = v,
            None => self.dict.push((k, v)),
        }
    }

    fn dict_get(&self, k: usize) -> Option<&String> {
        self.dict.iter().find(|(key, _)| *key == k).map(|e| &e.1)
    }
}

fn program(seed: u64, steps: usize) -> (String, String) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut src = String::from(
        "(define a (make-array 24 '()))\n\
         (define d (dict))\n\
         (dict-set! d 0 (cons 0 0))\n\
         (define held '())\n\
         (define (mk i) (list i (* i 2)))\n\
         (define (poke! j i) (array-set! a j (list i)) i)\n\
         (define (build n acc) (if (= n 0) acc (build (- n 1) (cons n acc))))\n\
         (define (churn! j n) (when (> n 0) (array-set! a j (list n n n)) (churn! j (- n 1))))\n\
         (define s (make-array 6 \"\"))\n\
         (define kept '())\n\
         (define (grow! j n) (if (> n 0) (begin (array-set! s j (string-append (array-ref s j) \"q\")) (grow! j (- n 1))) \"!\"))\n\
         (define tt (let ((t \"\")) (list (fn [x] (set! t (string-append t x)) (string-length t)) (fn [] t))))\n",
    );
    let mut m = Model {
        arr: vec!["()".into(); 24],
        dict: vec![(0, "(0 . 0)".into())],
        held: Vec::new(),
        strs: vec![String::new(); 6],
        kept: Vec::new(),
        shared: String::new(),
    };
    for i in 1..=steps {
        let n = m.arr.len();
        let (j, j2, k) = (rng.below(n), rng.below(n), rng.below(5));
        // Reads come in bursts (the first 25 steps of every 2,000): a read
        // pins a slot region, the pinned one takes 64 KiB more, and only
        // then does a fresh one fill up unpinned and get compacted.
        let kind = match rng.below(15) {
            5..=7 | 12 | 14 if i % 2000 >= 25 => rng.below(5),
            kind => kind,
        };
        let js = rng.below(6);
        // Every 1,000th step: a local list of more than 64 KiB stored as a
        // field of a value built in the slot region, then thousands of
        // stores (compactions) while the local is still used: the list
        // must be copied into the slot region, never merged into it.
        let kind = if i % 1000 == 500 { 100 } else { kind };
        let line = match kind {
            100 => {
                let j2 = if j2 == j { (j + 1) % n } else { j2 };
                m.arr[j] = format!("({i})");
                m.arr[j2] = "(1 1 1)".into();
                m.held.insert(0, "(3000 3000)".into());
                format!(
                    "(let ((big (build 3000 '()))) (array-set! a {j} (cons {i} big)) \
                     (churn! {j2} 3000) (array-set! a {j} (list {i})) (churn! {j2} 3000) \
                     (set! held (cons (list (length big) (car (reverse big))) held)))"
                )
            }
            0 | 1 => {
                let big = vec![i.to_string(); 30].join(" ");
                m.arr[j] = format!("({i} {i} [{big}])");
                format!("(array-set! a {j} (list {i} {i} (make-array 30 {i})))")
            }
            2 => {
                m.arr[j] = format!("({i} {})", 2 * i);
                format!("(array-set! a {j} (mk {i}))")
            }
            3 => {
                // The value's second element is made by a call that stores
                // into the same array first.
                m.arr[j2] = format!("({i})");
                m.arr[j] = format!("(({i}) {i})");
                format!("(array-set! a {j} (list (list {i}) (poke! {j2} {i})))")
            }
            4 => {
                m.dict_set(k, format!("({i} . {i})"));
                format!("(dict-set! d {k} (cons {i} {i}))")
            }
            5 => {
                m.held.insert(0, m.arr[j].clone());
                format!("(set! held (cons (array-ref a {j}) held))")
            }
            6 => match m.dict_get(k).cloned() {
                Some(v) => {
                    m.held.insert(0, v);
                    format!("(set! held (cons (dict-ref d {k}) held))")
                }
                None => "(println \"no\")".into(),
            },
            7 => {
                // A value read into a local, kept across stores that
                // overwrite its slot.
                let x = m.arr[j].clone();
                m.arr[j] = format!("({i})");
                m.arr[j2] = format!("({i} {i} {i})");
                m.held.insert(0, x);
                format!(
                    "(let ((x (array-ref a {j}))) (array-set! a {j} (list {i})) \
                     (array-set! a {j2} (list {i} {i} {i})) (set! held (cons x held)))"
                )
            }
            9 => {
                // Updated from its own value: the read borrows.
                m.strs[js].push_str("abcdefgh");
                format!("(array-set! s {js} (string-append (array-ref s {js}) \"abcdefgh\"))")
            }
            10 | 14 => {
                // A read, then a call that stores into the same array (into
                // the same slot when j2 = js) before the read value's last
                // use, directly or through a `let`: the read must pin.
                let (j2, times) = (rng.below(6), 1 + rng.below(40));
                let old = m.strs[js].clone();
                m.strs[j2].push_str(&"q".repeat(times));
                m.strs[js] = old + "!";
                if kind == 10 {
                    format!(
                        "(array-set! s {js} (string-append (array-ref s {js}) (grow! {j2} {times})))"
                    )
                } else {
                    format!(
                        "(let ((old (array-ref s {js}))) (grow! {j2} {times}) \
                         (array-set! s {js} (string-append old \"!\")))"
                    )
                }
            }
            11 => {
                m.shared.push_str("abcdefgh");
                "((car tt) \"abcdefgh\")".into()
            }
            12 => {
                if rng.below(2) == 0 {
                    m.kept.insert(0, m.strs[js].clone());
                    format!("(set! kept (cons (array-ref s {js}) kept))")
                } else {
                    m.kept.insert(0, m.shared.clone());
                    "(set! kept (cons ((cadr tt)) kept))".into()
                }
            }
            13 => {
                // Read into a `let` and used up before the store: borrows.
                m.strs[js].push_str("xy");
                format!(
                    "(let ((old (array-ref s {js}))) \
                     (array-set! s {js} (if (string=? old \"-\") \"\" (string-append old \"xy\"))))"
                )
            }
            _ if n < 30 => {
                m.arr.push(format!("({i})"));
                format!("(array-push! a (list {i}))")
            }
            _ => {
                m.dict_set(k, format!("({i})"));
                format!("(dict-set! d {k} (list {i}))")
            }
        };
        src.push_str(&line);
        src.push('\n');
    }
    src.push_str("(println a)\n(println d)\n(println held)\n");
    src.push_str("(write s)\n(newline)\n(write kept)\n(newline)\n(println ((car tt) \"\"))\n");
    let mut want = String::new();
    for line in src.lines() {
        if line == "(println \"no\")" {
            want.push_str("no\n");
        }
    }
    want.push_str(&format!("[{}]\n", m.arr.join(" ")));
    let entries: Vec<String> = m.dict.iter().map(|(k, v)| format!("{k} {v}")).collect();
    want.push_str(&format!("#{{{}}}\n", entries.join(" ")));
    want.push_str(&format!("({})\n", m.held.join(" ")));
    let quoted = |v: &[String]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    want.push_str(&format!("[{}]\n", quoted(&m.strs)));
    want.push_str(&format!("({})\n", quoted(&m.kept)));
    want.push_str(&format!("{}\n", m.shared.len()));
    (src, want)
}

#[test]
fn random_stores_and_reads_print_what_the_model_says() {
    for seed in 0..3 {
        let (src, want) = program(seed, 10_000);
        let (out, stats) = run_checked(src);
        let (compactions, pinned) = (stats.slot_compactions, stats.slot_regions_pinned);
        assert_eq!(out, want, "seed {seed}");
        assert!(
            compactions > 0 && pinned > 0,
            "seed {seed}: {compactions} compactions, {pinned} pinned"
        );
    }
}
