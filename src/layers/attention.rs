//! `multi_head_attention`: nn.MultiheadAttention / keras MultiHeadAttention (self-attention).

use super::{dflt, glorot_uniform, torch_weight_default, Act, Cx};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::{Fields, Sp};

/// Self-attention with `num_heads` heads over `embed_dim` features.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    /// Model width, if stated.
    pub embed_dim: Option<u64>,
    /// Heads.
    pub num_heads: Sp<u64>,
    /// Whether projections have biases.
    pub use_bias: bool,
}

impl Attention {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Attention> {
        let embed_dim = f.size("embed_dim").map(|s| s.value);
        let num_heads = f.req_size("num_heads", "8");
        let use_bias = f.bool("use_bias", true);
        Some(Attention {
            embed_dim,
            num_heads: num_heads?,
            use_bias,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(e) = self.embed_dim.or(input.last()) else {
            cx.missing_input("embed_dim", input);
            return input.clone();
        };
        let out = input.with_last(e);
        let h = self.num_heads.value;
        if !e.is_multiple_of(h) {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                self.num_heads.span,
                format!("`embed_dim` {e} does not divide into {h} heads"),
            )
            .label("heads")
            .help("choose `num_heads` that divides `embed_dim`");
            cx.error(d);
            return out;
        }
        let Some(e3) = e.checked_mul(3) else {
            cx.error(super::overflow(cx.layer.type_span, "3 × embed_dim"));
            return out;
        };
        // Each projection maps E features to E (= heads × head_dim) in either layout.
        let fans = Fans {
            fan_in: e,
            fan_out: e,
        };
        match cx.layout {
            Layout::Pytorch => {
                // torch: xavier_uniform_ on the fused [3E, E] matrix, biases 0, out_proj keeps Linear's default.
                let b = (6.0 / (4.0 * e as f64)).sqrt();
                let fused = dflt(
                    Init::Uniform { low: -b, high: b },
                    "torch: xavier_uniform over the fused [3E, E]",
                );
                cx.tensor(
                    &["in_proj_weight"],
                    "kernel_initializer",
                    Role::Kernel,
                    vec![e3, e],
                    fans,
                    fused,
                );
                if self.use_bias {
                    cx.tensor(
                        &["in_proj_bias"],
                        "bias_initializer",
                        Role::Bias,
                        vec![e3],
                        fans,
                        dflt(Init::ZEROS, "torch: zeros"),
                    );
                }
                cx.tensor(
                    &["out_proj", "weight"],
                    "kernel_initializer",
                    Role::Kernel,
                    vec![e, e],
                    fans,
                    torch_weight_default(),
                );
                if self.use_bias {
                    cx.tensor(
                        &["out_proj", "bias"],
                        "bias_initializer",
                        Role::Bias,
                        vec![e],
                        fans,
                        dflt(Init::ZEROS, "torch: zeros"),
                    );
                }
            }
            Layout::Keras => {
                let d = e / h;
                for p in ["query", "key", "value"] {
                    cx.tensor(
                        &[p, "kernel"],
                        "kernel_initializer",
                        Role::Kernel,
                        vec![e, h, d],
                        fans,
                        glorot_uniform(),
                    );
                    if self.use_bias {
                        cx.tensor(
                            &[p, "bias"],
                            "bias_initializer",
                            Role::Bias,
                            vec![h, d],
                            fans,
                            dflt(Init::ZEROS, "keras: zeros"),
                        );
                    }
                }
                cx.tensor(
                    &["attention_output", "kernel"],
                    "kernel_initializer",
                    Role::Kernel,
                    vec![h, d, e],
                    fans,
                    glorot_uniform(),
                );
                if self.use_bias {
                    cx.tensor(
                        &["attention_output", "bias"],
                        "bias_initializer",
                        Role::Bias,
                        vec![e],
                        fans,
                        dflt(Init::ZEROS, "keras: zeros"),
                    );
                }
            }
        }
        out
    }
}
