//! Layer types: one file per type, each reading its fields, computing its output shape,
//! and naming its tensors with the framework's default initializer per role.

mod attention;
mod conv;
mod dense;
mod embedding;
mod norm;
mod pool;
mod recurrent;
mod sequential;

pub use attention::Attention;
pub use conv::{Conv, Padding};
pub use dense::{Dense, KernelOrder};
pub use embedding::Embedding;
pub use norm::{BatchNorm, LayerNorm, RmsNorm};
pub use pool::Pool;
pub use recurrent::{Cell, Recurrent};
pub use sequential::Sequential;

use crate::diag::{self, Diagnostic, Diags};
use crate::init::{Flatten, Init, InitSpec};
use crate::model::{DType, Fans, InitChoice, Layout, Role, TensorDecl, Tie};
use crate::source::Span;
use crate::spec::{Fields, Inits, LayerSpec};

/// Every layer `type` (SPEC.md section 2).
pub const LAYER_TYPES: [&str; 17] = [
    "dense",
    "conv1d",
    "conv2d",
    "embedding",
    "layer_norm",
    "rms_norm",
    "batch_norm",
    "lstm",
    "gru",
    "multi_head_attention",
    "max_pool2d",
    "avg_pool2d",
    "activation",
    "dropout",
    "flatten",
    "global_avg_pool2d",
    "sequential",
];

/// Activation function names (SPEC.md section 2).
pub const ACTIVATIONS: [&str; 11] = [
    "linear",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
    "softmax",
];

/// A layer's type with its fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `dense`.
    Dense(Dense),
    /// `conv1d`, `conv2d`.
    Conv(Conv),
    /// `embedding`.
    Embedding(Embedding),
    /// `layer_norm`.
    LayerNorm(LayerNorm),
    /// `rms_norm`.
    RmsNorm(RmsNorm),
    /// `batch_norm`.
    BatchNorm(BatchNorm),
    /// `lstm`, `gru`.
    Recurrent(Recurrent),
    /// `multi_head_attention`.
    Attention(Attention),
    /// `max_pool2d`, `avg_pool2d`.
    Pool(Pool),
    /// `activation`.
    Activation {
        /// The function.
        function: &'static str,
    },
    /// `dropout`.
    Dropout {
        /// Drop probability.
        rate: f64,
    },
    /// `flatten`.
    Flatten,
    /// `global_avg_pool2d`.
    GlobalAvgPool2d,
    /// `sequential`.
    Sequential(Sequential),
    /// A layer that could not be read; its output is unknown and raises no further errors.
    Invalid,
}

impl Kind {
    /// The Keras class name in snake_case, used for automatic names under layout keras.
    pub fn keras_name(&self) -> &'static str {
        // Keras' names where they differ from the spec's words.
        match self {
            Kind::LayerNorm(_) => "layer_normalization",
            Kind::RmsNorm(_) => "rms_normalization",
            Kind::BatchNorm(_) => "batch_normalization",
            Kind::Pool(p) if p.max => "max_pooling2d",
            Kind::Pool(_) => "average_pooling2d",
            Kind::GlobalAvgPool2d => "global_average_pooling2d",
            Kind::Invalid => "layer",
            _ => self.type_name(),
        }
    }

    /// The spec's `type` word.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Dense(_) => "dense",
            Kind::Conv(c) if c.rank == 1 => "conv1d",
            Kind::Conv(_) => "conv2d",
            Kind::Embedding(_) => "embedding",
            Kind::LayerNorm(_) => "layer_norm",
            Kind::RmsNorm(_) => "rms_norm",
            Kind::BatchNorm(_) => "batch_norm",
            Kind::Recurrent(r) if r.cell == Cell::Lstm => "lstm",
            Kind::Recurrent(_) => "gru",
            Kind::Attention(_) => "multi_head_attention",
            Kind::Pool(p) if p.max => "max_pool2d",
            Kind::Pool(_) => "avg_pool2d",
            Kind::Activation { .. } => "activation",
            Kind::Dropout { .. } => "dropout",
            Kind::Flatten => "flatten",
            Kind::GlobalAvgPool2d => "global_avg_pool2d",
            Kind::Sequential(_) => "sequential",
            Kind::Invalid => "invalid",
        }
    }

    /// The activation applied at the layer's output, if any.
    pub fn activation(&self) -> Option<&'static str> {
        match self {
            Kind::Dense(d) => d.activation,
            Kind::Conv(c) => c.activation,
            Kind::Activation { function } => Some(function),
            _ => None,
        }
    }
}

/// The initializer role keys a layer type takes.
pub fn init_keys(ty: &str) -> &'static [&'static str] {
    match ty {
        "dense" | "conv1d" | "conv2d" | "multi_head_attention" => {
            &["kernel_initializer", "bias_initializer"]
        }
        "embedding" => &["embeddings_initializer"],
        "layer_norm" | "batch_norm" => &["gamma_initializer", "beta_initializer"],
        "rms_norm" => &["gamma_initializer"],
        "lstm" | "gru" => &[
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
        ],
        _ => &[],
    }
}

/// Reads the fields of a layer of type `ty`.
pub fn lower(ty: &'static str, f: &mut Fields<'_>, layout: Layout, path: &str) -> Option<Kind> {
    Some(match ty {
        "dense" => Kind::Dense(Dense::lower(f)?),
        "conv1d" => Kind::Conv(Conv::lower(f, 1)?),
        "conv2d" => Kind::Conv(Conv::lower(f, 2)?),
        "embedding" => Kind::Embedding(Embedding::lower(f)?),
        "layer_norm" => Kind::LayerNorm(LayerNorm::lower(f, layout)?),
        "rms_norm" => Kind::RmsNorm(RmsNorm::lower(f, layout)?),
        "batch_norm" => Kind::BatchNorm(BatchNorm::lower(f, layout)?),
        "lstm" => Kind::Recurrent(Recurrent::lower(f, Cell::Lstm)?),
        "gru" => Kind::Recurrent(Recurrent::lower(f, Cell::Gru)?),
        "multi_head_attention" => Kind::Attention(Attention::lower(f)?),
        "max_pool2d" => Kind::Pool(Pool::lower(f, true)?),
        "avg_pool2d" => Kind::Pool(Pool::lower(f, false)?),
        "activation" => {
            let function = match f.choice("function", &ACTIVATIONS) {
                Some(s) => s.value,
                None => {
                    if f.node("function").is_none() {
                        f.missing("function", "relu");
                    }
                    return None;
                }
            };
            Kind::Activation { function }
        }
        "dropout" => {
            let rate = f.f64("rate");
            if let Some(r) = &rate {
                if !(0.0..1.0).contains(&r.value) {
                    f.diags.push(
                        Diagnostic::error(
                            diag::INVALID_VALUE,
                            r.span,
                            format!("dropout `rate` must be in [0, 1), got {}", r.value),
                        )
                        .label("out of range")
                        .help("write the drop probability, e.g. `rate: 0.1`"),
                    );
                }
            }
            Kind::Dropout {
                rate: rate.map_or(0.5, |r| r.value),
            }
        }
        "flatten" => Kind::Flatten,
        "global_avg_pool2d" => Kind::GlobalAvgPool2d,
        "sequential" => Kind::Sequential(Sequential::lower(f, layout, path)?),
        _ => return None,
    })
}

/// Reads an optional `activation` field.
pub(crate) fn activation_field(f: &mut Fields<'_>) -> Option<&'static str> {
    f.choice("activation", &ACTIVATIONS).map(|s| match s.value {
        "swish" => "silu",
        v => v,
    })
}

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

    /// Declares a tensor named `segments` under the layer's path.
    pub fn tensor(
        &mut self,
        segments: &[&str],
        key: &'static str,
        role: Role,
        shape: Vec<u64>,
        fans: Fans,
        default: Default,
    ) {
        let mut path = self.parent.clone();
        path.push(self.name.clone());
        path.extend(segments.iter().map(|s| s.to_string()));
        self.tensor_at(path, key, role, shape, fans, default);
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
    ) {
        if self.tensors.len() >= crate::model::MAX_TENSORS {
            if !std::mem::replace(self.full, true) {
                let d = Diagnostic::error(
                    diag::INPUT_LIMIT,
                    self.layer.type_span,
                    format!(
                        "the model passes {} tensors here",
                        crate::model::MAX_TENSORS
                    ),
                )
                .label("one tensor too many")
                .help("check `repeat` and `num_layers` for a typo; the largest real models have some 100,000 tensors");
                self.error(d);
            }
            return;
        }
        let name = self.layout.join(&path);
        let dtype = if role == Role::NumBatchesTracked {
            DType::I64
        } else {
            self.dtype
        };
        let chosen: Option<(&InitSpec, &'static str)> = self
            .layer
            .inits
            .get(key)
            .map(|i| (i, "layer"))
            .or_else(|| self.defaults.get(key).map(|i| (i, "defaults")));
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
                    default.init,
                    InitChoice {
                        written: "default".into(),
                        source: "framework",
                        default_rule: Some(default.rule.into()),
                    },
                ),
            };
        let numel = product(&shape);
        if numel.and_then(|n| n.checked_mul(dtype.size())).is_none() {
            let d = Diagnostic::error(
                diag::SHAPE_OVERFLOW,
                self.layer.type_span,
                format!("tensor `{name}` of shape {shape:?} has more elements than fit in 64 bits"),
            )
            .label("sizes multiply past 2^64")
            .help("check the sizes of this layer for a typo");
            self.error(d);
            return;
        }
        if let Some(msg) = shape_problem(&init, &shape, role, self.layout) {
            let d = Diagnostic::error(
                diag::IMPOSSIBLE_SHAPE,
                span,
                format!(
                    "`{}` cannot fill `{name}` of shape {shape:?}: {msg}",
                    choice.written
                ),
            )
            .label("this initializer")
            .also(self.layer.type_span, "on this layer")
            .help("choose an initializer for this shape, e.g. `glorot_uniform` or `zeros`");
            self.error(d);
            return;
        }
        self.tensors.push(TensorDecl {
            name,
            layer: self.path(),
            role,
            shape,
            dtype,
            init,
            choice,
            fans,
            seed: seed.unwrap_or(self.seed),
            span,
        });
    }
}

fn shape_problem(init: &Init, shape: &[u64], role: Role, layout: Layout) -> Option<String> {
    match init {
        Init::Identity { .. } if shape.len() != 2 => Some(format!(
            "it needs a matrix (2 dimensions), this has {}",
            shape.len()
        )),
        Init::Orthogonal { .. } if shape.len() < 2 => Some("it needs at least 2 dimensions".into()),
        Init::Sparse { .. } if shape.len() != 2 => Some(format!(
            "it needs a matrix (2 dimensions), this has {}",
            shape.len()
        )),
        Init::Dirac { .. } if !(3..=5).contains(&shape.len()) || role != Role::Kernel => {
            Some("it needs a convolution kernel (3 to 5 dimensions)".into())
        }
        Init::Dirac { groups } if !out_channels(shape, layout).is_multiple_of(*groups) => {
            Some(format!(
                "{} output channels do not divide into {groups} groups",
                out_channels(shape, layout)
            ))
        }
        Init::UnitForgetBias { units } if shape.iter().product::<u64>() != 4 * units => {
            Some("it fills an LSTM bias of 4·units".into())
        }
        _ => None,
    }
}

/// Output channels of a stored conv kernel: `[out, in, *k]` or `[*k, in, out]`.
fn out_channels(shape: &[u64], layout: Layout) -> u64 {
    match layout {
        Layout::Pytorch => shape[0],
        Layout::Keras => shape[shape.len() - 1],
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
