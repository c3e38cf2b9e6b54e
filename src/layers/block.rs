//! Blocks: `sequential` (a chain of layers, optionally stamped `repeat` times, wrapped in a
//! residual, or without a path segment of its own) and `parallel` (branches that each read
//! the block's input, merged). [`crate::resolve`] walks them.

use super::Lower;
use crate::diag::{self, Diagnostic};
use crate::model::Merge;
use crate::spec::fields::invalid_choice;
use crate::spec::{read_layers, Fields, LayerSpec, Sp};
use crate::syntax::Value;

/// A `sequential` or a `parallel`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The children: layers of a chain, or the branches of a `parallel`.
    pub layers: Vec<LayerSpec>,
    /// For a `parallel`, how its branches merge.
    pub parallel: Option<Merge>,
    /// Copies, when `repeat` is written (children then sit under `0` … `N-1`).
    pub repeat: Option<Sp<u64>>,
    /// The name of the repeat's index in expressions (`index:`, default `i`).
    pub index: Option<String>,
    /// How the block's input joins its output: `add` (`true`) or `concat`.
    pub residual: Option<Merge>,
    /// Whether it adds its name as a path segment (`scope: false` does not).
    pub scope: bool,
}

impl Block {
    pub(super) fn lower(f: &mut Fields<'_>, l: &Lower<'_>, parallel: bool) -> Option<Block> {
        let repeat = if parallel { None } else { f.size("repeat") };
        let index = if parallel {
            None
        } else {
            f.str("index").map(|s| s.value.to_string())
        };
        let residual = match f.node("residual") {
            None => None,
            Some(n) => match &n.value {
                Value::Bool(false) => None,
                Value::Bool(true) => Some(Merge::Add),
                Value::Str(s) if s == "add" => Some(Merge::Add),
                Value::Str(s) if s == "concat" => Some(Merge::Concat),
                Value::Str(s) => {
                    f.diags.push(invalid_choice(
                        n.span,
                        "residual",
                        s,
                        &["add", "concat", "true", "false"],
                    ));
                    None
                }
                _ => {
                    f.diags.push(crate::spec::fields::wrong_type(
                        n,
                        "residual",
                        "`add`, `concat`, true or false",
                        "add",
                    ));
                    None
                }
            },
        };
        // Read every key before giving up, so none is reported as unknown.
        let merge = if parallel {
            match f.choice("merge", &["concat", "add", "multiply", "attention"]) {
                Some(m) => Some(Some(match m.value {
                    "add" => Merge::Add,
                    "multiply" => Merge::Multiply,
                    "attention" => Merge::Attention,
                    _ => Merge::Concat,
                })),
                None => {
                    if f.node("merge").is_none() {
                        f.missing("merge", "concat");
                    }
                    None
                }
            }
        } else {
            Some(None)
        };
        // A parallel adds a segment only when it has a name; a sequential unless `scope: false`.
        let named = f.node("name").is_some();
        let scope = if parallel {
            named
        } else {
            f.bool("scope", true)
        };
        let layers = match f.node("layers") {
            Some(n) => read_layers(n, l.layout, l.path, f.diags),
            None => {
                f.missing("layers", "[{type: dense, units: 64}]");
                None
            }
        }?;
        let merge = merge?;
        if parallel && layers.len() < 2 {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    f.span,
                    "a `parallel` needs two branches or more",
                )
                .label("one branch")
                .help("write the layer itself, or a `sequential`, instead of a parallel of one"),
            );
            return None;
        }
        Some(Block {
            layers,
            parallel: merge,
            repeat,
            index,
            residual,
            scope,
        })
    }
}
