//! `multi_head_attention`: nn.MultiheadAttention / keras MultiHeadAttention.

use super::{dflt, glorot_uniform, torch_weight_default, Act, Cx, Decl};
use crate::diag::{self, Diagnostic};
use crate::init::{FanMode, Init, VsDistribution};
use crate::model::{Fans, Layout, Role};
use crate::source::Span;
use crate::spec::{Fields, Sp};

/// Multi-head attention with `num_heads` heads over `embed_dim` features.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    /// Query width (the model's), if stated.
    pub embed_dim: Option<u64>,
    /// Heads.
    pub num_heads: Sp<u64>,
    /// Whether projections have biases.
    pub use_bias: bool,
    /// Key input features (torch `kdim`; Keras infers them from the key input).
    pub kdim: Option<u64>,
    /// Value input features.
    pub vdim: Option<u64>,
    /// torch: learned key and value rows appended to the sequence.
    pub add_bias_kv: bool,
    /// Keras: width of each head of query and key.
    pub key_dim: Option<u64>,
    /// Keras: width of each head of value.
    pub value_dim: Option<u64>,
    /// Keras: output features (default: the query's).
    pub output_dim: Option<u64>,
    /// Queries see only earlier tokens (torch `is_causal`, Keras `use_causal_mask`): no
    /// tensor changes, only the predicted signal.
    pub causal: bool,
}

/// A field one framework's attention has and the other's lacks.
fn foreign(f: &mut Fields<'_>, key: &'static str, theirs: &str, ours: &str) {
    if let Some(e) = f.entry(key) {
        f.diags.push(
            Diagnostic::error(
                diag::INVALID_VALUE,
                e.key_span,
                format!("`{key}` is {theirs}'s attention field"),
            )
            .label(format!("not in {ours}'s attention"))
            .help(match key {
                "key_dim" | "value_dim" | "output_dim" => {
                    "under layout pytorch every head is embed_dim / num_heads wide; use layout keras for other widths"
                }
                _ => "under layout keras, write the widths with `key_dim`, `value_dim`, `output_dim`",
            }),
        );
    }
}

impl Attention {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<Attention> {
        let embed_dim = f.size("embed_dim").map(|s| s.value);
        let num_heads = f.req_size("num_heads", "8");
        let use_bias = f.bool("use_bias", true);
        let kdim = f.size("kdim").map(|s| s.value);
        let vdim = f.size("vdim").map(|s| s.value);
        match layout {
            Layout::Pytorch => {
                for k in ["key_dim", "value_dim", "output_dim"] {
                    foreign(f, k, "Keras", "PyTorch");
                }
            }
            Layout::Keras => foreign(f, "add_bias_kv", "PyTorch", "Keras"),
        }
        let add_bias_kv = layout == Layout::Pytorch && f.bool("add_bias_kv", false);
        let causal = f.bool("causal", false);
        let (key_dim, value_dim, output_dim) = match layout {
            Layout::Keras => (
                f.size("key_dim").map(|s| s.value),
                f.size("value_dim").map(|s| s.value),
                f.size("output_dim").map(|s| s.value),
            ),
            Layout::Pytorch => (None, None, None),
        };
        Some(Attention {
            embed_dim,
            num_heads: num_heads?,
            use_bias,
            kdim,
            vdim,
            add_bias_kv,
            key_dim,
            value_dim,
            output_dim,
            causal,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(e) = self.embed_dim.or(input.last()) else {
            cx.missing_input("embed_dim", input);
            return input.clone();
        };
        let h = self.num_heads.value;
        match cx.layout {
            Layout::Pytorch => self.torch(e, h, input, cx),
            Layout::Keras => self.keras(e, h, input, cx),
        }
    }

    fn heads_error(&self, e: u64, h: u64, span: Span, cx: &mut Cx<'_>) {
        let d = Diagnostic::error(
            diag::SHAPE_MISMATCH,
            span,
            format!("`embed_dim` {e} does not divide into {h} heads"),
        )
        .label("heads")
        .help("choose `num_heads` that divides `embed_dim`");
        cx.error(d);
    }

    /// nn.MultiheadAttention: one fused [3E, E] projection (or three when kdim or vdim
    /// differ from E), xavier_uniform; biases zero; out_proj keeps Linear's default
    /// weight (MultiheadAttention._reset_parameters).
    fn torch(&self, e: u64, h: u64, input: &Act, cx: &mut Cx<'_>) -> Act {
        let out = input.with_last(e);
        if !e.is_multiple_of(h) {
            self.heads_error(e, h, self.num_heads.span, cx);
            return out;
        }
        let Some(e3) = e.checked_mul(3) else {
            cx.error(super::overflow(cx.layer.type_span, "3 × embed_dim"));
            return out;
        };
        let (kd, vd) = (self.kdim.unwrap_or(e), self.vdim.unwrap_or(e));
        let xavier = |fan_in: u64, fan_out: u64, rule: &'static str| {
            let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
            dflt(Init::Uniform { low: -b, high: b }, rule)
        };
        let zeros = || dflt(Init::ZEROS, "torch: zeros");
        if kd == e && vd == e {
            // Each projection maps E features to E; the default bound is the fused matrix's.
            let fans = Fans {
                fan_in: e,
                fan_out: e,
            };
            cx.tensor(
                &["in_proj_weight"],
                "kernel_initializer",
                Role::Kernel,
                vec![e3, e],
                fans,
                xavier(e, e3, "torch: xavier_uniform over the fused [3E, E]"),
            );
        } else {
            for (name, inp) in [
                ("q_proj_weight", e),
                ("k_proj_weight", kd),
                ("v_proj_weight", vd),
            ] {
                let fans = Fans {
                    fan_in: inp,
                    fan_out: e,
                };
                cx.tensor(
                    &[name],
                    "kernel_initializer",
                    Role::Kernel,
                    vec![e, inp],
                    fans,
                    xavier(inp, e, "torch: xavier_uniform"),
                );
            }
        }
        let fans = Fans {
            fan_in: e,
            fan_out: e,
        };
        if self.use_bias {
            cx.tensor(
                &["in_proj_bias"],
                "bias_initializer",
                Role::Bias,
                vec![e3],
                fans,
                zeros(),
            );
        }
        if self.add_bias_kv {
            // xavier_normal_ on [1, 1, E]: torch's fans of that shape are E and E.
            for name in ["bias_k", "bias_v"] {
                let d = Decl::new(
                    cx.at(&[name]),
                    "bias_initializer",
                    Role::Bias,
                    vec![1, 1, e],
                    fans,
                    dflt(
                        Init::VarianceScaling {
                            scale: 1.0,
                            mode: FanMode::FanAvg,
                            distribution: VsDistribution::UntruncatedNormal,
                        },
                        "torch: xavier_normal on [1, 1, E]",
                    ),
                )
                .storage_fans();
                cx.declare(d);
            }
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
                zeros(),
            );
        }
        out
    }

    /// keras MultiHeadAttention: EinsumDense query/key/value [in, H, D] and
    /// attention_output [H, Dv, O], glorot_uniform with the EinsumDense fans.
    fn keras(&self, e: u64, h: u64, input: &Act, cx: &mut Cx<'_>) -> Act {
        let dk = match self.key_dim {
            Some(d) => d,
            None if e.is_multiple_of(h) => e / h,
            None => {
                self.heads_error(e, h, self.num_heads.span, cx);
                return input.clone();
            }
        };
        let dv = self.value_dim.unwrap_or(dk);
        let o = self.output_dim.unwrap_or(e);
        let out = input.with_last(o);
        let (ek, ev) = (self.kdim.unwrap_or(e), self.vdim.unwrap_or(e));
        let zeros = || dflt(Init::ZEROS, "keras: zeros");
        for (p, inp, d) in [("query", e, dk), ("key", ek, dk), ("value", ev, dv)] {
            let fans = Fans {
                fan_in: inp,
                fan_out: h.saturating_mul(d),
            };
            cx.tensor(
                &[p, "kernel"],
                "kernel_initializer",
                Role::Kernel,
                vec![inp, h, d],
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
                    zeros(),
                );
            }
        }
        let fans = Fans {
            fan_in: h.saturating_mul(dv),
            fan_out: o,
        };
        cx.tensor(
            &["attention_output", "kernel"],
            "kernel_initializer",
            Role::Kernel,
            vec![h, dv, o],
            fans,
            glorot_uniform(),
        );
        if self.use_bias {
            cx.tensor(
                &["attention_output", "bias"],
                "bias_initializer",
                Role::Bias,
                vec![o],
                fans,
                zeros(),
            );
        }
        out
    }
}
