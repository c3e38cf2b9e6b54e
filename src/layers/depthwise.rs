//! `depthwise_conv2d` (a Conv2d with groups = in_channels / DepthwiseConv2D) and
//! `separable_conv2d` (Keras' SeparableConv2D).
//!
//! Fans are the layout's framework's, read off the stored kernel (reference/LAYERS2.md
//! §2.3): torch's `[C·m, 1, k, k]` has fan_in k², Keras' `[k, k, C, m]` has C·k², although
//! each output sees k² inputs. The signal prediction uses the meaning (k²).

use super::conv::{join_image, out_size, split_image, window_out, Padding, Window};
use super::pointwise::activation_field;
use super::{
    dflt, glorot_uniform, overflow, product, torch_bias_default, torch_weight_default, Act,
    Activation, Cx, Decl,
};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::Fields;

/// The window and border of a depthwise convolution.
#[derive(Clone, Debug, PartialEq)]
struct Spatial {
    kernel_size: Vec<u64>,
    strides: Vec<u64>,
    padding: Padding,
    dilation: Vec<u64>,
}

impl Spatial {
    fn lower(f: &mut Fields<'_>) -> Option<Spatial> {
        let w = Window::lower(f, 2);
        let padding = Padding::read(f, 2);
        let w = w?;
        Some(Spatial {
            kernel_size: w.kernel_size,
            strides: w.strides,
            padding,
            dilation: w.dilation,
        })
    }

    /// (input channels, output spatial sizes), or `None` after a reported error.
    fn apply(
        &self,
        input: &Act,
        in_channels: Option<u64>,
        what: &str,
        cx: &mut Cx<'_>,
    ) -> Option<(Option<u64>, Vec<Option<u64>>)> {
        let (chan, spatial) = split_image(input, 2, in_channels.is_some(), what, cx)?;
        let out = window_out(
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
            what,
            "use a smaller `kernel_size` or `dilation`, `padding: same`, or a larger input",
        );
        Some((in_channels.or(chan), out))
    }
}

fn depth_multiplier(f: &mut Fields<'_>) -> u64 {
    f.size("depth_multiplier").map_or(1, |s| s.value)
}

/// A depthwise 2-D convolution: each input channel convolved with `depth_multiplier`
/// kernels of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Depthwise {
    spatial: Spatial,
    /// Kernels per input channel.
    pub depth_multiplier: u64,
    /// Input channels, if stated.
    pub in_channels: Option<u64>,
    /// Whether it has a bias.
    pub use_bias: bool,
    /// Output activation.
    pub activation: Option<Activation>,
}

impl Depthwise {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Depthwise> {
        if let (Some(a), Some(_)) = (
            f.node("depthwise_initializer"),
            f.node("kernel_initializer"),
        ) {
            f.diags.push(
                Diagnostic::error(
                    diag::INVALID_VALUE,
                    a.span,
                    "`depthwise_initializer` and `kernel_initializer` name the same kernel",
                )
                .label("written twice")
                .help("keep one of the two (`depthwise_initializer` is Keras' word)"),
            );
        }
        let spatial = Spatial::lower(f);
        let depth_multiplier = depth_multiplier(f);
        let in_channels = f.size("in_channels").map(|s| s.value);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        Some(Depthwise {
            spatial: spatial?,
            depth_multiplier,
            in_channels,
            use_bias,
            activation,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some((chan, out_spatial)) =
            self.spatial
                .apply(input, self.in_channels, "depthwise_conv2d", cx)
        else {
            return Act::poisoned();
        };
        let Some(c) = chan else {
            cx.missing_input("in_channels", input);
            return Act::poisoned();
        };
        let m = self.depth_multiplier;
        let (Some(cm), Some(rf)) = (c.checked_mul(m), product(&self.spatial.kernel_size)) else {
            cx.error(overflow(
                cx.layer.type_span,
                "channels times `depth_multiplier`",
            ));
            return Act::poisoned();
        };
        let out = join_image(cx.layout, cm, out_spatial, input.poisoned);
        let (kh, kw) = (self.spatial.kernel_size[0], self.spatial.kernel_size[1]);
        let (shape, fans, axes, kd, bd) = match cx.layout {
            Layout::Pytorch => (
                vec![cm, 1, kh, kw],
                Fans {
                    fan_in: rf,
                    fan_out: cm.saturating_mul(rf),
                },
                (0, 1),
                torch_weight_default(),
                torch_bias_default(rf),
            ),
            Layout::Keras => (
                vec![kh, kw, c, m],
                Fans {
                    fan_in: c.saturating_mul(rf),
                    fan_out: m.saturating_mul(rf),
                },
                (3, 2),
                glorot_uniform(),
                dflt(Init::ZEROS, "keras: zeros"),
            ),
        };
        let wname = match cx.layout {
            Layout::Pytorch => "weight",
            Layout::Keras => "kernel",
        };
        let mut kernel = Decl::new(
            cx.at(&[wname]),
            "depthwise_initializer",
            Role::Kernel,
            shape,
            fans,
            kd,
        )
        .channels(axes.0, axes.1)
        .storage_fans_with(rf as f64, (m * rf) as f64);
        kernel.alias = Some("kernel_initializer");
        cx.declare(kernel);
        if self.use_bias {
            let b = Decl::new(
                cx.at(&["bias"]),
                "bias_initializer",
                Role::Bias,
                vec![cm],
                fans,
                bd,
            );
            cx.declare(b);
        }
        out
    }
}

/// Keras' SeparableConv2D: a depthwise convolution, then a 1×1 convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Separable {
    spatial: Spatial,
    /// Output channels of the pointwise convolution.
    pub filters: u64,
    /// Kernels per input channel.
    pub depth_multiplier: u64,
    /// Whether the pointwise convolution has a bias.
    pub use_bias: bool,
    /// Output activation.
    pub activation: Option<Activation>,
}

impl Separable {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Separable> {
        let filters = f.req_size("filters", "32");
        let spatial = Spatial::lower(f);
        let depth_multiplier = depth_multiplier(f);
        let use_bias = f.bool("use_bias", true);
        let activation = activation_field(f);
        Some(Separable {
            spatial: spatial?,
            filters: filters?.value,
            depth_multiplier,
            use_bias,
            activation,
        })
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let Some((chan, out_spatial)) = self.spatial.apply(input, None, "separable_conv2d", cx)
        else {
            return Act::poisoned();
        };
        let out = join_image(cx.layout, self.filters, out_spatial, input.poisoned);
        let Some(c) = chan else {
            cx.missing_input("input", input);
            return out;
        };
        let m = self.depth_multiplier;
        let (Some(cm), Some(rf)) = (c.checked_mul(m), product(&self.spatial.kernel_size)) else {
            cx.error(overflow(
                cx.layer.type_span,
                "channels times `depth_multiplier`",
            ));
            return out;
        };
        let (kh, kw) = (self.spatial.kernel_size[0], self.spatial.kernel_size[1]);
        let dw_fans = Fans {
            fan_in: c.saturating_mul(rf),
            fan_out: m.saturating_mul(rf),
        };
        let dw = Decl::new(
            cx.at(&["depthwise_kernel"]),
            "depthwise_initializer",
            Role::Kernel,
            vec![kh, kw, c, m],
            dw_fans,
            glorot_uniform(),
        )
        .channels(3, 2)
        .storage_fans_with(rf as f64, (m * rf) as f64);
        cx.declare(dw);
        let pw_fans = Fans {
            fan_in: cm,
            fan_out: self.filters,
        };
        let pw = Decl::new(
            cx.at(&["pointwise_kernel"]),
            "pointwise_initializer",
            Role::Kernel,
            vec![1, 1, cm, self.filters],
            pw_fans,
            glorot_uniform(),
        )
        .channels(3, 2);
        cx.declare(pw);
        if self.use_bias {
            let b = Decl::new(
                cx.at(&["bias"]),
                "bias_initializer",
                Role::Bias,
                vec![self.filters],
                pw_fans,
                dflt(Init::ZEROS, "keras: zeros"),
            );
            cx.declare(b);
        }
        out
    }
}
