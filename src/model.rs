//! The resolved model: an ordered list of tensor declarations, ready to build.

use crate::init::Init;
use crate::source::Span;
use serde::Serialize;

/// Most layers (each copy of a repeated block counted) a resolved model may have.
pub const MAX_LAYERS: u64 = 1_000_000;
/// Most tensors a resolved model may have (the largest real models have some 100,000).
pub const MAX_TENSORS: usize = 1_000_000;

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
    /// 64-bit signed integer (only BatchNorm's `num_batches_tracked`).
    I64,
}

impl DType {
    /// The names a spec may write (`dtype:`).
    pub const SPEC_NAMES: [&'static str; 4] = ["f32", "f16", "bf16", "f64"];

    /// Parses a spec dtype word.
    pub fn from_spec(s: &str) -> Option<DType> {
        Some(match s {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            "f64" => DType::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
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
            DType::I64 => "i64",
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
}

/// fan_in and fan_out of a tensor, from its layer's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fans {
    /// Inputs feeding one output unit.
    pub fan_in: u64,
    /// Outputs one input unit feeds.
    pub fan_out: u64,
}

/// How a tensor's initializer was chosen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InitChoice {
    /// The canonical name as written (`he_normal`), or `default`.
    pub written: String,
    /// Where it came from: `layer`, `defaults` or `framework`.
    pub source: &'static str,
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
    /// fan_in / fan_out from the layer's meaning.
    pub fans: Fans,
    /// The seed its values derive from.
    pub seed: u64,
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

/// One step of the model's data flow.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A layer.
    Layer(LayerInfo),
    /// Entering one copy of a `sequential`.
    Enter {
        /// The block's path.
        path: String,
        /// Whether its output is added to its input.
        residual: bool,
    },
    /// Leaving it.
    Exit {
        /// The block's path.
        path: String,
        /// Whether its output is added to its input.
        residual: bool,
    },
}

/// What the lints need to know about a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// The layer's path.
    pub path: String,
    /// The spec's `type`.
    pub kind: &'static str,
    /// The activation at its output (its own `activation`, or the `function` of an activation layer).
    pub activation: Option<&'static str>,
    /// Indices into [`Model::tensors`] of the tensors it declares.
    pub tensors: Vec<usize>,
    /// The embedding tensor it reuses, for a tied dense layer.
    pub tie: Option<String>,
    /// Lints allowed on it (its own `allow:` and its enclosing blocks').
    pub allow: crate::lint::LintSet,
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
