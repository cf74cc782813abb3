//! Printing values: `display` (plain) and `write` (readable) forms.
//! Cycles print as `#<cycle>` instead of looping.

use std::collections::HashSet;
use std::fmt::Write as _;

use omni_mem::{
    array_items, box_get, car, cdr, closure_code, dict_entries, float_value, int_value, kind,
    symbol_name, with_str, Kind, Value,
};

pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "+nan.0".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+inf.0".into()
        } else {
            "-inf.0".into()
        };
    }
    // Plain digits between 1e-7 and 1e21 (as JavaScript prints); past
    // them an exponent, so 1e300 is not 300 digits. Either way the
    // shortest digits that read back as `x`, and always a point.
    let a = x.abs();
    if a != 0.0 && !(1e-7..1e21).contains(&a) {
        let s = format!("{x:e}");
        return match s.split_once('e') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
            _ => s,
        };
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        s + ".0"
    }
}

fn write_char_literal(c: char, out: &mut String) {
    match c {
        ' ' => out.push_str("#\\space"),
        '\n' => out.push_str("#\\newline"),
        '\t' => out.push_str("#\\tab"),
        '\r' => out.push_str("#\\return"),
        '\0' => out.push_str("#\\nul"),
        c => {
            out.push_str("#\\");
            out.push(c);
        }
    }
}

fn write_string_literal(s: &str, out: &mut String) {
    write_quoted(s, '"', out)
}

/// `|name|`, escaped as the reader reads it back (`Reader::read_bar_symbol`).
fn write_bar_symbol(name: &str, out: &mut String) {
    write_quoted(name, '|', out)
}

/// `s` between two `quote`s, with the escapes the reader knows.
fn write_quoted(s: &str, quote: char, out: &mut String) {
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Print `v`; `readable` selects `write` over `display`. `proc_name` names
/// closures by their code reference.
pub fn print(v: Value, readable: bool, out: &mut String, proc_name: &dyn Fn(u64) -> String) {
    let mut path = HashSet::new();
    print_rec(v, readable, out, proc_name, &mut path, usize::MAX);
}

/// `print` for a message: once `out` holds about `limit` bytes, a list,
/// array or dict shows `...` for the rest of its elements, and a longer
/// text (one long string) is cut to `limit` bytes and `...`. A value
/// named in an error stays readable however big it is.
pub fn print_brief(
    v: Value,
    readable: bool,
    out: &mut String,
    proc_name: &dyn Fn(u64) -> String,
    limit: usize,
) {
    let start = out.len();
    let mut path = HashSet::new();
    print_rec(v, readable, out, proc_name, &mut path, start + limit);
    if out.len() > start + 2 * limit {
        let mut cut = start + limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
}

fn print_rec(
    v: Value,
    readable: bool,
    out: &mut String,
    proc_name: &dyn Fn(u64) -> String,
    path: &mut HashSet<Value>,
    limit: usize,
) {
    // A moved original prints as its copy, and a cycle through either is
    // found on the copy (omni_mem::resolve).
    let v = omni_mem::resolve(v);
    let k = kind(v);
    let compound = matches!(k, Kind::Pair | Kind::Array | Kind::Dict | Kind::Box);
    if compound && !path.insert(v) {
        out.push_str("#<cycle>");
        return;
    }
    match k {
        Kind::Fixnum | Kind::Int => {
            let _ = write!(out, "{}", int_value(v).unwrap_or(0));
        }
        Kind::Float => out.push_str(&format_float(float_value(v).unwrap_or(0.0))),
        Kind::Char => {
            let c = v.as_char().unwrap_or('?');
            if readable {
                write_char_literal(c, out)
            } else {
                out.push(c)
            }
        }
        Kind::Symbol => {
            let name = symbol_name(v).unwrap_or("?");
            if readable && !crate::reader::plain_symbol(name) {
                write_bar_symbol(name, out)
            } else {
                out.push_str(name)
            }
        }
        Kind::Str => {
            with_str(v, |s| {
                if readable {
                    write_string_literal(s, out)
                } else {
                    out.push_str(s)
                }
            });
        }
        Kind::Empty => out.push_str("()"),
        Kind::True => out.push_str("true"),
        Kind::False => out.push_str("false"),
        Kind::Nothing => out.push_str("nothing"),
        Kind::Undefined => out.push_str("#<undefined>"),
        Kind::Pair => {
            out.push('(');
            let mut cur = v;
            let mut first = true;
            let mut spine = vec![];
            loop {
                if !first {
                    out.push(' ');
                    if out.len() >= limit {
                        out.push_str("...");
                        break;
                    }
                }
                first = false;
                let (Some(a), Some(d)) = (car(cur), cdr(cur)) else {
                    break;
                };
                print_rec(a, readable, out, proc_name, path, limit);
                if kind(d) == Kind::Pair {
                    if !path.insert(d) {
                        out.push_str(" . #<cycle>");
                        break;
                    }
                    spine.push(d);
                    cur = d;
                } else {
                    if d != Value::EMPTY {
                        out.push_str(" . ");
                        print_rec(d, readable, out, proc_name, path, limit);
                    }
                    break;
                }
            }
            out.push(')');
            for s in spine {
                path.remove(&s);
            }
        }
        Kind::Array => {
            out.push('[');
            for (i, x) in array_items(v).unwrap_or_default().into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    if out.len() >= limit {
                        out.push_str("...");
                        break;
                    }
                }
                print_rec(x, readable, out, proc_name, path, limit);
            }
            out.push(']');
        }
        Kind::Dict => {
            out.push_str("#{");
            for (i, (key, x)) in dict_entries(v).unwrap_or_default().into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    if out.len() >= limit {
                        out.push_str("...");
                        break;
                    }
                }
                if key.as_symbol().is_some() {
                    out.push(':');
                }
                print_rec(key, readable, out, proc_name, path, limit);
                out.push(' ');
                print_rec(x, readable, out, proc_name, path, limit);
            }
            out.push('}');
        }
        Kind::Box => {
            out.push_str("#<box ");
            print_rec(
                box_get(v).unwrap_or(Value::NOTHING),
                readable,
                out,
                proc_name,
                path,
                limit,
            );
            out.push('>');
        }
        Kind::Closure => {
            let _ = write!(
                out,
                "#<procedure {}>",
                proc_name(closure_code(v).unwrap_or(0))
            );
        }
        Kind::Handle => match v.as_handle() {
            Some((crate::conc::HANDLE_CHAN, i)) => {
                let _ = write!(out, "#<channel {i}>");
            }
            Some((crate::conc::HANDLE_THREAD, i)) => {
                let _ = write!(out, "#<thread {i}>");
            }
            Some((crate::input::HANDLE_EOF, _)) => out.push_str("#<eof>"),
            _ => out.push_str("#<handle>"),
        },
        Kind::Other => out.push_str("#<internal>"),
    }
    if compound {
        path.remove(&v);
    }
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_print_plainly_in_the_middle_and_with_an_exponent_far_out() {
        assert_eq!(format_float(2.0), "2.0");
        assert_eq!(format_float(-0.0), "-0.0");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e20), "100000000000000000000.0");
        assert_eq!(format_float(1e21), "1.0e21");
        assert_eq!(format_float(1e300), "1.0e300");
        assert_eq!(format_float(-1.5e300), "-1.5e300");
        assert_eq!(format_float(1.5e-10), "1.5e-10");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        assert_eq!(format_float(f64::INFINITY), "+inf.0");
        assert_eq!(format_float(f64::NAN), "+nan.0");
    }

    /// What `write` prints of a float reads back as the same float.
    #[test]
    fn printed_floats_read_back() {
        for x in [1e21, 1.5e-10, 123.456, 1e300, -2.5e-300, 5e-324, 0.1 + 0.2] {
            let s = format_float(x);
            let d = crate::reader::read(&s).expect("reads");
            match &d[..] {
                [crate::reader::Datum {
                    kind: crate::reader::DatumKind::Float(y),
                    ..
                }] => assert_eq!(*y, x, "{s}"),
                _ => panic!("{s} did not read as one float"),
            }
        }
    }
}
