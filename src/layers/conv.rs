//! `conv1d`, `conv2d`: nn.Conv1d/2d / keras Conv1D/2D, and the spatial arithmetic pooling shares.

use super::{
    activation_field, dflt, glorot_uniform, overflow, product, torch_bias_default,
    torch_weight_default, Act, Cx,
};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::fields::{self, invalid_choice};
use crate::spec::{Fields, Sp};
use crate::syntax::Value;

/// How a window treats the border.
#[derive(Clone, Debug, PartialEq)]
pub enum Padding {
    /// No padding: windows that do not fit are dropped.
    Valid,
    /// Output size = ceil(input / stride) (Keras; PyTorch only with stride 1).
    Same,
    /// Explicit zero padding per spatial dimension, on both sides (PyTorch `padding=int`).
    Explicit(Vec<u64>),
}

impl Padding {
    /// Reads `padding` (valid, same, an int, or a list of ints).
    pub fn read(f: &mut Fields<'_>, rank: usize) -> Padding {
        let Some(n) = f.node("padding") else {
            return Padding::Valid;
        };
        match &n.value {
            Value::Str(s) => match s.as_str() {
                "valid" => Padding::Valid,
                "same" => Padding::Same,
                other => {
                    f.diags.push(invalid_choice(
                        n.span,
                        "padding",
                        other,
                        &["valid", "same", "an integer"],
                    ));
                    Padding::Valid
                }
            },
            _ => fields::sizes(n, "padding", rank, true, f.diags)
                .map_or(Padding::Valid, Padding::Explicit),
        }
    }
}

/// Output size of one spatial dimension, or why the window does not fit.
pub fn out_size(n: u64, k: u64, s: u64, d: u64, pad: &Padding, i: usize) -> Result<u64, String> {
    let span = d
        .checked_mul(k - 1)
        .and_then(|x| x.checked_add(1))
        .ok_or_else(|| "window size overflows".to_string())?;
    match pad {
        Padding::Same => Ok(n.div_ceil(s)),
        Padding::Valid | Padding::Explicit(_) => {
            let p = match pad {
                Padding::Explicit(p) => p[i],
                _ => 0,
            };
            let padded = n
                .checked_add(2 * p)
                .ok_or_else(|| "padding overflows".to_string())?;
            if padded < span {
                return Err(format!(
                    "window of {span} does not fit in input of {padded}"
                ));
            }
            Ok((padded - span) / s + 1)
        }
    }
}

/// Output sizes of a window sliding over the spatial `dims` (unknown stays unknown). A
/// window that does not fit is reported once for the layer, at the first dimension it
/// does not fit, as `{what}: …` with `help`.
#[allow(clippy::too_many_arguments)]
pub fn window_out(
    cx: &mut Cx<'_>,
    dims: &[Option<u64>],
    window: &[u64],
    strides: &[u64],
    dilation: &[u64],
    padding: &Padding,
    what: &str,
    help: &str,
) -> Vec<Option<u64>> {
    let mut reported = false;
    let mut out = Vec::with_capacity(dims.len());
    for (i, n) in dims.iter().enumerate() {
        out.push(n.and_then(|n| {
            match out_size(n, window[i], strides[i], dilation[i], padding, i) {
                Ok(o) => Some(o),
                Err(msg) => {
                    if !std::mem::replace(&mut reported, true) {
                        let d = Diagnostic::error(
                            diag::SHAPE_MISMATCH,
                            cx.layer.type_span,
                            format!("{what}: {msg}"),
                        )
                        .label("window larger than its input")
                        .help(help);
                        cx.error(d);
                    }
                    None
                }
            }
        }));
    }
    out
}

/// A 1-D or 2-D convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Spatial dimensions: 1 or 2.
    pub rank: usize,
    /// Output channels.
    pub filters: u64,
    /// Window per spatial dimension.
    pub kernel_size: Vec<u64>,
    /// Step per spatial dimension.
    pub strides: Vec<u64>,
    /// Border handling.
    pub padding: Padding,
    /// Dilation per spatial dimension.
    pub dilation: Vec<u64>,
    /// Channel groups.
    pub groups: Sp<u64>,
    /// Input channels, if stated.
    pub in_channels: Option<u64>,
    /// Whether it has a bias.
    pub use_bias: bool,
    /// Output activation.
    pub activation: Option<&'static str>,
    strides_span: Option<crate::source::Span>,
}

impl Conv {
    pub(super) fn lower(f: &mut Fields<'_>, rank: usize) -> Option<Conv> {
        let filters = f.req_size("filters", "32");
        let kernel_size = match f.node("kernel_size") {
            Some(n) => fields::sizes(n, "kernel_size", rank, false, f.diags),
            None => {
                f.missing("kernel_size", "3");
                None
            }
        };
        let strides_node = f.node("strides");
        let strides = match strides_node {
            Some(n) => fields::sizes(n, "strides", rank, false, f.diags),
            None => Some(vec![1; rank]),
        };
        let padding = Padding::read(f, rank);
        let dilation = match f.node("dilation") {
            Some(n) => fields::sizes(n, "dilation", rank, false, f.diags),
            None => Some(vec![1; rank]),
        };
        let groups = f.size("groups").unwrap_or(Sp {
            value: 1,
            span: f.span,
        });
        let in_channels = f.size("in_channels").map(|s| s.value);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        Some(Conv {
            rank,
            filters: filters?.value,
            kernel_size: kernel_size?,
            strides: strides?,
            padding,
            dilation: dilation?,
            groups,
            in_channels,
            use_bias,
            activation,
            strides_span: strides_node.map(|n| n.span),
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let r = self.rank;
        // The input is [C, *spatial] (pytorch) or [*spatial, C] (keras).
        let (chan, spatial): (Option<u64>, Vec<Option<u64>>) =
            if !input.open && input.dims.len() == r + 1 {
                match cx.layout {
                    Layout::Pytorch => (input.dims[0], input.dims[1..].to_vec()),
                    Layout::Keras => (input.dims[r], input.dims[..r].to_vec()),
                }
            } else if input.open && input.dims.len() <= r + 1 {
                let chan = match cx.layout {
                    Layout::Keras => input.last(),
                    Layout::Pytorch if input.dims.len() == r + 1 => input.dims[0],
                    Layout::Pytorch => None,
                };
                (chan, vec![None; r])
            } else {
                if self.in_channels.is_none() {
                    let want = match cx.layout {
                        Layout::Pytorch if r == 1 => "[C, L]",
                        Layout::Pytorch => "[C, H, W]",
                        Layout::Keras if r == 1 => "[L, C]",
                        Layout::Keras => "[H, W, C]",
                    };
                    let d = Diagnostic::error(
                        diag::SHAPE_MISMATCH,
                        cx.layer.type_span,
                        format!(
                            "conv{r}d expects a {want} input, but the previous layer gives {}",
                            input.show()
                        ),
                    )
                    .label("input shape does not fit")
                    .help(format!(
                    "give `input:` as {want}, or state `in_channels` if this layer starts a branch"
                ));
                    cx.error(d);
                    return Act::poisoned();
                }
                (None, vec![None; r])
            };
        let out_spatial = window_out(
            cx,
            &spatial,
            &self.kernel_size,
            &self.strides,
            &self.dilation,
            &self.padding,
            &format!("conv{r}d"),
            "use a smaller `kernel_size` or `dilation`, `padding: same`, or a larger input",
        );
        if cx.layout == Layout::Pytorch
            && self.padding == Padding::Same
            && self.strides.iter().any(|&s| s > 1)
        {
            let d = Diagnostic::error(
                diag::INVALID_VALUE,
                self.strides_span.unwrap_or(cx.layer.type_span),
                "PyTorch does not support `padding: same` with strides > 1",
            )
            .label("strided")
            .help("write the padding as a number (e.g. `padding: 1` for a 3-wide kernel), or use strides 1");
            cx.error(d);
        }
        let out = {
            let mut dims = Vec::with_capacity(r + 1);
            match cx.layout {
                Layout::Pytorch => {
                    dims.push(Some(self.filters));
                    dims.extend(out_spatial);
                }
                Layout::Keras => {
                    dims.extend(out_spatial);
                    dims.push(Some(self.filters));
                }
            }
            Act {
                poisoned: input.poisoned,
                ..Act::dims(dims)
            }
        };

        let Some(inc) = self.in_channels.or(chan) else {
            cx.missing_input("in_channels", input);
            return out;
        };
        let g = self.groups.value;
        if !inc.is_multiple_of(g) || !self.filters.is_multiple_of(g) {
            let d = Diagnostic::error(
                diag::SHAPE_MISMATCH,
                self.groups.span,
                format!(
                    "{inc} input and {} output channels must both divide into {g} groups",
                    self.filters
                ),
            )
            .label("groups")
            .help("choose `groups` that divides both channel counts");
            cx.error(d);
            return out;
        }
        let Some(rf) = product(&self.kernel_size) else {
            cx.error(overflow(cx.layer.type_span, "the kernel size"));
            return out;
        };
        let per_group = inc / g;
        let (Some(fan_in), Some(fan_out)) =
            (per_group.checked_mul(rf), self.filters.checked_mul(rf))
        else {
            cx.error(overflow(cx.layer.type_span, "the kernel's fan"));
            return out;
        };
        let fans = Fans { fan_in, fan_out };
        let (wname, shape) = match cx.layout {
            Layout::Pytorch => {
                let mut s = vec![self.filters, per_group];
                s.extend(&self.kernel_size);
                ("weight", s)
            }
            Layout::Keras => {
                let mut s = self.kernel_size.clone();
                s.extend([per_group, self.filters]);
                ("kernel", s)
            }
        };
        let (kd, bd) = match cx.layout {
            Layout::Pytorch => (torch_weight_default(), torch_bias_default(fan_in)),
            Layout::Keras => (glorot_uniform(), dflt(Init::ZEROS, "keras: zeros")),
        };
        cx.tensor(
            &[wname],
            "kernel_initializer",
            Role::Kernel,
            shape,
            fans,
            kd,
        );
        if self.use_bias {
            cx.tensor(
                &["bias"],
                "bias_initializer",
                Role::Bias,
                vec![self.filters],
                fans,
                bd,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spatial_arithmetic_matches_the_frameworks() {
        // torch: floor((n + 2p - d(k-1) - 1)/s) + 1
        assert_eq!(out_size(28, 3, 1, 1, &Padding::Valid, 0), Ok(26));
        assert_eq!(
            out_size(224, 7, 2, 1, &Padding::Explicit(vec![3]), 0),
            Ok(112)
        );
        assert_eq!(
            out_size(112, 3, 2, 1, &Padding::Explicit(vec![1]), 0),
            Ok(56)
        );
        assert_eq!(out_size(10, 3, 1, 2, &Padding::Valid, 0), Ok(6));
        // keras same: ceil(n / s)
        assert_eq!(out_size(28, 3, 2, 1, &Padding::Same, 0), Ok(14));
        assert_eq!(out_size(27, 3, 2, 1, &Padding::Same, 0), Ok(14));
        assert!(out_size(2, 3, 1, 1, &Padding::Valid, 0).is_err());
    }
}
