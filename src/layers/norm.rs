//! `layer_norm`, `rms_norm`, `batch_norm`, `group_norm`, `instance_norm`, and Keras'
//! `normalization` preprocessing state.

use super::{dflt, product, Act, Cx, Decl};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{DType, Fans, Layout, Role};
use crate::spec::fields;
use crate::spec::{Fields, Sp};
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

/// The channels of a stream: dim 0 of [C], [C, L], [C, H, W] (pytorch); the last (keras).
fn channels(input: &Act, layout: Layout) -> Option<u64> {
    match layout {
        Layout::Pytorch if !input.open || input.dims.len() == 1 => {
            input.dims.first().copied().flatten()
        }
        Layout::Pytorch => None,
        Layout::Keras => input.last(),
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

/// Layer normalization over the last dimension(s), or over the channels of an image.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// Normalized dimensions, if stated.
    pub normalized_shape: Option<Vec<u64>>,
    /// Over the channel dimension of an image stream (ConvNeXt's `LayerNorm2d`).
    pub channels: bool,
    /// Added to the variance.
    pub eps: f64,
    /// Whether it has a scale (and shift).
    pub elementwise_affine: bool,
    /// Whether it has a shift.
    pub use_bias: bool,
}

impl LayerNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<LayerNorm> {
        let channels = f
            .choice("axis", &["last", "channels"])
            .is_some_and(|a| a.value == "channels");
        Some(LayerNorm {
            normalized_shape: normalized_shape(f),
            channels,
            eps: eps(f, if layout == Layout::Keras { 1e-3 } else { 1e-5 }),
            elementwise_affine: f.bool("elementwise_affine", true),
            use_bias: f.bool("use_bias", true),
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let shape = if self.channels {
            channels(input, cx.layout).map(|c| vec![c]).or_else(|| {
                cx.missing_input("normalized_shape", input);
                None
            })
        } else {
            norm_shape(&self.normalized_shape, input, cx)
        };
        let Some(shape) = shape else {
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
    /// Added to the stored scale when applied (Gemma: 1, its weight starting at 0).
    pub offset: f64,
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
            offset: f.f64("offset").map_or(0.0, |o| o.value),
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
        let Some(c) = self.num_features.or(channels(input, cx.layout)) else {
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

/// The affine pair of a group or instance norm: `weight`/`bias` (torch) or
/// `gamma`/`beta` (keras), ones and zeros.
fn affine(cx: &mut Cx<'_>, c: u64, bias: bool) {
    let (g, b) = match cx.layout {
        Layout::Pytorch => ("weight", "bias"),
        Layout::Keras => ("gamma", "beta"),
    };
    let fans = Fans {
        fan_in: c,
        fan_out: c,
    };
    cx.tensor(
        &[g],
        "gamma_initializer",
        Role::Gamma,
        vec![c],
        fans,
        dflt(Init::ONES, "ones"),
    );
    if bias {
        cx.tensor(
            &[b],
            "beta_initializer",
            Role::Beta,
            vec![c],
            fans,
            dflt(Init::ZEROS, "zeros"),
        );
    }
}

/// Group normalization: the channels in `num_groups` contiguous groups.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupNorm {
    /// Groups (Keras' −1: one per channel).
    pub num_groups: Sp<i128>,
    /// Channels, if stated.
    pub num_channels: Option<u64>,
    /// Added to the variance.
    pub eps: f64,
    /// Whether it has a scale (and shift).
    pub affine: bool,
    /// Whether it has a shift.
    pub use_bias: bool,
}

impl GroupNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<GroupNorm> {
        let groups = match f.node("num_groups") {
            Some(n) => match n.value {
                Value::Int(i) if i >= 1 || (i == -1 && layout == Layout::Keras) => Some(Sp {
                    value: i,
                    span: n.span,
                }),
                _ => {
                    f.diags.push(
                        Diagnostic::error(
                            diag::INVALID_VALUE,
                            n.span,
                            "`num_groups` is a whole number ≥ 1 (Keras also takes -1: one per channel)",
                        )
                        .label("not a group count")
                        .help("write `num_groups: 32`"),
                    );
                    None
                }
            },
            None => {
                f.missing("num_groups", "32");
                None
            }
        };
        let num_channels = f.size("num_channels").map(|s| s.value);
        let eps = eps(f, if layout == Layout::Keras { 1e-3 } else { 1e-5 });
        let affine = f.bool("affine", true);
        let use_bias = f.bool("use_bias", true);
        Some(GroupNorm {
            num_groups: groups?,
            num_channels,
            eps,
            affine,
            use_bias,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(c) = self.num_channels.or(channels(input, cx.layout)) else {
            cx.missing_input("num_channels", input);
            return input.clone();
        };
        let g = if self.num_groups.value == -1 {
            c
        } else {
            self.num_groups.value as u64
        };
        if g > c || !c.is_multiple_of(g) {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                self.num_groups.span,
                format!("{c} channels do not divide into {g} groups"),
            )
            .label("groups")
            .help("choose `num_groups` that divides the channels (32 for 64, 128, 256, ...)");
            cx.error(d);
            return input.clone();
        }
        if self.affine {
            affine(cx, c, self.use_bias);
        }
        input.clone()
    }
}

/// Instance normalization: each example's channels over their spatial positions.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceNorm {
    /// Channels, if stated.
    pub num_features: Option<u64>,
    /// Added to the variance.
    pub eps: f64,
    /// Whether it has a scale and shift.
    pub affine: bool,
    /// Whether it keeps running statistics (torch only).
    pub track_running_stats: bool,
}

impl InstanceNorm {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<InstanceNorm> {
        let track = f.entry("track_running_stats").map(|e| e.key_span);
        let track_running_stats = f.bool("track_running_stats", false);
        if layout == Layout::Keras && track_running_stats {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    track.unwrap_or(f.span),
                    "Keras' instance norm (GroupNormalization with groups = -1) keeps no running statistics",
                )
                .label("layout keras")
                .help("remove `track_running_stats`, or use layout pytorch"),
            );
        }
        let _ = f.f64("momentum");
        Some(InstanceNorm {
            num_features: f.size("num_features").map(|s| s.value),
            eps: eps(f, if layout == Layout::Keras { 1e-3 } else { 1e-5 }),
            affine: f.bool("affine", false),
            track_running_stats,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some(c) = self.num_features.or(channels(input, cx.layout)) else {
            cx.missing_input("num_features", input);
            return input.clone();
        };
        if self.affine {
            affine(cx, c, true);
        }
        if self.track_running_stats && cx.layout == Layout::Pytorch {
            let fans = Fans {
                fan_in: c,
                fan_out: c,
            };
            cx.tensor(
                &["running_mean"],
                "",
                Role::RunningMean,
                vec![c],
                fans,
                dflt(Init::ZEROS, "zeros"),
            );
            cx.tensor(
                &["running_var"],
                "",
                Role::RunningVar,
                vec![c],
                fans,
                dflt(Init::ONES, "ones"),
            );
            // InstanceNorm never increments it (reference/LAYERS2.md §1.5), but it is there.
            cx.tensor(
                &["num_batches_tracked"],
                "",
                Role::NumBatchesTracked,
                vec![],
                fans,
                dflt(Init::ZEROS, "zeros"),
            );
        }
        input.clone()
    }
}

/// Keras' `Normalization` preprocessing layer: the state `adapt` fills.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// The axes kept (Keras' `axis`, −1 by default; empty for `axis: null`, one scalar).
    pub axis: Option<Vec<i128>>,
}

impl Normalization {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Normalization> {
        let axis = match f.entry("axis").map(|e| &e.value) {
            None => Some(vec![-1]),
            Some(n) => match &n.value {
                Value::Null => None,
                Value::Int(i) => Some(vec![*i]),
                Value::Seq(items) => {
                    let mut v = Vec::new();
                    for i in items {
                        match i.value {
                            Value::Int(a) => v.push(a),
                            _ => {
                                f.diags.push(fields::wrong_type(i, "axis", "an axis", "-1"));
                                return None;
                            }
                        }
                    }
                    Some(v)
                }
                _ => {
                    f.diags.push(fields::wrong_type(
                        n,
                        "axis",
                        "an axis or a list of axes",
                        "-1",
                    ));
                    return None;
                }
            },
        };
        Some(Normalization { axis })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        // Keras counts axes with the batch: axis 1 is the example's first, −1 its last.
        let rank = input.dims.len() as i128;
        let mut shape = Vec::new();
        for &a in self.axis.iter().flatten() {
            let i = if a < 0 { rank + a } else { a - 1 };
            match usize::try_from(i)
                .ok()
                .and_then(|i| input.dims.get(i).copied().flatten())
            {
                Some(d) if !input.open => shape.push(d),
                _ => {
                    if !input.poisoned {
                        let d = Diagnostic::error(
                            diag::SHAPE_MISMATCH,
                            cx.layer.type_span,
                            format!("`axis` {a} is not a known axis of the input {}", input.show()),
                        )
                        .label("axis")
                        .help("give the model an `input:` shape; Keras counts axes with the batch (-1 is the last)");
                        cx.error(d);
                    }
                    return input.clone();
                }
            }
        }
        let n = product(&shape).unwrap_or(u64::MAX);
        let fans = Fans {
            fan_in: n,
            fan_out: n,
        };
        cx.tensor(
            &["mean"],
            "",
            Role::RunningMean,
            shape.clone(),
            fans,
            dflt(Init::ZEROS, "keras: zeros, set by adapt"),
        );
        cx.tensor(
            &["variance"],
            "",
            Role::RunningVar,
            shape,
            fans,
            dflt(Init::ONES, "keras: ones, set by adapt"),
        );
        let count = Decl::new(
            cx.at(&["count"]),
            "",
            Role::Count,
            vec![],
            fans,
            dflt(Init::ZEROS, "keras: zeros (never updated)"),
        )
        .dtype(DType::I32);
        cx.declare(count);
        input.clone()
    }
}
