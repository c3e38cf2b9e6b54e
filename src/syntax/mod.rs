//! Parse: YAML or TOML text into one spanned value tree.
//!
//! Both formats map onto [`Node`], key for key, with the byte span of every key and
//! value, so that any later stage can point at the exact place in the file. YAML
//! anchors, aliases and `<<` merge keys are applied here. Limits on nesting depth and
//! on alias expansion keep hostile inputs fast and small.

mod toml;
mod yaml;

use crate::diag::{self, Diagnostic};
use crate::source::{SourceFile, SourceFormat, Span};

/// Deepest nesting of maps and lists accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to after YAML aliases are applied.
pub const MAX_NODES: usize = 1_000_000;

/// A parsed value and the span of its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it is written.
    pub span: Span,
}

/// A value of the data model shared by YAML and TOML.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// YAML `null`, `~` or nothing.
    Null,
    /// true / false.
    Bool(bool),
    /// A whole number.
    Int(i128),
    /// A number with a fraction or exponent (or inf / nan).
    Float(f64),
    /// Text.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map, keys in source order (after `<<` merges).
    Map(Vec<Entry>),
}

/// One key of a map.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written.
    pub key_span: Span,
    /// Its value.
    pub value: Node,
}

impl Value {
    /// The word for this kind of value, as diagnostics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(f) if f.is_nan() => "NaN (not a number)",
            Value::Float(f) if f.is_infinite() => "an infinite number (inf, or past 1.8e308)",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Node {
    /// Number of nodes in this subtree (itself included).
    pub fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|e| e.value.count()).sum(),
            _ => 0,
        }
    }
}

/// Parses a source file into its value tree, or the diagnostics that prevent it.
pub fn parse(source: &SourceFile) -> Result<Node, Vec<Diagnostic>> {
    match source.format {
        SourceFormat::Yaml => yaml::parse(&source.text),
        SourceFormat::Toml => toml::parse(&source.text),
    }
}

fn limit(span: Span, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(diag::INPUT_LIMIT, span, message)
}

fn depth_error(span: Span) -> Diagnostic {
    limit(span, format!("nesting deeper than {MAX_DEPTH} levels"))
        .label("too deep here")
        .help("a model spec nests a few levels; use `repeat:` on a `sequential` instead of deep nesting")
}

/// Parses an integer literal with optional sign, `0x` / `0o` / `0b` prefix and `_` separators.
fn parse_int(text: &str) -> Option<Result<i128, ()>> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else {
        (10, body)
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c == '_' || c.is_digit(radix))
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    Some(match i128::from_str_radix(&clean, radix) {
        Ok(v) => Ok(if neg { -v } else { v }),
        Err(_) => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Node, Vec<Diagnostic>> {
        parse(&SourceFile::new("t.yaml", text.to_string()))
    }

    fn toml(text: &str) -> Result<Node, Vec<Diagnostic>> {
        parse(&SourceFile::new("t.toml", text.to_string()))
    }

    fn get<'a>(n: &'a Node, key: &str) -> &'a Node {
        match &n.value {
            Value::Map(es) => &es.iter().find(|e| e.key == key).unwrap().value,
            v => panic!("not a map: {v:?}"),
        }
    }

    #[test]
    fn ints_with_prefixes_and_separators() {
        assert_eq!(parse_int("1_000"), Some(Ok(1000)));
        assert_eq!(parse_int("-0x10"), Some(Ok(-16)));
        assert_eq!(parse_int("1e3"), None);
        assert_eq!(
            parse_int("99999999999999999999999999999999999999999"),
            Some(Err(()))
        );
    }

    #[test]
    fn yaml_and_toml_give_the_same_tree() {
        let y =
            yaml("name: m\nseed: 3\nlayers:\n  - {type: dense, units: 4, rate: 0.5}\n").unwrap();
        let t = toml("name = 'm'\nseed = 3\n[[layers]]\ntype = 'dense'\nunits = 4\nrate = 0.5\n")
            .unwrap();
        for n in [&y, &t] {
            assert_eq!(get(n, "name").value, Value::Str("m".into()));
            assert_eq!(get(n, "seed").value, Value::Int(3));
            let Value::Seq(ls) = &get(n, "layers").value else {
                panic!()
            };
            assert_eq!(get(&ls[0], "units").value, Value::Int(4));
            assert_eq!(get(&ls[0], "rate").value, Value::Float(0.5));
        }
    }

    #[test]
    fn yaml_spans_point_at_values() {
        let text = "name: m\nunits: 42\n";
        let n = yaml(text).unwrap();
        let u = get(&n, "units");
        assert_eq!(&text[u.span.start..u.span.end], "42");
        let t = "name = 'm'\nunits = 42\n";
        let n = toml(t).unwrap();
        let u = get(&n, "units");
        assert_eq!(&t[u.span.start..u.span.end], "42");
    }

    #[test]
    fn yaml_spans_are_bytes_after_non_ascii() {
        let text = "# é\nname: mé\nunits: 42\n";
        let n = yaml(text).unwrap();
        let u = get(&n, "units");
        assert_eq!(&text[u.span.start..u.span.end], "42");
    }

    #[test]
    fn yaml_merge_keys_and_aliases() {
        let n = yaml(
            "base: &b {type: dense, units: 4}\nl1:\n  <<: *b\n  units: 8\nl2: *b\nl3:\n  <<: [*b, {name: x}]\n",
        )
        .unwrap();
        assert_eq!(get(get(&n, "l1"), "units").value, Value::Int(8));
        assert_eq!(get(get(&n, "l1"), "type").value, Value::Str("dense".into()));
        assert_eq!(get(get(&n, "l2"), "units").value, Value::Int(4));
        assert_eq!(get(get(&n, "l3"), "name").value, Value::Str("x".into()));
    }

    #[test]
    fn yaml_scalar_typing_follows_core_schema() {
        let n = yaml("a: ~\nb: true\nc: 1e-5\nd: '12'\ne: .inf\nf: 0x1F\ng: 1_024\n").unwrap();
        assert_eq!(get(&n, "a").value, Value::Null);
        assert_eq!(get(&n, "b").value, Value::Bool(true));
        assert_eq!(get(&n, "c").value, Value::Float(1e-5));
        assert_eq!(get(&n, "d").value, Value::Str("12".into()));
        assert_eq!(get(&n, "e").value, Value::Float(f64::INFINITY));
        assert_eq!(get(&n, "f").value, Value::Int(31));
        assert_eq!(get(&n, "g").value, Value::Int(1024));
    }

    #[test]
    fn billion_laughs_is_refused_quickly() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            s += &format!("a{i}: &a{i} [");
            s += &vec![format!("*a{}", i - 1); 10].join(", ");
            s += "]\n";
        }
        let t = std::time::Instant::now();
        let e = yaml(&s).unwrap_err();
        assert_eq!(e[0].code, diag::INPUT_LIMIT);
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn deep_nesting_is_refused() {
        for text in [
            "a: ".to_string() + &"[".repeat(100_000),
            "[".repeat(100_000),
        ] {
            let e = yaml(&text).unwrap_err();
            assert_eq!(e[0].code, diag::INPUT_LIMIT, "{e:?}");
        }
        let e = toml(&format!(
            "a = {}1{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ))
        .unwrap_err();
        assert_eq!(e[0].code, diag::INPUT_LIMIT);
        let e = toml(&format!("{} = 1", vec!["a"; 10_000].join("."))).unwrap_err();
        assert_eq!(e[0].code, diag::INPUT_LIMIT);
        let e = toml(&format!(
            "a = {}{}",
            "{b = ".repeat(10_000),
            "}".repeat(10_000)
        ))
        .unwrap_err();
        assert_eq!(e[0].code, diag::INPUT_LIMIT);
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e[0].code, diag::SYNTAX);
        assert!(e[0].primary.is_some());
        let e = toml("a = \n").unwrap_err();
        assert_eq!(e[0].code, diag::SYNTAX);
    }

    #[test]
    fn yaml_huge_integer_is_an_error() {
        let e = yaml("a: 123456789012345678901234567890123456789012345\n").unwrap_err();
        assert_eq!(e[0].code, diag::INVALID_VALUE);
    }
}
