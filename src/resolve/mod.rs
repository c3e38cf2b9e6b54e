//! Resolve: walk the layers in order, infer every input size, name every tensor as the
//! layout's framework does, pick each tensor's initializer, and check the whole.

use crate::diag::{self, Diagnostic, Diags};
use crate::layers::{Act, Cx, EmbeddingInfo, Kind};
use crate::model::{DType, LayerInfo, Model, Step, TensorDecl, Tie, MAX_LAYERS};
use crate::spec::{LayerSpec, Spec};
use std::collections::HashMap;

struct Walker<'a> {
    spec: &'a Spec,
    tensors: Vec<TensorDecl>,
    ties: Vec<Tie>,
    embeddings: Vec<EmbeddingInfo>,
    diags: &'a mut Diags,
    keras_counts: HashMap<&'static str, u64>,
    flow: Vec<Step>,
    allow: crate::lint::LintSet,
    /// The model reached [`crate::model::MAX_TENSORS`]: reported once, then the walk stops.
    full: bool,
}

/// Layers of `layers` once every `repeat` is applied, or the block that passes
/// [`MAX_LAYERS`] (the innermost one), as a diagnostic.
fn expanded(layers: &[LayerSpec]) -> Result<u64, Box<Diagnostic>> {
    let mut n = 0u64;
    for l in layers {
        n = n.saturating_add(match &l.kind {
            Kind::Sequential(seq) => {
                let inner = expanded(&seq.layers)?;
                let copies = seq.repeat.as_ref().map_or(1, |r| r.value);
                let total = inner.saturating_add(1).saturating_mul(copies);
                if total > MAX_LAYERS {
                    let span = seq.repeat.as_ref().map_or(l.type_span, |r| r.span);
                    return Err(Box::new(Diagnostic::error(
                        diag::INPUT_LIMIT,
                        span,
                        format!("this block stamps {} layers, more than the {MAX_LAYERS} a model may have", if total == u64::MAX { "over 2^64".to_string() } else { total.to_string() }),
                    )
                    .label(format!("{copies} copies of {inner} layers"))
                    .help("check `repeat` for a typo; the largest real models have a few thousand layers")));
                }
                total
            }
            _ => 1,
        });
    }
    Ok(n)
}

/// Resolves a spec into its model; problems go to `diags`.
///
/// `force_dtype` replaces every floating-point tensor's dtype (the CLI's `--dtype`).
pub fn resolve(spec: &Spec, force_dtype: Option<DType>, diags: &mut Diags) -> Model {
    let mut w = Walker {
        spec,
        tensors: Vec::new(),
        ties: Vec::new(),
        embeddings: Vec::new(),
        diags,
        keras_counts: HashMap::new(),
        flow: Vec::new(),
        allow: crate::lint::LintSet::default(),
        full: false,
    };
    let too_many = expanded(&spec.layers).err();
    let input = spec
        .input
        .as_ref()
        .map_or_else(Act::unknown, |i| Act::known(&i.value));
    match too_many {
        Some(d) => w.diags.push(*d),
        None => {
            w.walk(&spec.layers, &[], input, spec.dtype);
        }
    }
    if let Some(d) = force_dtype {
        for t in w.tensors.iter_mut().filter(|t| t.dtype != DType::I64) {
            t.dtype = d;
        }
    }

    for t in &w.tensors {
        if let Some(d) = value_problem(t) {
            w.diags.push(d.at_path(&t.layer));
        }
    }
    let mut seen: HashMap<&str, &TensorDecl> = HashMap::new();
    let mut reported = Vec::new();
    for t in &w.tensors {
        if let Some(first) = seen.insert(&t.name, t) {
            // One report per pair of clashing definitions, not one per tensor.
            if reported.contains(&(t.span, first.span)) {
                continue;
            }
            reported.push((t.span, first.span));
            w.diags.push(
                Diagnostic::error(
                    diag::DUPLICATE_TENSOR,
                    t.span,
                    format!("two tensors are named `{}`", t.name),
                )
                .label("second definition")
                .also(first.span, "first definition")
                .help("give one of the layers a different `name`")
                .at_path(&t.layer),
            );
        }
    }
    let total = w.tensors.iter().try_fold(0u64, |acc, t| {
        crate::layers::product(&t.shape)
            .and_then(|n| n.checked_mul(t.dtype.size()))
            .and_then(|b| acc.checked_add(b))
    });
    if total.is_none() {
        w.diags.push(
            Diagnostic::error(
                diag::SHAPE_OVERFLOW,
                spec.name.span,
                "the model's total size overflows 64 bits",
            )
            .label("this model")
            .help("check the layer sizes for a typo"),
        );
    }
    Model {
        name: spec.name.value.clone(),
        layout: spec.layout,
        seed: spec.seed,
        tensors: w.tensors,
        ties: w.ties,
        flow: w.flow,
        lint_levels: spec
            .lints
            .iter()
            .map(|(n, l)| (n.value.clone(), *l, n.span))
            .collect(),
    }
}

impl Walker<'_> {
    fn auto_name(&mut self, layer: &LayerSpec, index: usize) -> String {
        if let Some(n) = &layer.name {
            return n.value.clone();
        }
        match self.spec.layout {
            crate::model::Layout::Pytorch => index.to_string(),
            crate::model::Layout::Keras => {
                // Keras names unnamed layers by class: dense, dense_1, dense_2, ...
                let base = layer.kind.keras_name();
                let n = self.keras_counts.entry(base).or_insert(0);
                let name = if *n == 0 {
                    base.to_string()
                } else {
                    format!("{base}_{n}")
                };
                *n += 1;
                name
            }
        }
    }

    fn walk(&mut self, layers: &[LayerSpec], parent: &[String], mut act: Act, dtype: DType) -> Act {
        for (i, layer) in layers.iter().enumerate() {
            if self.full {
                return Act::poisoned();
            }
            let name = self.auto_name(layer, i);
            let dtype = layer.dtype.unwrap_or(dtype);
            if let Kind::Sequential(seq) = &layer.kind {
                let mut base = parent.to_vec();
                base.push(name);
                let copies = seq.repeat.as_ref().map(|r| r.value);
                let outer_allow = self.allow;
                self.allow = self.allow.union(layer.allow);
                for r in 0..copies.unwrap_or(1) {
                    let mut p = base.clone();
                    if copies.is_some() {
                        p.push(r.to_string());
                    }
                    let path = self.spec.layout.join(&p);
                    let problems = self.diags.len();
                    let residual = seq.residual;
                    self.flow.push(Step::Enter {
                        path: path.clone(),
                        residual,
                    });
                    let before = act.clone();
                    act = self.walk(&seq.layers, &p, act, dtype);
                    self.flow.push(Step::Exit {
                        path: path.clone(),
                        residual,
                    });
                    if residual {
                        if before.dims != act.dims && is_known(&before) && is_known(&act) {
                            self.diags.push(
                                Diagnostic::error(
                                    diag::SHAPE_MISMATCH,
                                    layer.type_span,
                                    format!(
                                        "residual block maps {} to {}; a residual add needs equal shapes",
                                        before.show(),
                                        act.show()
                                    ),
                                )
                                .label("residual block")
                                .help("make the block's last layer output its input size, or set `residual: false`")
                                .at_path(&path),
                            );
                        }
                        act = before;
                    }
                    // A broken block would report the same problems in every copy.
                    if self.diags.len() > problems || self.full {
                        break;
                    }
                }
                self.allow = outer_allow;
                continue;
            }
            let first_tensor = self.tensors.len();
            let ties_before = self.ties.len();
            let allow = self.allow.union(layer.allow);
            let mut cx = Cx {
                layout: self.spec.layout,
                dtype,
                seed: self.spec.seed,
                parent: parent.to_vec(),
                name,
                layer,
                defaults: &self.spec.defaults,
                tensors: &mut self.tensors,
                diags: self.diags,
                embeddings: &mut self.embeddings,
                ties: &mut self.ties,
                full: &mut self.full,
            };
            act = match &layer.kind {
                Kind::Dense(l) => l.resolve(&act, &mut cx),
                Kind::Conv(l) => l.resolve(&act, &mut cx),
                Kind::Embedding(l) => l.resolve(&act, &mut cx),
                Kind::LayerNorm(l) => l.resolve(&act, &mut cx),
                Kind::RmsNorm(l) => l.resolve(&act, &mut cx),
                Kind::BatchNorm(l) => l.resolve(&act, &mut cx),
                Kind::Recurrent(l) => l.resolve(&act, &mut cx),
                Kind::Attention(l) => l.resolve(&act, &mut cx),
                Kind::Pool(l) => l.resolve(&act, &mut cx),
                Kind::Activation { .. } | Kind::Dropout { .. } => act,
                Kind::Flatten => flatten(&act, &mut cx),
                Kind::GlobalAvgPool2d => global_pool(&act, &mut cx),
                Kind::Invalid => Act::poisoned(),
                Kind::Sequential(_) => unreachable!("handled above"),
            };
            let path = cx.path();
            self.flow.push(Step::Layer(LayerInfo {
                path,
                kind: layer.kind.type_name(),
                activation: layer.kind.activation(),
                tensors: (first_tensor..self.tensors.len()).collect(),
                tie: self.ties[ties_before..].first().map(|t| t.target.clone()),
                allow,
                span: layer.type_span,
            }));
        }
        act
    }
}

/// Largest working memory for one tensor computed whole (orthogonal, sparse).
pub const MAX_WHOLE_BYTES: u64 = 2 << 30;

/// A tensor whose values cannot be made: a structured initializer that needs more memory
/// than [`MAX_WHOLE_BYTES`], or parameters whose values overflow the dtype.
fn value_problem(t: &TensorDecl) -> Option<Diagnostic> {
    use crate::init::{num, Dist, Init};
    let numel = t.numel();
    let whole = match t.init {
        Init::Orthogonal { .. } => Some(numel.saturating_mul(8)),
        // f32 draws, then f64 values.
        Init::Sparse { .. } => Some(numel.saturating_mul(12)),
        _ => None,
    };
    if let Some(bytes) = whole.filter(|b| *b > MAX_WHOLE_BYTES) {
        return Some(
            Diagnostic::error(
                diag::INPUT_LIMIT,
                t.span,
                format!(
                    "`{}` computes `{}` {:?} whole, which needs {:.1} GiB, over the {} GiB limit",
                    t.choice.written,
                    t.name,
                    t.shape,
                    bytes as f64 / (1u64 << 30) as f64,
                    MAX_WHOLE_BYTES >> 30
                ),
            )
            .label("too large to compute whole")
            .help("use a random initializer that is drawn element by element (normal, uniform, glorot_*) for a tensor this large"),
        );
    }
    let max = match t.dtype {
        DType::F16 => 65504.0,
        DType::BF16 => 3.389_531_389_251_535_5e38,
        DType::F32 => f32::MAX as f64,
        DType::F64 => f64::MAX,
        DType::I64 => return None,
    };
    // Largest |x| the sampler can produce: inverse-CDF normals stay within 9 std.
    let (reach, width_ok) = match t.init.dist(t.fans) {
        Dist::Constant(v) => (v.abs(), true),
        Dist::Uniform { low, high } => (low.abs().max(high.abs()), (high - low).is_finite()),
        Dist::Normal { mean, std } => (mean.abs() + 9.0 * std, true),
        Dist::TruncatedNormal { low, high, .. } => (low.abs().max(high.abs()), true),
        Dist::Structured => match t.init {
            Init::Orthogonal { gain, .. } | Init::Identity { gain } => (gain.abs(), true),
            Init::Sparse { std, .. } => (9.0 * std, true),
            _ => (1.0, true),
        },
    };
    if reach.is_finite() && reach <= max && width_ok {
        return None;
    }
    Some(
        Diagnostic::error(
            diag::INVALID_PARAMETER,
            t.span,
            format!(
                "`{}` gives `{}` values beyond what {} holds (largest finite {}): the tensor would be inf or NaN",
                t.choice.written,
                t.name,
                t.dtype.name(),
                num(max)
            ),
        )
        .label(format!("values reach {}", num(reach)))
        .help("use parameters whose values fit the dtype (a bound or a std of a few units at most)"),
    )
}

fn is_known(a: &Act) -> bool {
    !a.open && a.dims.iter().all(Option::is_some)
}

fn flatten(act: &Act, cx: &mut Cx<'_>) -> Act {
    if !is_known(act) {
        return Act {
            poisoned: act.poisoned,
            ..Act::dims(vec![None])
        };
    }
    let dims: Vec<u64> = act.dims.iter().map(|d| d.unwrap_or(0)).collect();
    match crate::layers::product(&dims) {
        Some(n) => Act::known(&[n]),
        None => {
            cx.error(crate::layers::overflow(
                cx.layer.type_span,
                "the flattened size",
            ));
            Act::poisoned()
        }
    }
}

fn global_pool(act: &Act, cx: &mut Cx<'_>) -> Act {
    if act.open && act.dims.is_empty() {
        return Act {
            poisoned: act.poisoned,
            ..Act::dims(vec![None])
        };
    }
    if act.dims.len() != 3 {
        let d = Diagnostic::error(
            diag::SHAPE_MISMATCH,
            cx.layer.type_span,
            format!(
                "global_avg_pool2d expects an image input, but the previous layer gives {}",
                act.show()
            ),
        )
        .label("not an image")
        .help("pool after a conv2d");
        cx.error(d);
        return Act::poisoned();
    }
    let c = match cx.layout {
        crate::model::Layout::Pytorch => act.dims[0],
        crate::model::Layout::Keras => act.dims[2],
    };
    Act::dims(vec![c])
}
