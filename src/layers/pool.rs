//! `max_pool2d`, `avg_pool2d`: shape-only layers.

use super::conv::{window_out, Padding};
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
        // The spatial axes (the channel axis passes through).
        let sp = match cx.layout {
            Layout::Pytorch => [1, 2],
            Layout::Keras => [0, 1],
        };
        let dims: Vec<Option<u64>> = sp.iter().map(|&ax| input.dims[ax]).collect();
        let sizes = window_out(
            cx,
            &dims,
            &self.pool_size,
            &self.strides,
            &[1, 1],
            &self.padding,
            "pooling",
            "use a smaller `pool_size` or `padding: same`",
        );
        let mut out = input.clone();
        for (&ax, n) in sp.iter().zip(sizes) {
            out.dims[ax] = n;
        }
        out
    }
}
