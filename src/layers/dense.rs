//! `dense`: nn.Linear / keras Dense (and Hugging Face's GPT-2 `Conv1D` with `kernel_order: in_out`).

use super::conv::{kernel_and_bias, WeightNorm};
use super::pointwise::activation_field;
use super::{
    dflt, glorot_uniform, torch_bias_default, torch_weight_default, Act, Activation, Cx, Decl,
};
use crate::diag::{self, did_you_mean, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role, Tie};
use crate::source::Span;
use crate::spec::{Fields, Sp};

/// Storage order of a dense kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelOrder {
    /// `[out, in]` (nn.Linear).
    OutIn,
    /// `[in, out]` (Keras Dense, HF Conv1D).
    InOut,
}

/// A fully connected layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Output features.
    pub units: u64,
    /// Input features, if stated.
    pub in_features: Option<u64>,
    /// Whether it has a bias.
    pub use_bias: bool,
    /// Output activation.
    pub activation: Option<Activation>,
    /// `weight_norm`, and where it is written.
    pub weight_norm: Option<(WeightNorm, Span)>,
    /// Storage order, if stated (else the layout's).
    pub kernel_order: Option<KernelOrder>,
    /// Path of an embedding whose matrix this layer reuses.
    pub tie: Option<Sp<String>>,
}

impl Dense {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Dense> {
        let units = f.req_size("units", "64");
        let in_features = f.size("in_features").map(|s| s.value);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        let kernel_order = f
            .choice("kernel_order", &["out_in", "in_out"])
            .map(|s| match s.value {
                "in_out" => KernelOrder::InOut,
                _ => KernelOrder::OutIn,
            });
        let tie = f.str("tie").map(|s| Sp {
            value: s.value.to_string(),
            span: s.span,
        });
        let wn_span = f.entry("weight_norm").map(|e| e.key_span);
        let weight_norm = WeightNorm::lower(f).zip(wn_span);
        Some(Dense {
            units: units?.value,
            in_features,
            use_bias,
            activation,
            weight_norm,
            kernel_order,
            tie,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let out = input.with_last(self.units);
        let Some(inf) = self.in_features.or(input.last()) else {
            cx.missing_input("in_features", input);
            return out;
        };
        let order = self.kernel_order.unwrap_or(match cx.layout {
            Layout::Pytorch => KernelOrder::OutIn,
            Layout::Keras => KernelOrder::InOut,
        });
        let fans = Fans {
            fan_in: inf,
            fan_out: self.units,
        };
        let (wname, shape) = match (cx.layout, order) {
            (Layout::Pytorch, KernelOrder::OutIn) => ("weight", vec![self.units, inf]),
            (Layout::Pytorch, KernelOrder::InOut) => ("weight", vec![inf, self.units]),
            (Layout::Keras, KernelOrder::InOut) => ("kernel", vec![inf, self.units]),
            (Layout::Keras, KernelOrder::OutIn) => ("kernel", vec![self.units, inf]),
        };
        // Hugging Face's Conv1D (the pytorch in_out case) draws N(0, 0.02²) and zero bias itself.
        let hf_conv1d = cx.layout == Layout::Pytorch && order == KernelOrder::InOut;
        let bias = self.use_bias.then(|| {
            let d = match cx.layout {
                Layout::Pytorch if hf_conv1d => dflt(Init::ZEROS, "transformers Conv1D: zeros"),
                Layout::Pytorch => torch_bias_default(inf),
                Layout::Keras => dflt(Init::ZEROS, "keras: zeros"),
            };
            Decl::new(
                cx.at(&["bias"]),
                "bias_initializer",
                Role::Bias,
                vec![self.units],
                fans,
                d,
            )
        });
        match &self.tie {
            Some(tie) => {
                self.tie(tie, inf, wname, cx);
                if let Some(b) = bias {
                    cx.declare(b);
                }
            }
            None => {
                let d = match cx.layout {
                    Layout::Pytorch if hf_conv1d => dflt(
                        Init::Normal {
                            mean: 0.0,
                            std: 0.02,
                        },
                        "transformers Conv1D: N(0, 0.02²)",
                    ),
                    Layout::Pytorch => torch_weight_default(),
                    Layout::Keras => glorot_uniform(),
                };
                let kernel = Decl::new(
                    cx.at(&[wname]),
                    "kernel_initializer",
                    Role::Kernel,
                    shape,
                    fans,
                    d,
                );
                kernel_and_bias(cx, kernel, bias, self.weight_norm);
            }
        }
        out
    }

    fn tie(&self, tie: &Sp<String>, inf: u64, wname: &str, cx: &mut Cx<'_>) {
        let found = cx
            .embeddings
            .iter()
            .find(|e| e.path == tie.value || e.tensor == tie.value)
            .cloned();
        let Some(e) = found else {
            let d = Diagnostic::error(
                diag::BAD_TIE,
                tie.span,
                format!("`tie` names no embedding defined before: `{}`", tie.value),
            )
            .label("not an earlier embedding layer");
            let d = match did_you_mean(&tie.value, cx.embeddings.iter().map(|e| e.path.as_str())) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None if cx.embeddings.is_empty() => {
                    d.help("define the `embedding` layer before the dense layer that ties to it")
                }
                None => d.help(format!(
                    "embeddings defined so far: {}",
                    cx.embeddings
                        .iter()
                        .map(|e| format!("`{}`", e.path))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            cx.error(d);
            return;
        };
        if e.num != self.units || e.dim != inf {
            let d = Diagnostic::error(
                diag::BAD_TIE,
                tie.span,
                format!(
                    "`{}` is [{}, {}], but this layer maps {inf} features to {} units",
                    e.path, e.num, e.dim, self.units
                ),
            )
            .label("shapes differ")
            .help(format!(
                "a tied dense layer needs `units: {}` and `in_features: {}`",
                e.num, e.dim
            ));
            cx.error(d);
            return;
        }
        let mut path = cx.parent.clone();
        path.push(cx.name.clone());
        path.push(wname.to_string());
        cx.ties.push(Tie {
            name: cx.layout.join(&path),
            target: e.tensor.clone(),
            span: tie.span,
        });
    }
}
