//! The resolved model: an ordered list of tensor declarations, ready to build.

use crate::init::Init;
use crate::source::Span;
use serde::Serialize;

/// Most layers (each copy of a repeated block counted) a resolved model may have.
pub const MAX_LAYERS: u64 = 1_000_000;
/// Most tensors a resolved model may have (the largest real models have some 50,000:
/// DeepSeek-V3 with every expert apart).
pub const MAX_TENSORS: usize = 250_000;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE binary64.
    F64,
    /// 64-bit signed integer (BatchNorm's `num_batches_tracked`, index buffers).
    I64,
    /// 32-bit signed integer (Keras' `count`, `parameter` tensors).
    I32,
    /// Boolean, one byte (`parameter` masks).
    Bool,
}

impl DType {
    /// The floating-point names a spec may write (`dtype:` of the spec or a layer).
    pub const SPEC_NAMES: [&'static str; 4] = ["f32", "f16", "bf16", "f64"];

    /// Every name a `parameter` may write: the floating-point ones and the integer ones.
    pub const PARAMETER_NAMES: [&'static str; 7] =
        ["f32", "f16", "bf16", "f64", "int32", "int64", "bool"];

    /// Parses a dtype word.
    pub fn from_spec(s: &str) -> Option<DType> {
        Some(match s {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            "f64" => DType::F64,
            "int32" => DType::I32,
            "int64" => DType::I64,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// Whether it holds floating-point values (`--dtype` replaces only these).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::Bool => 1,
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// The spec's word for it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::Bool => "bool",
        }
    }

    /// The safetensors header's word for it.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::Bool => "BOOL",
        }
    }
}

/// Tensor names and storage orders of one framework (SPEC.md section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `torch.nn` state_dict names, `[out, in, *k]` storage, channels-first activations.
    Pytorch,
    /// Keras 3 variable paths, `[*k, in, out]` storage, channels-last activations.
    Keras,
}

impl Layout {
    /// Joins path segments as the layout names tensors.
    pub fn join(self, segments: &[String]) -> String {
        segments.join(match self {
            Layout::Pytorch => ".",
            Layout::Keras => "/",
        })
    }
}

/// What a tensor is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A dense, conv or attention projection matrix.
    Kernel,
    /// A bias vector.
    Bias,
    /// A recurrent (hidden-to-hidden) kernel.
    RecurrentKernel,
    /// An embedding table.
    Embeddings,
    /// A norm's scale.
    Gamma,
    /// A norm's shift.
    Beta,
    /// BatchNorm running mean (buffer).
    RunningMean,
    /// BatchNorm running variance (buffer).
    RunningVar,
    /// BatchNorm step counter (buffer, int64).
    NumBatchesTracked,
    /// A `parameter`: a free tensor the model uses as it likes.
    Parameter,
    /// PReLU's learned slope.
    Alpha,
    /// A weight-normalized layer's magnitude g, computed from its direction v.
    WeightNormScale,
    /// A count of samples seen (Keras `Normalization`, int32).
    Count,
}

/// fan_in and fan_out of a tensor, from its layer's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fans {
    /// Inputs feeding one output unit.
    pub fan_in: u64,
    /// Outputs one input unit feeds.
    pub fan_out: u64,
}

/// Where a tensor's initializer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InitSource {
    /// Written on the layer.
    Layer,
    /// The spec's `defaults`.
    Defaults,
    /// The framework's own choice (`default`).
    Framework,
}

/// Where a tensor's fans come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FansFrom {
    /// The layer's meaning (a dense kernel's input and output sizes).
    Layer,
    /// The stored shape, as the layout's framework reads it (depthwise and transposed
    /// kernels, `parameter` tensors): what its users expect, stated in the summary.
    Storage,
    /// Written in the spec (`parameter.fans`).
    Spec,
}

/// How a tensor's initializer was chosen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InitChoice {
    /// The canonical name as written (`he_normal`), or `default`.
    pub written: String,
    /// Where it came from.
    pub source: InitSource,
    /// The framework rule `default` stands for, in words (`kaiming_uniform(a=sqrt(5))`).
    pub default_rule: Option<String>,
}

/// One tensor the model will hold.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDecl {
    /// Full name as the layout's framework names it (`h.0.attn.c_attn.weight`).
    pub name: String,
    /// The layer's path.
    pub layer: String,
    /// What it is to the layer.
    pub role: Role,
    /// Storage shape in the layout's order.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: DType,
    /// The initializer with every parameter filled in.
    pub init: Init,
    /// How the initializer was chosen.
    pub choice: InitChoice,
    /// fan_in / fan_out.
    pub fans: Fans,
    /// Where the fans come from.
    pub fans_from: FansFrom,
    /// Inputs summed into one output, and outputs one input feeds, by the layer's meaning
    /// (for the signal prediction; equal to the fans unless they come from storage).
    pub reach: (f64, f64),
    /// For a convolution kernel, the storage axes of its output and input channels (what
    /// `dirac` places its taps along); `None` for any other tensor.
    pub channel_axes: Option<(usize, usize)>,
    /// Whether training updates it (false for buffers and frozen tables).
    pub trainable: bool,
    /// Elements set to zero after the initializer (an embedding's `padding_idx` row).
    pub zeroed: Option<std::ops::Range<u64>>,
    /// The seed its values derive from.
    pub seed: u64,
    /// The generator format its values follow (the spec's `specc_format`).
    pub format: crate::init::Format,
    /// The spec text that defines it (the initializer if written, else the layer).
    pub span: Span,
}

impl TensorDecl {
    /// Number of elements (fits: checked when resolved).
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes of data.
    pub fn bytes(&self) -> u64 {
        self.numel() * self.dtype.size()
    }
}

/// A dense layer that reuses an embedding's matrix instead of owning one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tie {
    /// The name the tensor would have had (`lm_head.weight`).
    pub name: String,
    /// The tensor it reuses (`transformer.wte.weight`).
    pub target: String,
    /// The `tie:` value in the spec.
    #[serde(skip)]
    pub span: Span,
}

/// A resolved spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The spec's `name`.
    pub name: String,
    /// The generator format of every tensor (the spec's `specc_format`, default current).
    pub format: crate::init::Format,
    /// Naming and storage convention.
    pub layout: Layout,
    /// The model seed (after any override).
    pub seed: u64,
    /// The tensors, in spec order.
    pub tensors: Vec<TensorDecl>,
    /// Tied weights (not stored twice).
    pub ties: Vec<Tie>,
    /// The layers in the order data flows through them, for the lints.
    pub flow: Vec<Step>,
    /// Lint levels the spec sets (`lints:`).
    pub lint_levels: Vec<(String, crate::lint::Level, Span)>,
}

/// How a block combines its input and its branches' outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// Elementwise sum.
    Add,
    /// Joined along the channel axis.
    Concat,
    /// Elementwise product (size-1 axes broadcast).
    Multiply,
    /// softmax(q·kᵀ)·v: the last branch carries the values (or experts, for a router).
    Attention,
}

impl Merge {
    /// The spec's word.
    pub fn name(self) -> &'static str {
        match self {
            Merge::Add => "add",
            Merge::Concat => "concat",
            Merge::Multiply => "multiply",
            Merge::Attention => "attention",
        }
    }
}

/// A block's topology: how its branches read and combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// How several branches combine (`parallel`); `None` for one chain (`sequential`).
    pub merge: Option<Merge>,
    /// How the block's input joins the result (`residual`), if it does.
    pub residual: Option<Merge>,
    /// An attention merge whose queries see only earlier tokens (`causal: true`).
    pub causal: bool,
}

/// One step of the model's data flow, in order; blocks are bracketed by markers so that
/// passes over the flow follow branches and residuals with a stack.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A layer.
    Layer(LayerInfo),
    /// Entering a block (one copy of a repeated `sequential`, or a `parallel`): its
    /// input is what every branch reads.
    Enter {
        /// The block's path.
        path: String,
        /// How it combines.
        topology: Topology,
    },
    /// Between two branches of a `parallel`: the previous branch ends here, and the next
    /// starts again from the block's input.
    Branch,
    /// Leaving the block.
    Exit {
        /// The block's path.
        path: String,
        /// How it combines.
        topology: Topology,
        /// Channels of each branch's output, then of the block's input (a concat's weights).
        widths: Vec<Option<u64>>,
        /// Tokens of the block's input (its next-to-last axis), what an attention merge
        /// averages over.
        tokens: Option<u64>,
    },
}

/// What kind of layer it is, for the lints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerClass {
    /// Its kernels make its units differ (dense, conv, recurrent, attention).
    Weight,
    /// It normalizes the stream (layer, RMS, batch, group, instance norm).
    Norm,
    /// It looks rows up (the signal starts there).
    Embedding,
    /// A pointwise function (activation, PReLU).
    Pointwise,
    /// It only moves or reshapes values (pooling, flatten, dropout, ...).
    Shape,
    /// A free tensor the stream passes by unchanged.
    Parameter,
}

/// How the predicted signal passes through a layer (lint/signal.rs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// A linear map of its fan_in inputs (dense, conv): q = fan_in·E[w²]·E[x²] + E[b²],
    /// then its activation.
    Linear,
    /// Self-attention: the value projection, an average over the tokens (uniform
    /// attention at init), then the output projection.
    Attention {
        /// Queries see only earlier tokens.
        causal: bool,
    },
    /// Max pooling over windows of `window` values moved by `stride` (products over the
    /// spatial axes): an order statistic of the window.
    MaxPool {
        /// Values in a window.
        window: u64,
        /// Positions a window moves.
        stride: u64,
    },
    /// A recurrent cell: the input kernel, then tanh of a sigmoid-gated state (LSTM,
    /// GRU), or the simple cell's activation.
    Recurrent {
        /// A simple RNN's nonlinearity; `None` for a gated cell.
        simple: Option<crate::layers::Activation>,
    },
    /// Normalizes: the stream leaves with E[(offset + γ)²] + E[β²].
    Norm {
        /// Added to the stored scale (Gemma's RMSNorm applies 1 + w).
        offset: f64,
    },
    /// Looks up rows: the stream starts (or, after another embedding, adds) E[w²].
    Embedding,
    /// Applies a pointwise function.
    Activation(crate::layers::Activation),
    /// PReLU: slope `alpha` on the negative side.
    Prelu,
    /// Leaves the scale as it is.
    Pass,
}

/// What the lints need to know about a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// The layer's path.
    pub path: String,
    /// The spec's `type`.
    pub kind: &'static str,
    /// What kind of layer it is.
    pub class: LayerClass,
    /// How the signal passes through it.
    pub signal: Signal,
    /// The activation at its output (its own `activation`, or the `function` of an activation layer).
    pub activation: Option<crate::layers::Activation>,
    /// Indices into [`Model::tensors`] of the tensors it declares.
    pub tensors: Vec<usize>,
    /// The embedding tensor it reuses, for a tied dense layer.
    pub tie: Option<String>,
    /// Lints allowed on it (its own `allow:` and its enclosing blocks').
    pub allow: crate::lint::LintSet,
    /// Tokens of its input (the next-to-last axis), what attention averages over.
    pub tokens: Option<u64>,
    /// The `type` value in the spec.
    pub span: Span,
}

impl Model {
    /// Total elements of all stored tensors.
    pub fn total_params(&self) -> u64 {
        self.tensors.iter().map(TensorDecl::numel).sum()
    }

    /// Total data bytes of all stored tensors.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(TensorDecl::bytes).sum()
    }
}
