//! Reader: source text -> data with spans. Never panics; every error names
//! a line and column.

use std::fmt;

/// A 1-based line and column, plus the byte offset of the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub offset: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum DatumKind {
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    Sym(String),
    Bool(bool),
    Nothing,
    /// `(a b . tail)`: items and an optional dotted tail.
    List(Vec<Datum>, Option<Box<Datum>>),
    /// `[a b c]`
    Array(Vec<Datum>),
    /// `#{k v ...}`
    Dict(Vec<Datum>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Datum {
    pub kind: DatumKind,
    pub span: Span,
}

impl Datum {
    pub fn sym(&self) -> Option<&str> {
        match &self.kind {
            DatumKind::Sym(s) => Some(s),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[Datum]> {
        match &self.kind {
            DatumKind::List(items, None) => Some(items),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReadError {
    pub span: Span,
    pub message: String,
}

pub struct Reader<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    /// Items of the lists being read, innermost last: each list collects
    /// its items here and takes them out, exactly sized, when it closes
    /// (no growing vector per list, no spare capacity in the data).
    items: Vec<Datum>,
}

const MAX_NESTING: usize = 400;

fn is_delimiter(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';' | '\'' | '`' | ','
        )
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a str) -> Self {
        Reader {
            src,
            pos: 0,
            line: 1,
            col: 1,
            items: Vec::new(),
        }
    }

    fn span(&self) -> Span {
        Span {
            line: self.line,
            col: self.col,
            offset: self.pos as u32,
        }
    }

    fn peek(&self) -> Option<char> {
        // Most source is ASCII: one byte, no decoding.
        match self.src.as_bytes().get(self.pos) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            Some(_) => self.src[self.pos..].chars().next(),
            None => None,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err<T>(&self, span: Span, message: impl Into<String>) -> Result<T, ReadError> {
        Err(ReadError {
            span,
            message: message.into(),
        })
    }

    fn skip_atmosphere(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// Read every datum in the source.
    pub fn read_all(mut self) -> Result<Vec<Datum>, ReadError> {
        let mut out = Vec::new();
        loop {
            self.skip_atmosphere();
            if self.peek().is_none() {
                return Ok(out);
            }
            out.push(self.read(0)?);
        }
    }

    fn read(&mut self, depth: usize) -> Result<Datum, ReadError> {
        self.skip_atmosphere();
        let start = self.span();
        if depth > MAX_NESTING {
            return self.err(start, "nesting too deep");
        }
        let Some(c) = self.peek() else {
            return self.err(start, "unexpected end of input");
        };
        let mk = |kind| Datum { kind, span: start };
        match c {
            '(' => {
                self.bump();
                self.read_list(start, ')', depth)
            }
            '[' => {
                self.bump();
                let items = self.read_seq(start, ']', depth)?;
                Ok(mk(DatumKind::Array(items)))
            }
            ')' | ']' | '}' => {
                self.bump();
                self.err(start, format!("unexpected '{c}'"))
            }
            '\'' | '`' => {
                self.bump();
                let name = if c == '\'' { "quote" } else { "quasiquote" };
                let d = self.read(depth + 1)?;
                Ok(self.wrap(name, start, d))
            }
            ',' => {
                self.bump();
                let name = if self.peek() == Some('@') {
                    self.bump();
                    "unquote-splicing"
                } else {
                    "unquote"
                };
                let d = self.read(depth + 1)?;
                Ok(self.wrap(name, start, d))
            }
            '"' => {
                self.bump();
                self.read_string(start)
            }
            '#' => self.read_hash(start, depth),
            '|' => {
                self.bump();
                let name = self.read_bar_symbol(start)?;
                Ok(mk(DatumKind::Sym(name)))
            }
            ':' => {
                self.bump();
                let tok = if self.peek() == Some('|') {
                    self.bump();
                    self.read_bar_symbol(start)?
                } else {
                    self.token()
                };
                if tok.is_empty() {
                    return self.err(start, "expected a name after ':'");
                }
                let d = Datum {
                    kind: DatumKind::Sym(tok),
                    span: start,
                };
                Ok(self.wrap("quote", start, d))
            }
            _ => self.read_atom(start),
        }
    }

    fn wrap(&self, name: &str, span: Span, d: Datum) -> Datum {
        Datum {
            kind: DatumKind::List(
                vec![
                    Datum {
                        kind: DatumKind::Sym(name.into()),
                        span,
                    },
                    d,
                ],
                None,
            ),
            span,
        }
    }

    fn read_seq(
        &mut self,
        start: Span,
        close: char,
        depth: usize,
    ) -> Result<Vec<Datum>, ReadError> {
        let first = self.items.len();
        loop {
            self.skip_atmosphere();
            match self.peek() {
                None => {
                    return self.err(
                        start,
                        format!("unclosed '{}': missing '{close}'", opener(close)),
                    )
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(self.items.drain(first..).collect());
                }
                Some(c @ (')' | ']' | '}')) => {
                    let s = self.span();
                    return self.err(s, format!("expected '{close}' but found '{c}'"));
                }
                _ => {
                    let d = self.read(depth + 1)?;
                    self.items.push(d);
                }
            }
        }
    }

    fn read_list(&mut self, start: Span, close: char, depth: usize) -> Result<Datum, ReadError> {
        let first = self.items.len();
        loop {
            self.skip_atmosphere();
            match self.peek() {
                None => return self.err(start, "unclosed '(': missing ')'"),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(Datum {
                        kind: DatumKind::List(self.items.drain(first..).collect(), None),
                        span: start,
                    });
                }
                Some(c @ (']' | '}')) => {
                    let s = self.span();
                    return self.err(s, format!("expected ')' but found '{c}'"));
                }
                Some('.') if self.dot_alone() => {
                    let dot = self.span();
                    self.bump();
                    if self.items.len() == first {
                        return self.err(dot, "'.' must follow at least one item");
                    }
                    let items: Vec<Datum> = self.items.drain(first..).collect();
                    let tail = self.read(depth + 1)?;
                    self.skip_atmosphere();
                    if self.peek() != Some(close) {
                        let s = self.span();
                        return self.err(s, "expected ')' after the dotted tail");
                    }
                    self.bump();
                    return Ok(Datum {
                        kind: DatumKind::List(items, Some(Box::new(tail))),
                        span: start,
                    });
                }
                _ => {
                    let d = self.read(depth + 1)?;
                    self.items.push(d);
                }
            }
        }
    }

    fn dot_alone(&self) -> bool {
        let rest = &self.src[self.pos..];
        let mut it = rest.chars();
        it.next() == Some('.') && it.next().is_none_or(is_delimiter)
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_delimiter(c) {
                break;
            }
            self.bump();
        }
        self.src[start..self.pos].to_owned()
    }

    fn read_string(&mut self, start: Span) -> Result<Datum, ReadError> {
        let s = self.read_escaped(start, '"', "unterminated string")?;
        Ok(Datum {
            kind: DatumKind::Str(s),
            span: start,
        })
    }

    /// `|any characters|`: a symbol whose name is not a plain symbol (R7RS;
    /// `write` prints such names so), with the string escapes and `\|`.
    fn read_bar_symbol(&mut self, start: Span) -> Result<String, ReadError> {
        self.read_escaped(start, '|', "unterminated |symbol|")
    }

    /// The text up to the unescaped `close` (the opener already read).
    fn read_escaped(
        &mut self,
        start: Span,
        close: char,
        unterminated: &str,
    ) -> Result<String, ReadError> {
        let mut s = String::new();
        loop {
            let here = self.span();
            match self.bump() {
                None => return self.err(start, unterminated),
                Some(c) if c == close => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('0') => s.push('\0'),
                    Some(c @ ('\\' | '"' | '|')) => s.push(c),
                    Some(c) => {
                        let what = if close == '"' {
                            "string escape"
                        } else {
                            "escape"
                        };
                        return self.err(here, format!("unknown {what} '\\{c}'"));
                    }
                    None => return self.err(start, unterminated),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn read_hash(&mut self, start: Span, depth: usize) -> Result<Datum, ReadError> {
        self.bump(); // '#'
        match self.peek() {
            Some('{') => {
                self.bump();
                let items = self.read_seq(start, '}', depth)?;
                if !items.len().is_multiple_of(2) {
                    return self.err(
                        start,
                        "dict literal needs an even number of forms (key value ...)",
                    );
                }
                Ok(Datum {
                    kind: DatumKind::Dict(items),
                    span: start,
                })
            }
            Some('(') => {
                // An R7RS vector literal: a constant array, its elements
                // not evaluated (`'[...]`).
                self.bump();
                let items = self.read_seq(start, ')', depth)?;
                let array = Datum {
                    kind: DatumKind::Array(items),
                    span: start,
                };
                Ok(self.wrap("quote", start, array))
            }
            Some('\\') => {
                self.bump();
                let Some(first) = self.bump() else {
                    return self.err(start, "expected a character after '#\\'");
                };
                let mut name = String::from(first);
                while let Some(c) = self.peek() {
                    if is_delimiter(c) {
                        break;
                    }
                    name.push(c);
                    self.bump();
                }
                let c = match name.as_str() {
                    "space" => ' ',
                    "newline" => '\n',
                    "tab" => '\t',
                    "nul" | "null" => '\0',
                    "return" => '\r',
                    _ if name.chars().count() == 1 => first,
                    _ if name.starts_with('x') && name.len() > 1 => {
                        match u32::from_str_radix(&name[1..], 16)
                            .ok()
                            .and_then(char::from_u32)
                        {
                            Some(c) => c,
                            None => {
                                return self.err(start, format!("bad character code '#\\{name}'"))
                            }
                        }
                    }
                    _ => return self.err(start, format!("unknown character name '#\\{name}'")),
                };
                Ok(Datum {
                    kind: DatumKind::Char(c),
                    span: start,
                })
            }
            _ => {
                let tok = self.token();
                match tok.as_str() {
                    "t" | "true" => Ok(Datum {
                        kind: DatumKind::Bool(true),
                        span: start,
                    }),
                    "f" | "false" => Ok(Datum {
                        kind: DatumKind::Bool(false),
                        span: start,
                    }),
                    _ => self.err(start, format!("unknown '#' syntax '#{tok}'")),
                }
            }
        }
    }

    fn read_atom(&mut self, start: Span) -> Result<Datum, ReadError> {
        let tok = self.token();
        if tok.is_empty() {
            // A delimiter we do not start a datum with, e.g. '{'.
            let c = self.bump().unwrap_or(' ');
            return self.err(start, format!("unexpected '{c}'"));
        }
        let kind = match tok.as_str() {
            "true" => DatumKind::Bool(true),
            "false" => DatumKind::Bool(false),
            "nothing" => DatumKind::Nothing,
            _ => match parse_number(&tok) {
                Some(Ok(k)) => k,
                Some(Err(msg)) => return self.err(start, msg),
                None => {
                    if let Some(bad) = tok.chars().find(|c| !is_symbol_char(*c)) {
                        return self.err(
                            start,
                            format!("invalid character '{bad}' in symbol '{tok}'"),
                        );
                    }
                    DatumKind::Sym(tok)
                }
            },
        };
        Ok(Datum { kind, span: start })
    }
}

fn opener(close: char) -> char {
    match close {
        ')' => '(',
        ']' => '[',
        _ => '{',
    }
}

/// Whether a symbol named `name` reads back from its bare name (else
/// `write` prints it as `|name|`).
pub(crate) fn plain_symbol(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(is_symbol_char)
        && !name.starts_with(':')
        && name != "."
        && !matches!(name, "true" | "false" | "nothing")
        && parse_number(name).is_none()
}

fn is_symbol_char(c: char) -> bool {
    c.is_alphanumeric() || "*!-_?%/=<>+.:&$^~@".contains(c)
}

/// `None` if the token is not numeric; `Some(Err)` if it looks numeric but
/// is malformed or out of range.
fn parse_number(tok: &str) -> Option<Result<DatumKind, String>> {
    let body = tok.strip_prefix(['+', '-']).unwrap_or(tok);
    let starts_numeric = body.starts_with(|c: char| c.is_ascii_digit())
        || (body.starts_with('.') && body[1..].starts_with(|c: char| c.is_ascii_digit()));
    if !starts_numeric {
        return None;
    }
    if body.chars().all(|c| c.is_ascii_digit()) {
        return Some(
            tok.parse::<i64>()
                .map(DatumKind::Int)
                .map_err(|_| format!("integer literal '{tok}' does not fit in 64 bits")),
        );
    }
    let float_ok = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if float_ok {
        if let Ok(x) = tok.parse::<f64>() {
            if x.is_finite() {
                return Some(Ok(DatumKind::Float(x)));
            }
        }
    }
    Some(Err(format!("bad number '{tok}'")))
}

/// Read a whole source text.
pub fn read(src: &str) -> Result<Vec<Datum>, ReadError> {
    Reader::new(src).read_all()
}

/// The first datum of `src` and the byte offset where it ends (`read` on a
/// program's input, input.rs); `Ok(None)` when `src` holds no datum, only
/// whitespace and comments.
pub fn read_first(src: &str) -> Result<Option<(Datum, usize)>, ReadError> {
    let mut r = Reader::new(src);
    r.skip_atmosphere();
    if r.peek().is_none() {
        return Ok(None);
    }
    let d = r.read(0)?;
    Ok(Some((d, r.pos)))
}

/// Whether a read error only says that `src` ended too early (more text
/// could complete it).
pub fn needs_more(e: &ReadError) -> bool {
    e.message.starts_with("unclosed")
        || e.message == "unterminated string"
        || e.message == "unexpected end of input"
}

/// The datum of `src` that starts at `at`, a span `read` gave for the same
/// source (so its position and line and column agree): how a spawned
/// thread reads one top-level form again (`lazy_code.rs`).
pub fn read_at(src: &str, at: Span) -> Result<Datum, ReadError> {
    let mut r = Reader::new(src);
    let pos = at.offset as usize;
    if !src.is_char_boundary(pos) {
        return r.err(at, "internal: a form's start is not in its source");
    }
    r.pos = pos;
    r.line = at.line;
    r.col = at.col;
    r.read(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> DatumKind {
        let mut v = read(src).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).kind
    }

    fn error(src: &str) -> String {
        let e = read(src).unwrap_err();
        format!("{}: {}", e.span, e.message)
    }

    #[test]
    fn atoms() {
        assert_eq!(one("42"), DatumKind::Int(42));
        assert_eq!(one("-7"), DatumKind::Int(-7));
        assert_eq!(one("+3"), DatumKind::Int(3));
        assert_eq!(one("2.25"), DatumKind::Float(2.25));
        assert_eq!(one(".5"), DatumKind::Float(0.5));
        assert_eq!(one("3."), DatumKind::Float(3.0));
        assert_eq!(
            one("\"a\\n\\t\\\"\\\\\""),
            DatumKind::Str("a\n\t\"\\".into())
        );
        assert_eq!(one("#\\a"), DatumKind::Char('a'));
        assert_eq!(one("#\\space"), DatumKind::Char(' '));
        assert_eq!(one("#\\x41"), DatumKind::Char('A'));
        assert_eq!(one("#t"), DatumKind::Bool(true));
        assert_eq!(one("false"), DatumKind::Bool(false));
        assert_eq!(one("nothing"), DatumKind::Nothing);
        assert_eq!(one("set-car!"), DatumKind::Sym("set-car!".into()));
        assert_eq!(one("-"), DatumKind::Sym("-".into()));
        assert_eq!(one("..."), DatumKind::Sym("...".into()));
    }

    #[test]
    fn bar_symbols_hold_any_characters() {
        assert_eq!(one("|a b|"), DatumKind::Sym("a b".into()));
        assert_eq!(one("||"), DatumKind::Sym("".into()));
        assert_eq!(one(r"|a\|b\\c\n|"), DatumKind::Sym("a|b\\c\n".into()));
        assert!(matches!(one(":|k v|"), DatumKind::List(ref v, None) if v[1].sym() == Some("k v")));
        assert!(read("|abc").is_err());
        assert!(read(r"|a\qb|").is_err());
    }

    #[test]
    fn plain_symbols_are_the_names_that_read_back_bare() {
        for name in ["abc", "set-car!", "-", "...", "a.b", "+x"] {
            assert!(plain_symbol(name), "{name}");
            assert_eq!(one(name), DatumKind::Sym(name.into()));
        }
        for name in [
            "", "a b", "12", "-3.5", "true", "nothing", ":k", ".", "a|b", "(x)", "#t",
        ] {
            assert!(!plain_symbol(name), "{name}");
        }
    }

    #[test]
    fn written_symbols_read_back() {
        for name in [
            "abc",
            "a b",
            "",
            "12",
            "true",
            "a|b",
            "back\\slash",
            "line\nbreak",
            ":k",
            ".",
        ] {
            let mut out = String::new();
            crate::printer::print(omni_mem::intern(name), true, &mut out, &|_| String::new());
            assert_eq!(
                one(&out),
                DatumKind::Sym(name.into()),
                "{name} written as {out}"
            );
        }
    }

    #[test]
    fn compound_forms() {
        assert!(matches!(one("(1 2 . 3)"), DatumKind::List(ref v, Some(_)) if v.len() == 2));
        assert!(matches!(one("[1 2 3]"), DatumKind::Array(ref v) if v.len() == 3));
        // `#(...)` (R7RS vector) is a quoted array.
        match one("#(1 (2) x)") {
            DatumKind::List(v, None) => {
                assert_eq!(v[0].sym(), Some("quote"));
                assert!(matches!(v[1].kind, DatumKind::Array(ref a) if a.len() == 3));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(error("#(1 2"), "1:1: unclosed '(': missing ')'");
        assert!(matches!(one("#{:a 1 :b 2}"), DatumKind::Dict(ref v) if v.len() == 4));
        assert!(matches!(one("'x"), DatumKind::List(ref v, None) if v[0].sym() == Some("quote")));
        assert!(matches!(one(":x"), DatumKind::List(ref v, None) if v[0].sym() == Some("quote")));
        assert!(
            matches!(one(",@x"), DatumKind::List(ref v, None) if v[0].sym() == Some("unquote-splicing"))
        );
    }

    #[test]
    fn spans_are_line_and_column() {
        let v = read("; c\n  (a\n   b)").unwrap();
        assert_eq!(v[0].span.line, 2);
        assert_eq!(v[0].span.col, 3);
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(error("(a b"), "1:1: unclosed '(': missing ')'");
        assert_eq!(error(")"), "1:1: unexpected ')'");
        assert_eq!(error("(a ]"), "1:4: expected ')' but found ']'");
        assert_eq!(error("\"ab\\q\""), "1:4: unknown string escape '\\q'");
        assert_eq!(error("12x"), "1:1: bad number '12x'");
        assert_eq!(
            error("99999999999999999999"),
            "1:1: integer literal '99999999999999999999' does not fit in 64 bits"
        );
        assert_eq!(error("#foo"), "1:1: unknown '#' syntax '#foo'");
        assert_eq!(
            error("#{1}"),
            "1:1: dict literal needs an even number of forms (key value ...)"
        );
        assert_eq!(error("\"abc"), "1:1: unterminated string");
        assert_eq!(error("#\\bogus"), "1:1: unknown character name '#\\bogus'");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // Runs on a default 2 MiB test thread: the limit keeps the
        // recursive reader well inside it.
        let src = "(".repeat(5_000);
        let e = read(&src).unwrap_err();
        assert_eq!(e.message, "nesting too deep");
        let ok = format!(
            "{}{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        assert!(read(&ok).is_ok());
    }
}
