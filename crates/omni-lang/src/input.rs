//! The program's input (R7RS `read-line`, `read-char`, `peek-char`,
//! `read`, `eof-object`, `eof-object?`, without port arguments): standard input,
//! or a text given when the program is started (tests, embedders). One
//! source per program, shared by its threads behind the runtime's lock
//! (`Runtime::input`); a read takes a whole line or character under it.
//! The end of the input is the eof object, an immediate handle that
//! prints as `#<eof>`.

use std::io::BufRead;

use omni_mem::Value;

use crate::reader::Datum;

/// Handle kind of the eof object (`Value::handle`; channels and threads
/// are the others, conc.rs).
pub const HANDLE_EOF: u8 = 3;

/// The eof object.
pub fn eof() -> Value {
    Value::handle(HANDLE_EOF, 0)
}

/// Where a program's input comes from.
pub enum Source {
    /// The process's standard input, locked for each read (the REPL reads
    /// its lines from it too).
    Stdin,
    Given(Box<dyn BufRead + Send>),
}

/// A program's input: its source, and text taken from it but not yet
/// read (a character `peek-char` looked at, the rest of a line after the
/// datum `read` took from it).
pub struct Input {
    source: Source,
    pending: String,
}

/// Why a read failed: the input is not UTF-8, or the system said.
pub type ReadResult<T> = Result<T, String>;

impl Input {
    pub fn new(source: Source) -> Input {
        Input {
            source,
            pending: String::new(),
        }
    }

    fn with_reader<T>(&mut self, f: impl FnOnce(&mut dyn BufRead) -> T) -> T {
        match &mut self.source {
            Source::Stdin => f(&mut std::io::stdin().lock()),
            Source::Given(r) => f(r.as_mut()),
        }
    }

    /// The next line without its end (`\n` or `\r\n`); `None` at the end
    /// of the input.
    pub fn read_line(&mut self) -> ReadResult<Option<String>> {
        let mut line = match self.pending.find('\n') {
            Some(end) => self.pending.drain(..=end).collect(),
            None => {
                let mut line = std::mem::take(&mut self.pending);
                if self.source_line(&mut line)? == 0 && line.is_empty() {
                    return Ok(None);
                }
                line
            }
        };
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }

    /// Append the source's next line, with its end, to `line`; how many
    /// bytes it had (0 at the end of the input).
    fn source_line(&mut self, line: &mut String) -> ReadResult<usize> {
        self.with_reader(|r| r.read_line(line)).map_err(describe)
    }

    /// The next character (taken, or only looked at with `peek`); `None`
    /// at the end of the input.
    pub fn read_char(&mut self, peek: bool) -> ReadResult<Option<char>> {
        if let Some(c) = self.pending.chars().next() {
            if !peek {
                self.pending.drain(..c.len_utf8());
            }
            return Ok(Some(c));
        }
        let c = self.with_reader(next_char)?;
        if let (true, Some(c)) = (peek, c) {
            self.pending.push(c);
        }
        Ok(c)
    }

    /// The next datum (R7RS `read`), read a line at a time until one is
    /// complete; what follows it on its line stays for the next read.
    /// `None` at the end of the input; an error for bad syntax (what was
    /// read of the bad datum is dropped) or an input that ends inside a
    /// datum.
    pub fn read_datum(&mut self) -> ReadResult<Option<Datum>> {
        loop {
            // Whether the text so far is the start of a datum.
            let started = match crate::reader::read_first(&self.pending) {
                Ok(Some((d, end))) => {
                    self.pending.drain(..end);
                    return Ok(Some(d));
                }
                Ok(None) => false,
                Err(e) if crate::reader::needs_more(&e) => true,
                Err(e) => {
                    self.pending.clear();
                    return Err(e.message);
                }
            };
            let mut pending = std::mem::take(&mut self.pending);
            let n = self.source_line(&mut pending)?;
            self.pending = pending;
            if n == 0 {
                self.pending.clear();
                return if started {
                    Err("the input ends inside a datum".into())
                } else {
                    Ok(None)
                };
            }
        }
    }
}

/// One UTF-8 character from `r`, byte by byte (a character may straddle
/// the reader's buffer).
fn next_char(r: &mut dyn BufRead) -> ReadResult<Option<char>> {
    let mut bytes = [0u8; 4];
    let Some(first) = next_byte(r)? else {
        return Ok(None);
    };
    bytes[0] = first;
    let width = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Err(NOT_UTF8.into()),
    };
    for b in bytes.iter_mut().take(width).skip(1) {
        *b = next_byte(r)?.ok_or(NOT_UTF8)?;
    }
    match std::str::from_utf8(&bytes[..width]) {
        Ok(s) => Ok(s.chars().next()),
        Err(_) => Err(NOT_UTF8.into()),
    }
}

fn next_byte(r: &mut dyn BufRead) -> ReadResult<Option<u8>> {
    let b = match r.fill_buf() {
        Ok(buf) => buf.first().copied(),
        Err(e) => return Err(describe(e)),
    };
    if b.is_some() {
        r.consume(1);
    }
    Ok(b)
}

const NOT_UTF8: &str = "the input is not UTF-8";

fn describe(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        NOT_UTF8.into()
    } else {
        format!("cannot read the input: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(text: &[u8]) -> Input {
        Input::new(Source::Given(Box::new(std::io::Cursor::new(text.to_vec()))))
    }

    #[test]
    fn lines_end_at_newlines_and_the_input_at_none() {
        let mut i = given(b"one\r\ntwo\n\nlast");
        for want in ["one", "two", "", "last"] {
            assert_eq!(i.read_line(), Ok(Some(want.to_string())));
        }
        assert_eq!(i.read_line(), Ok(None));
    }

    #[test]
    fn characters_peeked_are_read_next_also_by_read_line() {
        let mut i = given("aé€😀\nrest\n".as_bytes());
        assert_eq!(i.read_char(true), Ok(Some('a')));
        assert_eq!(i.read_char(false), Ok(Some('a')));
        assert_eq!(i.read_char(false), Ok(Some('é')));
        assert_eq!(i.read_char(true), Ok(Some('€')));
        assert_eq!(i.read_line(), Ok(Some("€😀".to_string())));
        assert_eq!(i.read_char(true), Ok(Some('r')));
        assert_eq!(i.read_line(), Ok(Some("rest".to_string())));
        assert_eq!(i.read_char(true), Ok(None));
        assert_eq!(i.read_char(false), Ok(None));
    }

    fn datum(i: &mut Input) -> String {
        match i.read_datum() {
            Ok(Some(d)) => format!("{:?}", d.kind),
            Ok(None) => "eof".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn data_are_read_across_lines_and_the_rest_of_a_line_stays() {
        let mut i = given(b"1 (a\n b) ; note\n\"s\" rest of line\n'\nx\n");
        assert_eq!(datum(&mut i), "Int(1)");
        assert!(datum(&mut i).starts_with("List(["), "a list over two lines");
        assert!(datum(&mut i).starts_with("Str("));
        assert_eq!(i.read_line(), Ok(Some(" rest of line".to_string())));
        assert!(
            datum(&mut i).contains("quote"),
            "a quote whose datum is on the next line"
        );
        assert_eq!(datum(&mut i), "eof");
        let mut bad = given(b"(1 2\n");
        assert_eq!(datum(&mut bad), "error: the input ends inside a datum");
        let mut worse = given(b") 5\n7\n");
        assert!(datum(&mut worse).starts_with("error: unexpected ')'"));
        assert_eq!(datum(&mut worse), "Int(7)", "the bad line is dropped");
    }

    #[test]
    fn bad_utf8_is_an_error_not_a_panic() {
        assert_eq!(given(b"\xff").read_char(false), Err(NOT_UTF8.to_string()));
        assert_eq!(
            given(b"\xe2\x82").read_char(false),
            Err(NOT_UTF8.to_string())
        );
        assert_eq!(given(b"ok\xff\n").read_line(), Err(NOT_UTF8.to_string()));
    }
}
