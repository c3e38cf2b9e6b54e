//! Pointwise layers: `activation`, `dropout` and `prelu`, and the `activation` field
//! other layers share.

use super::{dflt, Act, Activation, Cx, Decl};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::fields::invalid_choice;
use crate::spec::Fields;
use crate::syntax::Value;

/// Reads an activation word under `key` (`swish` is `silu`).
fn activation_word(f: &mut Fields<'_>, key: &'static str) -> Option<Activation> {
    let s = f.str(key)?;
    match Activation::parse(s.value) {
        Some(a) => Some(a),
        None => {
            let words: Vec<&str> = Activation::words().collect();
            f.diags.push(invalid_choice(s.span, key, s.value, &words));
            None
        }
    }
}

/// Reads an optional `activation` field (dense, conv).
pub(crate) fn activation_field(f: &mut Fields<'_>) -> Option<Activation> {
    activation_word(f, "activation")
}

/// Reads an `activation` layer's `function`.
pub(super) fn lower_activation(f: &mut Fields<'_>) -> Option<Activation> {
    if f.node("function").is_none() {
        f.missing("function", "relu");
        return None;
    }
    activation_word(f, "function")
}

/// `dropout`: no tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    /// Drop probability.
    pub rate: f64,
}

impl Dropout {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Dropout> {
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
        Some(Dropout {
            rate: rate.map_or(0.5, |r| r.value),
        })
    }
}

/// `prelu`: a learned negative slope.
#[derive(Clone, Debug, PartialEq)]
pub struct Prelu {
    /// torch `num_parameters`: 1 (shared) or the channels.
    pub num_parameters: u64,
    /// Keras `shared_axes` (1-based, the batch axis being 0, as Keras counts them).
    pub shared_axes: Vec<u64>,
}

impl Prelu {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout) -> Option<Prelu> {
        let num_parameters = match layout {
            Layout::Pytorch => f.size("num_parameters").map_or(1, |s| s.value),
            Layout::Keras => 1,
        };
        let mut shared_axes = Vec::new();
        if layout == Layout::Keras {
            if let Some(n) = f.node("shared_axes") {
                let items: Vec<&crate::syntax::Node> = match &n.value {
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![n],
                };
                for i in items {
                    shared_axes.push(crate::spec::fields::as_size(i, "shared_axes", f.diags)?);
                }
            }
        }
        Some(Prelu {
            num_parameters,
            shared_axes,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        match cx.layout {
            Layout::Pytorch => {
                // torch applies weight along dim 1 (channels): 1 or C values, 0.25 each.
                let n = self.num_parameters;
                let chan = if input.dims.len() >= 2 {
                    input.dims.first().copied().flatten()
                } else {
                    input.last()
                };
                if n > 1 && chan.is_some_and(|c| c != n) && !input.poisoned {
                    let d = Diagnostic::error(
                        diag::SHAPE_MISMATCH,
                        cx.layer.type_span,
                        format!(
                            "`num_parameters` {n} is not the input's {} channels",
                            chan.unwrap_or(0)
                        ),
                    )
                    .label("per-channel slopes")
                    .help("write `num_parameters: 1` (one shared slope) or the channel count");
                    cx.error(d);
                    return input.clone();
                }
                let fans = Fans {
                    fan_in: n,
                    fan_out: n,
                };
                let path = cx.at(&["weight"]);
                cx.declare(Decl::new(
                    path,
                    "alpha_initializer",
                    Role::Alpha,
                    vec![n],
                    fans,
                    dflt(Init::Constant { value: 0.25 }, "torch: 0.25"),
                ));
            }
            Layout::Keras => {
                // Keras: one slope per position of the example, shared along `shared_axes`.
                if input.open || input.dims.iter().any(Option::is_none) {
                    cx.missing_input("input", input);
                    return input.clone();
                }
                let mut shape: Vec<u64> = input.dims.iter().map(|d| d.unwrap_or(1)).collect();
                for &a in &self.shared_axes {
                    match shape.get_mut((a as usize).wrapping_sub(1)) {
                        Some(d) => *d = 1,
                        None => {
                            let d = Diagnostic::error(
                                diag::INVALID_VALUE,
                                cx.layer.type_span,
                                format!(
                                    "`shared_axes` {a} is not an axis of the input {} (axes count from 1)",
                                    input.show()
                                ),
                            )
                            .label("no such axis")
                            .help("for a [H, W, C] image write `shared_axes: [1, 2]` to share across space");
                            cx.error(d);
                            return input.clone();
                        }
                    }
                }
                let n = product(&shape).unwrap_or(u64::MAX);
                let fans = Fans {
                    fan_in: n,
                    fan_out: n,
                };
                let path = cx.at(&["alpha"]);
                cx.declare(Decl::new(
                    path,
                    "alpha_initializer",
                    Role::Alpha,
                    shape,
                    fans,
                    dflt(Init::ZEROS, "keras: zeros"),
                ));
            }
        }
        input.clone()
    }
}

use super::product;
