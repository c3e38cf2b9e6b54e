//! `parameter`: a free tensor named by the layer's path itself (`class_token`,
//! `encoder.pos_embedding`, `mlp.experts.gate_up_proj`). The stream passes it unchanged.

use super::{dflt, product, Act, Cx, Decl};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{DType, Fans, FansFrom, Layout, Role};
use crate::source::Span;
use crate::spec::fields;
use crate::spec::{Fields, Sp};
use crate::syntax::Value;

/// A free tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    /// Its shape (may be empty: a scalar).
    pub shape: Vec<u64>,
    /// Its dtype, if it has its own (integer buffers).
    pub dtype: Option<Sp<DType>>,
    /// Whether training updates it (false: a buffer or a frozen table).
    pub trainable: bool,
    /// `fans: [fan_in, fan_out]`, when written.
    pub fans: Option<Fans>,
    /// The `initializer` key, for errors about it.
    span: Span,
}

impl Parameter {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Parameter> {
        let shape = match f.node("shape") {
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .map(|i| fields::as_size(i, "shape", f.diags))
                    .collect::<Option<Vec<u64>>>(),
                _ => {
                    f.diags.push(fields::wrong_type(
                        n,
                        "shape",
                        "a list of sizes",
                        "[1, 1, 768]",
                    ));
                    None
                }
            },
            None => {
                f.missing("shape", "[1, 1, 768]");
                None
            }
        };
        let dtype = f.choice("dtype", &DType::PARAMETER_NAMES).map(|s| Sp {
            value: DType::from_spec(s.value).expect("a listed name"),
            span: s.span,
        });
        let trainable = f.bool("trainable", true);
        let fans = match f.node("fans") {
            None => None,
            Some(n) => match &n.value {
                Value::Seq(items) if items.len() == 2 => {
                    let fi = fields::as_size(&items[0], "fans", f.diags)?;
                    let fo = fields::as_size(&items[1], "fans", f.diags)?;
                    Some(Fans {
                        fan_in: fi,
                        fan_out: fo,
                    })
                }
                _ => {
                    f.diags.push(fields::wrong_type(
                        n,
                        "fans",
                        "[fan_in, fan_out]",
                        "[768, 768]",
                    ));
                    return None;
                }
            },
        };
        let span = match f.entry("initializer") {
            Some(e) => e.value.span,
            None => {
                f.missing("initializer", "zeros");
                return None;
            }
        };
        Some(Parameter {
            shape: shape?,
            dtype,
            trainable,
            fans,
            span,
        })
    }

    /// Fans of `shape` as the layout's framework computes them (torch
    /// `_calculate_fan_in_and_fan_out`, which refuses fewer than 2 dimensions; Keras
    /// `compute_fans`, which takes a vector's length and 1 for a scalar).
    fn framework_fans(&self, layout: Layout) -> Option<Fans> {
        let s = &self.shape;
        let n = s.len();
        match layout {
            Layout::Pytorch => {
                if n < 2 {
                    return None;
                }
                let rf = product(&s[2..])?;
                Some(Fans {
                    fan_in: s[1].checked_mul(rf)?,
                    fan_out: s[0].checked_mul(rf)?,
                })
            }
            Layout::Keras => Some(match n {
                0 => Fans {
                    fan_in: 1,
                    fan_out: 1,
                },
                1 => Fans {
                    fan_in: s[0],
                    fan_out: s[0],
                },
                _ => {
                    let rf = product(&s[..n - 2])?;
                    Fans {
                        fan_in: s[n - 2].checked_mul(rf)?,
                        fan_out: s[n - 1].checked_mul(rf)?,
                    }
                }
            }),
        }
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let written = cx.layer.inits.get("initializer");
        if written.is_some_and(|i| i.init.is_none()) {
            let d = Diagnostic::error(
                diag::INVALID_VALUE,
                self.span,
                "a `parameter` has no framework default: torch and Keras leave it to the model's code",
            )
            .label("`default` here")
            .help("write its initializer, e.g. `zeros` or `{name: normal, std: 0.02}`");
            cx.error(d);
            return input.clone();
        }
        let needs_fans = written
            .and_then(|i| i.init.as_ref())
            .is_some_and(Init::uses_fans);
        let (fans, from) = match (self.fans, self.framework_fans(cx.layout)) {
            (Some(f), _) => (f, FansFrom::Spec),
            (None, Some(f)) => (f, FansFrom::Storage),
            (None, None) => {
                if needs_fans {
                    let d = Diagnostic::error(
                        diag::IMPOSSIBLE_SHAPE,
                        self.span,
                        format!(
                            "this initializer needs fans, and torch computes none for a tensor of {} dimension(s)",
                            self.shape.len()
                        ),
                    )
                    .label("needs fan_in / fan_out")
                    .help("state them: `fans: [768, 768]`, or use an initializer without fans (normal, zeros)");
                    cx.error(d);
                    return input.clone();
                }
                let n = product(&self.shape).unwrap_or(1);
                (
                    Fans {
                        fan_in: n,
                        fan_out: n,
                    },
                    FansFrom::Storage,
                )
            }
        };
        let mut path = cx.parent.clone();
        path.push(cx.name.clone());
        let mut d = Decl::new(
            path,
            "initializer",
            Role::Parameter,
            self.shape.clone(),
            fans,
            dflt(Init::ZEROS, "zeros"),
        );
        d.fans_from = from;
        d.trainable = self.trainable;
        if let Some(t) = &self.dtype {
            d = d.dtype(t.value);
        }
        cx.declare(d);
        input.clone()
    }
}
