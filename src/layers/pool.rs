//! Pooling, shape-only: `max_pool1d/2d/3d`, `avg_pool1d/2d/3d`, `adaptive_*_pool*`,
//! `global_*_pool*` (reference/LAYERS2.md §3 has the arithmetic).

use super::conv::{join_image, split_image, window_out, Padding};
use super::{Act, Cx};
use crate::diag::{self, Diagnostic};
use crate::model::Layout;
use crate::spec::fields;
use crate::spec::Fields;
use crate::syntax::Value;

/// Maximum or average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolOp {
    /// The largest value of the window.
    Max,
    /// The mean of the window.
    Avg,
}

/// A pooling window sliding over 1 to 3 spatial dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Max or average.
    pub op: PoolOp,
    /// Spatial dimensions.
    pub rank: usize,
    /// Window.
    pub pool_size: Vec<u64>,
    /// Step (defaults to the window).
    pub strides: Vec<u64>,
    /// Border handling.
    pub padding: Padding,
    /// torch `ceil_mode`: a last, partial window counts.
    pub ceil_mode: bool,
}

impl Pool {
    pub(super) fn lower(f: &mut Fields<'_>, op: PoolOp, rank: usize) -> Option<Pool> {
        let pool_size = match f.node("pool_size") {
            Some(n) => fields::sizes(n, "pool_size", rank, false, f.diags),
            None => {
                f.missing("pool_size", "2");
                None
            }
        }?;
        let strides = match f.node("strides") {
            Some(n) => fields::sizes(n, "strides", rank, false, f.diags)?,
            None => pool_size.clone(),
        };
        let padding = Padding::read(f, rank);
        let ceil_mode = f.bool("ceil_mode", false);
        Some(Pool {
            op,
            rank,
            pool_size,
            strides,
            padding,
            ceil_mode,
        })
    }

    /// Output size of dimension `i` for an input of `n` (torch's and Keras' arithmetic).
    fn out(&self, n: u64, i: usize) -> Result<u64, String> {
        let (k, s) = (self.pool_size[i], self.strides[i]);
        let p = self.padding.of(i);
        if p.saturating_mul(2) > k {
            return Err(format!(
                "padding {p} is more than half the window {k} (torch refuses it)"
            ));
        }
        if self.padding == Padding::Same {
            return Ok(n.div_ceil(s));
        }
        let padded = n + 2 * p;
        if padded < k {
            return Err(format!("window of {k} does not fit in input of {padded}"));
        }
        let mut out = (padded - k) / s + 1;
        if self.ceil_mode {
            out = (padded - k).div_ceil(s) + 1;
            // torch drops a last window that would start in the right padding.
            if (out - 1) * s >= n + p {
                out -= 1;
            }
        }
        Ok(out)
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        if input.open && input.dims.is_empty() {
            return input.clone();
        }
        let what = format!("{}-D pooling", self.rank);
        let Some((chan, spatial)) = split_image(input, self.rank, false, &what, cx) else {
            return Act::poisoned();
        };
        let sizes = window_out(
            cx,
            &spatial,
            |n, i| self.out(n, i),
            "pooling",
            "use a smaller `pool_size` or `padding: same`",
        );
        match chan {
            Some(c) => join_image(cx.layout, c, sizes, input.poisoned),
            None => Act {
                poisoned: input.poisoned,
                ..Act::unknown()
            },
        }
    }
}

/// Pooling to a fixed output size (torch AdaptiveAvgPool, Keras AdaptiveAveragePooling).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptivePool {
    /// Max or average.
    pub op: PoolOp,
    /// Spatial dimensions.
    pub rank: usize,
    /// Output size per dimension (`None`: keep the input's).
    pub output_size: Vec<Option<u64>>,
}

impl AdaptivePool {
    pub(super) fn lower(f: &mut Fields<'_>, op: PoolOp, rank: usize) -> Option<AdaptivePool> {
        let Some(n) = f.node("output_size") else {
            f.missing("output_size", "1");
            return None;
        };
        let output_size = match &n.value {
            Value::Seq(items) if items.len() == rank => {
                let mut v = Vec::with_capacity(rank);
                for i in items {
                    v.push(match i.value {
                        Value::Null => None,
                        _ => Some(fields::as_size(i, "output_size", f.diags)?),
                    });
                }
                v
            }
            Value::Seq(items) => {
                f.diags.push(
                    Diagnostic::error(
                        diag::INVALID_VALUE,
                        n.span,
                        format!("`output_size` needs {rank} value(s), found {}", items.len()),
                    )
                    .label("wrong length")
                    .help("write one size for all dimensions, or one per dimension"),
                );
                return None;
            }
            _ => vec![Some(fields::as_size(n, "output_size", f.diags)?); rank],
        };
        Some(AdaptivePool {
            op,
            rank,
            output_size,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let what = format!("{}-D adaptive pooling", self.rank);
        let Some((chan, spatial)) = split_image(input, self.rank, false, &what, cx) else {
            return Act::poisoned();
        };
        let sizes = spatial
            .iter()
            .zip(&self.output_size)
            .map(|(n, o)| o.or(*n))
            .collect();
        match chan {
            Some(c) => join_image(cx.layout, c, sizes, input.poisoned),
            None => Act {
                poisoned: input.poisoned,
                ..Act::unknown()
            },
        }
    }
}

/// Pooling over every spatial position: an image `[C, *S]` becomes `[C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalPool {
    /// Max or average.
    pub op: PoolOp,
    /// Spatial dimensions.
    pub rank: usize,
}

impl GlobalPool {
    /// A global pool over `rank` dimensions.
    pub fn new(op: PoolOp, rank: usize) -> GlobalPool {
        GlobalPool { op, rank }
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        if input.open && input.dims.is_empty() {
            return Act {
                poisoned: input.poisoned,
                ..Act::dims(vec![None])
            };
        }
        if input.dims.len() != self.rank + 1 {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                cx.layer.type_span,
                format!(
                    "a global {}-D pool expects an input of {} dimensions, but the previous layer gives {}",
                    self.rank,
                    self.rank + 1,
                    input.show()
                ),
            )
            .label("wrong rank")
            .help("pool after a convolution of the same rank");
            cx.error(d);
            return Act::poisoned();
        }
        let c = match cx.layout {
            Layout::Pytorch => input.dims[0],
            Layout::Keras => input.dims[self.rank],
        };
        Act::dims(vec![c])
    }
}
