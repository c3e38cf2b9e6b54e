//! Layer types: one file per type, each reading its fields, computing its output shape,
//! and naming its tensors with the framework's default initializer per role.
//!
//! A layer type is its file, one row of [`LAYERS`] (the spec's word, its initializer
//! roles, its Keras class name, the layouts it exists in) and one [`Kind`] variant. Every
//! per-type fact the rest of specc needs is an exhaustive method of [`Kind`] ([`Kind::class`],
//! [`Kind::signal`], [`Kind::activation`], [`Kind::resolve`]), so a new variant is a compile
//! error wherever a fact about it is missing.

mod activation;
mod attention;
mod block;
mod conv;
mod conv_transpose;
mod cx;
mod dense;
mod depthwise;
mod embedding;
mod norm;
mod parameter;
mod pointwise;
mod pool;
mod recurrent;
mod shape;

pub use activation::Activation;
pub use attention::Attention;
pub use block::Block;
pub use conv::{Conv, Padding};
pub use conv_transpose::ConvTranspose;
pub use cx::{
    dflt, glorot_uniform, orthogonal, overflow, product, torch_bias_default, torch_weight_default,
    Act, Cx, Decl, Default, EmbeddingInfo,
};
pub use dense::{Dense, KernelOrder};
pub use depthwise::{Depthwise, Separable};
pub use embedding::Embedding;
pub use norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Normalization, RmsNorm};
pub use parameter::Parameter;
pub use pointwise::{Dropout, Prelu};
pub use pool::{AdaptivePool, GlobalPool, Pool, PoolOp};
pub use recurrent::{Cell, Recurrent};
pub use shape::{Flatten, Permute, Reshape, Upsample, ZeroPad};

use crate::model::{LayerClass, Layout, Signal};
use crate::spec::Fields;

/// What a layer's fields are read with.
#[derive(Clone, Copy)]
pub struct Lower<'a> {
    /// The spec's layout.
    pub layout: Layout,
    /// The layer's path as written (for a block's children).
    pub path: &'a str,
    /// The spec's variables (a repeat stamps copies of its children with them).
    pub vars: &'a crate::spec::expr::Vars,
    /// The repeat indices bound around the layer.
    pub scope: &'a crate::spec::expr::Scope,
    /// Layers stamped so far by repeats whose children read their index.
    pub stamped: &'a std::cell::Cell<u64>,
}

/// One layer type: everything about it that is not in its file.
pub struct LayerType {
    /// The spec's `type` word.
    pub name: &'static str,
    /// A smallest valid layer of the type, as YAML (help lines, `specc schema`).
    pub example: &'static str,
    /// The initializer role keys it takes.
    pub roles: &'static [&'static str],
    /// Keras' class name in snake_case: automatic names under layout keras (`dense_1`).
    pub keras: &'static str,
    /// The only layout whose framework has it, and what to do in the other one (a phrase
    /// that follows "under layout …,").
    pub only: Option<(Layout, &'static str)>,
    /// One line for the docs.
    pub summary: &'static str,
    /// Reads its fields.
    pub lower: fn(&mut Fields<'_>, &Lower<'_>) -> Option<Kind>,
}

const KB: &[&str] = &["kernel_initializer", "bias_initializer"];
const NORM: &[&str] = &["gamma_initializer", "beta_initializer"];
const RNN: &[&str] = &[
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
];
const NONE: &[&str] = &[];

/// Every layer `type` (SPEC.md sections 2 and 8), in the order the docs list them.
pub const LAYERS: &[LayerType] = &[
    LayerType {
        name: "dense",
        example: "{type: dense, units: 64}",
        roles: KB,
        keras: "dense",
        only: None,
        summary: "nn.Linear / Dense (and transformers' GPT-2 Conv1D with `kernel_order: in_out`)",
        lower: |f, _| Some(Kind::Dense(Dense::lower(f)?)),
    },
    LayerType {
        name: "conv1d",
        example: "{type: conv1d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv1d",
        only: None,
        summary: "nn.Conv1d / Conv1D",
        lower: |f, _| Some(Kind::Conv(Conv::lower(f, 1)?)),
    },
    LayerType {
        name: "conv2d",
        example: "{type: conv2d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv2d",
        only: None,
        summary: "nn.Conv2d / Conv2D",
        lower: |f, _| Some(Kind::Conv(Conv::lower(f, 2)?)),
    },
    LayerType {
        name: "conv3d",
        example: "{type: conv3d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv3d",
        only: None,
        summary: "nn.Conv3d / Conv3D",
        lower: |f, _| Some(Kind::Conv(Conv::lower(f, 3)?)),
    },
    LayerType {
        name: "conv_transpose1d",
        example: "{type: conv_transpose1d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv1d_transpose",
        only: None,
        summary: "nn.ConvTranspose1d / Conv1DTranspose",
        lower: |f, l| Some(Kind::ConvTranspose(ConvTranspose::lower(f, 1, l.layout)?)),
    },
    LayerType {
        name: "conv_transpose2d",
        example: "{type: conv_transpose2d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv2d_transpose",
        only: None,
        summary: "nn.ConvTranspose2d / Conv2DTranspose",
        lower: |f, l| Some(Kind::ConvTranspose(ConvTranspose::lower(f, 2, l.layout)?)),
    },
    LayerType {
        name: "conv_transpose3d",
        example: "{type: conv_transpose3d, filters: 16, kernel_size: 3}",
        roles: KB,
        keras: "conv3d_transpose",
        only: None,
        summary: "nn.ConvTranspose3d / Conv3DTranspose",
        lower: |f, l| Some(Kind::ConvTranspose(ConvTranspose::lower(f, 3, l.layout)?)),
    },
    LayerType {
        name: "depthwise_conv2d",
        example: "{type: depthwise_conv2d, kernel_size: 3}",
        roles: &[
            "depthwise_initializer",
            "kernel_initializer",
            "bias_initializer",
        ],
        keras: "depthwise_conv2d",
        only: None,
        summary: "a Conv2d with groups = in_channels / DepthwiseConv2D",
        lower: |f, _| Some(Kind::Depthwise(Depthwise::lower(f)?)),
    },
    LayerType {
        name: "separable_conv2d",
        example: "{type: separable_conv2d, filters: 16, kernel_size: 3}",
        roles: &[
            "depthwise_initializer",
            "pointwise_initializer",
            "bias_initializer",
        ],
        keras: "separable_conv2d",
        only: Some((
            Layout::Keras,
            "write a `depthwise_conv2d` with `use_bias: false`, then a `conv2d` with `kernel_size: 1`",
        )),
        summary: "SeparableConv2D (keras only)",
        lower: |f, _| Some(Kind::Separable(Separable::lower(f)?)),
    },
    LayerType {
        name: "embedding",
        example: "{type: embedding, num_embeddings: 1000, embedding_dim: 64}",
        roles: &["embeddings_initializer"],
        keras: "embedding",
        only: None,
        summary: "nn.Embedding / Embedding",
        lower: |f, _| Some(Kind::Embedding(Embedding::lower(f)?)),
    },
    LayerType {
        name: "layer_norm",
        example: "{type: layer_norm}",
        roles: NORM,
        keras: "layer_normalization",
        only: None,
        summary: "nn.LayerNorm / LayerNormalization",
        lower: |f, l| Some(Kind::LayerNorm(LayerNorm::lower(f, l.layout)?)),
    },
    LayerType {
        name: "rms_norm",
        example: "{type: rms_norm}",
        roles: &["gamma_initializer"],
        keras: "rms_normalization",
        only: None,
        summary: "nn.RMSNorm / RMSNormalization",
        lower: |f, l| Some(Kind::RmsNorm(RmsNorm::lower(f, l.layout)?)),
    },
    LayerType {
        name: "batch_norm",
        example: "{type: batch_norm}",
        roles: NORM,
        keras: "batch_normalization",
        only: None,
        summary: "nn.BatchNorm1d/2d/3d / BatchNormalization",
        lower: |f, l| Some(Kind::BatchNorm(BatchNorm::lower(f, l.layout)?)),
    },
    LayerType {
        name: "group_norm",
        example: "{type: group_norm, num_groups: 4}",
        roles: NORM,
        keras: "group_normalization",
        only: None,
        summary: "nn.GroupNorm / GroupNormalization",
        lower: |f, l| Some(Kind::GroupNorm(GroupNorm::lower(f, l.layout)?)),
    },
    LayerType {
        name: "instance_norm",
        example: "{type: instance_norm}",
        roles: NORM,
        keras: "group_normalization",
        only: None,
        summary: "nn.InstanceNorm1d/2d/3d / GroupNormalization(groups=-1)",
        lower: |f, l| Some(Kind::InstanceNorm(InstanceNorm::lower(f, l.layout)?)),
    },
    LayerType {
        name: "normalization",
        example: "{type: normalization}",
        roles: NONE,
        keras: "normalization",
        only: Some((
            Layout::Keras,
            "normalize the data before the model, or write a `batch_norm` (its running statistics)",
        )),
        summary: "Normalization, the preprocessing layer's state (keras only)",
        lower: |f, _| Some(Kind::Normalization(Normalization::lower(f)?)),
    },
    LayerType {
        name: "prelu",
        example: "{type: prelu}",
        roles: &["alpha_initializer"],
        keras: "p_re_lu",
        only: None,
        summary: "nn.PReLU / PReLU",
        lower: |f, l| Some(Kind::Prelu(Prelu::lower(f, l.layout)?)),
    },
    LayerType {
        name: "lstm",
        example: "{type: lstm, units: 64}",
        roles: RNN,
        keras: "lstm",
        only: None,
        summary: "nn.LSTM / LSTM (stacked, bidirectional)",
        lower: |f, l| Some(Kind::Recurrent(Recurrent::lower(f, l.layout, Cell::Lstm)?)),
    },
    LayerType {
        name: "gru",
        example: "{type: gru, units: 64}",
        roles: RNN,
        keras: "gru",
        only: None,
        summary: "nn.GRU / GRU",
        lower: |f, l| Some(Kind::Recurrent(Recurrent::lower(f, l.layout, Cell::Gru)?)),
    },
    LayerType {
        name: "rnn",
        example: "{type: rnn, units: 64}",
        roles: RNN,
        keras: "simple_rnn",
        only: None,
        summary: "nn.RNN / SimpleRNN (tanh or relu)",
        lower: |f, l| Some(Kind::Recurrent(Recurrent::lower(f, l.layout, Cell::Rnn)?)),
    },
    LayerType {
        name: "multi_head_attention",
        example: "{type: multi_head_attention, num_heads: 4}",
        roles: KB,
        keras: "multi_head_attention",
        only: None,
        summary: "nn.MultiheadAttention / MultiHeadAttention",
        lower: |f, l| Some(Kind::Attention(Attention::lower(f, l.layout)?)),
    },
    LayerType {
        name: "max_pool1d",
        example: "{type: max_pool1d, pool_size: 2}",
        roles: NONE,
        keras: "max_pooling1d",
        only: None,
        summary: "nn.MaxPool1d / MaxPooling1D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Max, 1)?)),
    },
    LayerType {
        name: "max_pool2d",
        example: "{type: max_pool2d, pool_size: 2}",
        roles: NONE,
        keras: "max_pooling2d",
        only: None,
        summary: "nn.MaxPool2d / MaxPooling2D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Max, 2)?)),
    },
    LayerType {
        name: "max_pool3d",
        example: "{type: max_pool3d, pool_size: 2}",
        roles: NONE,
        keras: "max_pooling3d",
        only: None,
        summary: "nn.MaxPool3d / MaxPooling3D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Max, 3)?)),
    },
    LayerType {
        name: "avg_pool1d",
        example: "{type: avg_pool1d, pool_size: 2}",
        roles: NONE,
        keras: "average_pooling1d",
        only: None,
        summary: "nn.AvgPool1d / AveragePooling1D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Avg, 1)?)),
    },
    LayerType {
        name: "avg_pool2d",
        example: "{type: avg_pool2d, pool_size: 2}",
        roles: NONE,
        keras: "average_pooling2d",
        only: None,
        summary: "nn.AvgPool2d / AveragePooling2D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Avg, 2)?)),
    },
    LayerType {
        name: "avg_pool3d",
        example: "{type: avg_pool3d, pool_size: 2}",
        roles: NONE,
        keras: "average_pooling3d",
        only: None,
        summary: "nn.AvgPool3d / AveragePooling3D",
        lower: |f, _| Some(Kind::Pool(Pool::lower(f, PoolOp::Avg, 3)?)),
    },
    LayerType {
        name: "adaptive_avg_pool1d",
        example: "{type: adaptive_avg_pool1d, output_size: 1}",
        roles: NONE,
        keras: "adaptive_average_pooling1d",
        only: None,
        summary: "nn.AdaptiveAvgPool1d / AdaptiveAveragePooling1D",
        lower: |f, _| Some(Kind::AdaptivePool(AdaptivePool::lower(f, PoolOp::Avg, 1)?)),
    },
    LayerType {
        name: "adaptive_avg_pool2d",
        example: "{type: adaptive_avg_pool2d, output_size: 1}",
        roles: NONE,
        keras: "adaptive_average_pooling2d",
        only: None,
        summary: "nn.AdaptiveAvgPool2d / AdaptiveAveragePooling2D",
        lower: |f, _| Some(Kind::AdaptivePool(AdaptivePool::lower(f, PoolOp::Avg, 2)?)),
    },
    LayerType {
        name: "adaptive_avg_pool3d",
        example: "{type: adaptive_avg_pool3d, output_size: 1}",
        roles: NONE,
        keras: "adaptive_average_pooling3d",
        only: None,
        summary: "nn.AdaptiveAvgPool3d / AdaptiveAveragePooling3D",
        lower: |f, _| Some(Kind::AdaptivePool(AdaptivePool::lower(f, PoolOp::Avg, 3)?)),
    },
    LayerType {
        name: "adaptive_max_pool2d",
        example: "{type: adaptive_max_pool2d, output_size: 1}",
        roles: NONE,
        keras: "adaptive_max_pooling2d",
        only: None,
        summary: "nn.AdaptiveMaxPool2d / AdaptiveMaxPooling2D",
        lower: |f, _| Some(Kind::AdaptivePool(AdaptivePool::lower(f, PoolOp::Max, 2)?)),
    },
    LayerType {
        name: "global_avg_pool1d",
        example: "{type: global_avg_pool1d}",
        roles: NONE,
        keras: "global_average_pooling1d",
        only: None,
        summary: "mean over the sequence / GlobalAveragePooling1D",
        lower: |_, _| Some(Kind::GlobalPool(GlobalPool::new(PoolOp::Avg, 1))),
    },
    LayerType {
        name: "global_avg_pool2d",
        example: "{type: global_avg_pool2d}",
        roles: NONE,
        keras: "global_average_pooling2d",
        only: None,
        summary: "mean over H, W / GlobalAveragePooling2D",
        lower: |_, _| Some(Kind::GlobalPool(GlobalPool::new(PoolOp::Avg, 2))),
    },
    LayerType {
        name: "global_avg_pool3d",
        example: "{type: global_avg_pool3d}",
        roles: NONE,
        keras: "global_average_pooling3d",
        only: None,
        summary: "mean over D, H, W / GlobalAveragePooling3D",
        lower: |_, _| Some(Kind::GlobalPool(GlobalPool::new(PoolOp::Avg, 3))),
    },
    LayerType {
        name: "global_max_pool1d",
        example: "{type: global_max_pool1d}",
        roles: NONE,
        keras: "global_max_pooling1d",
        only: None,
        summary: "max over the sequence / GlobalMaxPooling1D",
        lower: |_, _| Some(Kind::GlobalPool(GlobalPool::new(PoolOp::Max, 1))),
    },
    LayerType {
        name: "global_max_pool2d",
        example: "{type: global_max_pool2d}",
        roles: NONE,
        keras: "global_max_pooling2d",
        only: None,
        summary: "max over H, W / GlobalMaxPooling2D",
        lower: |_, _| Some(Kind::GlobalPool(GlobalPool::new(PoolOp::Max, 2))),
    },
    LayerType {
        name: "upsample",
        example: "{type: upsample, scale_factor: 2}",
        roles: NONE,
        keras: "up_sampling2d",
        only: None,
        summary: "nn.Upsample / UpSampling1D/2D/3D",
        lower: |f, _| Some(Kind::Upsample(Upsample::lower(f)?)),
    },
    LayerType {
        name: "permute",
        example: "{type: permute, dims: [1, 0]}",
        roles: NONE,
        keras: "permute",
        only: None,
        summary: "x.permute / Permute (axes of one example, 0-based)",
        lower: |f, _| Some(Kind::Permute(Permute::lower(f)?)),
    },
    LayerType {
        name: "reshape",
        example: "{type: reshape, shape: [-1, 64]}",
        roles: NONE,
        keras: "reshape",
        only: None,
        summary: "x.reshape / Reshape (one example's shape; one -1 is inferred)",
        lower: |f, _| Some(Kind::Reshape(Reshape::lower(f)?)),
    },
    LayerType {
        name: "zero_padding1d",
        example: "{type: zero_padding1d}",
        roles: NONE,
        keras: "zero_padding1d",
        only: None,
        summary: "nn.ZeroPad1d / ZeroPadding1D (zeros around the spatial axes)",
        lower: |f, _| Some(Kind::ZeroPad(ZeroPad::lower(f, 1)?)),
    },
    LayerType {
        name: "zero_padding2d",
        example: "{type: zero_padding2d}",
        roles: NONE,
        keras: "zero_padding2d",
        only: None,
        summary: "nn.ZeroPad2d / ZeroPadding2D (zeros around the spatial axes)",
        lower: |f, _| Some(Kind::ZeroPad(ZeroPad::lower(f, 2)?)),
    },
    LayerType {
        name: "zero_padding3d",
        example: "{type: zero_padding3d}",
        roles: NONE,
        keras: "zero_padding3d",
        only: None,
        summary: "nn.ZeroPad3d / ZeroPadding3D (zeros around the spatial axes)",
        lower: |f, _| Some(Kind::ZeroPad(ZeroPad::lower(f, 3)?)),
    },
    LayerType {
        name: "flatten",
        example: "{type: flatten}",
        roles: NONE,
        keras: "flatten",
        only: None,
        summary: "nn.Flatten / Flatten",
        lower: |_, _| Some(Kind::Flatten(Flatten)),
    },
    LayerType {
        name: "activation",
        example: "{type: activation, function: relu}",
        roles: NONE,
        keras: "activation",
        only: None,
        summary: "nn.ReLU, nn.GELU, ... / Activation",
        lower: |f, _| Some(Kind::Activation(pointwise::lower_activation(f)?)),
    },
    LayerType {
        name: "dropout",
        example: "{type: dropout, rate: 0.1}",
        roles: NONE,
        keras: "dropout",
        only: None,
        summary: "nn.Dropout / Dropout",
        lower: |f, _| Some(Kind::Dropout(Dropout::lower(f)?)),
    },
    LayerType {
        name: "parameter",
        example: "{type: parameter, shape: [1, 64], initializer: zeros}",
        roles: &["initializer"],
        keras: "parameter",
        only: None,
        summary: "a free tensor (nn.Parameter, a buffer; add_weight), named by the layer's path",
        lower: |f, _| Some(Kind::Parameter(Parameter::lower(f)?)),
    },
    LayerType {
        name: "sequential",
        example: "{type: sequential, layers: [{type: dense, units: 64}]}",
        roles: NONE,
        keras: "sequential",
        only: None,
        summary: "a block of layers in a chain (repeat, residual, scope)",
        lower: |f, l| Some(Kind::Block(Block::lower(f, l, false)?)),
    },
    LayerType {
        name: "parallel",
        example: "{type: parallel, merge: add, layers: [{type: dense, units: 64}, {type: dense, units: 64}]}",
        roles: NONE,
        keras: "parallel",
        only: None,
        summary:
            "branches that each read the block's input, merged (concat, add, multiply, attention)",
        lower: |f, l| Some(Kind::Block(Block::lower(f, l, true)?)),
    },
];

impl std::fmt::Debug for LayerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for LayerType {
    fn eq(&self, other: &LayerType) -> bool {
        self.name == other.name
    }
}

/// The row of a `type` word.
pub fn find(name: &str) -> Option<&'static LayerType> {
    LAYERS.iter().find(|t| t.name == name)
}

/// Every initializer role key any layer type takes (what `defaults` may set).
pub fn all_roles() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for t in LAYERS {
        for r in t.roles {
            if !v.contains(r) {
                v.push(r);
            }
        }
    }
    v
}

/// A layer's type with its fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `dense`.
    Dense(Dense),
    /// `conv1d`, `conv2d`, `conv3d`.
    Conv(Conv),
    /// `conv_transpose1d`, `conv_transpose2d`, `conv_transpose3d`.
    ConvTranspose(ConvTranspose),
    /// `depthwise_conv2d`.
    Depthwise(Depthwise),
    /// `separable_conv2d`.
    Separable(Separable),
    /// `embedding`.
    Embedding(Embedding),
    /// `layer_norm`.
    LayerNorm(LayerNorm),
    /// `rms_norm`.
    RmsNorm(RmsNorm),
    /// `batch_norm`.
    BatchNorm(BatchNorm),
    /// `group_norm`.
    GroupNorm(GroupNorm),
    /// `instance_norm`.
    InstanceNorm(InstanceNorm),
    /// `normalization`.
    Normalization(Normalization),
    /// `prelu`.
    Prelu(Prelu),
    /// `lstm`, `gru`, `rnn`.
    Recurrent(Recurrent),
    /// `multi_head_attention`.
    Attention(Attention),
    /// `max_pool*`, `avg_pool*`.
    Pool(Pool),
    /// `adaptive_*_pool*`.
    AdaptivePool(AdaptivePool),
    /// `global_*_pool*`.
    GlobalPool(GlobalPool),
    /// `upsample`.
    Upsample(Upsample),
    /// `permute`.
    Permute(Permute),
    /// `reshape`.
    Reshape(Reshape),
    /// `flatten`.
    Flatten(Flatten),
    /// `zero_padding1d/2d/3d`.
    ZeroPad(ZeroPad),
    /// `activation`.
    Activation(Activation),
    /// `dropout`.
    Dropout(Dropout),
    /// `parameter`.
    Parameter(Parameter),
    /// `sequential`, `parallel`.
    Block(Block),
    /// A layer that could not be read; its output is unknown and raises no further errors.
    Invalid,
}

impl Kind {
    /// What kind of layer it is, for the lints.
    pub fn class(&self) -> LayerClass {
        match self {
            Kind::Dense(_)
            | Kind::Conv(_)
            | Kind::ConvTranspose(_)
            | Kind::Depthwise(_)
            | Kind::Separable(_)
            | Kind::Recurrent(_)
            | Kind::Attention(_) => LayerClass::Weight,
            Kind::LayerNorm(_)
            | Kind::RmsNorm(_)
            | Kind::BatchNorm(_)
            | Kind::GroupNorm(_)
            | Kind::InstanceNorm(_)
            | Kind::Normalization(_) => LayerClass::Norm,
            Kind::Embedding(_) => LayerClass::Embedding,
            Kind::Activation(_) | Kind::Prelu(_) => LayerClass::Pointwise,
            Kind::Parameter(_) => LayerClass::Parameter,
            Kind::Pool(_)
            | Kind::AdaptivePool(_)
            | Kind::GlobalPool(_)
            | Kind::Upsample(_)
            | Kind::Permute(_)
            | Kind::Reshape(_)
            | Kind::Flatten(_)
            | Kind::ZeroPad(_)
            | Kind::Dropout(_)
            | Kind::Block(_)
            | Kind::Invalid => LayerClass::Shape,
        }
    }

    /// How the predicted signal passes through it.
    pub fn signal(&self) -> Signal {
        match self {
            Kind::Dense(_)
            | Kind::Conv(_)
            | Kind::ConvTranspose(_)
            | Kind::Depthwise(_)
            | Kind::Separable(_) => Signal::Linear,
            Kind::Attention(a) => Signal::Attention { causal: a.causal },
            Kind::Pool(p) if p.op == PoolOp::Max => Signal::MaxPool {
                window: p.pool_size.iter().product(),
                stride: p.strides.iter().product(),
            },
            Kind::Recurrent(r) => Signal::Recurrent {
                simple: r.simple_activation(),
            },
            Kind::RmsNorm(n) => Signal::Norm { offset: n.offset },
            Kind::LayerNorm(_)
            | Kind::BatchNorm(_)
            | Kind::GroupNorm(_)
            | Kind::InstanceNorm(_) => Signal::Norm { offset: 0.0 },
            // The preprocessing layer's state is zeros and ones: it passes the data as it is.
            Kind::Normalization(_) => Signal::Pass,
            Kind::Embedding(_) => Signal::Embedding,
            Kind::Activation(a) => Signal::Activation(*a),
            Kind::Prelu(_) => Signal::Prelu,
            Kind::Parameter(_)
            | Kind::Pool(_)
            | Kind::AdaptivePool(_)
            | Kind::GlobalPool(_)
            | Kind::Upsample(_)
            | Kind::Permute(_)
            | Kind::Reshape(_)
            | Kind::Flatten(_)
            | Kind::ZeroPad(_)
            | Kind::Dropout(_)
            | Kind::Block(_)
            | Kind::Invalid => Signal::Pass,
        }
    }

    /// The activation applied at the layer's output, if any.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Kind::Dense(d) => d.activation,
            Kind::Conv(c) => c.activation,
            Kind::ConvTranspose(c) => c.activation,
            Kind::Depthwise(c) => c.activation,
            Kind::Separable(c) => c.activation,
            Kind::Activation(a) => Some(*a),
            Kind::Embedding(_)
            | Kind::LayerNorm(_)
            | Kind::RmsNorm(_)
            | Kind::BatchNorm(_)
            | Kind::GroupNorm(_)
            | Kind::InstanceNorm(_)
            | Kind::Normalization(_)
            | Kind::Prelu(_)
            | Kind::Recurrent(_)
            | Kind::Attention(_)
            | Kind::Pool(_)
            | Kind::AdaptivePool(_)
            | Kind::GlobalPool(_)
            | Kind::Upsample(_)
            | Kind::Permute(_)
            | Kind::Reshape(_)
            | Kind::Flatten(_)
            | Kind::ZeroPad(_)
            | Kind::Dropout(_)
            | Kind::Parameter(_)
            | Kind::Block(_)
            | Kind::Invalid => None,
        }
    }

    /// Keras' automatic-name base, where the row's depends on the fields (upsample's rank).
    pub fn keras_name(&self, row: &LayerType) -> &'static str {
        match self {
            Kind::Upsample(u) => u.keras_name(),
            _ => row.keras,
        }
    }

    /// Declares the layer's tensors and gives its output shape (blocks are walked by
    /// [`crate::resolve`], not here).
    pub fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        match self {
            Kind::Dense(l) => l.resolve(input, cx),
            Kind::Conv(l) => l.resolve(input, cx),
            Kind::ConvTranspose(l) => l.resolve(input, cx),
            Kind::Depthwise(l) => l.resolve(input, cx),
            Kind::Separable(l) => l.resolve(input, cx),
            Kind::Embedding(l) => l.resolve(input, cx),
            Kind::LayerNorm(l) => l.resolve(input, cx),
            Kind::RmsNorm(l) => l.resolve(input, cx),
            Kind::BatchNorm(l) => l.resolve(input, cx),
            Kind::GroupNorm(l) => l.resolve(input, cx),
            Kind::InstanceNorm(l) => l.resolve(input, cx),
            Kind::Normalization(l) => l.resolve(input, cx),
            Kind::Prelu(l) => l.resolve(input, cx),
            Kind::Recurrent(l) => l.resolve(input, cx),
            Kind::Attention(l) => l.resolve(input, cx),
            Kind::Pool(l) => l.resolve(input, cx),
            Kind::AdaptivePool(l) => l.resolve(input, cx),
            Kind::GlobalPool(l) => l.resolve(input, cx),
            Kind::Upsample(l) => l.resolve(input, cx),
            Kind::Permute(l) => l.resolve(input, cx),
            Kind::Reshape(l) => l.resolve(input, cx),
            Kind::Flatten(l) => l.resolve(input, cx),
            Kind::ZeroPad(l) => l.resolve(input, cx),
            Kind::Parameter(l) => l.resolve(input, cx),
            Kind::Activation(_) | Kind::Dropout(_) => input.clone(),
            Kind::Block(_) | Kind::Invalid => Act::poisoned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for t in LAYERS {
            assert!(seen.insert(t.name), "{} twice", t.name);
            assert!(t
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!(!t.summary.is_empty());
        }
    }

    #[test]
    fn the_registry_is_the_documented_list() {
        let docs = include_str!("../../docs/format.md");
        let help = crate::diag::code_info(crate::diag::UNKNOWN_LAYER_TYPE)
            .unwrap()
            .explanation;
        for t in LAYERS {
            assert!(
                docs.contains(&format!("`{}`", t.name)),
                "docs/format.md lacks `{}`",
                t.name
            );
            assert!(
                help.contains(t.name),
                "unknown-layer-type's explanation lacks {}",
                t.name
            );
        }
    }
}
