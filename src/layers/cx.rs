//! What every layer type's file uses: the activation shape flowing between layers, and
//! [`Cx`], through which a layer declares its tensors with the framework's default
//! initializer per role.

use crate::diag::{self, Diagnostic, Diags};
use crate::init::{Flatten, Init, InitSpec};
use crate::model::{DType, Fans, FansFrom, InitChoice, InitSource, Layout, Role, TensorDecl, Tie};
use crate::source::Span;
use crate::spec::{Inits, LayerSpec};

/// The per-example activation shape flowing between layers (batch excluded).
#[derive(Clone, Debug, PartialEq)]
pub struct Act {
    /// Known dimensions (`None` = size unknown), in the layout's order.
    pub dims: Vec<Option<u64>>,
    /// More leading dimensions of unknown number and size may come before `dims`.
    pub open: bool,
    /// Unknown because an earlier layer has errors: later layers stay quiet about it.
    pub poisoned: bool,
}

impl Act {
    /// Nothing known (no `input`, or after an error).
    pub fn unknown() -> Act {
        Act {
            dims: Vec::new(),
            open: true,
            poisoned: false,
        }
    }

    /// Unknown because of an earlier error.
    pub fn poisoned() -> Act {
        Act {
            poisoned: true,
            ..Act::unknown()
        }
    }

    /// A shape of this rank with the given dimensions, rank known.
    pub fn dims(dims: Vec<Option<u64>>) -> Act {
        Act {
            dims,
            open: false,
            poisoned: false,
        }
    }

    /// A fully known shape.
    pub fn known(dims: &[u64]) -> Act {
        Act::dims(dims.iter().map(|&d| Some(d)).collect())
    }

    /// The last dimension (features / channels-last), if known.
    pub fn last(&self) -> Option<u64> {
        self.dims.last().copied().flatten()
    }

    /// The same shape with the last dimension replaced.
    pub fn with_last(&self, d: u64) -> Act {
        let mut a = self.clone();
        match a.dims.last_mut() {
            Some(l) => *l = Some(d),
            None => a.dims.push(Some(d)),
        }
        a
    }

    /// The shape as text: `[784]`, `[?, 3, 32, 32]`, `[…, 64]`.
    pub fn show(&self) -> String {
        let mut parts: Vec<String> = self
            .dims
            .iter()
            .map(|d| d.map_or("?".into(), |v| v.to_string()))
            .collect();
        if self.open {
            parts.insert(0, "…".into());
        }
        format!("[{}]", parts.join(", "))
    }
}

/// An embedding declared so far, for `tie:`.
#[derive(Clone, Debug)]
pub struct EmbeddingInfo {
    /// The layer path as the layout writes it.
    pub path: String,
    /// Its tensor's name.
    pub tensor: String,
    /// Rows.
    pub num: u64,
    /// Columns.
    pub dim: u64,
}

/// Everything a layer needs to declare its tensors.
pub struct Cx<'a> {
    /// Naming and storage convention.
    pub layout: Layout,
    /// The layer's element type.
    pub dtype: DType,
    /// The spec's seed.
    pub seed: u64,
    /// The spec's generator format.
    pub format: crate::init::Format,
    /// Path segments of the layer's parent.
    pub parent: Vec<String>,
    /// The layer's own name segment.
    pub name: String,
    /// The layer as written.
    pub layer: &'a LayerSpec,
    /// The spec's `defaults`.
    pub defaults: &'a Inits,
    /// Tensors declared so far.
    pub tensors: &'a mut Vec<TensorDecl>,
    /// Problems found so far.
    pub diags: &'a mut Diags,
    /// Embeddings declared so far.
    pub embeddings: &'a mut Vec<EmbeddingInfo>,
    /// Ties declared so far.
    pub ties: &'a mut Vec<Tie>,
    /// Set once the model has [`crate::model::MAX_TENSORS`] tensors (reported once).
    pub full: &'a mut bool,
    /// Under layout keras, the automatic name of the layer a `Bidirectional` wraps
    /// (`lstm_1`), which Keras draws from the wrapped class's counter.
    pub keras_wrapped: Option<String>,
    /// The spec's directory (`from_file` paths are relative to it).
    pub dir: &'a std::path::Path,
    /// The layer comes right after an embedding (a second one adds to the first).
    pub after_embedding: bool,
}

/// The framework's default for one tensor and a few words on where it comes from.
pub struct Default {
    /// The initializer.
    pub init: Init,
    /// The rule in the framework's words.
    pub rule: &'static str,
}

/// Shorthand for a [`Default`].
pub fn dflt(init: Init, rule: &'static str) -> Default {
    Default { init, rule }
}

impl Cx<'_> {
    /// The layer's path as the layout writes it.
    pub fn path(&self) -> String {
        let mut s = self.parent.clone();
        s.push(self.name.clone());
        self.layout.join(&s)
    }

    /// Records a problem of this layer.
    pub fn error(&mut self, d: Diagnostic) {
        let p = self.path();
        self.diags.push(d.at_path(&p));
    }

    /// Reports that the input size cannot be inferred; the help names the field to write.
    pub fn missing_input(&mut self, field: &str, input: &Act) {
        if input.poisoned {
            return;
        }
        let d = Diagnostic::error(
            diag::MISSING_INPUT_SIZE,
            self.layer.type_span,
            format!(
                "cannot infer `{field}` of this layer from its input {}",
                input.show()
            ),
        )
        .label("input size unknown here")
        .help(format!(
            "state it on the layer (`{field}: 256`) or give the model an `input:` shape"
        ));
        self.error(d);
    }

    /// The path of a tensor named `segments` under the layer's path.
    pub fn at(&self, segments: &[&str]) -> Vec<String> {
        let mut path = self.parent.clone();
        path.push(self.name.clone());
        path.extend(segments.iter().map(|s| s.to_string()));
        path
    }

    /// Declares a tensor named `segments` under the layer's path, with fans from the
    /// layer's meaning; returns its index in the model.
    pub fn tensor(
        &mut self,
        segments: &[&str],
        key: &'static str,
        role: Role,
        shape: Vec<u64>,
        fans: Fans,
        default: Default,
    ) -> Option<usize> {
        let path = self.at(segments);
        self.declare(Decl::new(path, key, role, shape, fans, default))
    }

    /// Declares a tensor at a full path (for layers that name siblings, such as stacked Keras RNNs).
    pub fn tensor_at(
        &mut self,
        path: Vec<String>,
        key: &'static str,
        role: Role,
        shape: Vec<u64>,
        fans: Fans,
        default: Default,
    ) -> Option<usize> {
        self.declare(Decl::new(path, key, role, shape, fans, default))
    }

    /// Declares a tensor; returns its index in the model, or `None` when it has a problem
    /// (reported) or the model is full.
    pub fn declare(&mut self, d: Decl) -> Option<usize> {
        let t = self.build(d)?;
        Some(self.push(t))
    }

    /// Adds a built tensor to the model; returns its index.
    pub fn push(&mut self, t: TensorDecl) -> usize {
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    /// The tensor a declaration makes (its initializer chosen and checked against its
    /// shape), without adding it: for tensors derived from others (weight_norm's g).
    pub fn build(&mut self, d: Decl) -> Option<TensorDecl> {
        if self.tensors.len() >= crate::model::MAX_TENSORS {
            if !std::mem::replace(self.full, true) {
                let e = Diagnostic::error(
                    diag::INPUT_LIMIT,
                    self.layer.type_span,
                    format!(
                        "the model passes {} tensors here",
                        crate::model::MAX_TENSORS
                    ),
                )
                .label("one tensor too many")
                .help("check `repeat` and `num_layers` for a typo; the largest real models have some 50,000 tensors");
                self.error(e);
            }
            return None;
        }
        let name = self.layout.join(&d.path);
        let dtype = d.dtype.unwrap_or(if d.role == Role::NumBatchesTracked {
            DType::I64
        } else {
            self.dtype
        });
        let keys = std::iter::once(d.key).chain(d.alias);
        let on_layer = keys.clone().find_map(|k| self.layer.inits.get(k));
        let chosen: Option<(&InitSpec, InitSource)> =
            on_layer.map(|i| (i, InitSource::Layer)).or_else(|| {
                keys.clone()
                    .find_map(|k| self.defaults.get(k))
                    .map(|i| (i, InitSource::Defaults))
            });
        // An initializer whose parameters read the fans is computed for this tensor.
        let computed;
        let chosen = match chosen {
            Some((spec, src)) if spec.deferred.is_some() => {
                let before = self.diags.len();
                computed = spec.for_fans(d.fans, self.layout, self.diags);
                if self.diags.len() > before {
                    let p = self.path();
                    for e in self.diags.since(before) {
                        if e.path.is_none() {
                            e.path = Some(p.clone());
                        }
                    }
                }
                match &computed {
                    Some(c) => Some((c, src)),
                    None => return None,
                }
            }
            other => other,
        };
        let seed = chosen.and_then(|(spec, _)| spec.seed);
        let span = chosen.map_or(self.layer.type_span, |(spec, _)| spec.span);
        // A written initializer, or the framework's (also for `default`, or a bare `seed:`).
        let (init, choice) =
            match chosen.and_then(|(spec, src)| Some((spec.init.clone()?, spec, src))) {
                Some((init, spec, source)) => (
                    init,
                    InitChoice {
                        written: spec.name.clone(),
                        source,
                        default_rule: None,
                    },
                ),
                None => (
                    d.default.init,
                    InitChoice {
                        written: "default".into(),
                        source: InitSource::Framework,
                        default_rule: Some(d.default.rule.into()),
                    },
                ),
            };
        let numel = product(&d.shape);
        if numel.and_then(|n| n.checked_mul(dtype.size())).is_none() {
            let e = Diagnostic::error(
                diag::SHAPE_OVERFLOW,
                self.layer.type_span,
                format!(
                    "tensor `{name}` of shape {:?} has more elements than fit in 64 bits",
                    d.shape
                ),
            )
            .label("sizes multiply past 2^64")
            .help("check the sizes of this layer for a typo");
            self.error(e);
            return None;
        }
        if let Some(msg) = init.shape_problem(&d.shape, d.channel_axes, dtype) {
            let e = Diagnostic::error(
                diag::IMPOSSIBLE_SHAPE,
                span,
                format!(
                    "`{}` cannot fill `{name}` of shape {:?}: {msg}",
                    choice.written, d.shape
                ),
            )
            .label("this initializer")
            .also(self.layer.type_span, "on this layer")
            .help(if dtype.is_float() {
                "choose an initializer for this shape, e.g. `glorot_uniform` or `zeros`"
            } else {
                "an integer tensor takes `zeros`, `ones`, `constant` or `relative_position_index` (of its size)"
            });
            self.error(e);
            return None;
        }
        // Values from a file: the source must hold this tensor, in this shape.
        let init = match init {
            Init::FromFile(v) => match v.bind(self.dir, &name, &d.shape, dtype) {
                Ok(bound) => Init::FromFile(Box::new(bound)),
                Err(msg) => {
                    let e = Diagnostic::error(diag::FROM_FILE, span, msg)
                        .label("this initializer")
                        .also(self.layer.type_span, "on this layer")
                        .help("name the source tensor with `tensor:`, or check `path` (relative to the spec)");
                    self.error(e);
                    return None;
                }
            },
            other => other,
        };
        let trainable = d.trainable
            && !matches!(
                d.role,
                Role::RunningMean | Role::RunningVar | Role::NumBatchesTracked | Role::Count
            );
        Some(TensorDecl {
            name,
            layer: self.path(),
            role: d.role,
            shape: d.shape,
            dtype,
            init,
            choice,
            fans: d.fans,
            fans_from: d.fans_from,
            reach: d
                .reach
                .unwrap_or((d.fans.fan_in as f64, d.fans.fan_out as f64)),
            channel_axes: d.channel_axes,
            trainable,
            zeroed: d.zeroed,
            seed: seed.unwrap_or(self.seed),
            format: self.format,
            span,
        })
    }
}

/// One tensor a layer declares: where, its role key and role, shape, fans, default
/// initializer, and the facts only some tensors have.
pub struct Decl {
    /// Full path segments.
    pub path: Vec<String>,
    /// The initializer role key that chooses its initializer (`""` for buffers: none).
    pub key: &'static str,
    /// Another key that chooses it when `key` is not written (`kernel_initializer` for a
    /// depthwise kernel).
    pub alias: Option<&'static str>,
    /// What it is to the layer.
    pub role: Role,
    /// Storage shape.
    pub shape: Vec<u64>,
    /// fan_in / fan_out.
    pub fans: Fans,
    /// The framework's initializer.
    pub default: Default,
    /// Where the fans come from.
    pub fans_from: FansFrom,
    /// Inputs per output and outputs per input by the layer's meaning (default: the fans).
    pub reach: Option<(f64, f64)>,
    /// Output and input channel axes of a convolution kernel.
    pub channel_axes: Option<(usize, usize)>,
    /// Whether it is trained (buffers never are).
    pub trainable: bool,
    /// A dtype of its own (integer buffers), instead of the layer's.
    pub dtype: Option<DType>,
    /// Elements zeroed after the initializer.
    pub zeroed: Option<std::ops::Range<u64>>,
}

impl Decl {
    /// A trainable tensor with fans from the layer's meaning.
    pub fn new(
        path: Vec<String>,
        key: &'static str,
        role: Role,
        shape: Vec<u64>,
        fans: Fans,
        default: Default,
    ) -> Decl {
        Decl {
            path,
            key,
            alias: None,
            role,
            shape,
            fans,
            default,
            fans_from: FansFrom::Layer,
            reach: None,
            channel_axes: None,
            trainable: true,
            dtype: None,
            zeroed: None,
        }
    }

    /// Fans taken from the stored shape, with the layer's meaning given apart: `inputs`
    /// summed into an output, `outputs` fed by an input (the signal prediction uses these).
    pub fn storage_fans_with(mut self, inputs: f64, outputs: f64) -> Decl {
        self.fans_from = FansFrom::Storage;
        self.reach = Some((inputs, outputs));
        self
    }

    /// A convolution kernel whose output and input channels lie on these storage axes.
    pub fn channels(mut self, out: usize, inp: usize) -> Decl {
        self.channel_axes = Some((out, inp));
        self
    }

    /// Fans taken from the stored shape, as the layout's framework takes them.
    pub fn storage_fans(mut self) -> Decl {
        self.fans_from = FansFrom::Storage;
        self
    }

    /// Stored as `dtype` whatever the layer's dtype.
    pub fn dtype(mut self, dtype: DType) -> Decl {
        self.dtype = Some(dtype);
        self
    }

    /// Not trained.
    pub fn frozen(mut self) -> Decl {
        self.trainable = false;
        self
    }
}

/// Orthogonal flattening for the layout.
pub fn orthogonal(layout: Layout) -> Init {
    Init::Orthogonal {
        gain: 1.0,
        flatten: match layout {
            Layout::Pytorch => Flatten::Trailing,
            Layout::Keras => Flatten::Leading,
        },
    }
}

/// Torch's Linear/Conv weight default: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)).
pub fn torch_weight_default() -> Default {
    dflt(
        Init::VarianceScaling {
            scale: 1.0 / 3.0,
            mode: crate::init::FanMode::FanIn,
            distribution: crate::init::VsDistribution::Uniform,
        },
        "torch: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))",
    )
}

/// Torch's Linear/Conv bias default: U(±1/sqrt(fan_in)) with the weight's fan_in.
pub fn torch_bias_default(fan_in: u64) -> Default {
    let b = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    dflt(
        Init::Uniform { low: -b, high: b },
        "torch: U(±1/sqrt(fan_in))",
    )
}

/// Keras' kernel default.
pub fn glorot_uniform() -> Default {
    dflt(
        Init::VarianceScaling {
            scale: 1.0,
            mode: crate::init::FanMode::FanAvg,
            distribution: crate::init::VsDistribution::Uniform,
        },
        "keras: glorot_uniform",
    )
}

/// Checked product of sizes; `None` on overflow.
pub fn product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

/// An overflow diagnostic for a layer.
pub fn overflow(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        diag::SHAPE_OVERFLOW,
        span,
        format!("{what} overflows 64 bits"),
    )
    .label("sizes multiply past 2^64")
    .help("check the sizes for a typo")
}
