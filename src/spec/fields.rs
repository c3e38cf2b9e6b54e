//! Typed reads from a spanned map, recording which keys were asked for so that the
//! rest can be reported as unknown with a suggestion.

use crate::diag::{self, did_you_mean, Diagnostic, Diags};
use crate::source::Span;
use crate::syntax::{Entry, Node, Value};

/// A value and the span it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it is written.
    pub span: Span,
}

/// Reads keys of one map; [`Fields::finish`] reports the keys nobody asked for.
pub struct Fields<'a> {
    entries: &'a [Entry],
    /// The whole map.
    pub span: Span,
    asked: Vec<&'static str>,
    /// The required keys reported missing, each with the [`Diags::len`] mark before it.
    missing: Vec<(String, usize)>,
    /// Where problems go.
    pub diags: &'a mut Diags,
}

impl<'a> Fields<'a> {
    /// Starts reading `node`, which must be a map (else a diagnostic and `None`).
    pub fn new(node: &'a Node, what: &str, diags: &'a mut Diags) -> Option<Fields<'a>> {
        match &node.value {
            Value::Map(entries) => Some(Fields {
                entries,
                span: node.span,
                asked: Vec::new(),
                missing: Vec::new(),
                diags,
            }),
            other => {
                diags.push(
                    Diagnostic::error(
                        diag::WRONG_TYPE,
                        node.span,
                        format!("{what} must be a map, found {}", other.kind()),
                    )
                    .label("expected `key: value` pairs")
                    .help(format!(
                        "write {what} as a map of keys, e.g. `{{type: dense, units: 64}}`"
                    )),
                );
                None
            }
        }
    }

    /// The entry under `key`, marking it as known.
    pub fn entry(&mut self, key: &'static str) -> Option<&'a Entry> {
        self.asked.push(key);
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value under `key`, if present and not null.
    pub fn node(&mut self, key: &'static str) -> Option<&'a Node> {
        self.entry(key)
            .map(|e| &e.value)
            .filter(|n| n.value != Value::Null)
    }

    /// The keys asked for so far: the keys this map accepts.
    pub fn asked(&self) -> &[&'static str] {
        &self.asked
    }

    /// Marks `key` as known without reading it.
    pub fn allow(&mut self, key: &'static str) {
        self.asked.push(key);
    }

    /// Reports a missing required key, at the map's first key (a short, one-line label).
    pub fn missing(&mut self, key: &str, example: &str) {
        let at = self.entries.first().map_or(self.span, |e| e.key_span);
        self.missing.push((key.to_string(), self.diags.len()));
        self.diags.push(
            Diagnostic::error(diag::MISSING_KEY, at, format!("missing `{key}`"))
                .label(format!("this map needs `{key}`"))
                .help(format!("add `{key}: {example}`")),
        );
    }

    /// A whole number ≥ 0 under `key`.
    pub fn u64(&mut self, key: &'static str) -> Option<Sp<u64>> {
        let n = self.node(key)?;
        as_u64(n, key, self.diags).map(|v| Sp {
            value: v,
            span: n.span,
        })
    }

    /// A size (whole number ≥ 1) under `key`.
    pub fn size(&mut self, key: &'static str) -> Option<Sp<u64>> {
        let n = self.node(key)?;
        as_size(n, key, self.diags).map(|v| Sp {
            value: v,
            span: n.span,
        })
    }

    /// A required size under `key`.
    pub fn req_size(&mut self, key: &'static str, example: &str) -> Option<Sp<u64>> {
        if self.node(key).is_none() {
            self.missing(key, example);
            return None;
        }
        self.size(key)
    }

    /// A finite number under `key`.
    pub fn f64(&mut self, key: &'static str) -> Option<Sp<f64>> {
        let n = self.node(key)?;
        match n.value {
            Value::Int(i) => Some(Sp {
                value: i as f64,
                span: n.span,
            }),
            Value::Float(f) if f.is_finite() => Some(Sp {
                value: f,
                span: n.span,
            }),
            _ => {
                self.diags
                    .push(wrong_type(n, key, "a finite number", "1e-5"));
                None
            }
        }
    }

    /// A boolean under `key`, or `default`.
    pub fn bool(&mut self, key: &'static str, default: bool) -> bool {
        let Some(n) = self.node(key) else {
            return default;
        };
        match n.value {
            Value::Bool(b) => b,
            _ => {
                self.diags.push(wrong_type(n, key, "true or false", "true"));
                default
            }
        }
    }

    /// A string under `key`.
    pub fn str(&mut self, key: &'static str) -> Option<Sp<&'a str>> {
        let n = self.node(key)?;
        match &n.value {
            Value::Str(s) => Some(Sp {
                value: s.as_str(),
                span: n.span,
            }),
            _ => {
                self.diags.push(wrong_type(n, key, "a string", "name"));
                None
            }
        }
    }

    /// One word of `choices` under `key`.
    pub fn choice(
        &mut self,
        key: &'static str,
        choices: &[&'static str],
    ) -> Option<Sp<&'static str>> {
        let s = self.str(key)?;
        match choices.iter().find(|c| **c == s.value) {
            Some(c) => Some(Sp {
                value: c,
                span: s.span,
            }),
            None => {
                self.diags
                    .push(invalid_choice(s.span, key, s.value, choices));
                None
            }
        }
    }

    /// Reports every key not asked for as unknown.
    pub fn finish(self) {
        self.finish_except(|_| false)
    }

    /// Reports every key not asked for as unknown, except keys that `free` accepts.
    ///
    /// A misspelt required key (`unit: 10` where `units` is needed) is one problem, not
    /// two: the "missing `units`" diagnostic becomes the unknown key's, at the typo.
    pub fn finish_except(self, free: impl Fn(&str) -> bool) {
        for e in self.entries {
            if !self.asked.contains(&e.key.as_str()) && !free(&e.key) {
                let mut d = Diagnostic::error(
                    diag::UNKNOWN_KEY,
                    e.key_span,
                    format!("unknown key `{}`", e.key),
                )
                .label("not a key here");
                let mut valid: Vec<&str> = self.asked.clone();
                valid.dedup();
                let meant = did_you_mean(&e.key, valid.iter().copied());
                d = match meant {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("valid keys here: {}", valid.join(", "))),
                };
                let missing = meant.and_then(|s| self.missing.iter().find(|(k, _)| k == s));
                if let Some((key, mark)) = missing {
                    if let Some(slot) = self.diags.since(*mark).first_mut() {
                        // The slot is that diagnostic unless it was dropped (poisoned).
                        if slot.code == diag::MISSING_KEY
                            && slot.message == format!("missing `{key}`")
                        {
                            *slot = d.help(format!("did you mean `{key}`? this map needs it"));
                            continue;
                        }
                    }
                }
                self.diags.push(d);
            }
        }
    }
}

/// Reports a value of the wrong kind.
pub fn wrong_type(n: &Node, key: &str, expected: &str, example: &str) -> Diagnostic {
    Diagnostic::error(
        diag::WRONG_TYPE,
        n.span,
        format!("`{key}` must be {expected}, found {}", n.value.kind()),
    )
    .label(format!("{} here", n.value.kind()))
    .help(format!("write `{key}: {example}`"))
}

/// Reports a word outside the valid set.
pub fn invalid_choice(span: Span, key: &str, got: &str, choices: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(
        diag::INVALID_VALUE,
        span,
        format!("`{key}` cannot be `{got}`"),
    )
    .label("not a valid choice");
    match did_you_mean(got, choices.iter().copied()) {
        Some(s) => d.help(format!(
            "did you mean `{s}`? choices: {}",
            choices.join(", ")
        )),
        None => d.help(format!("choices: {}", choices.join(", "))),
    }
}

/// Reads a whole number in [0, 2^64).
pub fn as_u64(n: &Node, key: &str, diags: &mut Diags) -> Option<u64> {
    match n.value {
        Value::Int(i) if i < 0 => {
            diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    n.span,
                    format!("`{key}` cannot be negative ({i})"),
                )
                .label("negative")
                .help(format!("write a whole number ≥ 0 for `{key}`")),
            );
            None
        }
        Value::Int(i) if i > u64::MAX as i128 => {
            diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    n.span,
                    format!("`{key}` is larger than 2^64-1"),
                )
                .label("too large")
                .help("check the number for a typo"),
            );
            None
        }
        Value::Int(i) => Some(i as u64),
        _ => {
            diags.push(wrong_type(n, key, "a whole number", "64"));
            None
        }
    }
}

/// Reads a size: a whole number ≥ 1.
pub fn as_size(n: &Node, key: &str, diags: &mut Diags) -> Option<u64> {
    let v = as_u64(n, key, diags)?;
    if v == 0 {
        diags.push(
            Diagnostic::error(diag::ZERO_SIZE, n.span, format!("`{key}` is zero"))
                .label("a size of zero makes an empty tensor")
                .help(format!("write a positive `{key}`")),
        );
        return None;
    }
    Some(v)
}

/// Reads a size or a list of `rank` sizes (`kernel_size: 3` or `[3, 5]`).
pub fn sizes(
    n: &Node,
    key: &str,
    rank: usize,
    allow_zero: bool,
    diags: &mut Diags,
) -> Option<Vec<u64>> {
    let one = |n: &Node, diags: &mut Diags| {
        if allow_zero {
            as_u64(n, key, diags)
        } else {
            as_size(n, key, diags)
        }
    };
    match &n.value {
        Value::Seq(items) => {
            if items.len() != rank {
                diags.push(
                    Diagnostic::error(
                        diag::INVALID_VALUE,
                        n.span,
                        format!("`{key}` needs {rank} value(s), found {}", items.len()),
                    )
                    .label("wrong length")
                    .help(format!(
                        "write one number for all dimensions, or a list of {rank}"
                    )),
                );
                return None;
            }
            let v: Vec<Option<u64>> = items.iter().map(|i| one(i, diags)).collect();
            v.into_iter().collect()
        }
        _ => one(n, diags).map(|v| vec![v; rank]),
    }
}
