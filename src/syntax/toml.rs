//! TOML text to [`Node`], on the `toml` crate's spanned `DeTable`.

use super::{depth_error, parse_int, Entry, Node, Value, MAX_DEPTH};
use crate::diag::{self, Diagnostic};
use crate::source::Span;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Parses TOML text.
pub(super) fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    // The TOML parser builds nested values recursively; refuse deep input before it runs.
    if let Some(at) = too_deep(text) {
        return Err(vec![depth_error(Span::new(at, (at + 1).min(text.len())))]);
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
    Ok(Node {
        value: convert_table(table.into_inner()),
        span: Span::new(span.start, span.end),
    })
}

fn convert_table(t: DeTable<'_>) -> Value {
    let mut entries: Vec<Entry> = t
        .into_iter()
        .map(|(k, v)| {
            let ks = k.span();
            Entry {
                key: k.into_inner().into_owned(),
                key_span: Span::new(ks.start, ks.end),
                value: convert(v),
            }
        })
        .collect();
    // The table is ordered by key; source order reads better in diagnostics.
    entries.sort_by_key(|e| e.key_span.start);
    Value::Map(entries)
}

fn convert(v: Spanned<DeValue<'_>>) -> Node {
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
                _ => Value::Str(lit),
            }
        }
        DeValue::Float(f) => Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => Value::Seq(items.into_iter().map(convert).collect()),
        DeValue::Table(t) => convert_table(t),
    };
    Node { value, span }
}

/// Offset where nesting (brackets, braces, dotted keys) passes [`MAX_DEPTH`], if it does.
fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    // Dots before `=` on a line are dotted keys, each one a level of nesting.
    let mut dots = 0usize;
    let mut seen_eq = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            q @ (b'"' | b'\'') => {
                // Skip a string (escapes only in basic strings; multi-line forms close the same way).
                i += 1;
                while i < b.len() && b[i] != q {
                    if q == b'"' && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' => seen_eq = true,
            b'.' if !seen_eq => dots += 1,
            b'\n' => {
                dots = 0;
                seen_eq = false;
            }
            _ => {}
        }
        if depth + dots > MAX_DEPTH {
            return Some(i);
        }
        i += 1;
    }
    None
}
