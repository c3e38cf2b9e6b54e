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
    /// One list of children per copy, when they read the repeat's index (`${i}`).
    pub copies: Option<Vec<Vec<LayerSpec>>>,
    /// For a `parallel`, how its branches merge.
    pub parallel: Option<Merge>,
    /// Copies, when `repeat` is written (children then sit under `0` … `N-1`).
    pub repeat: Option<Sp<u64>>,
    /// The name of the repeat's index in expressions (`index:`, default `i`).
    pub index: Option<String>,
    /// Each copy's path segment, from `copy_name` (default: the index itself).
    pub copy_names: Option<Vec<String>>,
    /// How the block's input joins its output: `add` (`true`) or `concat`.
    pub residual: Option<Merge>,
    /// Whether it adds its name as a path segment (`scope: false` does not).
    pub scope: bool,
    /// An attention merge whose queries see only earlier tokens (`causal: true`).
    pub causal: bool,
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
        let causal = parallel && f.bool("causal", false);
        // A parallel adds a segment only when it has a name; a sequential unless `scope: false`.
        let named = f.node("name").is_some();
        let scope = if parallel {
            named
        } else {
            f.bool("scope", true)
        };
        let layers_node = f.node("layers");
        let Some(node) = layers_node else {
            f.missing("layers", "[{type: dense, units: 64}]");
            return None;
        };
        let index_name = index.clone().unwrap_or_else(|| "i".to_string());
        let copy_names = copy_names(f, l, repeat.as_ref(), &index_name);
        // Children that read the index are stamped once per copy, the index bound.
        let copies = match &repeat {
            Some(r) if crate::spec::expr::mentions(node, &index_name) => {
                let per_copy = count_layers(node);
                let total = l
                    .stamped
                    .get()
                    .saturating_add(per_copy.saturating_mul(r.value));
                if total > crate::model::MAX_LAYERS {
                    f.diags.push(
                        Diagnostic::error(
                            diag::INPUT_LIMIT,
                            r.span,
                            format!(
                                "this block stamps more than the {} layers a model may have",
                                crate::model::MAX_LAYERS
                            ),
                        )
                        .label(format!("{} copies", r.value))
                        .help("check `repeat` for a typo"),
                    );
                    return None;
                }
                l.stamped.set(total);
                let mut all = Vec::with_capacity(r.value as usize);
                for k in 0..r.value {
                    let mut scope = l.scope.clone();
                    scope.bound.retain(|(b, _)| *b != index_name);
                    scope
                        .bound
                        .push((index_name.clone(), crate::spec::expr::Val::Int(k as i128)));
                    let mut copy = node.clone();
                    crate::spec::expr::substitute(&mut copy, l.vars, &scope, f.diags);
                    // Problems inside a copy name its path (`layers.3.mlp`).
                    let copy_path = match (l.path.is_empty(), l.layout) {
                        (true, _) => k.to_string(),
                        (false, crate::model::Layout::Pytorch) => format!("{}.{k}", l.path),
                        (false, crate::model::Layout::Keras) => format!("{}/{k}", l.path),
                    };
                    let lx = Lower {
                        scope: &scope,
                        path: &copy_path,
                        ..*l
                    };
                    all.push(read_layers(&copy, &lx, f.diags)?);
                    if f.diags.is_full() {
                        return None;
                    }
                }
                Some(all)
            }
            _ => None,
        };
        let layers = match &copies {
            Some(c) => c.first().cloned().unwrap_or_default(),
            // Children shared by every copy: their problems are named by the first copy's path.
            None if repeat.is_some() => {
                let first = match (l.path.is_empty(), l.layout) {
                    (true, _) => "0".to_string(),
                    (false, crate::model::Layout::Pytorch) => format!("{}.0", l.path),
                    (false, crate::model::Layout::Keras) => format!("{}/0", l.path),
                };
                read_layers(node, &Lower { path: &first, ..*l }, f.diags)?
            }
            None => read_layers(node, l, f.diags)?,
        };
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
            copies,
            parallel: merge,
            repeat,
            index,
            copy_names,
            residual,
            scope,
            causal,
        })
    }
}

/// The path segment of each copy from `copy_name` (`encoder_layer_${i}`, as torchvision's
/// ViT names its layers), checked to be one segment and different per copy.
fn copy_names(
    f: &mut Fields<'_>,
    l: &Lower<'_>,
    repeat: Option<&Sp<u64>>,
    index: &str,
) -> Option<Vec<String>> {
    let node = f.node("copy_name")?;
    let Some(r) = repeat else {
        f.diags.push(
            Diagnostic::error(
                diag::INVALID_VALUE,
                node.span,
                "`copy_name` names the copies of a `repeat`",
            )
            .label("no `repeat` here")
            .help("add `repeat: N`, or name the block with `name`"),
        );
        return None;
    };
    if !matches!(node.value, Value::Str(_)) {
        f.diags.push(crate::spec::fields::wrong_type(
            node,
            "copy_name",
            "a string",
            "layer_${i}",
        ));
        return None;
    }
    if !crate::spec::expr::mentions(node, index) {
        f.diags.push(
            Diagnostic::error(
                diag::INVALID_VALUE,
                node.span,
                format!(
                    "`copy_name` must read the index `{index}`, or every copy has the same name"
                ),
            )
            .label("the same for every copy")
            .help(format!("write it as `layer_${{{index}}}`")),
        );
        return None;
    }
    let mut names = Vec::with_capacity(r.value as usize);
    for k in 0..r.value {
        let mut scope = l.scope.clone();
        scope.bound.retain(|(b, _)| b != index);
        scope
            .bound
            .push((index.to_string(), crate::spec::expr::Val::Int(k as i128)));
        let mut copy = node.clone();
        crate::spec::expr::substitute(&mut copy, l.vars, &scope, f.diags);
        let name = match copy.value {
            Value::Str(s) => s,
            Value::Int(i) => i.to_string(),
            _ => return None,
        };
        if name.is_empty() || name.contains(['.', '/']) || name.contains("${") {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    node.span,
                    "a `copy_name` is one path segment",
                )
                .label(format!("copy {k} is named `{name}`"))
                .help("write a plain name such as `layer_${i}`; nesting comes from `sequential`"),
            );
            return None;
        }
        if let Some(first) = names.iter().position(|n| *n == name) {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    node.span,
                    "a `copy_name` must differ from copy to copy",
                )
                .label(format!("copies {first} and {k} are both `{name}`"))
                .help("use the index as it is, e.g. `layer_${i}`"),
            );
            return None;
        }
        if f.diags.is_full() {
            return None;
        }
        names.push(name);
    }
    Some(names)
}

/// Layers in a list of layers, blocks' children included (before any repeat).
fn count_layers(node: &crate::syntax::Node) -> u64 {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                1 + match &i.value {
                    Value::Map(es) => es
                        .iter()
                        .find(|e| e.key == "layers")
                        .map_or(0, |e| count_layers(&e.value)),
                    _ => 0,
                }
            })
            .sum(),
        _ => 1,
    }
}
