//! TOML text to [`Node`], on the `toml` crate's spanned `DeTable`.

use super::{depth_error, limit, parse_int, Entry, Node, Value, MAX_DEPTH, MAX_NODES};
use crate::diag::{self, Diagnostic};
use crate::source::Span;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Parses TOML text.
pub(super) fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    // The TOML parser builds nested values recursively and keeps every value it reads;
    // refuse deep or huge input before it runs.
    if let Some((at, what)) = prescan(text) {
        let span = Span::new(at, (at + 1).min(text.len()));
        return Err(vec![match what {
            Limit::Depth => depth_error(span),
            Limit::Values => limit(
                span,
                format!("the document holds more than {MAX_NODES} values"),
            )
            .label("the limit passes here")
            .help("a model spec is far smaller; use `repeat:` on a `sequential` to stamp a block N times"),
        }]);
    }
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                let span = e
                    .span()
                    .map_or(Span::new(0, 0), |r| Span::new(r.start, r.end));
                Diagnostic::error(
                    diag::SYNTAX,
                    span,
                    format!("invalid TOML: {}", e.message().trim()),
                )
                .label("here")
                .help("check `key = value` pairs, quotes around strings and `[[layers]]` headers")
            })
            .collect());
    }
    let span = table.span();
    let mut errors = Vec::new();
    let value = convert_table(table.into_inner(), &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Node {
        value,
        span: Span::new(span.start, span.end),
    })
}

fn convert_table(t: DeTable<'_>, errors: &mut Vec<Diagnostic>) -> Value {
    let mut entries: Vec<Entry> = t
        .into_iter()
        .map(|(k, v)| {
            let ks = k.span();
            Entry {
                key: k.into_inner().into_owned(),
                key_span: Span::new(ks.start, ks.end),
                value: convert(v, errors),
            }
        })
        .collect();
    // The table is ordered by key; source order reads better in diagnostics.
    entries.sort_by_key(|e| e.key_span.start);
    Value::Map(entries)
}

fn convert(v: Spanned<DeValue<'_>>, errors: &mut Vec<Diagnostic>) -> Node {
    let r = v.span();
    let span = Span::new(r.start, r.end);
    let value = match v.into_inner() {
        DeValue::String(s) => Value::Str(s.into_owned()),
        DeValue::Integer(i) => {
            let digits = i.as_str();
            let lit = match i.radix() {
                16 => format!("0x{digits}"),
                8 => format!("0o{digits}"),
                2 => format!("0b{digits}"),
                _ => digits.to_string(),
            };
            match parse_int(&lit) {
                Some(Ok(n)) => Value::Int(n),
                _ => {
                    if errors.len() < diag::MAX_DIAGNOSTICS {
                        errors.push(
                            Diagnostic::error(diag::INVALID_VALUE, span, "integer out of range")
                                .label("this number does not fit in 128 bits")
                                .help("check the number for a typo; sizes must fit in 64 bits"),
                        );
                    }
                    Value::Null
                }
            }
        }
        DeValue::Float(f) => Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => {
            Value::Seq(items.into_iter().map(|i| convert(i, errors)).collect())
        }
        DeValue::Table(t) => convert_table(t, errors),
    };
    Node { value, span }
}

/// What the pre-scan refused.
#[derive(Debug, PartialEq)]
enum Limit {
    Depth,
    Values,
}

/// Where nesting passes [`MAX_DEPTH`] or the values pass [`MAX_NODES`], if they do.
///
/// A small TOML lexer: comments, the four kinds of strings (so that a `'` or `]` inside
/// a `'''` string is text), table headers, and key versus value position (a dot in a
/// key is a level of nesting, a dot in a value is part of a number).
fn prescan(text: &str) -> Option<(usize, Limit)> {
    /// An open array or inline table, and what to restore when it closes.
    struct Open {
        table: bool,
        base: usize,
        key_dots: usize,
    }
    let b = text.as_bytes();
    let mut stack: Vec<Open> = Vec::new();
    // Depth of the current container (a table header's parts at the top level).
    let mut base = 0usize;
    let mut key_pos = true;
    let mut key_dots = 0usize;
    let mut values = 0usize;
    let mut i = 0;
    // Skips the string whose opening quote is at `i`; returns the index after it.
    let skip_string = |mut i: usize| -> usize {
        let q = b[i];
        if b.get(i..i + 3) == Some(&[q, q, q][..]) {
            i += 3;
            while i < b.len() {
                if q == b'"' && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b.get(i..i + 3) == Some(&[q, q, q][..]) {
                    i += 3;
                    // Up to two more quotes belong to the content (`"""a""""` ends in a quote).
                    let mut extra = 0;
                    while extra < 2 && b.get(i) == Some(&q) {
                        i += 1;
                        extra += 1;
                    }
                    return i;
                }
                i += 1;
            }
            return i;
        }
        i += 1;
        while i < b.len() && b[i] != q && b[i] != b'\n' {
            if q == b'"' && b[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(i);
                continue;
            }
            b'\n' if stack.is_empty() => {
                key_pos = true;
                key_dots = 0;
            }
            b'=' if key_pos => {
                key_pos = false;
                values += 1;
            }
            b'.' if key_pos => {
                key_dots += 1;
                if base + key_dots >= MAX_DEPTH {
                    return Some((i, Limit::Depth));
                }
            }
            b'[' if key_pos && stack.is_empty() => {
                // A table header `[a.b]` or `[[a.b]]`: its parts are its depth.
                let start = i;
                let mut parts = 1;
                i += 1;
                while i < b.len() && b[i] != b'\n' {
                    match b[i] {
                        b'"' | b'\'' => {
                            i = skip_string(i);
                            continue;
                        }
                        b'.' => parts += 1,
                        b']' => break,
                        _ => {}
                    }
                    i += 1;
                }
                if parts > MAX_DEPTH {
                    return Some((start, Limit::Depth));
                }
                base = parts;
                values += 1;
                continue;
            }
            b'[' | b'{' => {
                let depth = base + key_dots + 1;
                if depth > MAX_DEPTH {
                    return Some((i, Limit::Depth));
                }
                stack.push(Open {
                    table: c == b'{',
                    base,
                    key_dots,
                });
                base = depth;
                key_dots = 0;
                key_pos = c == b'{';
                values += 1;
            }
            b']' | b'}' => {
                if let Some(o) = stack.pop() {
                    base = o.base;
                    key_dots = o.key_dots;
                    key_pos = false;
                }
            }
            b',' => {
                values += 1;
                if stack.last().is_some_and(|o| o.table) {
                    key_pos = true;
                    key_dots = 0;
                }
            }
            _ => {}
        }
        if values > MAX_NODES {
            return Some((i, Limit::Values));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescan_reads_strings_arrays_and_keys() {
        // Valid TOML that a naive scan refuses.
        let floats = format!("a = [\n  {}\n]\n", vec!["1.5"; 200].join(", "));
        assert_eq!(prescan(&floats), None);
        assert!(parse(&floats).is_ok());
        let strings = "s = '''it's [[[ \"\"\" ]]]'''\nt = \"\"\"a \\\"\"\" [[[[ \"\"\"\"\nu = 1\n";
        assert_eq!(prescan(strings), None);
        assert!(parse(strings).is_ok(), "{:?}", parse(strings));
        assert_eq!(
            prescan("a.b.c = {d.e = [1.0, 2.0]}\n[x.y]\nz = 1.25\n"),
            None
        );
        // Deep in every form.
        let deep = |s: String| prescan(&s).map(|(_, l)| l);
        let nested = |o: &str, c: &str, n| format!("a = {}1{}", o.repeat(n), c.repeat(n));
        assert_eq!(deep(nested("[", "]", 65)), Some(Limit::Depth));
        assert_eq!(deep(nested("[", "]", 60)), None);
        assert_eq!(deep(nested("{b = ", "}", 70)), Some(Limit::Depth));
        assert_eq!(
            deep(format!("{} = 1", vec!["a"; 70].join("."))),
            Some(Limit::Depth)
        );
        assert_eq!(
            deep(format!("[{}]\n", vec!["a"; 70].join("."))),
            Some(Limit::Depth)
        );
        // Many values.
        let many = format!("a = [{}]\n", vec!["1"; MAX_NODES + 1].join(","));
        assert_eq!(deep(many), Some(Limit::Values));
    }

    #[test]
    fn integers_past_128_bits_are_errors() {
        let e = parse("a = 123456789012345678901234567890123456789012345\n").unwrap_err();
        assert_eq!(e[0].code, diag::INVALID_VALUE);
        // Within i128 but past u64 stays a number, for the field to judge.
        assert!(parse("a = 99999999999999999999\n").is_ok());
    }
}
