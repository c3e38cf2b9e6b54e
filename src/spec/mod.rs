//! Lower: the value tree into the spec as written — typed fields that keep their spans,
//! unknown keys reported. Nothing here infers sizes; that is [`crate::resolve`].

pub mod expr;
pub mod fields;

pub use fields::{Fields, Sp};

use crate::diag::{self, did_you_mean, Diagnostic, Diags};
use crate::init::{parse_initializer, InitSpec};
use crate::layers::{self, Kind};
use crate::lint::{self, Level};
use crate::model::{DType, Layout};
use crate::source::Span;
use crate::syntax::{Node, Value};

/// Every initializer role key `defaults` may carry: the roles of every layer type (a
/// `parameter`'s own `initializer` excepted).
pub fn default_keys() -> Vec<&'static str> {
    layers::all_roles()
        .into_iter()
        .filter(|k| *k != "initializer")
        .collect()
}

/// Initializers chosen per role key (`kernel_initializer` -> he_normal).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inits(pub Vec<(&'static str, InitSpec)>);

impl Inits {
    /// The initializer for a role key, if written.
    pub fn get(&self, key: &str) -> Option<&InitSpec> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, i)| i)
    }
}

/// A spec as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// `name`.
    pub name: Sp<String>,
    /// `seed` (0 when absent).
    pub seed: u64,
    /// The generator format (`specc_format`, default the current one).
    pub format: crate::init::Format,
    /// `dtype` (f32 when absent).
    pub dtype: DType,
    /// `layout` (pytorch when absent).
    pub layout: Layout,
    /// `input`: one example's shape, batch excluded.
    pub input: Option<Sp<Vec<u64>>>,
    /// `defaults`.
    pub defaults: Inits,
    /// `lints`: per-lint levels.
    pub lints: Vec<(Sp<String>, Level)>,
    /// `layers`.
    pub layers: Vec<LayerSpec>,
    /// The directory `from_file` paths are relative to: the spec's own.
    pub dir: std::path::PathBuf,
}

/// One layer as written.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// `name`, if given.
    pub name: Option<Sp<String>>,
    /// `type` and its fields.
    pub kind: Kind,
    /// The registry row of its `type` (`None` for a layer that could not be read).
    pub ty: Option<&'static layers::LayerType>,
    /// `dtype` override.
    pub dtype: Option<DType>,
    /// `allow`: lints silenced for this layer.
    pub allow: lint::LintSet,
    /// Initializers written on the layer.
    pub inits: Inits,
    /// The whole layer.
    pub span: Span,
    /// The `type` value.
    pub type_span: Span,
}

/// Lowers a parsed file into a [`Spec`]: `vars` (with `--set` overrides in `set`) are
/// evaluated and every `${…}` computed; problems go to `diags`.
pub fn lower(root: &Node, set: &[(String, String)], diags: &mut Diags) -> Option<Spec> {
    if root.value == Value::Null {
        diags.push(Diagnostic {
            primary: None,
            ..Diagnostic::error(diag::MISSING_KEY, root.span, "the spec is empty").help(
                "a spec needs at least `name:` and `layers:`; see README.md for a short example",
            )
        });
        return None;
    }
    let vars_node = match &root.value {
        Value::Map(entries) => entries.iter().find(|e| e.key == "vars").map(|e| &e.value),
        _ => None,
    };
    let vars = expr::Vars::new(vars_node, set, diags);
    let mut tree = root.clone();
    if let Value::Map(entries) = &mut tree.value {
        // `x-` keys only hold anchors: their copies are substituted where they are used (in
        // a repeat, with its index), not here.
        for e in entries
            .iter_mut()
            .filter(|e| e.key != "vars" && !e.key.starts_with("x-"))
        {
            expr::substitute(&mut e.value, &vars, &expr::Scope::default(), diags);
        }
    }
    let root = &tree;
    let mut f = Fields::new(root, "a spec", diags)?;
    f.allow("vars");
    let layout = match f.choice("layout", &["pytorch", "keras"]) {
        Some(Sp { value: "keras", .. }) => Layout::Keras,
        _ => Layout::Pytorch,
    };
    let name = match f.str("name") {
        Some(s) => Sp {
            value: s.value.to_string(),
            span: s.span,
        },
        None => {
            if f.node("name").is_none() {
                f.missing("name", "my-model");
            }
            // Go on without a name so that every other problem is reported too.
            Sp {
                value: String::new(),
                span: root.span,
            }
        }
    };
    let seed = f.u64("seed").map_or(0, |s| s.value);
    let format = match f.u64("specc_format") {
        None => crate::init::Format::CURRENT,
        Some(n) => crate::init::Format::from_number(n.value).unwrap_or_else(|| {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    n.span,
                    format!("specc_format {} is not one this specc generates", n.value),
                )
                .label("format number")
                .help("write `specc_format: 3` (the current one), `2`, or `1` (the first wave's)"),
            );
            crate::init::Format::CURRENT
        }),
    };
    let dtype = dtype_field(&mut f).unwrap_or(DType::F32);
    let input = f.node("input").and_then(|n| {
        let Value::Seq(items) = &n.value else {
            f.diags
                .push(fields::wrong_type(n, "input", "a list of sizes", "[784]"));
            return None;
        };
        let dims: Option<Vec<u64>> = items
            .iter()
            .map(|i| fields::as_size(i, "input", f.diags))
            .collect();
        dims.map(|value| Sp {
            value,
            span: n.span,
        })
    });
    let defaults = match f.node("defaults") {
        Some(n) => {
            let mut d = Fields::new(n, "`defaults`", f.diags);
            let keys = default_keys();
            let inits = d
                .as_mut()
                .map(|d| read_inits(d, &keys, layout))
                .unwrap_or_default();
            if let Some(d) = d {
                d.finish();
            }
            inits
        }
        None => Inits::default(),
    };
    let lints = f
        .node("lints")
        .map(|n| read_lints(n, f.diags))
        .unwrap_or_default();
    let stamped = std::cell::Cell::new(0);
    let scope = expr::Scope::default();
    let lx = layers::Lower {
        layout,
        path: "",
        vars: &vars,
        scope: &scope,
        stamped: &stamped,
    };
    let layers = match f.node("layers") {
        Some(n) => read_layers(n, &lx, f.diags),
        None => {
            f.missing("layers", "[{type: dense, units: 10}]");
            None
        }
    };
    // `x-` keys hold blocks to reuse through YAML anchors (as in docker-compose files).
    f.finish_except(|k| k.starts_with("x-"));
    Some(Spec {
        name,
        seed,
        format,
        dtype,
        layout,
        input,
        defaults,
        lints,
        layers: layers?,
        dir: ".".into(),
    })
}

fn dtype_field(f: &mut Fields<'_>) -> Option<DType> {
    f.choice("dtype", &DType::SPEC_NAMES)
        .and_then(|s| DType::from_spec(s.value))
}

fn read_inits(f: &mut Fields<'_>, keys: &[&'static str], layout: Layout) -> Inits {
    let mut out = Vec::new();
    for key in keys {
        if let Some(n) = f.node(key) {
            if let Some(i) = parse_initializer(n, layout, f.diags) {
                out.push((*key, i));
            }
        }
    }
    Inits(out)
}

fn read_lints(n: &Node, diags: &mut Diags) -> Vec<(Sp<String>, Level)> {
    let Value::Map(entries) = &n.value else {
        diags.push(fields::wrong_type(
            n,
            "lints",
            "a map of lint names to levels",
            "{zero-kernel: deny}",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let name = Sp {
            value: e.key.clone(),
            span: e.key_span,
        };
        if !check_lint_name(&name, diags) {
            continue;
        }
        let level = match &e.value.value {
            Value::Str(s) => Level::from_word(s),
            _ => None,
        };
        match level {
            Some(l) => out.push((name, l)),
            None => diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    e.value.span,
                    "a lint level is `allow`, `warn` or `deny`",
                )
                .label("not a level")
                .help(format!("write `{}: warn`", e.key)),
            ),
        }
    }
    out
}

/// Checks a lint name against the registry; reports and returns false if unknown.
pub fn check_lint_name(name: &Sp<String>, diags: &mut Diags) -> bool {
    if lint::find(&name.value).is_some() {
        return true;
    }
    let d = Diagnostic::error(
        diag::UNKNOWN_LINT,
        name.span,
        format!("unknown lint `{}`", name.value),
    )
    .label("not a lint name");
    diags.push(
        match did_you_mean(&name.value, lint::LINTS.iter().map(|l| l.name)) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("`specc explain --list` lists the lints"),
        },
    );
    false
}

/// Reads a list of layers (the top-level `layers`, or a `sequential`'s).
///
/// Diagnostics get the layer's path as written (`name`, else its index in the list).
pub fn read_layers(n: &Node, lx: &layers::Lower<'_>, diags: &mut Diags) -> Option<Vec<LayerSpec>> {
    let (layout, parent) = (lx.layout, lx.path);
    let Value::Seq(items) = &n.value else {
        diags.push(fields::wrong_type(
            n,
            "layers",
            "a list of layers",
            "[{type: dense, units: 10}]",
        ));
        return None;
    };
    let mut layers = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if diags.is_full() {
            break;
        }
        // `when: false` leaves the layer out, as if it were not written.
        match when(item, diags) {
            Some(true) => {}
            Some(false) => continue,
            None => {
                layers.push(invalid(item));
                continue;
            }
        }
        // A whole-number name (`name: ${n_layers + 1}`, an nn.Sequential index) is its digits.
        let renamed;
        let item = match int_name(item) {
            Some(n) => {
                renamed = n;
                &renamed
            }
            None => item,
        };
        let first = diags.len();
        let segment = layer_name(item).unwrap_or_else(|| index.to_string());
        // Blocks without a segment of their own (`scope: false`, an unnamed parallel) name
        // their children as the enclosing list does.
        let path = match (parent.is_empty(), layout) {
            _ if !adds_segment(item) => parent.to_string(),
            (true, _) => segment,
            (false, Layout::Pytorch) => format!("{parent}.{segment}"),
            (false, Layout::Keras) => format!("{parent}/{segment}"),
        };
        // A layer that cannot be read stays in place as `Invalid`, so later layers are
        // still resolved (and report their own problems) without cascading errors.
        let here = layers::Lower { path: &path, ..*lx };
        layers.push(read_layer(item, &here, diags).unwrap_or_else(|| invalid(item)));
        for d in diags.since(first) {
            if d.path.is_none() {
                d.path = Some(path.clone());
            }
        }
    }
    Some(layers)
}

fn invalid(n: &Node) -> LayerSpec {
    LayerSpec {
        name: None,
        kind: Kind::Invalid,
        ty: None,
        dtype: None,
        allow: lint::LintSet::default(),
        inits: Inits::default(),
        span: n.span,
        type_span: n.span,
    }
}

/// Whether a layer adds a path segment (not a `scope: false` sequential, nor an unnamed
/// parallel).
fn adds_segment(item: &Node) -> bool {
    let Value::Map(entries) = &item.value else {
        return true;
    };
    let get = |k: &str| entries.iter().find(|e| e.key == k).map(|e| &e.value.value);
    match get("type") {
        Some(Value::Str(t)) if t == "parallel" => get("name").is_some(),
        Some(Value::Str(t)) if t == "sequential" => get("scope") != Some(&Value::Bool(false)),
        _ => true,
    }
}

/// `item` with its whole-number `name` written as text, if it has one.
fn int_name(item: &Node) -> Option<Node> {
    let Value::Map(entries) = &item.value else {
        return None;
    };
    let at = entries
        .iter()
        .position(|e| e.key == "name" && matches!(e.value.value, Value::Int(i) if i >= 0))?;
    let mut n = item.clone();
    if let Value::Map(es) = &mut n.value {
        if let Value::Int(i) = es[at].value.value {
            es[at].value.value = Value::Str(i.to_string());
        }
    }
    Some(n)
}

/// A layer's `when` (true without one); `None` after an error reported at it.
fn when(n: &Node, diags: &mut Diags) -> Option<bool> {
    let Value::Map(entries) = &n.value else {
        return Some(true);
    };
    let Some(w) = entries.iter().find(|e| e.key == "when") else {
        return Some(true);
    };
    match &w.value.value {
        Value::Bool(b) => Some(*b),
        _ => {
            diags.push(fields::wrong_type(
                &w.value,
                "when",
                "true or false (an expression such as `${n_experts > 1}`)",
                "${tie_word_embeddings}",
            ));
            None
        }
    }
}

fn layer_name(n: &Node) -> Option<String> {
    let Value::Map(entries) = &n.value else {
        return None;
    };
    match &entries.iter().find(|e| e.key == "name")?.value.value {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn read_layer(n: &Node, lx: &layers::Lower<'_>, diags: &mut Diags) -> Option<LayerSpec> {
    read_layer_keys(n, lx, diags, &mut Vec::new())
}

/// The keys a layer of the type of `example` (a valid layer) accepts under `layout`.
pub fn layer_keys(example: &Node, layout: Layout) -> Vec<&'static str> {
    let mut diags = Diags::new();
    let vars = expr::Vars::new(None, &[], &mut diags);
    let lx = layers::Lower {
        layout,
        path: "",
        vars: &vars,
        scope: &expr::Scope::default(),
        stamped: &std::cell::Cell::new(0),
    };
    let mut keys = Vec::new();
    read_layer_keys(example, &lx, &mut diags, &mut keys);
    keys.sort();
    keys.dedup();
    keys
}

fn read_layer_keys(
    n: &Node,
    lx: &layers::Lower<'_>,
    diags: &mut Diags,
    keys: &mut Vec<&'static str>,
) -> Option<LayerSpec> {
    let layout = lx.layout;
    let mut f = Fields::new(n, "a layer", diags)?;
    f.allow("when");
    let ty = match f.str("type") {
        Some(t) => t,
        None => {
            if f.node("type").is_none() {
                f.missing("type", "dense");
            }
            f.allow("name");
            return None;
        }
    };
    let name = f.str("name").map(|s| Sp {
        value: s.value.to_string(),
        span: s.span,
    });
    if let Some(nm) = &name {
        if nm.value.is_empty() || nm.value.contains(['.', '/']) {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    nm.span,
                    "a layer `name` is one path segment",
                )
                .label("empty, or contains `.` or `/`")
                .help("write a plain name such as `fc1`; nesting comes from `sequential`"),
            );
        }
    }
    let row = layers::find(ty.value);
    // A `parameter` reads its own `dtype` (integer ones too).
    let dtype = if row.is_some_and(|r| r.name == "parameter") {
        None
    } else {
        dtype_field(&mut f)
    };
    let mut allow = lint::LintSet::default();
    if let Some(a) = f.node("allow") {
        let items: Vec<&Node> = match &a.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![a],
        };
        for i in items {
            match &i.value {
                Value::Str(s) => {
                    let s = Sp {
                        value: s.clone(),
                        span: i.span,
                    };
                    if check_lint_name(&s, f.diags) {
                        allow.insert(&s.value);
                    }
                }
                _ => f.diags.push(fields::wrong_type(
                    i,
                    "allow",
                    "a list of lint names",
                    "[zero-kernel]",
                )),
            }
        }
    }
    let Some(row) = row else {
        let d = Diagnostic::error(
            diag::UNKNOWN_LAYER_TYPE,
            ty.span,
            format!("unknown layer type `{}`", ty.value),
        )
        .label("not a layer type");
        let names = layers::LAYERS.iter().map(|t| t.name);
        f.diags.push(match did_you_mean(ty.value, names.clone()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!(
                "layer types: {}",
                names.collect::<Vec<_>>().join(", ")
            )),
        });
        return None;
    };
    if let Some((only, instead)) = row.only {
        if only != layout {
            let (theirs, ours) = match only {
                Layout::Keras => ("Keras", "pytorch"),
                Layout::Pytorch => ("PyTorch", "keras"),
            };
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    ty.span,
                    format!("`{}` exists only in {theirs}", row.name),
                )
                .label(format!("not a layer of layout {ours}"))
                .help(format!("under layout {ours}, {instead}")),
            );
            return None;
        }
    }
    let inits = read_inits(&mut f, row.roles, layout);
    let kind = (row.lower)(&mut f, lx);
    keys.extend_from_slice(f.asked());
    f.finish();
    Some(LayerSpec {
        name,
        kind: kind?,
        ty: Some(row),
        dtype,
        allow,
        inits,
        span: n.span,
        type_span: ty.span,
    })
}
