//! Resolve: walk the layers in order, infer every input size, name every tensor as the
//! layout's framework does, pick each tensor's initializer, and check the whole.

use crate::diag::{self, Diagnostic};
use crate::layers::{Act, Cx, EmbeddingInfo, Kind};
use crate::model::{DType, LayerInfo, Model, Step, TensorDecl, Tie};
use crate::spec::{LayerSpec, Spec};
use std::collections::HashMap;

struct Walker<'a> {
    spec: &'a Spec,
    tensors: Vec<TensorDecl>,
    ties: Vec<Tie>,
    embeddings: Vec<EmbeddingInfo>,
    diags: &'a mut Vec<Diagnostic>,
    keras_counts: HashMap<&'static str, u64>,
    flow: Vec<Step>,
    allow: Vec<String>,
}

/// Resolves a spec into its model; problems go to `diags`.
///
/// `force_dtype` replaces every floating-point tensor's dtype (the CLI's `--dtype`).
pub fn resolve(spec: &Spec, force_dtype: Option<DType>, diags: &mut Vec<Diagnostic>) -> Model {
    let mut w = Walker {
        spec,
        tensors: Vec::new(),
        ties: Vec::new(),
        embeddings: Vec::new(),
        diags,
        keras_counts: HashMap::new(),
        flow: Vec::new(),
        allow: Vec::new(),
    };
    let input = spec
        .input
        .as_ref()
        .map_or_else(Act::unknown, |i| Act::known(&i.value));
    w.walk(&spec.layers, &[], input, spec.dtype);
    if let Some(d) = force_dtype {
        for t in w.tensors.iter_mut().filter(|t| t.dtype != DType::I64) {
            t.dtype = d;
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
            let name = self.auto_name(layer, i);
            let dtype = layer.dtype.unwrap_or(dtype);
            if let Kind::Sequential(seq) = &layer.kind {
                let mut base = parent.to_vec();
                base.push(name);
                let copies = seq.repeat.as_ref().map(|r| r.value);
                let outer_allow = self.allow.len();
                self.allow
                    .extend(layer.allow.iter().map(|a| a.value.clone()));
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
                    if self.diags.len() > problems {
                        break;
                    }
                }
                self.allow.truncate(outer_allow);
                continue;
            }
            let first_tensor = self.tensors.len();
            let ties_before = self.ties.len();
            let mut allow = self.allow.clone();
            allow.extend(layer.allow.iter().map(|a| a.value.clone()));
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
