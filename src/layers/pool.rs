//! `max_pool2d`, `avg_pool2d`: shape-only layers.

use super::conv::{out_size, Padding};
use super::{Act, Cx};
use crate::diag::{self, Diagnostic};
use crate::model::Layout;
use crate::spec::fields;
use crate::spec::Fields;

/// A 2-D pooling window.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Max (true) or average.
    pub max: bool,
    /// Window.
    pub pool_size: Vec<u64>,
    /// Step (defaults to the window).
    pub strides: Vec<u64>,
    /// Border handling.
    pub padding: Padding,
}

impl Pool {
    pub(super) fn lower(f: &mut Fields<'_>, max: bool) -> Option<Pool> {
        let pool_size = match f.node("pool_size") {
            Some(n) => fields::sizes(n, "pool_size", 2, false, f.diags),
            None => {
                f.missing("pool_size", "2");
                None
            }
        }?;
        let strides = match f.node("strides") {
            Some(n) => fields::sizes(n, "strides", 2, false, f.diags)?,
            None => pool_size.clone(),
        };
        let padding = Padding::read(f, 2);
        Some(Pool {
            max,
            pool_size,
            strides,
            padding,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        if input.open && input.dims.is_empty() {
            return input.clone();
        }
        if input.dims.len() != 3 {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                cx.layer.type_span,
                format!(
                    "2-D pooling expects an image input, but the previous layer gives {}",
                    input.show()
                ),
            )
            .label("not an image")
            .help(
                "pool after a conv2d, or give `input:` as [C, H, W] (pytorch) or [H, W, C] (keras)",
            );
            cx.error(d);
            return Act::poisoned();
        }
        let (c, sp) = match cx.layout {
            Layout::Pytorch => (0, [1, 2]),
            Layout::Keras => (2, [0, 1]),
        };
        let mut out = input.clone();
        for (i, &ax) in sp.iter().enumerate() {
            out.dims[ax] = input.dims[ax].and_then(|n| {
                match out_size(n, self.pool_size[i], self.strides[i], 1, &self.padding, i) {
                    Ok(o) => Some(o),
                    Err(msg) => {
                        let d = Diagnostic::error(
                            diag::SHAPE_MISMATCH,
                            cx.layer.type_span,
                            format!("pooling: {msg}"),
                        )
                        .label("window larger than its input")
                        .help("use a smaller `pool_size` or `padding: same`");
                        cx.error(d);
                        None
                    }
                }
            });
        }
        out.dims[c] = input.dims[c];
        out
    }
}
