//! Initializers: one closed enum with every parameter filled in, and the distribution
//! each one gives a tensor once its fans are known.
//!
//! The formulas follow the frameworks' own code: keras-team/keras
//! `keras/src/initializers/random_initializers.py` and pytorch/pytorch `torch/nn/init.py`.
//! PyTorch's xavier_* and kaiming_* are expressed as variance scaling with an untruncated
//! normal, which is exactly what they compute.

pub mod file;
mod names;
pub mod orthogonal;
pub mod rng;
pub mod sample;
pub mod special;

pub use names::{canonical_name, parse_initializer, InitSpec, INITIALIZER_NAMES};

use crate::model::{DType, Fans, TensorDecl};
use serde::Serialize;
use std::fmt;

/// Which fan a variance-scaling initializer divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    /// fan_in.
    FanIn,
    /// fan_out.
    FanOut,
    /// (fan_in + fan_out) / 2.
    FanAvg,
}

/// The distribution a variance-scaling initializer draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VsDistribution {
    /// Keras: normal cut at ±2 std, std divided by 0.87962566103423978 so the result has the target variance.
    TruncatedNormal,
    /// A plain normal (PyTorch's xavier_normal / kaiming_normal).
    UntruncatedNormal,
    /// Uniform with the target variance: U(±sqrt(3·var)).
    Uniform,
}

/// Which dimensions an orthogonal initializer flattens (the frameworks differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flatten {
    /// PyTorch: rows = shape[0], columns = the product of the rest.
    Trailing,
    /// Keras: columns = shape[-1], rows = the product of the rest.
    Leading,
}

impl Flatten {
    /// The (rows, columns) of the matrix a tensor of `shape` is flattened to.
    pub fn matrix(self, shape: &[u64]) -> (u64, u64) {
        let numel: u64 = shape.iter().product();
        match self {
            Flatten::Trailing => {
                let first = shape.first().copied().unwrap_or(1);
                (first, numel / first.max(1))
            }
            Flatten::Leading => {
                let last = shape.last().copied().unwrap_or(1);
                (numel / last.max(1), last)
            }
        }
    }
}

/// The generator's format number (SPEC.md §5, docs/determinism.md): the algorithms that
/// turn a seed into values. Format 2 changed f64 normals (PPND16 with fixed operations in
/// place of Halley steps on libm's erfc) and orthogonal (reflectors from fresh normals,
/// blocked); format 3 forms orthogonal matrices for f32, bf16 and f16 tensors in f32 (as
/// torch does, in the tensor's dtype). Every other initializer's bits are format 1's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub enum Format {
    /// The first wave's algorithms (`specc_format: 1` in a spec reaches them).
    V1,
    /// Format 2: f64 normals by PPND16, orthogonal by blocked reflectors in f64.
    V2,
    /// The current algorithms: format 2 with orthogonal formed in f32 for tensors narrower
    /// than f64.
    #[default]
    V3,
}

impl Format {
    /// The format new builds use.
    pub const CURRENT: Format = Format::V3;

    /// Its number, as the metadata records it.
    pub fn number(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
            Format::V3 => 3,
        }
    }

    /// The format of a number, if this specc can generate it.
    pub fn from_number(n: u64) -> Option<Format> {
        match n {
            1 => Some(Format::V1),
            2 => Some(Format::V2),
            3 => Some(Format::V3),
            _ => None,
        }
    }
}

/// The std of a standard normal truncated to [-2, 2] (Keras' variance-scaling correction).
pub const TRUNC_STD_2: f64 = 0.879_625_661_034_239_8;

/// An initializer with every parameter known.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Init {
    /// Every element `value` (zeros, ones, constant).
    Constant {
        /// The value.
        value: f64,
    },
    /// N(mean, std²).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// U[low, high).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// N(mean, std²) restricted to [low, high] (absolute bounds).
    TruncatedNormal {
        /// Mean of the parent normal.
        mean: f64,
        /// Std of the parent normal.
        std: f64,
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Variance `scale / n`, n chosen by `mode` from the fans.
    VarianceScaling {
        /// Variance numerator.
        scale: f64,
        /// Which fan.
        mode: FanMode,
        /// Which distribution.
        distribution: VsDistribution,
    },
    /// A (semi-)orthogonal matrix times `gain`, flattened as the framework does.
    Orthogonal {
        /// Multiplier.
        gain: f64,
        /// Which dimensions become rows.
        flatten: Flatten,
    },
    /// `gain` on the main diagonal of a matrix, 0 elsewhere.
    Identity {
        /// Diagonal value.
        gain: f64,
    },
    /// Conv kernel that passes its input through (torch `dirac_`).
    Dirac {
        /// Groups of output channels.
        groups: u64,
    },
    /// N(0, std²) with `ceil(sparsity·rows)` zeros per column (torch `sparse_`).
    Sparse {
        /// Fraction of each column set to zero.
        sparsity: f64,
        /// Std of the non-zero values.
        std: f64,
    },
    /// Keras LSTM bias: zeros, except ones on the forget-gate block `[units, 2·units)`.
    UnitForgetBias {
        /// Units of the LSTM.
        units: u64,
    },
    /// A fixed sinusoidal position table `[positions, dim]` (Whisper, fairseq, Marian).
    Sinusoidal {
        /// The longest period, 10000 in every model.
        max_timescale: f64,
        /// Sines in the first half and cosines in the second (`concat`), or alternating.
        interleaved: bool,
        /// ln(max_timescale) / (dim/2 − 1) (Whisper, M2M100, FSMT, in f32 as they compute
        /// it), or 2·ln(max_timescale)/dim (the paper, Marian, in f64 as numpy computes it).
        paper_step: bool,
    },
    /// Swin's relative position index over a `window` (int64, torchvision's formula).
    RelativePositionIndex {
        /// Window height and width.
        window: [u64; 2],
    },
    /// weight_norm's g: the L2 norm of another tensor (v) over every axis but `dim`
    /// (over all of it when `None`), computed from v's stored values.
    NormOf {
        /// The axis kept.
        dim: Option<usize>,
        /// The tensor whose norm it is.
        of: Box<TensorSource>,
    },
    /// Values read from a file (`from_file`), cast to the tensor's dtype.
    FromFile(Box<file::FileValues>),
}

/// What determines another tensor's values: enough to regenerate them (weight_norm's g
/// is computed from v's values, without v being held).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorSource {
    /// Its name (its random stream is keyed by it).
    pub name: String,
    /// Its seed.
    pub seed: u64,
    /// Its initializer.
    pub init: Init,
    /// Its fans.
    pub fans: Fans,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its dtype (values are rounded to it before the norm, as they are stored).
    pub dtype: DType,
    /// Its channel axes, for dirac.
    pub channel_axes: Option<(usize, usize)>,
}

impl TensorSource {
    /// The source of a declared tensor.
    pub fn of(t: &TensorDecl) -> TensorSource {
        TensorSource {
            name: t.name.clone(),
            seed: t.seed,
            init: t.init.clone(),
            fans: t.fans,
            shape: t.shape.clone(),
            dtype: t.dtype,
            channel_axes: t.channel_axes,
        }
    }
}

/// The concrete sampling rule for one tensor, after fans are applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// Every element equal.
    Constant(f64),
    /// N(mean, std²).
    Normal {
        /// Mean.
        mean: f64,
        /// Std.
        std: f64,
    },
    /// U[low, high).
    Uniform {
        /// Lower.
        low: f64,
        /// Upper.
        high: f64,
    },
    /// Normal restricted to [low, high].
    TruncatedNormal {
        /// Parent mean.
        mean: f64,
        /// Parent std.
        std: f64,
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// A structured initializer (orthogonal, identity, dirac, sparse, forget bias).
    Structured,
}

impl Init {
    /// Zeros.
    pub const ZEROS: Init = Init::Constant { value: 0.0 };
    /// Ones.
    pub const ONES: Init = Init::Constant { value: 1.0 };

    /// The distribution this initializer gives a tensor with `fans`.
    pub fn dist(&self, fans: Fans) -> Dist {
        match *self {
            Init::Constant { value } => Dist::Constant(value),
            Init::Normal { mean, std } => Dist::Normal { mean, std },
            Init::Uniform { low, high } => Dist::Uniform { low, high },
            Init::TruncatedNormal {
                mean,
                std,
                low,
                high,
            } => Dist::TruncatedNormal {
                mean,
                std,
                low,
                high,
            },
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
            } => {
                let n = match mode {
                    FanMode::FanIn => fans.fan_in as f64,
                    FanMode::FanOut => fans.fan_out as f64,
                    FanMode::FanAvg => (fans.fan_in as f64 + fans.fan_out as f64) / 2.0,
                }
                .max(1.0);
                let var = scale / n;
                match distribution {
                    VsDistribution::TruncatedNormal => {
                        let std = var.sqrt() / TRUNC_STD_2;
                        Dist::TruncatedNormal {
                            mean: 0.0,
                            std,
                            low: -2.0 * std,
                            high: 2.0 * std,
                        }
                    }
                    VsDistribution::UntruncatedNormal => Dist::Normal {
                        mean: 0.0,
                        std: var.sqrt(),
                    },
                    VsDistribution::Uniform => {
                        let limit = (3.0 * var).sqrt();
                        Dist::Uniform {
                            low: -limit,
                            high: limit,
                        }
                    }
                }
            }
            Init::Orthogonal { .. }
            | Init::Identity { .. }
            | Init::Dirac { .. }
            | Init::Sparse { .. }
            | Init::UnitForgetBias { .. }
            | Init::Sinusoidal { .. }
            | Init::RelativePositionIndex { .. }
            | Init::NormOf { .. }
            | Init::FromFile(_) => Dist::Structured,
        }
    }

    /// Whether the values depend on the tensor's fans (variance scaling).
    pub fn uses_fans(&self) -> bool {
        matches!(self, Init::VarianceScaling { .. })
    }

    /// Why this initializer cannot fill a tensor of `shape` and `dtype` (`channel_axes`
    /// set for convolution kernels), if it cannot.
    pub fn shape_problem(
        &self,
        shape: &[u64],
        channel_axes: Option<(usize, usize)>,
        dtype: DType,
    ) -> Option<String> {
        let matrix = |what: &str| {
            (shape.len() != 2).then(|| {
                format!(
                    "{what} needs a matrix (2 dimensions), this has {}",
                    shape.len()
                )
            })
        };
        if !dtype.is_float() {
            // Integer tensors hold exact integers: constants and index tables only.
            return match self {
                Init::Constant { value } if value.fract() != 0.0 => Some(format!(
                    "{} tensors hold whole numbers, not {value}",
                    dtype.name()
                )),
                Init::Constant { value }
                    if dtype == DType::Bool && !(*value == 0.0 || *value == 1.0) =>
                {
                    Some(format!("bool tensors hold 0 or 1, not {value}"))
                }
                Init::Constant { .. } | Init::RelativePositionIndex { .. } => {
                    self.shape_problem(shape, channel_axes, DType::F64)
                }
                // The source's own check (bind) says whether its values are whole.
                Init::FromFile(_) => None,
                _ => Some(format!(
                    "{} tensors take `zeros`, `ones`, `constant`, `relative_position_index` or `from_file`",
                    dtype.name()
                )),
            };
        }
        match self {
            Init::Identity { .. } => matrix("it"),
            Init::Orthogonal { .. } if shape.len() < 2 => {
                Some("it needs at least 2 dimensions".into())
            }
            Init::Sparse { .. } => matrix("it"),
            Init::Dirac { groups } => match channel_axes {
                None => Some("it needs a convolution kernel (3 to 5 dimensions)".into()),
                Some((out, _)) if !shape[out].is_multiple_of(*groups) => Some(format!(
                    "{} output channels do not divide into {groups} groups",
                    shape[out]
                )),
                Some(_) => None,
            },
            Init::UnitForgetBias { units } if shape.iter().product::<u64>() != 4 * units => {
                Some("it fills an LSTM bias of 4·units".into())
            }
            Init::Sinusoidal { .. } => match shape {
                [_, d] if *d >= 4 && d % 2 == 0 => None,
                [_, _] => {
                    Some("its width must be even, 4 or more (sines and cosines in pairs)".into())
                }
                _ => Some(format!(
                    "it fills a [positions, dim] table, this has {} dimension(s)",
                    shape.len()
                )),
            },
            Init::RelativePositionIndex { window } => {
                let n = window[0] * window[1];
                (shape.iter().product::<u64>() != n * n).then(|| {
                    format!(
                        "a {}×{} window has {} pairs of positions, this tensor {}",
                        window[0],
                        window[1],
                        n * n,
                        shape.iter().product::<u64>()
                    )
                })
            }
            _ => None,
        }
    }

    /// Whether every element starts equal (zeros, ones, constant).
    pub fn constant_value(&self) -> Option<f64> {
        match *self {
            Init::Constant { value } => Some(value),
            _ => None,
        }
    }
}

/// `torch.nn.init.calculate_gain(nonlinearity, param)`; `None` for an unknown name.
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> Option<f64> {
    Some(match nonlinearity {
        "linear" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d" | "conv_transpose2d"
        | "conv_transpose3d" | "sigmoid" => 1.0,
        "tanh" => 5.0 / 3.0,
        "relu" => 2f64.sqrt(),
        "leaky_relu" => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        "selu" => 0.75,
        _ => return None,
    })
}

/// Nonlinearity names `calculate_gain` accepts.
pub const NONLINEARITIES: [&str; 12] = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
];

/// Standard normal CDF, Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Short number format for people: up to 6 significant digits, no trailing zeros.
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if x.is_nan() || x.is_infinite() {
        return format!("{x}");
    }
    let a = x.abs();
    if (1e-4..1e6).contains(&a) {
        let s = format!("{:.*}", (5 - a.log10().floor() as i32).max(0) as usize, x);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{x:.5e}")
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Init::Constant { value: 0.0 } => write!(f, "zeros"),
            Init::Constant { value: 1.0 } => write!(f, "ones"),
            Init::Constant { value } => write!(f, "constant(value={})", num(value)),
            Init::Normal { mean, std } => write!(f, "normal(mean={}, std={})", num(mean), num(std)),
            Init::Uniform { low, high } => {
                write!(f, "uniform(low={}, high={})", num(low), num(high))
            }
            Init::TruncatedNormal {
                mean,
                std,
                low,
                high,
            } => write!(
                f,
                "trunc_normal(mean={}, std={}, a={}, b={})",
                num(mean),
                num(std),
                num(low),
                num(high)
            ),
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
            } => write!(
                f,
                "variance_scaling(scale={}, mode={}, distribution={})",
                num(scale),
                match mode {
                    FanMode::FanIn => "fan_in",
                    FanMode::FanOut => "fan_out",
                    FanMode::FanAvg => "fan_avg",
                },
                match distribution {
                    VsDistribution::TruncatedNormal => "truncated_normal",
                    VsDistribution::UntruncatedNormal => "untruncated_normal",
                    VsDistribution::Uniform => "uniform",
                }
            ),
            Init::Orthogonal { gain, flatten } => write!(
                f,
                "orthogonal(gain={}, flatten={})",
                num(gain),
                match flatten {
                    Flatten::Trailing => "trailing",
                    Flatten::Leading => "leading",
                }
            ),
            Init::Identity { gain } => write!(f, "identity(gain={})", num(gain)),
            Init::Dirac { groups } => write!(f, "dirac(groups={groups})"),
            Init::Sparse { sparsity, std } => {
                write!(f, "sparse(sparsity={}, std={})", num(sparsity), num(std))
            }
            Init::UnitForgetBias { units } => write!(f, "unit_forget_bias(units={units})"),
            Init::Sinusoidal {
                max_timescale,
                interleaved,
                paper_step,
            } => write!(
                f,
                "sinusoidal(max_timescale={}, style={}, step={})",
                num(max_timescale),
                if interleaved { "interleaved" } else { "concat" },
                if paper_step {
                    "paper"
                } else {
                    "half_minus_one"
                }
            ),
            Init::RelativePositionIndex { window } => {
                write!(
                    f,
                    "relative_position_index(window_size=[{}, {}])",
                    window[0], window[1]
                )
            }
            Init::NormOf { dim, ref of } => match dim {
                Some(d) => write!(f, "norm of {} over every axis but {d}", of.name),
                None => write!(f, "norm of all of {}", of.name),
            },
            Init::FromFile(ref v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dist::Constant(v) => write!(f, "= {}", num(v)),
            Dist::Normal { mean: 0.0, std } => write!(f, "N(0, {}²)", num(std)),
            Dist::Normal { mean, std } => write!(f, "N({}, {}²)", num(mean), num(std)),
            Dist::Uniform { low, high } if low == -high => write!(f, "U(±{})", num(high)),
            Dist::Uniform { low, high } => write!(f, "U({}, {})", num(low), num(high)),
            Dist::TruncatedNormal {
                mean,
                std,
                low,
                high,
            } => write!(
                f,
                "N({}, {}²) in [{}, {}]",
                num(mean),
                num(std),
                num(low),
                num(high)
            ),
            Dist::Structured => write!(f, "structured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fans(i: u64, o: u64) -> Fans {
        Fans {
            fan_in: i,
            fan_out: o,
        }
    }

    #[test]
    fn gains_match_torch() {
        assert_eq!(calculate_gain("relu", None), Some(2f64.sqrt()));
        assert_eq!(calculate_gain("tanh", None), Some(5.0 / 3.0));
        assert!((calculate_gain("leaky_relu", None).unwrap() - 1.41414).abs() < 1e-5);
        let g = calculate_gain("leaky_relu", Some(5f64.sqrt())).unwrap();
        assert!((g - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(calculate_gain("selu", None), Some(0.75));
        assert_eq!(calculate_gain("gelu", None), None);
    }

    #[test]
    fn variance_scaling_limits() {
        let glorot = Init::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanAvg,
            distribution: VsDistribution::Uniform,
        };
        let Dist::Uniform { high, .. } = glorot.dist(fans(300, 100)) else {
            panic!()
        };
        assert!((high - (6.0f64 / 400.0).sqrt()).abs() < 1e-12);
        let he = Init::VarianceScaling {
            scale: 2.0,
            mode: FanMode::FanIn,
            distribution: VsDistribution::TruncatedNormal,
        };
        let Dist::TruncatedNormal { std, high, .. } = he.dist(fans(1000, 10)) else {
            panic!()
        };
        assert!((std * TRUNC_STD_2 - 0.002f64.sqrt()).abs() < 1e-12);
        assert!(
            (high - 0.1017).abs() < 1e-4,
            "Keras run check: max |x| 0.1017"
        );
    }

    #[test]
    fn trunc_std_constant_matches_its_definition() {
        let phi2 = (-2.0f64).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mass = normal_cdf(2.0) - normal_cdf(-2.0);
        let s = (1.0 - 4.0 * phi2 / mass).sqrt();
        assert!((s - TRUNC_STD_2).abs() < 1e-15);
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(num(0.02), "0.02");
        assert_eq!(num(1.0 / 3.0), "0.333333");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(1e-7), "1.00000e-7");
    }
}
