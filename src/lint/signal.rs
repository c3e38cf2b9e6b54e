//! exploding-signal / vanishing-signal: the activation (and gradient) scale predicted at init.
//!
//! The forward pass tracks m₂ = E[x²] of the activations: a dense or conv layer gives a
//! pre-activation variance q = fan_in·E[w²]·m₂ + E[b²] and then m₂ = E[φ(z)²] for
//! z ~ N(0, q), integrated numerically (for tanh, gelu, silu and sigmoid it depends on q);
//! norms reset m₂ to E[γ²] + E[β²]; a residual block adds its branch to its input;
//! embeddings start the signal at E[w²]. Model inputs are taken to have unit scale.
//! The backward pass does the same for gradients from a unit output gradient:
//! E[(∂L/∂x)²] = fan_out·E[w²]·E[φ′(z)²]·E[(∂L/∂y)²], restarting at every norm.
//! A lint fires at the first layer where the predicted standard deviation leaves
//! [`BAND`] (docs/lints.md).

use super::moments::{expect_sq, second_moment};
use crate::model::{Model, Role, Step};

/// The band the predicted scale (standard deviation) must stay in.
pub const BAND: (f64, f64) = (1e-3, 1e3);

/// A predicted scale that left the band.
#[derive(Debug, Clone, PartialEq)]
pub struct Escape {
    /// Index into the model's flow of the layer where it left.
    pub step: usize,
    /// True for the gradient (backward), false for activations.
    pub backward: bool,
    /// The predicted standard deviation there.
    pub std: f64,
}

/// The predicted forward standard deviation after every layer step (None for block markers).
pub fn forward_std(model: &Model) -> Vec<Option<f64>> {
    forward(model)
        .0
        .iter()
        .map(|s| s.map(|(_, m2)| m2.sqrt()))
        .collect()
}

/// Per step: (pre-activation variance q, m₂ after the step) for layers.
type Trace = Vec<Option<(f64, f64)>>;

fn forward(model: &Model) -> (Trace, Vec<bool>) {
    let mut m2 = 1.0f64;
    let mut stack = Vec::new();
    let mut trace = vec![None; model.flow.len()];
    let mut silent = vec![false; model.flow.len()];
    let mut prev_embedding = false;
    for (i, step) in model.flow.iter().enumerate() {
        match step {
            Step::Enter { residual: true, .. } => stack.push(m2),
            Step::Exit { residual: true, .. } => m2 += stack.pop().unwrap_or(0.0),
            Step::Enter { .. } | Step::Exit { .. } => {}
            Step::Layer(l) => {
                let t = |role: Role| {
                    l.tensors
                        .iter()
                        .map(|&k| &model.tensors[k])
                        .filter(move |t| t.role == role)
                };
                let bias2: f64 = t(Role::Bias)
                    .map(|b| second_moment(b, model.layout))
                    .next()
                    .unwrap_or(0.0);
                let kernels: Vec<_> = t(Role::Kernel).collect();
                let mut q = m2;
                match l.kind {
                    "dense" | "conv1d" | "conv2d" => {
                        let (fan_in, w2) = match (&l.tie, kernels.first()) {
                            (_, Some(k)) => (k.fans.fan_in as f64, second_moment(k, model.layout)),
                            (Some(target), None) => {
                                match model.tensors.iter().find(|t| &t.name == target) {
                                    Some(e) => (e.shape[1] as f64, second_moment(e, model.layout)),
                                    None => (1.0, 1.0),
                                }
                            }
                            _ => (1.0, 1.0),
                        };
                        silent[i] = kernels
                            .first()
                            .is_some_and(|k| k.init.constant_value().is_some());
                        q = fan_in * w2 * m2 + bias2;
                        m2 = expect_sq(l.activation, q, false);
                    }
                    "multi_head_attention" => {
                        // value projection, then the output projection (uniform attention at init).
                        let n = kernels.len();
                        if n >= 2 {
                            let (v, o) = (kernels[n - 2], kernels[n - 1]);
                            let qv =
                                v.fans.fan_in as f64 * second_moment(v, model.layout) * m2 + bias2;
                            q = o.fans.fan_in as f64 * second_moment(o, model.layout) * qv + bias2;
                            m2 = q;
                        }
                    }
                    "lstm" | "gru" => {
                        if let Some(k) = kernels.first() {
                            q = k.fans.fan_in as f64 * second_moment(k, model.layout) * m2 + bias2;
                            // h = o·tanh(c): a sigmoid gate times a tanh.
                            m2 = expect_sq(Some("tanh"), q, false)
                                * expect_sq(Some("sigmoid"), q, false);
                        }
                    }
                    "embedding" => {
                        let e2 = l
                            .tensors
                            .first()
                            .map_or(1.0, |&k| second_moment(&model.tensors[k], model.layout));
                        // Consecutive embeddings (token + position) are summed.
                        m2 = if prev_embedding { m2 + e2 } else { e2 };
                    }
                    "layer_norm" | "rms_norm" | "batch_norm" => {
                        let g2 = t(Role::Gamma)
                            .map(|g| second_moment(g, model.layout))
                            .next()
                            .unwrap_or(1.0);
                        let b2 = t(Role::Beta)
                            .map(|b| second_moment(b, model.layout))
                            .next()
                            .unwrap_or(0.0);
                        m2 = g2 + b2;
                    }
                    "activation" => {
                        m2 = expect_sq(l.activation, m2, false);
                    }
                    _ => {}
                }
                prev_embedding = l.kind == "embedding";
                trace[i] = Some((q, m2));
            }
        }
    }
    (trace, silent)
}

/// The first layers where the predicted activation or gradient scale leaves [`BAND`].
pub fn check(model: &Model) -> Vec<Escape> {
    let (trace, silent) = forward(model);
    let mut out = Vec::new();
    // Forward: a layer whose kernel is constant is zero-kernel's business, and what
    // follows it carries no signal to judge until something re-anchors it.
    let mut muted = false;
    for (i, step) in model.flow.iter().enumerate() {
        let Step::Layer(l) = step else { continue };
        if silent[i] {
            muted = true;
        }
        if matches!(
            l.kind,
            "layer_norm" | "rms_norm" | "batch_norm" | "embedding"
        ) {
            muted = false;
        }
        let Some((_, m2)) = trace[i] else { continue };
        let s = m2.sqrt();
        if !muted && (s > BAND.1 || (s > 0.0 && s < BAND.0)) {
            out.push(Escape {
                step: i,
                backward: false,
                std: s,
            });
            break;
        }
    }
    if out.is_empty() {
        if let Some(e) = backward(model, &trace, &silent) {
            out.push(e);
        }
    }
    out
}

fn backward(model: &Model, trace: &Trace, silent: &[bool]) -> Option<Escape> {
    let mut g2 = 1.0f64;
    let mut stack = Vec::new();
    // m₂ entering each step (activation layers need it).
    let mut m2_in = vec![1.0f64; model.flow.len()];
    let mut prev = 1.0;
    for (i, t) in trace.iter().enumerate() {
        m2_in[i] = prev;
        if let Some((_, m2)) = t {
            prev = *m2;
        }
    }
    for (i, step) in model.flow.iter().enumerate().rev() {
        match step {
            Step::Exit { residual: true, .. } => stack.push(g2),
            Step::Enter { residual: true, .. } => g2 += stack.pop().unwrap_or(0.0),
            Step::Enter { .. } | Step::Exit { .. } => {}
            Step::Layer(l) => {
                if silent[i] {
                    return None;
                }
                let Some((q, _)) = trace[i] else { continue };
                let kernels: Vec<_> = l
                    .tensors
                    .iter()
                    .map(|&k| &model.tensors[k])
                    .filter(|t| t.role == Role::Kernel)
                    .collect();
                match l.kind {
                    "dense" | "conv1d" | "conv2d" => {
                        let (fan_out, w2) = match kernels.first() {
                            Some(k) => (k.fans.fan_out as f64, second_moment(k, model.layout)),
                            None => continue,
                        };
                        g2 *= fan_out * w2 * expect_sq(l.activation, q, true);
                    }
                    "multi_head_attention" if kernels.len() >= 2 => {
                        let n = kernels.len();
                        let (v, o) = (kernels[n - 2], kernels[n - 1]);
                        g2 *= o.fans.fan_out as f64 * second_moment(o, model.layout);
                        g2 *= v.fans.fan_out as f64 * second_moment(v, model.layout);
                    }
                    "lstm" | "gru" => {
                        if let Some(k) = kernels.first() {
                            g2 *= k.fans.fan_out as f64
                                * second_moment(k, model.layout)
                                * expect_sq(Some("tanh"), q, true)
                                * expect_sq(Some("sigmoid"), q, false);
                        }
                    }
                    // A norm is scale-invariant: what reaches its input depends on the scale of the
                    // stream it normalizes, which a flat spec cannot always show (pre-norm residual
                    // streams). Like the forward pass, the backward check restarts at every norm.
                    "layer_norm" | "rms_norm" | "batch_norm" => {
                        g2 = 1.0;
                        continue;
                    }
                    "activation" => g2 *= expect_sq(l.activation, m2_in[i], true),
                    // The gradient stops at an embedding table.
                    "embedding" => return None,
                    _ => continue,
                }
                let s = g2.sqrt();
                if s > BAND.1 || (s > 0.0 && s < BAND.0) {
                    return Some(Escape {
                        step: i,
                        backward: true,
                        std: s,
                    });
                }
            }
        }
    }
    None
}
