//! Shape-only layers: `flatten`, `reshape`, `permute`, `upsample`. Axes count the
//! example's dimensions without the batch, from 0, as `input` does (torch's
//! `x.permute(0, 2, 1)` is `dims: [1, 0]`).

use super::{overflow, product, Act, Cx};
use crate::diag::{self, Diagnostic};
use crate::spec::fields;
use crate::spec::{Fields, Sp};
use crate::syntax::{Node, Value};

fn is_known(a: &Act) -> bool {
    !a.open && a.dims.iter().all(Option::is_some)
}

/// `flatten`: every dimension into one.
#[derive(Clone, Debug, PartialEq)]
pub struct Flatten;

impl Flatten {
    pub(crate) fn resolve(&self, act: &Act, cx: &mut Cx<'_>) -> Act {
        if !is_known(act) {
            return Act {
                poisoned: act.poisoned,
                ..Act::dims(vec![None])
            };
        }
        let dims: Vec<u64> = act.dims.iter().map(|d| d.unwrap_or(0)).collect();
        match product(&dims) {
            Some(n) => Act::known(&[n]),
            None => {
                cx.error(overflow(cx.layer.type_span, "the flattened size"));
                Act::poisoned()
            }
        }
    }
}

/// A list of integers under `key` (a single one counts as a list of one).
fn ints(f: &mut Fields<'_>, key: &'static str, example: &str) -> Option<Sp<Vec<i128>>> {
    let Some(n) = f.node(key) else {
        f.missing(key, example);
        return None;
    };
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut v = Vec::with_capacity(items.len());
    for i in items {
        match i.value {
            Value::Int(x) => v.push(x),
            _ => {
                f.diags.push(fields::wrong_type(
                    i,
                    key,
                    "a list of whole numbers",
                    example,
                ));
                return None;
            }
        }
    }
    Some(Sp {
        value: v,
        span: n.span,
    })
}

/// `reshape`: one example to `shape` (one entry may be −1, inferred).
#[derive(Clone, Debug, PartialEq)]
pub struct Reshape {
    /// The new shape.
    pub shape: Sp<Vec<i128>>,
}

impl Reshape {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Reshape> {
        let shape = ints(f, "shape", "[16, 64]")?;
        let bad = shape.value.iter().any(|&d| d == 0 || d < -1)
            || shape.value.iter().filter(|&&d| d == -1).count() > 1;
        if bad {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    shape.span,
                    "`shape` holds sizes ≥ 1 and at most one -1",
                )
                .label("not a shape")
                .help("write the example's new shape, batch excluded, e.g. `shape: [-1, 64]`"),
            );
            return None;
        }
        Some(Reshape { shape })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let fixed: Vec<u64> = self
            .shape
            .value
            .iter()
            .filter(|&&d| d > 0)
            .map(|&d| d as u64)
            .collect();
        let Some(fixed_n) = product(&fixed) else {
            cx.error(overflow(self.shape.span, "the shape"));
            return Act::poisoned();
        };
        let total = if is_known(input) {
            product(
                &input
                    .dims
                    .iter()
                    .map(|d| d.unwrap_or(0))
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        };
        let infer = self.shape.value.contains(&-1);
        let mut dims = Vec::with_capacity(self.shape.value.len());
        for &d in &self.shape.value {
            dims.push(if d > 0 {
                Some(d as u64)
            } else {
                total.map(|t| t / fixed_n)
            });
        }
        if let Some(t) = total {
            let fits = if infer {
                t.is_multiple_of(fixed_n)
            } else {
                t == fixed_n
            };
            if !fits {
                let d = Diagnostic::error(
                    diag::SHAPE_MISMATCH,
                    self.shape.span,
                    format!(
                        "cannot reshape {} ({t} values) to {:?}",
                        input.show(),
                        self.shape.value
                    ),
                )
                .label("sizes differ")
                .help("the new shape must hold as many values as the old one");
                cx.error(d);
                return Act::poisoned();
            }
        }
        Act {
            poisoned: input.poisoned,
            ..Act::dims(dims)
        }
    }
}

/// `permute`: the example's axes in a new order.
#[derive(Clone, Debug, PartialEq)]
pub struct Permute {
    /// The new order of the axes.
    pub dims: Sp<Vec<i128>>,
}

impl Permute {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Permute> {
        let dims = ints(f, "dims", "[1, 0]")?;
        let mut sorted: Vec<i128> = dims.value.clone();
        sorted.sort_unstable();
        if sorted.iter().enumerate().any(|(i, &d)| d != i as i128) {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    dims.span,
                    "`dims` is an order of the axes 0 … n−1, each once",
                )
                .label("not a permutation")
                .help("count the example's axes without the batch: torch's x.permute(0, 2, 1) is `dims: [1, 0]`"),
            );
            return None;
        }
        Some(Permute { dims })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        if input.open {
            return Act {
                poisoned: input.poisoned,
                ..Act::dims(vec![None; self.dims.value.len()])
            };
        }
        if input.dims.len() != self.dims.value.len() {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                self.dims.span,
                format!(
                    "`dims` orders {} axes, the input {} has {}",
                    self.dims.value.len(),
                    input.show(),
                    input.dims.len()
                ),
            )
            .label("axes")
            .help("count the example's axes without the batch");
            cx.error(d);
            return Act::poisoned();
        }
        Act {
            poisoned: input.poisoned,
            ..Act::dims(
                self.dims
                    .value
                    .iter()
                    .map(|&i| input.dims[i as usize])
                    .collect(),
            )
        }
    }
}

/// `upsample`: each spatial size times `scale_factor`, or set to `size` (torch).
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    /// Multipliers (Keras' UpSampling `size`), one or one per dimension.
    pub scale_factor: Option<Vec<f64>>,
    /// Output sizes (torch `size`).
    pub size: Option<Vec<u64>>,
}

impl Upsample {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Upsample> {
        let _ = f.choice(
            "mode",
            &[
                "nearest",
                "nearest-exact",
                "linear",
                "bilinear",
                "bicubic",
                "trilinear",
            ],
        );
        let _ = f.bool("align_corners", false);
        let scale_factor = match f.node("scale_factor") {
            None => None,
            Some(n) => {
                let items: Vec<&Node> = match &n.value {
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![n],
                };
                let mut v = Vec::new();
                for i in items {
                    match i.value {
                        Value::Int(x) if x > 0 => v.push(x as f64),
                        Value::Float(x) if x.is_finite() && x > 0.0 => v.push(x),
                        _ => {
                            f.diags.push(fields::wrong_type(
                                i,
                                "scale_factor",
                                "a positive number",
                                "2",
                            ));
                            return None;
                        }
                    }
                }
                Some(v)
            }
        };
        let size = match f.node("size") {
            None => None,
            Some(n) => match &n.value {
                Value::Seq(items) => Some(
                    items
                        .iter()
                        .map(|i| fields::as_size(i, "size", f.diags))
                        .collect::<Option<Vec<u64>>>()?,
                ),
                _ => Some(vec![fields::as_size(n, "size", f.diags)?]),
            },
        };
        if scale_factor.is_some() == size.is_some() {
            f.diags.push(
                Diagnostic::error(
                    diag::MISSING_KEY,
                    f.span,
                    "`upsample` takes `scale_factor` or `size`, one of the two",
                )
                .label("upsample")
                .help(
                    "write `scale_factor: 2` (Keras' UpSampling size) or torch's `size: [64, 64]`",
                ),
            );
            return None;
        }
        Some(Upsample { scale_factor, size })
    }

    /// Keras' class for the dimensions it is given (two when a single number says nothing).
    pub fn keras_name(&self) -> &'static str {
        let n = self
            .scale_factor
            .as_ref()
            .map(Vec::len)
            .or(self.size.as_ref().map(Vec::len));
        match n {
            Some(1) if self.scale_factor.as_ref().is_some_and(|s| s.len() == 1) => "up_sampling2d",
            Some(1) => "up_sampling1d",
            Some(3) => "up_sampling3d",
            _ => "up_sampling2d",
        }
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        if input.open || input.dims.len() < 2 {
            return Act {
                poisoned: input.poisoned,
                ..Act::unknown()
            };
        }
        let rank = input.dims.len() - 1;
        let (spatial, chan): (Vec<Option<u64>>, Option<u64>) = match cx.layout {
            crate::model::Layout::Pytorch => (input.dims[1..].to_vec(), input.dims[0]),
            crate::model::Layout::Keras => (input.dims[..rank].to_vec(), input.dims[rank]),
        };
        let pick = |v: &Vec<f64>, i: usize| {
            if v.len() == 1 {
                v[0]
            } else {
                v.get(i).copied().unwrap_or(1.0)
            }
        };
        let mut out = Vec::with_capacity(rank);
        for (i, n) in spatial.iter().enumerate() {
            out.push(match (&self.scale_factor, &self.size) {
                (_, Some(s)) => Some(if s.len() == 1 {
                    s[0]
                } else {
                    s.get(i).copied().unwrap_or(1)
                }),
                (Some(f), None) => n.map(|n| (n as f64 * pick(f, i)).floor() as u64),
                (None, None) => *n,
            });
        }
        match chan {
            Some(c) => super::conv::join_image(cx.layout, c, out, input.poisoned),
            None => Act::poisoned(),
        }
    }
}

/// `zero_padding1d/2d/3d`: zeros around the spatial axes (Keras' ZeroPadding*D, torch's
/// nn.ZeroPad*d). `padding` is one number for every side, one per axis (both sides), or
/// `[before, after]` per axis, axes in the stream's order (H then W): torch's
/// `ZeroPad2d((left, right, top, bottom))` is `padding: [[top, bottom], [left, right]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroPad {
    /// Zeros before and after, per spatial axis.
    pub padding: Vec<(u64, u64)>,
}

impl ZeroPad {
    pub(super) fn lower(f: &mut Fields<'_>, rank: usize) -> Option<ZeroPad> {
        let example = match rank {
            1 => "[1, 2]",
            2 => "[[0, 1], [0, 1]]",
            _ => "[1, 1, 1]",
        };
        let Some(n) = f.node("padding") else {
            // Keras' default: one on every side.
            return Some(ZeroPad {
                padding: vec![(1, 1); rank],
            });
        };
        let bad = |f: &mut Fields<'_>, n: &Node| {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    n.span,
                    format!(
                        "`padding` is a number, {rank} numbers (one per axis), or {rank} \
                         [before, after] pairs"
                    ),
                )
                .label("not a padding")
                .help(format!("e.g. `padding: {example}`")),
            );
        };
        let size = |n: &Node| match n.value {
            Value::Int(x) if x >= 0 && x <= u32::MAX as i128 => Some(x as u64),
            _ => None,
        };
        let padding = match &n.value {
            Value::Int(_) => size(n).map(|p| vec![(p, p); rank]),
            // Keras 1-D: (before, after) of its one axis.
            Value::Seq(items)
                if rank == 1 && items.len() == 2 && items.iter().all(|i| size(i).is_some()) =>
            {
                Some(vec![(size(&items[0])?, size(&items[1])?)])
            }
            Value::Seq(items) if items.len() == rank => items
                .iter()
                .map(|i| match &i.value {
                    Value::Seq(p) if p.len() == 2 => Some((size(&p[0])?, size(&p[1])?)),
                    _ => size(i).map(|p| (p, p)),
                })
                .collect(),
            _ => None,
        };
        match padding {
            Some(padding) => Some(ZeroPad { padding }),
            None => {
                bad(f, n);
                None
            }
        }
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let rank = self.padding.len();
        if input.open || input.dims.len() != rank + 1 {
            if !input.open && !input.poisoned {
                cx.error(
                    Diagnostic::error(
                        diag::SHAPE_MISMATCH,
                        cx.layer.type_span,
                        format!(
                            "a {rank}-D zero padding needs an input of {} axes, not {}",
                            rank + 1,
                            input.show()
                        ),
                    )
                    .label("here")
                    .help("use the padding of the stream's rank (zero_padding1d/2d/3d)"),
                );
                return Act::poisoned();
            }
            return Act {
                poisoned: input.poisoned,
                ..Act::unknown()
            };
        }
        let (spatial, chan) = match cx.layout {
            crate::model::Layout::Pytorch => (&input.dims[1..], input.dims[0]),
            crate::model::Layout::Keras => (&input.dims[..rank], input.dims[rank]),
        };
        let out = spatial
            .iter()
            .zip(&self.padding)
            .map(|(d, (a, b))| d.map(|d| d + a + b))
            .collect();
        match chan {
            Some(c) => super::conv::join_image(cx.layout, c, out, input.poisoned),
            None => Act {
                poisoned: input.poisoned,
                ..Act::unknown()
            },
        }
    }
}
