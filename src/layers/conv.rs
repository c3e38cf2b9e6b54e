//! `conv1d`, `conv2d`, `conv3d`: nn.Conv1d/2d/3d / keras Conv1D/2D/3D, and what every
//! convolution-like layer shares: the spatial arithmetic (pooling uses it too), reading an
//! image-shaped input, and `weight_norm`.

use super::pointwise::activation_field;
use super::{
    dflt, glorot_uniform, overflow, product, torch_bias_default, torch_weight_default, Act,
    Activation, Cx, Decl,
};
use crate::diag::{self, Diagnostic};
use crate::init::{Init, TensorSource};
use crate::model::{Fans, Layout, Role};
use crate::source::Span;
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

    /// The explicit padding of dimension `i` (0 for valid and same).
    pub fn of(&self, i: usize) -> u64 {
        match self {
            Padding::Explicit(p) => p[i],
            _ => 0,
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
            let padded = pad
                .of(i)
                .checked_mul(2)
                .and_then(|p| n.checked_add(p))
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
pub fn window_out(
    cx: &mut Cx<'_>,
    dims: &[Option<u64>],
    size: impl Fn(u64, usize) -> Result<u64, String>,
    what: &str,
    help: &str,
) -> Vec<Option<u64>> {
    let mut reported = false;
    let mut out = Vec::with_capacity(dims.len());
    for (i, n) in dims.iter().enumerate() {
        out.push(n.and_then(|n| match size(n, i) {
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
        }));
    }
    out
}

/// The example shape a `rank`-dimensional convolution reads, as text.
pub(super) fn image_shape(rank: usize, layout: Layout) -> &'static str {
    match (layout, rank) {
        (Layout::Pytorch, 1) => "[C, L]",
        (Layout::Pytorch, 2) => "[C, H, W]",
        (Layout::Pytorch, _) => "[C, D, H, W]",
        (Layout::Keras, 1) => "[L, C]",
        (Layout::Keras, 2) => "[H, W, C]",
        (Layout::Keras, _) => "[D, H, W, C]",
    }
}

/// An input read as (channels, spatial sizes), in the layout's order; `None` after an
/// error was reported (the output is then poisoned).
pub(super) fn split_image(
    input: &Act,
    rank: usize,
    explicit_channels: bool,
    what: &str,
    cx: &mut Cx<'_>,
) -> Option<(Option<u64>, Vec<Option<u64>>)> {
    if !input.open && input.dims.len() == rank + 1 {
        return Some(match cx.layout {
            Layout::Pytorch => (input.dims[0], input.dims[1..].to_vec()),
            Layout::Keras => (input.dims[rank], input.dims[..rank].to_vec()),
        });
    }
    if input.open && input.dims.len() <= rank + 1 {
        let chan = match cx.layout {
            Layout::Keras => input.last(),
            Layout::Pytorch if input.dims.len() == rank + 1 => input.dims[0],
            Layout::Pytorch => None,
        };
        return Some((chan, vec![None; rank]));
    }
    if explicit_channels || input.poisoned {
        return Some((None, vec![None; rank]));
    }
    let want = image_shape(rank, cx.layout);
    let d = Diagnostic::error(
        diag::SHAPE_MISMATCH,
        cx.layer.type_span,
        format!(
            "{what} expects a {want} input, but the previous layer gives {}",
            input.show()
        ),
    )
    .label("input shape does not fit")
    .help(format!(
        "give `input:` as {want}, or state `in_channels` if this layer starts a branch"
    ));
    cx.error(d);
    None
}

/// The output of an image layer: `channels` and `spatial` in the layout's order.
pub(super) fn join_image(
    layout: Layout,
    channels: u64,
    spatial: Vec<Option<u64>>,
    poisoned: bool,
) -> Act {
    let mut dims = Vec::with_capacity(spatial.len() + 1);
    match layout {
        Layout::Pytorch => {
            dims.push(Some(channels));
            dims.extend(spatial);
        }
        Layout::Keras => {
            dims.extend(spatial);
            dims.push(Some(channels));
        }
    }
    Act {
        poisoned,
        ..Act::dims(dims)
    }
}

/// `weight_norm: true` (layout pytorch): the kernel as torch's
/// `parametrizations.weight_norm` stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightNorm {
    /// The axis g keeps (`weight_norm_dim`, 0; below −1 counted from the end, as torch
    /// does); `None` (−1 or null): one norm of the whole tensor.
    pub dim: Option<i64>,
}

impl WeightNorm {
    /// Reads `weight_norm` and `weight_norm_dim`.
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<WeightNorm> {
        let on = f.bool("weight_norm", false);
        let dim = match f.entry("weight_norm_dim").map(|e| &e.value) {
            None => Some(0),
            Some(n) => match n.value {
                // torch: dim=None and dim=-1 both mean the norm of the whole tensor.
                Value::Null | Value::Int(-1) => None,
                Value::Int(i) if i < -1 && i > -64 => Some(i as i64),
                _ => fields::as_u64(n, "weight_norm_dim", f.diags).map(|d| d as i64),
            },
        };
        on.then_some(WeightNorm { dim })
    }
}

/// Declares a kernel and its bias in the order the framework lists them: weight, bias;
/// with `weight_norm`, bias first and then `parametrizations.weight.original0` (g, the
/// norm of v per slice, as torch computes it from the initialized weight) and
/// `original1` (v), as torch's state_dict orders them.
pub(super) fn kernel_and_bias(
    cx: &mut Cx<'_>,
    kernel: Decl,
    bias: Option<Decl>,
    weight_norm: Option<(WeightNorm, Span)>,
) {
    let Some((wn, span)) = weight_norm else {
        cx.declare(kernel);
        if let Some(b) = bias {
            cx.declare(b);
        }
        return;
    };
    if cx.layout == Layout::Keras {
        let d = Diagnostic::error(
            diag::INVALID_VALUE,
            span,
            "`weight_norm` is a PyTorch parametrization; Keras layers have no such weights",
        )
        .label("layout keras")
        .help("remove `weight_norm`, or use layout pytorch");
        cx.error(d);
        return;
    }
    let rank = kernel.shape.len() as i64;
    // torch's norm_except_dim takes an axis below −1 from the end.
    let axis = wn.dim.map(|d| if d < 0 { d + rank } else { d });
    if let Some(dim) = wn.dim.filter(|_| axis.is_some_and(|a| a < 0 || a >= rank)) {
        let d = Diagnostic::error(
            diag::INVALID_VALUE,
            span,
            format!(
                "`weight_norm_dim` {dim} is not an axis of the {}-D weight",
                kernel.shape.len()
            ),
        )
        .label("no such axis")
        .help(
            "write `weight_norm_dim: 0` (per output unit), or -1 for one norm of the whole weight",
        );
        cx.error(d);
        return;
    }
    if let Some(b) = bias {
        cx.declare(b);
    }
    let mut v = kernel;
    let mut base = v.path.clone();
    base.pop();
    base.push("parametrizations".into());
    base.push("weight".into());
    v.path = [base.clone(), vec!["original1".into()]].concat();
    let Some(vt) = cx.build(v) else {
        return;
    };
    let axis = axis.map(|a| a as usize);
    let g_shape: Vec<u64> = match axis {
        Some(dim) => vt
            .shape
            .iter()
            .enumerate()
            .map(|(i, &s)| if i == dim { s } else { 1 })
            .collect(),
        None => Vec::new(),
    };
    let g = Decl::new(
        [base, vec!["original0".into()]].concat(),
        "",
        Role::WeightNormScale,
        g_shape,
        vt.fans,
        dflt(
            Init::NormOf {
                dim: axis,
                of: Box::new(TensorSource::of(&vt)),
            },
            "torch weight_norm: g = ‖v‖ over every axis but `weight_norm_dim`",
        ),
    )
    .dtype(vt.dtype);
    cx.declare(g);
    cx.push(vt);
}

/// A 1-D, 2-D or 3-D convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Spatial dimensions: 1, 2 or 3.
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
    pub activation: Option<Activation>,
    /// `weight_norm`, and where it is written.
    pub weight_norm: Option<(WeightNorm, Span)>,
    strides_span: Option<Span>,
}

/// `kernel_size`, `strides`, `dilation` of a `rank`-dimensional window.
pub(super) struct Window {
    pub kernel_size: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilation: Vec<u64>,
    pub strides_span: Option<Span>,
}

impl Window {
    pub(super) fn lower(f: &mut Fields<'_>, rank: usize) -> Option<Window> {
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
        let dilation = match f.node("dilation") {
            Some(n) => fields::sizes(n, "dilation", rank, false, f.diags),
            None => Some(vec![1; rank]),
        };
        Some(Window {
            kernel_size: kernel_size?,
            strides: strides?,
            dilation: dilation?,
            strides_span: strides_node.map(|n| n.span),
        })
    }
}

impl Conv {
    pub(super) fn lower(f: &mut Fields<'_>, rank: usize) -> Option<Conv> {
        let filters = f.req_size("filters", "32");
        let window = Window::lower(f, rank);
        let padding = Padding::read(f, rank);
        let groups = f.size("groups").unwrap_or(Sp {
            value: 1,
            span: f.span,
        });
        let in_channels = f.size("in_channels").map(|s| s.value);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        let wn_span = f.entry("weight_norm").map(|e| e.key_span);
        let weight_norm = WeightNorm::lower(f).zip(wn_span);
        let window = window?;
        Some(Conv {
            rank,
            filters: filters?.value,
            kernel_size: window.kernel_size,
            strides: window.strides,
            padding,
            dilation: window.dilation,
            groups,
            in_channels,
            use_bias,
            activation,
            weight_norm,
            strides_span: window.strides_span,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let r = self.rank;
        let what = format!("conv{r}d");
        let Some((chan, spatial)) = split_image(input, r, self.in_channels.is_some(), &what, cx)
        else {
            return Act::poisoned();
        };
        let out_spatial = window_out(
            cx,
            &spatial,
            |n, i| {
                out_size(
                    n,
                    self.kernel_size[i],
                    self.strides[i],
                    self.dilation[i],
                    &self.padding,
                    i,
                )
            },
            &what,
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
        let out = join_image(cx.layout, self.filters, out_spatial, input.poisoned);
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
        let n = r + 2;
        let (wname, shape, axes) = match cx.layout {
            Layout::Pytorch => {
                let mut s = vec![self.filters, per_group];
                s.extend(&self.kernel_size);
                ("weight", s, (0, 1))
            }
            Layout::Keras => {
                let mut s = self.kernel_size.clone();
                s.extend([per_group, self.filters]);
                ("kernel", s, (n - 1, n - 2))
            }
        };
        let (kd, bd) = match cx.layout {
            Layout::Pytorch => (torch_weight_default(), torch_bias_default(fan_in)),
            Layout::Keras => (glorot_uniform(), dflt(Init::ZEROS, "keras: zeros")),
        };
        let kernel = Decl::new(
            cx.at(&[wname]),
            "kernel_initializer",
            Role::Kernel,
            shape,
            fans,
            kd,
        )
        .channels(axes.0, axes.1);
        let bias = self.use_bias.then(|| {
            Decl::new(
                cx.at(&["bias"]),
                "bias_initializer",
                Role::Bias,
                vec![self.filters],
                fans,
                bd,
            )
        });
        kernel_and_bias(cx, kernel, bias, self.weight_norm);
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
        assert!(out_size(2, 3, 1, 1, &Padding::Explicit(vec![1 << 63]), 0).is_err());
    }
}
