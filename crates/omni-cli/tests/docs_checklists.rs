//! Every spec in `docs/` ends with a conformance checklist that names the
//! tests proving it (docs/DEV_HYGIENE.md). This test keeps those names
//! true: a test renamed or removed, or a program file that moved, fails
//! here instead of leaving the spec pointing at nothing.
//!
//! What a checklist names, and how each is found (a backticked span in
//! the section headed "Conformance checklist"):
//! * `path::name` or `module::tests::name`: a `fn name` in a Rust file
//!   whose path ends with `path` (or `module.rs`); `::name` alone, in any
//!   Rust file;
//! * a path (`tests/programs/086_coalesce.omni`, `tests/explain/let_read`):
//!   a file whose path ends with it, with or without its extension;
//! * a program's number (`062`, `021_closures_counter`): a file of
//!   `tests/programs` whose name starts with it;
//! * a bare snake_case name with an underscore: a `fn` of that name in a
//!   Rust file, else a file of that name (an explain snapshot, a scaling
//!   program), else a word of a script or program that makes it
//!   (`benches/scaling.sh` writes `spawn_in_big_program`).
//!
//! Anything else in backticks (a primitive such as `set!`, a flag, a
//! command, a benchmark id pattern with braces) is prose and not checked.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository's files this check looks names up in.
struct Tree {
    /// Every file under the searched directories, as a path relative to
    /// the repository root with `/` separators, and its text (empty for
    /// files that are not UTF-8 or not source).
    files: Vec<(String, String)>,
}

const SEARCHED: [&str; 6] = ["crates", "tests", "benches", "fuzz", "examples", ".ci"];
const SKIPPED_DIRS: [&str; 4] = ["target", "corpus", "artifacts", ".git"];

impl Tree {
    fn load(root: &Path) -> Tree {
        let mut files = Vec::new();
        let mut work: Vec<PathBuf> = SEARCHED.iter().map(|d| root.join(d)).collect();
        while let Some(dir) = work.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    if !SKIPPED_DIRS.contains(&name.as_str()) {
                        work.push(p);
                    }
                    continue;
                }
                let rel = p
                    .strip_prefix(root)
                    .expect("walked from the root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let is_text = [".rs", ".omni", ".sh", ".explain", ".scm", ".lisp"]
                    .iter()
                    .any(|x| rel.ends_with(x));
                let text = if is_text {
                    fs::read_to_string(&p).unwrap_or_default()
                } else {
                    String::new()
                };
                files.push((rel, text));
            }
        }
        Tree { files }
    }

    /// Files whose path ends with `suffix` at a component boundary.
    fn ending_with<'a>(&'a self, suffix: &'a str) -> impl Iterator<Item = &'a (String, String)> {
        self.files
            .iter()
            .filter(move |(p, _)| ends_at_boundary(p, suffix))
    }

    fn has_fn_in<'a>(
        &self,
        mut files: impl Iterator<Item = &'a (String, String)>,
        name: &str,
    ) -> bool {
        files.any(|(p, text)| p.ends_with(".rs") && defines_fn(text, name))
    }

    fn has_path(&self, path: &str) -> bool {
        self.files.iter().any(|(p, _)| {
            ends_at_boundary(p, path)
                || p.rsplit_once('.')
                    .is_some_and(|(stem, _)| ends_at_boundary(stem, path))
        })
    }

    fn has_stem(&self, name: &str) -> bool {
        self.files.iter().any(|(p, _)| {
            let file = p.rsplit('/').next().unwrap_or(p);
            file.split('.').next() == Some(name)
        })
    }

    fn has_program_numbered(&self, prefix: &str) -> bool {
        self.files.iter().any(|(p, _)| {
            p.strip_prefix("tests/programs/")
                .is_some_and(|f| f.starts_with(prefix) && f.ends_with(".omni"))
        })
    }

    fn has_word_in_script(&self, name: &str) -> bool {
        self.files.iter().any(|(p, text)| {
            (p.ends_with(".sh") || p.ends_with(".omni"))
                && text
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == name)
        })
    }
}

fn ends_at_boundary(path: &str, suffix: &str) -> bool {
    path == suffix || path.ends_with(&format!("/{suffix}"))
}

fn defines_fn(text: &str, name: &str) -> bool {
    text.match_indices(&format!("fn {name}"))
        .any(|(i, m)| matches!(text[i + m.len()..].chars().next(), Some('(' | '<')))
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_snake_with_underscore(s: &str) -> bool {
    is_ident(s) && s.contains('_') && s.chars().all(|c| !c.is_ascii_uppercase())
}

fn is_program_number(s: &str) -> bool {
    s.len() >= 3
        && s[..3].chars().all(|c| c.is_ascii_digit())
        && s[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The backticked spans of a document's conformance checklist section.
fn checklist_names(doc: &str) -> Vec<String> {
    let mut inside = false;
    let mut names = Vec::new();
    for line in doc.lines() {
        if line.starts_with("## ") {
            inside = line.to_ascii_lowercase().contains("conformance checklist");
            continue;
        }
        if inside {
            names.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    names
}

/// Whether `name` (one backticked span) names something that exists;
/// `None` for prose this check does not judge.
fn resolves(tree: &Tree, name: &str) -> Option<bool> {
    if name.contains(|c: char| c.is_whitespace() || c == '{') {
        return None;
    }
    if let Some((qual, f)) = name.rsplit_once("::") {
        if !is_ident(f) {
            return None;
        }
        if qual.is_empty() {
            return Some(tree.has_fn_in(tree.files.iter(), f));
        }
        if qual.ends_with(".rs") {
            return Some(tree.has_fn_in(tree.ending_with(qual), f));
        }
        // A module path: its file is the path without `tests` modules.
        let module: Vec<&str> = qual.split("::").filter(|s| *s != "tests").collect();
        let file = format!("{}.rs", module.join("/"));
        let dir = format!("{}/mod.rs", module.join("/"));
        return Some(
            tree.has_fn_in(tree.ending_with(&file), f) || tree.has_fn_in(tree.ending_with(&dir), f),
        );
    }
    if name.contains('/') || [".rs", ".omni", ".sh"].iter().any(|x| name.ends_with(x)) {
        return Some(tree.has_path(name));
    }
    if is_program_number(name) {
        return Some(tree.has_program_numbered(name));
    }
    if is_snake_with_underscore(name) {
        return Some(
            tree.has_fn_in(tree.files.iter(), name)
                || tree.has_stem(name)
                || tree.has_word_in_script(name),
        );
    }
    None
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every unresolved name of every checklist, as `doc: name`, and how many
/// names were checked.
fn dangling(root: &Path, tree: &Tree) -> (Vec<String>, usize) {
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    let (mut missing, mut checked) = (Vec::new(), 0);
    for doc in docs {
        let text = fs::read_to_string(&doc).expect("a doc is UTF-8");
        let short = doc.file_name().map(|n| n.to_string_lossy().into_owned());
        for name in checklist_names(&text) {
            match resolves(tree, &name) {
                Some(true) => checked += 1,
                Some(false) => {
                    missing.push(format!("{}: `{name}`", short.clone().unwrap_or_default()))
                }
                None => {}
            }
        }
    }
    (missing, checked)
}

#[test]
fn every_checklist_names_tests_and_files_that_exist() {
    let root = repo_root();
    let tree = Tree::load(&root);
    let (missing, checked) = dangling(&root, &tree);
    assert!(
        missing.is_empty(),
        "conformance checklists name things that do not exist:\n  {}",
        missing.join("\n  ")
    );
    println!("{checked} names in the checklists resolve");
    // The specs name a few hundred tests; far fewer means the sections
    // were not found (a heading renamed) and nothing was checked.
    assert!(checked >= 200, "only {checked} names checked");
}

#[test]
fn the_check_finds_a_renamed_test() {
    let tree = Tree {
        files: vec![
            (
                "crates/m/src/region.rs".into(),
                "mod tests { fn kept() {} }".into(),
            ),
            (
                "crates/m/tests/tethers.rs".into(),
                "fn nest_ok() {}\nfn other<T>() {}".into(),
            ),
            (
                "tests/programs/062_tail.omni".into(),
                "(define spawn_it 1)".into(),
            ),
            ("tests/explain/let_read.omni".into(), String::new()),
        ],
    };
    let doc = "# Spec\n## Rules\n`gone_before`\n## Conformance checklist\n\
               | a | `region::tests::kept`, `tests/tethers.rs::nest_ok`, `other_fn` |\n\
               | b | `062`, `tests/explain/let_read`, `spawn_it`, `set!`, `--stats`, `a/b_{1,2}` |\n\
               | c | `region::tests::renamed`, `tests/tethers.rs::kept`, `063`, `no_such_test` |\n";
    let verdicts: Vec<(String, Option<bool>)> = checklist_names(doc)
        .into_iter()
        .map(|n| {
            let v = resolves(&tree, &n);
            (n, v)
        })
        .collect();
    let with = |v: Option<bool>| -> Vec<&str> {
        verdicts
            .iter()
            .filter(|(_, r)| *r == v)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    assert_eq!(
        with(Some(true)),
        [
            "region::tests::kept",
            "tests/tethers.rs::nest_ok",
            "062",
            "tests/explain/let_read",
            "spawn_it"
        ]
    );
    assert_eq!(
        with(Some(false)),
        [
            "other_fn",
            "region::tests::renamed",
            "tests/tethers.rs::kept",
            "063",
            "no_such_test"
        ]
    );
    assert_eq!(with(None), ["set!", "--stats", "a/b_{1,2}"]);
}
