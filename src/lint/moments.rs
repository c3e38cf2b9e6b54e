//! Second moments of initializers and of activations of Gaussian inputs.

use crate::init::{normal_cdf, Dist, Flatten, Init};
use crate::model::{Layout, TensorDecl};

/// E[w²] of one element of a tensor at init.
pub fn second_moment(t: &TensorDecl, layout: Layout) -> f64 {
    match t.init.dist(t.fans) {
        Dist::Constant(v) => v * v,
        Dist::Normal { mean, std } => mean * mean + std * std,
        Dist::Uniform { low, high } => (low * low + low * high + high * high) / 3.0,
        Dist::TruncatedNormal {
            mean,
            std,
            low,
            high,
        } => {
            let (m, v) = truncated_moments(mean, std, low, high);
            m * m + v
        }
        Dist::Structured => {
            let numel: u64 = t.shape.iter().product();
            let numel = numel.max(1) as f64;
            let first = t.shape.first().copied().unwrap_or(1) as f64;
            let last = t.shape.last().copied().unwrap_or(1) as f64;
            match &t.init {
                Init::Orthogonal { gain, flatten } => {
                    // Every row (or column) of the flattened matrix has unit norm.
                    let rows = match flatten {
                        Flatten::Trailing => first,
                        Flatten::Leading => numel / last,
                    };
                    gain * gain * rows.min(numel / rows) / numel
                }
                Init::Identity { gain } => gain * gain * first.min(last) / numel,
                Init::Dirac { groups } => {
                    let n = t.shape.len();
                    let (out, in_g) = match layout {
                        Layout::Pytorch => (first, t.shape[1] as f64),
                        Layout::Keras => (last, t.shape[n - 2] as f64),
                    };
                    let g = *groups as f64;
                    g * (out / g).min(in_g) / numel
                }
                Init::Sparse { sparsity, std } => {
                    let rows = t.shape.first().copied().unwrap_or(1) as f64;
                    (1.0 - (sparsity * rows).ceil() / rows).max(0.0) * std * std
                }
                Init::UnitForgetBias { .. } => 0.25,
                _ => 0.0,
            }
        }
    }
}

/// Mean and variance of N(mean, std²) restricted to [low, high].
pub fn truncated_moments(mean: f64, std: f64, low: f64, high: f64) -> (f64, f64) {
    if std == 0.0 {
        return (mean.clamp(low, high), 0.0);
    }
    let (a, b) = ((low - mean) / std, (high - mean) / std);
    let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let z = (normal_cdf(b) - normal_cdf(a)).max(1e-300);
    let m = (pdf(a) - pdf(b)) / z;
    let v = 1.0 + (a * pdf(a) - b * pdf(b)) / z - m * m;
    (mean + std * m, std * std * v.max(0.0))
}

fn act(name: Option<&str>, x: f64) -> f64 {
    match name {
        Some("relu") => x.max(0.0),
        Some("leaky_relu") => {
            if x > 0.0 {
                x
            } else {
                0.01 * x
            }
        }
        Some("elu") => {
            if x > 0.0 {
                x
            } else {
                x.exp_m1()
            }
        }
        Some("selu") => {
            let (l, a) = (1.050_700_987_355_480_5, 1.673_263_242_354_377_3);
            if x > 0.0 {
                l * x
            } else {
                l * a * x.exp_m1()
            }
        }
        Some("gelu") => x * normal_cdf(x),
        Some("silu") | Some("swish") => x / (1.0 + (-x).exp()),
        Some("tanh") => x.tanh(),
        Some("sigmoid") => 1.0 / (1.0 + (-x).exp()),
        _ => x,
    }
}

fn deriv(name: Option<&str>, x: f64) -> f64 {
    match name {
        Some("relu") => f64::from(u8::from(x > 0.0)),
        Some("leaky_relu") => {
            if x > 0.0 {
                1.0
            } else {
                0.01
            }
        }
        Some("elu") => {
            if x > 0.0 {
                1.0
            } else {
                x.exp()
            }
        }
        Some("selu") => {
            let (l, a) = (1.050_700_987_355_480_5, 1.673_263_242_354_377_3);
            if x > 0.0 {
                l
            } else {
                l * a * x.exp()
            }
        }
        Some("gelu") => {
            normal_cdf(x) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Some("silu") | Some("swish") => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        Some("tanh") => 1.0 - x.tanh().powi(2),
        Some("sigmoid") => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
        _ => 1.0,
    }
}

/// E[φ(z)²] (or E[φ′(z)²] when `derivative`) for z ~ N(0, q), by Simpson's rule on ±10σ.
pub fn expect_sq(activation: Option<&str>, q: f64, derivative: bool) -> f64 {
    let activation = activation.filter(|a| *a != "linear" && *a != "softmax");
    if activation.is_none() {
        return if derivative { 1.0 } else { q };
    }
    if !(q.is_finite()) {
        return q;
    }
    let s = q.max(0.0).sqrt();
    let n = 800;
    let (lo, hi) = (-10.0f64, 10.0f64);
    let h = (hi - lo) / n as f64;
    let mut sum = 0.0;
    for k in 0..=n {
        let t = lo + k as f64 * h;
        let w = if k == 0 || k == n {
            1.0
        } else if k % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let pdf = (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let f = if derivative {
            deriv(activation, s * t)
        } else {
            act(activation, s * t)
        };
        sum += w * pdf * f * f;
    }
    sum * h / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_second_moments() {
        // relu halves the variance; its derivative squared is 1/2
        assert!((expect_sq(Some("relu"), 4.0, false) - 2.0).abs() < 1e-9);
        assert!(
            (expect_sq(Some("relu"), 4.0, true) - 0.5).abs() < 1e-2,
            "a step: Simpson is first-order here"
        );
        // tanh ≈ linear for small inputs, saturates for large
        assert!((expect_sq(Some("tanh"), 1e-4, false) / 1e-4 - 1.0).abs() < 1e-3);
        assert!(expect_sq(Some("tanh"), 100.0, false) > 0.9);
        // sigmoid of N(0, q→0) is 1/2: second moment 1/4
        assert!((expect_sq(Some("sigmoid"), 1e-8, false) - 0.25).abs() < 1e-6);
        // selu keeps unit variance (self-normalizing)
        assert!((expect_sq(Some("selu"), 1.0, false) - 1.0).abs() < 1e-3);
        assert_eq!(expect_sq(None, 3.0, false), 3.0);
    }

    #[test]
    fn truncated_normal_moments() {
        let (m, v) = truncated_moments(0.0, 1.0, -2.0, 2.0);
        assert!(m.abs() < 1e-12 && (v.sqrt() - crate::init::TRUNC_STD_2).abs() < 1e-12);
    }
}
