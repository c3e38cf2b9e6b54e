//! Resolve: walk the layers in order, infer every input size, name every tensor as the
//! layout's framework does, pick each tensor's initializer, and check the whole.

use crate::diag::{self, Diagnostic, Diags};
use crate::layers::{Act, Block, Cx, EmbeddingInfo, Kind};
use crate::model::{
    DType, LayerInfo, Layout, Merge, Model, Step, TensorDecl, Tie, Topology, MAX_LAYERS,
};
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
            Kind::Block(seq) => {
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
            w.walk(&spec.layers, &[], input, spec.dtype, &mut 0);
        }
    }
    if let Some(d) = force_dtype {
        for t in w.tensors.iter_mut().filter(|t| t.dtype.is_float()) {
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
        format: spec.format,
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
    /// The layer's own path segment: its `name`, else what the framework would call it
    /// (its index in its list under pytorch, `dense_1` under keras).
    fn auto_name(&mut self, layer: &LayerSpec, index: usize) -> String {
        if let Some(n) = &layer.name {
            return n.value.clone();
        }
        match self.spec.layout {
            Layout::Pytorch => index.to_string(),
            Layout::Keras => {
                let base = match layer.ty {
                    Some(row) => layer.kind.keras_name(row),
                    None => "layer",
                };
                self.keras_uid(base)
            }
        }
    }

    /// Keras' automatic name for the next layer of class `base`: base, base_1, base_2, ...
    fn keras_uid(&mut self, base: &'static str) -> String {
        let n = self.keras_counts.entry(base).or_insert(0);
        let name = if *n == 0 {
            base.to_string()
        } else {
            format!("{base}_{n}")
        };
        *n += 1;
        name
    }

    /// Walks `layers` under `parent`; `counter` numbers unnamed layers of the list (a block
    /// with `scope: false` numbers its children on, as if they stood in this list).
    fn walk(
        &mut self,
        layers: &[LayerSpec],
        parent: &[String],
        mut act: Act,
        dtype: DType,
        counter: &mut usize,
    ) -> Act {
        // An embedding right after another adds to it (token + position), as documented.
        let mut after_embedding = false;
        for layer in layers {
            if self.full {
                return Act::poisoned();
            }
            let dtype = layer.dtype.unwrap_or(dtype);
            if let Kind::Block(block) = &layer.kind {
                act = self.block(layer, block, parent, act, dtype, counter);
                after_embedding = false;
                continue;
            }
            let this_after = std::mem::replace(
                &mut after_embedding,
                matches!(layer.kind, Kind::Embedding(_)),
            );
            // Keras names a Bidirectional wrapper `bidirectional` and the layer it wraps
            // from that layer's own counter (`forward_lstm_1`), even when the wrapper is named.
            let keras_wrapped = match (&layer.kind, self.spec.layout) {
                (Kind::Recurrent(r), Layout::Keras) if r.bidirectional => {
                    Some(self.keras_uid(r.cell.keras()))
                }
                _ => None,
            };
            let name = match (&keras_wrapped, &layer.name) {
                (Some(_), None) => self.keras_uid("bidirectional"),
                _ => self.auto_name(layer, *counter),
            };
            *counter += 1;
            let first_tensor = self.tensors.len();
            let ties_before = self.ties.len();
            let allow = self.allow.union(layer.allow);
            let input_tokens = tokens(&act);
            let mut cx = Cx {
                layout: self.spec.layout,
                dtype,
                seed: self.spec.seed,
                format: self.spec.format,
                parent: parent.to_vec(),
                name,
                layer,
                defaults: &self.spec.defaults,
                tensors: &mut self.tensors,
                diags: self.diags,
                embeddings: &mut self.embeddings,
                ties: &mut self.ties,
                full: &mut self.full,
                keras_wrapped,
                dir: &self.spec.dir,
                after_embedding: this_after,
            };
            act = layer.kind.resolve(&act, &mut cx);
            let path = cx.path();
            self.flow.push(Step::Layer(LayerInfo {
                path,
                kind: layer.ty.map_or("invalid", |t| t.name),
                class: layer.kind.class(),
                signal: layer.kind.signal(),
                activation: layer.kind.activation(),
                tensors: (first_tensor..self.tensors.len()).collect(),
                tie: self.ties[ties_before..].first().map(|t| t.target.clone()),
                allow,
                tokens: input_tokens,
                span: layer.type_span,
            }));
        }
        act
    }

    /// Walks a `sequential` or `parallel`: every copy of it between Enter and Exit
    /// markers, its branches between Branch markers, and its residual and merge applied
    /// to the shapes.
    fn block(
        &mut self,
        layer: &LayerSpec,
        block: &Block,
        parent: &[String],
        mut act: Act,
        dtype: DType,
        counter: &mut usize,
    ) -> Act {
        let mut base = parent.to_vec();
        if block.scope {
            let name = self.auto_name(layer, *counter);
            *counter += 1;
            base.push(name);
        }
        let copies = block.repeat.as_ref().map(|r| r.value);
        let outer_allow = self.allow;
        self.allow = self.allow.union(layer.allow);
        let topology = Topology {
            merge: block.parallel,
            residual: block.residual,
            causal: block.causal,
        };
        for r in 0..copies.unwrap_or(1) {
            let mut p = base.clone();
            if copies.is_some() {
                p.push(match &block.copy_names {
                    Some(names) => names[r as usize].clone(),
                    None => r.to_string(),
                });
            }
            let path = self.spec.layout.join(&p);
            let problems = self.diags.len();
            self.flow.push(Step::Enter {
                path: path.clone(),
                topology,
            });
            let before = act.clone();
            // A block with a scope numbers its children from 0; without one they go on
            // numbering in the enclosing list. A copy of a repeat has a segment of its own
            // (its index or copy_name): its children count from 0, and without a scope the
            // copy is one entry of the enclosing list.
            let mut own = 0usize;
            let numbering: &mut usize = if block.scope || copies.is_some() {
                if !block.scope {
                    *counter += 1;
                }
                &mut own
            } else {
                counter
            };
            // Children stamped for this copy, when they read the repeat's index.
            let children = block
                .copies
                .as_ref()
                .and_then(|c| c.get(r as usize))
                .unwrap_or(&block.layers);
            let (out, mut widths) = match block.parallel {
                None => {
                    let out = self.walk(children, &p, before.clone(), dtype, numbering);
                    let w = vec![self.channels(&out)];
                    (out, w)
                }
                Some(merge) => {
                    let mut outs = Vec::with_capacity(block.layers.len());
                    for (i, branch) in block.layers.iter().enumerate() {
                        if i > 0 {
                            self.flow.push(Step::Branch);
                        }
                        outs.push(self.walk(
                            std::slice::from_ref(branch),
                            &p,
                            before.clone(),
                            dtype,
                            numbering,
                        ));
                    }
                    let w = outs.iter().map(|o| self.channels(o)).collect();
                    (self.merge(merge, &outs, layer, &path), w)
                }
            };
            widths.push(self.channels(&before));
            let tokens = tokens(&before);
            act = match block.residual {
                None => out,
                Some(m) => self.merge(m, &[before, out], layer, &path),
            };
            self.flow.push(Step::Exit {
                path: path.clone(),
                topology,
                widths,
                tokens,
            });
            // A broken block would report the same problems in every copy.
            if self.diags.len() > problems || self.full {
                break;
            }
        }
        self.allow = outer_allow;
        act
    }

    /// The channel count of a stream: dim 0 under pytorch, the last under keras.
    fn channels(&self, a: &Act) -> Option<u64> {
        match self.spec.layout {
            Layout::Pytorch if !a.open => a.dims.first().copied().flatten(),
            Layout::Pytorch => None,
            Layout::Keras => a.last(),
        }
    }

    /// The shape `merge` gives `parts` (a residual's are its input, then its output).
    fn merge(&mut self, merge: Merge, parts: &[Act], layer: &LayerSpec, path: &str) -> Act {
        let poisoned = parts.iter().any(|p| p.poisoned);
        if parts.iter().any(|p| p.open && p.dims.is_empty()) && merge != Merge::Attention {
            return Act {
                poisoned,
                ..Act::unknown()
            };
        }
        // Reported; the walk goes on with the first part's shape (a residual's input), so
        // that later layers still report their own problems.
        let fail = |w: &mut Self, why: String, help: &str| {
            if !poisoned {
                w.diags.push(
                    Diagnostic::error(diag::SHAPE_MISMATCH, layer.type_span, why)
                        .label(format!("{} merge", merge.name()))
                        .help(help)
                        .at_path(path),
                );
            }
            parts[0].clone()
        };
        let shapes = || parts.iter().map(Act::show).collect::<Vec<_>>().join(", ");
        match merge {
            Merge::Attention => parts.last().cloned().unwrap_or_else(Act::unknown),
            Merge::Add | Merge::Multiply => {
                // numpy broadcasting: axes aligned from the right, a size of 1 stretches.
                let rank = parts.iter().map(|p| p.dims.len()).max().unwrap_or(0);
                let mut dims = vec![Some(1u64); rank];
                for p in parts {
                    let off = rank - p.dims.len();
                    for (i, d) in p.dims.iter().enumerate() {
                        let slot = &mut dims[off + i];
                        *slot = match (*slot, *d) {
                            (Some(1), x) | (x, Some(1)) => x,
                            (Some(a), Some(b)) if a == b => Some(a),
                            (None, _) | (_, None) => None,
                            _ => {
                                let help = if merge == Merge::Add {
                                    "make every branch (and a residual block's last layer) give the same shape"
                                } else {
                                    "a gate must match the stream, or have size 1 on the axes it spans (a squeeze-excitation gate is [C, 1, 1])"
                                };
                                return fail(
                                    self,
                                    format!("cannot {} shapes {}", merge.name(), shapes()),
                                    help,
                                );
                            }
                        };
                    }
                }
                Act {
                    open: parts.iter().any(|p| p.open),
                    poisoned,
                    dims,
                }
            }
            Merge::Concat => {
                let rank = parts[0].dims.len();
                if parts.iter().any(|p| p.dims.len() != rank) || rank == 0 {
                    return fail(
                        self,
                        format!("cannot concatenate shapes of different ranks: {}", shapes()),
                        "concatenated streams differ only in their channels",
                    );
                }
                let axis = match self.spec.layout {
                    Layout::Pytorch => 0,
                    Layout::Keras => rank - 1,
                };
                let mut dims = parts[0].dims.clone();
                for p in &parts[1..] {
                    for (i, d) in p.dims.iter().enumerate() {
                        dims[i] = if i == axis {
                            match (dims[i], *d) {
                                (Some(a), Some(b)) => a.checked_add(b),
                                _ => None,
                            }
                        } else {
                            match (dims[i], *d) {
                                (Some(a), Some(b)) if a != b => {
                                    return fail(
                                        self,
                                        format!(
                                            "cannot concatenate {} along the channels: other sizes differ",
                                            shapes()
                                        ),
                                        "concatenated streams differ only in their channels (resize or crop the skip first)",
                                    );
                                }
                                (a, b) => a.or(b),
                            }
                        };
                    }
                }
                Act {
                    open: parts.iter().any(|p| p.open),
                    poisoned,
                    dims,
                }
            }
        }
    }
}

/// The tokens of a stream: its next-to-last axis (a [T, D] sequence), when known.
fn tokens(a: &Act) -> Option<u64> {
    if a.open || a.dims.len() < 2 {
        return None;
    }
    a.dims[a.dims.len() - 2]
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
        DType::I64 | DType::I32 | DType::Bool => return None,
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
