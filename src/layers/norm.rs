//! `layer_norm`, `rms_norm`, `batch_norm`.

use super::{dflt, product, Act, Cx};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::fields;
use crate::spec::Fields;
use crate::syntax::Value;

fn normalized_shape(f: &mut Fields<'_>) -> Option<Vec<u64>> {
    let n = f.node("normalized_shape")?;
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| fields::as_size(i, "normalized_shape", f.diags))
            .collect(),
        _ => fields::as_size(n, "normalized_shape", f.diags).map(|v| vec![v]),
    }
}

fn eps(f: &mut Fields<'_>, default: f64) -> f64 {
    match f.f64("eps") {
        Some(e) if e.value < 0.0 => {
            f.diags.push(
                Diagnostic::error(diag::INVALID_VALUE, e.span, "`eps` cannot be negative")
                    .label("negative")
                    .help("write a small positive number, e.g. `eps: 1e-5`"),
            );
            default
        }
        Some(e) => e.value,
        None => default,
    }
}

/// The normalized shape: as written, else the input's last dimension.
fn norm_shape(written: &Option<Vec<u64>>, input: &Act, cx: &mut Cx<'_>) -> Option<Vec<u64>> {
    if let Some(s) = written {
        // The framework normalizes the input's trailing dimensions: they must be these.
        let tail = input.dims.len().checked_sub(s.len());
        let clash = match tail {
            Some(t) => input.dims[t..]
                .iter()
                .zip(s)
                .any(|(d, w)| d.is_some_and(|d| d != *w)),
            None => !input.open,
        };
        if clash && !input.poisoned {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                cx.layer.type_span,
                format!(
                    "`normalized_shape` {s:?} is not the end of this layer's input {}",
                    input.show()
                ),
            )
            .label("normalizes dimensions its input does not have")
            .help("make `normalized_shape` the input's last dimension(s), or leave it out");
            cx.error(d);
        }
        return Some(s.clone());
    }
    match input.last() {
        Some(d) => Some(vec![d]),
        None => {
            cx.missing_input("normalized_shape", input);
            None
        }
    }
}

fn fans_of(shape: &[u64]) -> Fans {
    // An overflowing shape is reported where the tensor is declared; here it must not panic.
    let n = product(shape).unwrap_or(u64::MAX);
    Fans {
        fan_in: n,
        fan_out: n,
    }
}

/// Layer normalization over the last dimension(s).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// Normalized dimensions, if stated.
    pub normalized_shape: Option<Vec<u64>>,
    /// Added to the variance.
    pub eps: f64,
    /// Whether it has a scale (and shift).
    pub elementwise_affine: bool,
    /// Whether it has a shift.
    pub use_bias: bool,
}

impl LayerNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<LayerNorm> {
        Some(LayerNorm {
            normalized_shape: normalized_shape(f),
            eps: eps(f, if layout == Layout::Keras { 1e-3 } else { 1e-5 }),
            elementwise_affine: f.bool("elementwise_affine", true),
            use_bias: f.bool("use_bias", true),
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(shape) = norm_shape(&self.normalized_shape, input, cx) else {
            return input.clone();
        };
        if self.elementwise_affine {
            let (g, b) = match cx.layout {
                Layout::Pytorch => ("weight", "bias"),
                Layout::Keras => ("gamma", "beta"),
            };
            let fans = fans_of(&shape);
            cx.tensor(
                &[g],
                "gamma_initializer",
                Role::Gamma,
                shape.clone(),
                fans,
                dflt(Init::ONES, "ones"),
            );
            if self.use_bias {
                cx.tensor(
                    &[b],
                    "beta_initializer",
                    Role::Beta,
                    shape,
                    fans,
                    dflt(Init::ZEROS, "zeros"),
                );
            }
        }
        input.clone()
    }
}

/// RMS normalization (scale only).
#[derive(Clone, Debug, PartialEq)]
pub struct RmsNorm {
    /// Normalized dimensions, if stated.
    pub normalized_shape: Option<Vec<u64>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<RmsNorm> {
        Some(RmsNorm {
            normalized_shape: normalized_shape(f),
            // torch's eps=None means the machine epsilon of f32.
            eps: eps(
                f,
                if layout == Layout::Keras {
                    1e-6
                } else {
                    f32::EPSILON as f64
                },
            ),
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(shape) = norm_shape(&self.normalized_shape, input, cx) else {
            return input.clone();
        };
        let g = match cx.layout {
            Layout::Pytorch => "weight",
            Layout::Keras => "scale",
        };
        let fans = fans_of(&shape);
        cx.tensor(
            &[g],
            "gamma_initializer",
            Role::Gamma,
            shape,
            fans,
            dflt(Init::ONES, "ones"),
        );
        input.clone()
    }
}

/// Batch normalization over the channel dimension, with running statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// Channels, if stated.
    pub num_features: Option<u64>,
    /// Added to the variance.
    pub eps: f64,
    /// Running-average momentum (the framework's convention).
    pub momentum: f64,
}

impl BatchNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<BatchNorm> {
        let keras = layout == Layout::Keras;
        let momentum = match f.f64("momentum") {
            Some(m) if !(0.0..=1.0).contains(&m.value) => {
                f.diags.push(
                    Diagnostic::error(diag::INVALID_VALUE, m.span, "`momentum` must be in [0, 1]")
                        .label("out of range")
                        .help(if keras {
                            "Keras' default is `momentum: 0.99`"
                        } else {
                            "PyTorch's default is `momentum: 0.1`"
                        }),
                );
                None
            }
            m => m.map(|m| m.value),
        };
        Some(BatchNorm {
            num_features: f.size("num_features").map(|s| s.value),
            eps: eps(f, if keras { 1e-3 } else { 1e-5 }),
            momentum: momentum.unwrap_or(if keras { 0.99 } else { 0.1 }),
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        // Channels: dim 0 of [C], [C, L], [C, H, W] (pytorch); the last dim (keras).
        let chan = match cx.layout {
            Layout::Pytorch if !input.open || input.dims.len() == 1 => {
                input.dims.first().copied().flatten()
            }
            Layout::Pytorch => None,
            Layout::Keras => input.last(),
        };
        let Some(c) = self.num_features.or(chan) else {
            cx.missing_input("num_features", input);
            return input.clone();
        };
        let fans = Fans {
            fan_in: c,
            fan_out: c,
        };
        let ones = || dflt(Init::ONES, "ones");
        let zeros = || dflt(Init::ZEROS, "zeros");
        // Buffers take no user initializer: an empty role key never matches one.
        match cx.layout {
            Layout::Pytorch => {
                cx.tensor(
                    &["weight"],
                    "gamma_initializer",
                    Role::Gamma,
                    vec![c],
                    fans,
                    ones(),
                );
                cx.tensor(
                    &["bias"],
                    "beta_initializer",
                    Role::Beta,
                    vec![c],
                    fans,
                    zeros(),
                );
                cx.tensor(
                    &["running_mean"],
                    "",
                    Role::RunningMean,
                    vec![c],
                    fans,
                    zeros(),
                );
                cx.tensor(
                    &["running_var"],
                    "",
                    Role::RunningVar,
                    vec![c],
                    fans,
                    ones(),
                );
                cx.tensor(
                    &["num_batches_tracked"],
                    "",
                    Role::NumBatchesTracked,
                    vec![],
                    fans,
                    zeros(),
                );
            }
            Layout::Keras => {
                cx.tensor(
                    &["gamma"],
                    "gamma_initializer",
                    Role::Gamma,
                    vec![c],
                    fans,
                    ones(),
                );
                cx.tensor(
                    &["beta"],
                    "beta_initializer",
                    Role::Beta,
                    vec![c],
                    fans,
                    zeros(),
                );
                cx.tensor(
                    &["moving_mean"],
                    "",
                    Role::RunningMean,
                    vec![c],
                    fans,
                    zeros(),
                );
                cx.tensor(
                    &["moving_variance"],
                    "",
                    Role::RunningVar,
                    vec![c],
                    fans,
                    ones(),
                );
            }
        }
        input.clone()
    }
}
