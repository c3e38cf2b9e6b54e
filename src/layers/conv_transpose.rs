//! `conv_transpose1d/2d/3d`: nn.ConvTranspose1d/2d/3d / keras Conv1D/2D/3DTranspose.
//!
//! The kernel is stored `[in, out/g, *k]` (torch) or `[*k, out, in]` (Keras), and both
//! frameworks read its fans off that storage: fan_in = (out/g)·∏k, fan_out = in·∏k, the
//! reverse of the layer's meaning (reference/LAYERS2.md §1.2, §2.2). specc uses the
//! framework's fans for every initializer, so `he_normal` means what a Keras user gets.

use super::conv::{join_image, kernel_and_bias, split_image, Padding, WeightNorm, Window};
use super::pointwise::activation_field;
use super::{
    dflt, glorot_uniform, overflow, product, torch_bias_default, torch_weight_default, Act,
    Activation, Cx, Decl,
};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::source::Span;
use crate::spec::fields;
use crate::spec::{Fields, Sp};

/// A transposed convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    /// Spatial dimensions.
    pub rank: usize,
    /// Output channels.
    pub filters: u64,
    /// Window per spatial dimension.
    pub kernel_size: Vec<u64>,
    /// Step per spatial dimension.
    pub strides: Vec<u64>,
    /// torch: zeros cut from both sides; keras: valid or same.
    pub padding: Padding,
    /// Extra rows on one side (torch), or Keras' `output_padding`.
    pub output_padding: Option<Vec<u64>>,
    /// Dilation per spatial dimension.
    pub dilation: Vec<u64>,
    /// Channel groups (torch only).
    pub groups: Sp<u64>,
    /// Input channels, if stated.
    pub in_channels: Option<u64>,
    /// Whether it has a bias.
    pub use_bias: bool,
    /// Output activation.
    pub activation: Option<Activation>,
    /// `weight_norm`, and where it is written.
    pub weight_norm: Option<(WeightNorm, Span)>,
    op_span: Option<Span>,
}

impl ConvTranspose {
    pub(super) fn lower(f: &mut Fields<'_>, rank: usize, layout: Layout) -> Option<ConvTranspose> {
        let filters = f.req_size("filters", "32");
        let window = Window::lower(f, rank);
        let padding = Padding::read(f, rank);
        let op_node = f.node("output_padding");
        let output_padding =
            op_node.and_then(|n| fields::sizes(n, "output_padding", rank, true, f.diags));
        let groups = f.size("groups").unwrap_or(Sp {
            value: 1,
            span: f.span,
        });
        if layout == Layout::Keras && groups.value > 1 {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    groups.span,
                    "Keras' transposed convolutions have no `groups`",
                )
                .label("layout keras")
                .help("remove `groups`, or use layout pytorch (nn.ConvTranspose has groups)"),
            );
        }
        if layout == Layout::Pytorch && padding == Padding::Same {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    f.span,
                    "PyTorch's ConvTranspose takes an integer `padding` (it accepts `same` and fails in forward)",
                )
                .label("padding: same")
                .help("write the zeros to cut, e.g. `padding: 1` with `output_padding: 1` for stride 2"),
            );
        }
        let in_channels = f.size("in_channels").map(|s| s.value);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        let wn_span = f.entry("weight_norm").map(|e| e.key_span);
        let weight_norm = WeightNorm::lower(f).zip(wn_span);
        let window = window?;
        Some(ConvTranspose {
            rank,
            filters: filters?.value,
            kernel_size: window.kernel_size,
            strides: window.strides,
            padding,
            output_padding,
            dilation: window.dilation,
            groups,
            in_channels,
            use_bias,
            activation,
            weight_norm,
            op_span: op_node.map(|n| n.span),
        })
    }

    /// Output size of spatial dimension `i` for an input of `n`.
    fn out_size(&self, n: u64, i: usize, layout: Layout) -> Result<u64, String> {
        let (k, s, d) = (self.kernel_size[i], self.strides[i], self.dilation[i]);
        let big = || "the output size overflows".to_string();
        let kk = d
            .checked_mul(k - 1)
            .and_then(|x| x.checked_add(1))
            .ok_or_else(big)?;
        let base = (n - 1).checked_mul(s).ok_or_else(big)?;
        let op = self.output_padding.as_ref().map(|o| o[i]);
        match layout {
            Layout::Pytorch => {
                // (L−1)s − 2p + d(k−1) + op + 1, with op < max(s, d) (torch refuses more).
                let op = op.unwrap_or(0);
                if op >= s.max(d) {
                    return Err(format!(
                        "`output_padding` {op} must be smaller than the stride or the dilation"
                    ));
                }
                let full = base
                    .checked_add(kk)
                    .and_then(|x| x.checked_add(op))
                    .ok_or_else(big)?;
                let cut = self.padding.of(i).checked_mul(2).ok_or_else(big)?;
                full.checked_sub(cut).filter(|&o| o > 0).ok_or_else(|| {
                    format!(
                        "`padding` {} cuts the whole output of {full}",
                        self.padding.of(i)
                    )
                })
            }
            Layout::Keras => match (&self.padding, op) {
                // keras backend_utils._get_output_shape_given_tf_padding.
                (Padding::Same, None) => n.checked_mul(s).ok_or_else(big),
                (Padding::Same, Some(op)) => base
                    .checked_add(kk % 2)
                    .and_then(|x| x.checked_add(op))
                    .ok_or_else(big),
                (_, None) => base.checked_add(kk.max(s)).ok_or_else(big),
                (_, Some(op)) => base
                    .checked_add(kk)
                    .and_then(|x| x.checked_add(op))
                    .ok_or_else(big),
            },
        }
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let r = self.rank;
        let what = format!("conv_transpose{r}d");
        let Some((chan, spatial)) = split_image(input, r, self.in_channels.is_some(), &what, cx)
        else {
            return Act::poisoned();
        };
        let layout = cx.layout;
        let out_spatial = super::conv::window_out(
            cx,
            &spatial,
            |n, i| self.out_size(n, i, layout),
            &what,
            "check `padding` and `output_padding` against the stride",
        );
        let _ = self.op_span;
        let out = join_image(layout, self.filters, out_spatial, input.poisoned);
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
        let out_g = self.filters / g;
        // The frameworks' fans, read off the stored kernel.
        let (Some(fan_in), Some(fan_out)) = (out_g.checked_mul(rf), inc.checked_mul(rf)) else {
            cx.error(overflow(cx.layer.type_span, "the kernel's fan"));
            return out;
        };
        let fans = Fans { fan_in, fan_out };
        let n = r + 2;
        let (wname, shape, axes, kd, bd) = match layout {
            Layout::Pytorch => {
                let mut s = vec![inc, out_g];
                s.extend(&self.kernel_size);
                (
                    "weight",
                    s,
                    (0, 1),
                    torch_weight_default(),
                    torch_bias_default(fan_in),
                )
            }
            Layout::Keras => {
                let mut s = self.kernel_size.clone();
                s.extend([self.filters, inc]);
                (
                    "kernel",
                    s,
                    (n - 2, n - 1),
                    glorot_uniform(),
                    dflt(Init::ZEROS, "keras: zeros"),
                )
            }
        };
        let kernel = Decl::new(
            cx.at(&[wname]),
            "kernel_initializer",
            Role::Kernel,
            shape,
            fans,
            kd,
        )
        .channels(axes.0, axes.1)
        // By meaning an output sums (in/g)·∏k inputs spread over ∏strides positions, and an
        // input feeds (out/g)·∏k outputs.
        .storage_fans_with(
            (inc / g) as f64 * rf as f64 / self.strides.iter().product::<u64>() as f64,
            (out_g * rf) as f64,
        );
        let bias = self.use_bias.then(|| {
            Decl::new(
                cx.at(&["bias"]),
                "bias_initializer",
                Role::Bias,
                vec![self.filters],
                fans,
                bd,
            )
            .storage_fans()
        });
        kernel_and_bias(cx, kernel, bias, self.weight_norm);
        out
    }
}
