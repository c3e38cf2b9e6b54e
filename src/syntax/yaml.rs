//! YAML text to [`Node`], on saphyr-parser's event stream.
//!
//! We build the tree ourselves instead of deserializing into typed structs so that every
//! key and value keeps its span, unknown keys can be reported with suggestions, and the
//! depth and alias-expansion limits are checked as events arrive (before any large
//! allocation). Scalars are typed by the YAML 1.2 core schema; `<<` merge keys follow
//! the YAML 1.1 merge-key convention (explicit keys win, then earlier merge sources).

// A parse error ends parsing at once, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]

use super::{depth_error, limit, parse_int, Entry, Node, Value, MAX_DEPTH, MAX_NODES};
use crate::diag::{self, Diagnostic};
use crate::source::Span;
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::{HashMap, HashSet};

/// Maps saphyr's character indices to byte offsets.
struct Offsets<'a> {
    text: &'a str,
    ascii: bool,
    /// Byte offset of every 64th character.
    checkpoints: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let ascii = text.is_ascii();
        let checkpoints = if ascii {
            Vec::new()
        } else {
            text.char_indices().step_by(64).map(|(b, _)| b).collect()
        };
        Offsets {
            text,
            ascii,
            checkpoints,
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        let Some(&base) = self.checkpoints.get(char_index / 64) else {
            return self.text.len();
        };
        self.text[base..]
            .char_indices()
            .nth(char_index % 64)
            .map_or(self.text.len(), |(b, _)| base + b)
    }

    fn span(&self, s: saphyr_parser::Span) -> Span {
        Span::new(self.byte(s.start.index()), self.byte(s.end.index()))
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
        /// Nodes in this subtree so far (itself included).
        size: usize,
    },
    Map {
        entries: Vec<Entry>,
        /// Key → position in `entries`, once the map is large enough for a linear search
        /// per key to be quadratic.
        index: HashMap<String, usize>,
        key: Option<(String, Span)>,
        merges: Vec<(Node, usize)>,
        start: usize,
        anchor: usize,
        size: usize,
    },
}

/// Maps with more keys than this look keys up in a hash map instead of a list.
const INDEXED_MAP: usize = 16;

/// The position of `key` among `entries` (through `index` once built).
fn find_key(entries: &[Entry], index: &mut HashMap<String, usize>, key: &str) -> Option<usize> {
    if entries.len() <= INDEXED_MAP {
        return entries.iter().position(|e| e.key == key);
    }
    if index.len() < entries.len() {
        for (i, e) in entries.iter().enumerate().skip(index.len()) {
            index.entry(e.key.clone()).or_insert(i);
        }
    }
    index.get(key).copied()
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchors that an alias refers to, with the size of their subtree.
    anchors: HashMap<usize, (Node, usize)>,
    /// Anchor ids referred to by some alias; only those are kept (a copy each).
    used: HashSet<usize>,
    nodes: usize,
    root: Option<Node>,
    errors: Vec<Diagnostic>,
}

/// The anchor ids that aliases in `text` refer to (a first, cheap pass over the events;
/// stops at a syntax error, which the real pass reports).
fn aliased(text: &str) -> HashSet<usize> {
    let mut used = HashSet::new();
    if !text.contains('*') {
        return used;
    }
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, _))) = parser.next_event() {
        if let Event::Alias(id) = event {
            used.insert(id);
        }
    }
    used
}

/// Offset where flow collections (`[...]`, `{...}`, all of JSON) pass [`MAX_NODES`]
/// values, if they do. saphyr buffers a flow collection's tokens until it ends (it may be
/// a key), at some 350 bytes each, before any event reaches the node budget; this scan
/// bounds that buffer first.
fn flow_too_large(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let (mut depth, mut items, mut i) = (0usize, 0usize, 0usize);
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            // A quote inside a plain word (`it's`) starts no string.
            b'\''
                if line_start
                    || i == 0
                    || matches!(b[i - 1], b' ' | b'\t' | b'[' | b'{' | b',' | b':' | b'\n') =>
            {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                items += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth > 0 => items += 1,
            _ => {}
        }
        line_start = c == b'\n';
        if items > MAX_NODES {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Parses YAML text.
pub(super) fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    if let Some(at) = flow_too_large(text) {
        let span = Span::new(at, (at + 1).min(text.len()));
        return Err(vec![limit(
            span,
            format!("flow collections (`[...]`, `{{...}}`) hold more than {MAX_NODES} values"),
        )
        .label("the limit passes here")
        .help(
            "a model spec is far smaller; use `repeat:` on a `sequential` to stamp a block N times",
        )]);
    }
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        used: aliased(text),
        nodes: 0,
        root: None,
        errors: Vec::new(),
    };
    let mut documents = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(e) => e,
            Err(e) => {
                let mut at = offsets.byte(e.marker().index());
                // saphyr marks the end of the previous token; point at the tab itself.
                if e.info().contains("tab") {
                    if let Some(t) = text[at.min(text.len())..].find('\t') {
                        at += t;
                    }
                }
                let span = Span::new(at, (at + 1).min(text.len()));
                if e.info().contains("recursion limit") {
                    return Err(vec![depth_error(span)]);
                }
                return Err(vec![Diagnostic::error(
                    diag::SYNTAX,
                    span,
                    format!("invalid YAML: {}", e.info()),
                )
                .label("here")
                .help(
                    "check indentation (spaces, not tabs), `key: value` pairs and closing brackets",
                )]);
            }
        };
        let span = offsets.span(span);
        let step = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(vec![Diagnostic::error(
                        diag::SYNTAX,
                        span,
                        "more than one YAML document in the file",
                    )
                    .label("second document starts here")
                    .help("a spec is one document: remove the `---` line and what follows, or split the file")]);
                }
                Ok(())
            }
            Event::Scalar(value, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                b.scalar(value.into_owned(), style, forced_str, anchor, span)
            }
            Event::Alias(id) => b.alias(id, span),
            Event::SequenceStart(anchor, _) => b.open(
                Frame::Seq {
                    items: Vec::new(),
                    start: span.start,
                    anchor,
                    size: 1,
                },
                span,
            ),
            Event::MappingStart(anchor, _) => b.open(
                Frame::Map {
                    entries: Vec::new(),
                    index: HashMap::new(),
                    key: None,
                    merges: Vec::new(),
                    start: span.start,
                    anchor,
                    size: 1,
                },
                span,
            ),
            Event::SequenceEnd | Event::MappingEnd => b.close(span.end),
            _ => Ok(()),
        };
        if let Err(d) = step {
            return Err(vec![d]);
        }
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    match b.root {
        Some(root) => Ok(root),
        None => Ok(Node {
            value: Value::Null,
            span: Span::new(0, 0),
        }),
    }
}

impl Builder {
    fn count(&mut self, n: usize, span: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(limit(
                span,
                format!("the document expands to more than {MAX_NODES} values"),
            )
            .label("expansion passes the limit here")
            .help("aliases that repeat aliases multiply (\"billion laughs\"); use `repeat:` on a `sequential` to stamp a block N times"));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(depth_error(span));
        }
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return Err(
                Diagnostic::error(diag::SYNTAX, span, "a map key must be a plain string")
                    .label("a list or map used as a key")
                    .help("write keys as words: `units: 64`"),
            );
        }
        self.count(1, span)?;
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, end: usize) -> Result<(), Diagnostic> {
        let (node, size) = match self.stack.pop() {
            Some(Frame::Seq {
                items,
                start,
                anchor,
                size,
            }) => {
                let node = Node {
                    value: Value::Seq(items),
                    span: Span::new(start, end),
                };
                self.remember(anchor, &node, size)?;
                (node, size)
            }
            Some(Frame::Map {
                mut entries,
                mut index,
                merges,
                start,
                anchor,
                mut size,
                ..
            }) => {
                for (m, _) in merges {
                    let sources = match m.value {
                        Value::Map(es) => vec![es],
                        Value::Seq(items) => {
                            let mut v = Vec::new();
                            for it in items {
                                match it.value {
                                    Value::Map(es) => v.push(es),
                                    other => return Err(merge_error(it.span, other.kind())),
                                }
                            }
                            v
                        }
                        other => return Err(merge_error(m.span, other.kind())),
                    };
                    for es in sources {
                        for e in es {
                            if find_key(&entries, &mut index, &e.key).is_none() {
                                size += e.value.count();
                                entries.push(e);
                            }
                        }
                    }
                }
                let node = Node {
                    value: Value::Map(entries),
                    span: Span::new(start, end),
                };
                self.remember(anchor, &node, size)?;
                (node, size)
            }
            None => return Ok(()),
        };
        self.push(node, size)
    }

    /// Keeps a copy of an anchored node for the aliases that refer to it; the copy counts
    /// against the node budget, so nested anchors cannot multiply memory unseen.
    fn remember(&mut self, anchor: usize, node: &Node, size: usize) -> Result<(), Diagnostic> {
        if anchor > 0 && self.used.contains(&anchor) {
            self.count(size, node.span)?;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: String,
        style: ScalarStyle,
        forced_str: bool,
        anchor: usize,
        span: Span,
    ) -> Result<(), Diagnostic> {
        self.count(1, span)?;
        if let Some(Frame::Map {
            key: key @ None, ..
        }) = self.stack.last_mut()
        {
            *key = Some((text, span));
            return Ok(());
        }
        let value = if style != ScalarStyle::Plain || forced_str {
            Value::Str(text)
        } else {
            match resolve_plain(&text) {
                Ok(v) => v,
                Err(()) => {
                    self.errors.push(
                        Diagnostic::error(diag::INVALID_VALUE, span, "integer out of range")
                            .label("this number does not fit in 128 bits")
                            .help("check the number for a typo; sizes must fit in 64 bits"),
                    );
                    if self.errors.len() >= diag::MAX_DIAGNOSTICS {
                        return Err(limit(span, "more than 1000 numbers out of range")
                            .label("stopped here")
                            .help("check how this file was written"));
                    }
                    Value::Null
                }
            }
        };
        let node = Node { value, span };
        self.remember(anchor, &node, 1)?;
        self.push(node, 1)
    }

    fn alias(&mut self, id: usize, span: Span) -> Result<(), Diagnostic> {
        let Some((_, n)) = self.anchors.get(&id) else {
            return Err(Diagnostic::error(
                diag::SYNTAX,
                span,
                "alias to an unknown anchor",
            ));
        };
        // Count before cloning so an alias bomb is refused before it allocates.
        let n = *n;
        self.count(n, span)?;
        let node = self.anchors[&id].0.clone();
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return match node.value {
                Value::Str(s) => {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some((s, span));
                    }
                    Ok(())
                }
                _ => Err(Diagnostic::error(
                    diag::SYNTAX,
                    span,
                    "a map key must be a plain string",
                )),
            };
        }
        self.push(node, n)
    }

    fn push(&mut self, node: Node, nodes: usize) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, size, .. }) => {
                items.push(node);
                *size += nodes;
                Ok(())
            }
            Some(Frame::Map {
                entries,
                index,
                key,
                merges,
                size,
                ..
            }) => {
                let (k, key_span) = key.take().expect("scalar() fills the key first");
                if k == "<<" {
                    merges.push((node, nodes));
                    return Ok(());
                }
                if let Some(first) = find_key(entries, index, &k) {
                    return Err(Diagnostic::error(
                        diag::SYNTAX,
                        key_span,
                        format!("duplicate key `{k}`"),
                    )
                    .label("defined again here")
                    .also(entries[first].key_span, "first defined here")
                    .help("remove one of the two"));
                }
                entries.push(Entry {
                    key: k,
                    key_span,
                    value: node,
                });
                *size += nodes;
                Ok(())
            }
        }
    }
}

fn merge_error(span: Span, kind: &str) -> Diagnostic {
    Diagnostic::error(
        diag::WRONG_TYPE,
        span,
        format!("`<<` merges maps, not {kind}"),
    )
    .label("not a map")
    .help("write `<<: *anchor` or `<<: [*a, *b]` where the anchors name maps")
}

/// Types a plain scalar by the YAML 1.2 core schema; `Err` for an integer too large.
fn resolve_plain(s: &str) -> Result<Value, ()> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Ok(Value::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Ok(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Ok(Value::Float(f64::NAN)),
        _ => {}
    }
    if let Some(r) = parse_int(s) {
        return r.map(Value::Int);
    }
    if is_core_float(s) {
        if let Ok(f) = s.parse::<f64>() {
            return Ok(Value::Float(f));
        }
    }
    Ok(Value::Str(s.to_string()))
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}
