//! Second moments of initializers and of activations of Gaussian inputs.

use crate::init::{normal_cdf, Dist, Init};
use crate::layers::Activation;
use crate::model::TensorDecl;

/// E[w²] of one element of a tensor at init.
pub fn second_moment(t: &TensorDecl) -> f64 {
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
                    let (rows, cols) = flatten.matrix(&t.shape);
                    gain * gain * rows.min(cols) as f64 / numel
                }
                Init::Identity { gain } => gain * gain * first.min(last) / numel,
                Init::Dirac { groups } => {
                    let (o, i) = t.channel_axes.unwrap_or((0, 1.min(t.shape.len() - 1)));
                    let (out, in_g) = (t.shape[o] as f64, t.shape[i] as f64);
                    let g = *groups as f64;
                    g * (out / g).min(in_g) / numel
                }
                Init::Sinusoidal { .. } => 0.5,
                Init::RelativePositionIndex { .. } => numel,
                Init::FromFile(v) => v.bound.as_ref().map_or(1.0, |b| b.moments().1),
                Init::NormOf { of, .. } => {
                    // g² is a slice's sum of v²: the slice's size times E[v²].
                    let n_v: u64 = of.shape.iter().product();
                    let v = TensorDecl {
                        shape: of.shape.clone(),
                        init: of.init.clone(),
                        fans: of.fans,
                        channel_axes: of.channel_axes,
                        ..t.clone()
                    };
                    second_moment(&v) * n_v as f64 / numel
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

/// E[w] of one element of a tensor at init (0 for structured ones, but forget biases).
pub fn first_moment(t: &TensorDecl) -> f64 {
    match t.init.dist(t.fans) {
        Dist::Constant(v) => v,
        Dist::Normal { mean, .. } => mean,
        Dist::Uniform { low, high } => (low + high) / 2.0,
        Dist::TruncatedNormal {
            mean,
            std,
            low,
            high,
        } => truncated_moments(mean, std, low, high).0,
        Dist::Structured => match &t.init {
            Init::FromFile(v) => v.bound.as_ref().map_or(0.0, |b| b.moments().0),
            _ => 0.0,
        },
    }
}

/// Simpson's rule on [−10, 10] with `n` (even) intervals: each node and its weight, so
/// that Σ w·f(t) ≈ ∫ f.
fn simpson(n: usize) -> impl Iterator<Item = (f64, f64)> {
    let (lo, hi) = (-10.0f64, 10.0f64);
    let h = (hi - lo) / n as f64;
    (0..=n).map(move |k| {
        let w = if k == 0 || k == n {
            1.0
        } else if k % 2 == 1 {
            4.0
        } else {
            2.0
        };
        (lo + k as f64 * h, w * h / 3.0)
    })
}

/// Simpson's 800 intervals with their weights times the standard normal density (computed
/// once: a deep spec asks for thousands of means).
fn simpson_nodes() -> &'static [(f64, f64)] {
    static NODES: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    NODES.get_or_init(|| simpson(800).map(|(t, w)| (t, w * std_pdf(t))).collect())
}

/// E[f(z)] for z ~ N(mu, var), by Simpson's rule on ±10σ (f(mu) when var is 0).
pub fn gauss_mean(mu: f64, var: f64, f: impl Fn(f64) -> f64) -> f64 {
    if var.is_nan() || var <= 0.0 || !var.is_finite() || !mu.is_finite() {
        return f(mu);
    }
    let s = var.sqrt();
    simpson_nodes()
        .iter()
        .map(|&(t, w)| w * f(mu + s * t))
        .sum()
}

/// (μ/σ, σ) for a proper normal (the closed forms' variables), `None` where
/// [`gauss_mean`] falls back to a point mass.
fn standardized(mu: f64, var: f64) -> Option<(f64, f64)> {
    (var.is_finite() && var > 0.0 && mu.is_finite()).then(|| {
        let s = var.sqrt();
        (mu / s, s)
    })
}

/// The standard normal density.
fn std_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The chain without the functions that leave the scale alone.
fn active(chain: &[Activation]) -> Vec<Activation> {
    chain
        .iter()
        .copied()
        .filter(|a| !matches!(a, Activation::Linear | Activation::Softmax))
        .collect()
}

/// Quadratures already computed, by (what, chain, μ, var): the layers of a repeated block
/// after a norm see the same input, so a 100k-layer spec computes each once. Cleared when
/// it grows past [`MEMO_LIMIT`] entries.
type Memo = std::collections::HashMap<(u8, Vec<Activation>, u64, u64), (f64, f64)>;

/// Entries [`memo`] keeps at most.
const MEMO_LIMIT: usize = 4096;

/// `compute()` for (what, chain, μ, var), remembered on this thread.
fn memo(
    what: u8,
    chain: &[Activation],
    mu: f64,
    var: f64,
    compute: impl FnOnce() -> (f64, f64),
) -> (f64, f64) {
    thread_local! {
        static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::new(Memo::new());
    }
    let key = (what, chain.to_vec(), mu.to_bits(), var.to_bits());
    if let Some(v) = MEMO.with(|m| m.borrow().get(&key).copied()) {
        return v;
    }
    let v = compute();
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MEMO_LIMIT {
            m.clear();
        }
        m.insert(key, v);
    });
    v
}

/// (E[h(z)], E[h(z)²]) for z ~ N(mu, var), h applying `chain` in order.
pub fn chain_moments(chain: &[Activation], mu: f64, var: f64) -> (f64, f64) {
    memo(0, chain, mu, var, || chain_moments_now(chain, mu, var))
}

fn chain_moments_now(chain: &[Activation], mu: f64, var: f64) -> (f64, f64) {
    let chain = active(chain);
    if chain.is_empty() {
        return (mu, mu * mu + var);
    }
    // ReLU alone, the common case, in closed form (what the quadrature approximates).
    if let ([Activation::Relu], Some((a, s))) = (chain.as_slice(), standardized(mu, var)) {
        let (cdf, pdf) = (crate::init::normal_cdf(a), std_pdf(a));
        return (mu * cdf + s * pdf, (mu * mu + var) * cdf + mu * s * pdf);
    }
    let h = |x: f64| chain.iter().fold(x, |x, a| a.apply(x));
    (
        gauss_mean(mu, var, h),
        gauss_mean(mu, var, |x| h(x).powi(2)),
    )
}

/// E[(∂h/∂z)²] for z ~ N(mu, var): the product of every function's derivative along the
/// chain (1 for an empty chain).
pub fn chain_deriv_sq(chain: &[Activation], mu: f64, var: f64) -> f64 {
    memo(1, chain, mu, var, || {
        (chain_deriv_sq_now(chain, mu, var), 0.0)
    })
    .0
}

fn chain_deriv_sq_now(chain: &[Activation], mu: f64, var: f64) -> f64 {
    let chain = active(chain);
    if chain.is_empty() {
        return 1.0;
    }
    if let ([Activation::Relu], Some((a, _))) = (chain.as_slice(), standardized(mu, var)) {
        return crate::init::normal_cdf(a);
    }
    gauss_mean(mu, var, |x| {
        let mut v = x;
        let mut d = 1.0;
        for a in &chain {
            d *= a.derivative(v);
            v = a.apply(v);
        }
        d * d
    })
}

/// E[h(z)²] for z ~ N(0, q) (or of the derivative when `derivative`).
#[cfg(test)]
pub fn chain_sq(chain: &[Activation], q: f64, derivative: bool) -> f64 {
    if derivative {
        chain_deriv_sq(chain, 0.0, q)
    } else {
        chain_moments(chain, 0.0, q).1
    }
}

/// Mean and variance of the largest of `n` independent standard normals.
pub fn max_of_normals(n: u64) -> (f64, f64) {
    if n <= 1 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    // The max's density: n·φ(x)·Φ(x)^(n−1).
    let dens = |x: f64| n * std_pdf(x) * normal_cdf(x).powf(n - 1.0);
    let (mut m1, mut m2) = (0.0, 0.0);
    for (x, w) in simpson(4000) {
        m1 += w * x * dens(x);
        m2 += w * x * x * dens(x);
    }
    (m1, m2 - m1 * m1)
}

/// E[φ(z)²] (or E[φ′(z)²] when `derivative`) for z ~ N(0, q).
#[cfg(test)]
pub fn expect_sq(activation: Option<Activation>, q: f64, derivative: bool) -> f64 {
    chain_sq(activation.as_slice(), q, derivative)
}

#[cfg(test)]
mod max_tests {
    use super::*;

    #[test]
    fn order_statistics_of_normals() {
        // E[max of 2] = 1/√π; of 4 ≈ 1.0294; of 9 ≈ 1.4850 (Harter's tables).
        assert!((max_of_normals(2).0 - 1.0 / std::f64::consts::PI.sqrt()).abs() < 1e-6);
        assert!((max_of_normals(4).0 - 1.029_4).abs() < 1e-3);
        assert!((max_of_normals(9).0 - 1.485_0).abs() < 1e-3);
        assert!((max_of_normals(2).1 - (1.0 - 1.0 / std::f64::consts::PI)).abs() < 1e-6);
    }

    #[test]
    fn relu_of_a_shifted_normal() {
        // E[relu(N(μ, σ²))²] = (μ² + σ²)Φ(μ/σ) + μσφ(μ/σ)
        let (mu, s) = (0.8f64, 1.3f64);
        let z = mu / s;
        let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = (mu * mu + s * s) * normal_cdf(z) + mu * s * pdf;
        let (_, m2) = chain_moments(&[Activation::Relu], mu, s * s);
        // The kink falls between Simpson's points: first-order there.
        assert!((m2 / want - 1.0).abs() < 1e-4, "{m2} vs {want}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_second_moments() {
        use Activation::*;
        // relu halves the variance; its derivative squared is 1/2
        assert!((expect_sq(Some(Relu), 4.0, false) - 2.0).abs() < 1e-9);
        assert!(
            (expect_sq(Some(Relu), 4.0, true) - 0.5).abs() < 1e-2,
            "a step: Simpson is first-order here"
        );
        // tanh ≈ linear for small inputs, saturates for large
        assert!((expect_sq(Some(Tanh), 1e-4, false) / 1e-4 - 1.0).abs() < 1e-3);
        assert!(expect_sq(Some(Tanh), 100.0, false) > 0.9);
        // sigmoid of N(0, q→0) is 1/2: second moment 1/4
        assert!((expect_sq(Some(Sigmoid), 1e-8, false) - 0.25).abs() < 1e-6);
        // selu keeps unit variance (self-normalizing)
        assert!((expect_sq(Some(Selu), 1.0, false) - 1.0).abs() < 1e-3);
        assert_eq!(expect_sq(None, 3.0, false), 3.0);
        // relu twice is relu once: a chain, not a Gaussian fed to each
        assert!((chain_sq(&[Relu, Relu], 4.0, false) - 2.0).abs() < 1e-9);
        assert!((chain_sq(&[Tanh, Tanh], 1.0, false) - chain_sq(&[Tanh], 1.0, false)).abs() > 1e-3);
    }

    #[test]
    fn truncated_normal_moments() {
        let (m, v) = truncated_moments(0.0, 1.0, -2.0, 2.0);
        assert!(m.abs() < 1e-12 && (v.sqrt() - crate::init::TRUNC_STD_2).abs() < 1e-12);
    }
}
