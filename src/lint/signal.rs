//! exploding-signal / vanishing-signal: the activation (and gradient) scale predicted at init.
//!
//! The forward pass tracks m₂ = E[x²] of the stream through each layer's [`Signal`] rule:
//! a linear map gives a pre-activation variance q = reach·E[w²]·m₂ + E[b²] (reach: the
//! inputs summed into one output), and the stream is then h(z) for z ~ N(0, q), where h
//! is the chain of pointwise functions applied since (the layer's own activation, then
//! activation layers), so E[h(z)²] is integrated exactly — relu after relu is relu, not
//! relu of a fresh Gaussian. Norms reset m₂ to E[(offset + γ)²] + E[β²]; embeddings start
//! it at E[w²]. Blocks follow the topology: every branch of a `parallel` reads the block's
//! input; `add` sums the branches' m₂, `multiply` multiplies them, `concat` averages them
//! weighted by channels, `attention` keeps the last (the values); a residual joins the
//! block's input the same way. Model inputs are taken to have unit scale.
//!
//! The backward pass does the same for gradients from a unit output gradient, in reverse:
//! E[(∂L/∂x)²] = reach_out·E[w²]·E[h′(z)²]·E[(∂L/∂y)²]; a branch gets the block's
//! output gradient (times the other factors' m₂ under `multiply`; the query and key
//! branches of an attention merge get none at init), the block's input the sum over its
//! branches and its residual. The backward check restarts at every norm (a norm is
//! scale-invariant: what reaches its input depends on the scale of the stream it
//! normalizes). A lint fires at the first layer where the predicted standard deviation
//! leaves [`BAND`] (docs/lints.md).

use super::moments::{
    chain_deriv_sq, chain_moments, first_moment, gauss_mean, max_of_normals, second_moment,
};
use crate::layers::Activation;
use crate::model::{LayerInfo, Merge, Model, Role, Signal, Step, TensorDecl, Topology};

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

/// The stream at one point of the forward pass.
#[derive(Clone, Debug)]
struct Stream {
    /// E[x²].
    m2: f64,
    /// E[x].
    mean: f64,
    /// E[xₜ·xₛ] of two different tokens (what averaging over tokens keeps).
    cross: f64,
    /// When the stream is h(z) of one Gaussian pre-activation z ~ N(μ, var): μ, var and h's
    /// pointwise functions, in order.
    chain: Option<(f64, f64, Vec<Activation>)>,
    /// After a constant kernel: nothing to judge until a norm or embedding re-anchors it.
    muted: bool,
}

impl Stream {
    /// A stream of independent tokens with this second moment and mean.
    fn new(m2: f64, mean: f64) -> Stream {
        Stream {
            m2,
            mean,
            cross: mean * mean,
            chain: None,
            muted: false,
        }
    }

    /// The variance (of one element).
    fn var(&self) -> f64 {
        (self.m2 - self.mean * self.mean).max(0.0)
    }

    /// The correlation of two tokens' centred values.
    fn rho(&self) -> f64 {
        let v = self.var();
        if v > 0.0 {
            ((self.cross - self.mean * self.mean) / v).clamp(-1.0, 1.0)
        } else {
            1.0
        }
    }

    /// The same correlation between tokens, at a new mean and second moment.
    fn with(&self, m2: f64, mean: f64) -> Stream {
        let rho = self.rho();
        Stream {
            m2,
            mean,
            cross: mean * mean + rho * (m2 - mean * mean).max(0.0),
            chain: None,
            muted: self.muted,
        }
    }

    /// The stream after the pointwise function `a`: the chain of functions of one
    /// Gaussian is integrated whole (relu after relu is one relu).
    fn then(&self, a: Activation) -> Stream {
        let (mu, var, mut fs) = self
            .chain
            .clone()
            .unwrap_or((self.mean, self.var(), Vec::new()));
        fs.push(a);
        let (mean, m2) = chain_moments(&fs, mu, var);
        Stream {
            chain: Some((mu, var, fs)),
            ..self.with(m2, mean)
        }
    }

    /// The stream after a linear map: `gain` = inputs summed · E[w²] of zero-mean weights,
    /// plus a bias with E[b], E[b²].
    fn linear(&self, gain: f64, b: (f64, f64)) -> Stream {
        let m2 = gain * self.m2 + b.1;
        Stream {
            m2,
            mean: b.0,
            cross: gain * self.cross + b.1,
            chain: Some((b.0, (m2 - b.0 * b.0).max(0.0), Vec::new())),
            muted: self.muted,
        }
    }

    /// The average over tokens that uniform attention computes: a fraction `a` of a token's
    /// own second moment survives, the rest is what tokens share.
    fn averaged(&self, a: f64) -> Stream {
        let m2 = a * self.m2 + (1.0 - a) * self.cross;
        Stream {
            m2,
            mean: self.mean,
            // Every query sees (nearly) the same average.
            cross: m2,
            chain: None,
            muted: self.muted,
        }
    }
}

/// The fraction of a token's own variance that uniform attention over `tokens` keeps:
/// 1/T, or the mean of 1/t over t ≤ T (H_T/T) when queries see only earlier tokens.
/// Unknown T: 1 (no averaging assumed, the scale's upper bound).
fn keep(tokens: Option<u64>, causal: bool) -> f64 {
    match tokens {
        Some(t) if t > 1 => {
            let t = t.min(1 << 24);
            if causal {
                (1..=t).map(|k| 1.0 / k as f64).sum::<f64>() / t as f64
            } else {
                1.0 / t as f64
            }
        }
        _ => 1.0,
    }
}

/// What the forward pass records per step, for the backward pass and the summary.
#[derive(Clone, Debug, Default)]
struct Record {
    /// E[x²] of the stream after the step (layers only).
    out: Option<f64>,
    /// E[φ′²] of the pointwise functions applied at this step, at the stream they act on.
    deriv: f64,
    /// m₂ of every branch's output (Exit markers only).
    branches: Vec<f64>,
    /// Whether the step's kernel starts constant.
    silent: bool,
    /// Whether the stream leaving the step follows a constant kernel (nothing to judge).
    muted: bool,
}

fn tensors<'m>(
    model: &'m Model,
    l: &'m LayerInfo,
    role: Role,
) -> impl Iterator<Item = &'m TensorDecl> {
    l.tensors
        .iter()
        .map(|&k| &model.tensors[k])
        .filter(move |t| t.role == role)
}

/// The kernels of a layer, in order; a tied dense layer's is its embedding's.
fn kernels<'m>(model: &'m Model, l: &'m LayerInfo) -> Vec<&'m TensorDecl> {
    let own: Vec<&TensorDecl> = tensors(model, l, Role::Kernel).collect();
    if own.is_empty() {
        if let Some(target) = &l.tie {
            return model.tensors.iter().filter(|t| &t.name == target).collect();
        }
    }
    own
}

/// E[w²] and the reach (inputs per output, outputs per input) of a kernel; a tied
/// embedding [num, dim] used as a dense kernel reads `dim` inputs and feeds `num` outputs.
fn kernel_facts(l: &LayerInfo, k: &TensorDecl) -> (f64, (f64, f64)) {
    let w2 = second_moment(k);
    if l.tie.as_deref() == Some(k.name.as_str()) && k.shape.len() == 2 {
        return (w2, (k.shape[1] as f64, k.shape[0] as f64));
    }
    (w2, k.reach)
}

/// E[b] and E[b²] of a layer's first bias (0, 0 without one).
fn bias(model: &Model, l: &LayerInfo) -> (f64, f64) {
    tensors(model, l, Role::Bias)
        .next()
        .map_or((0.0, 0.0), |b| (first_moment(b), second_moment(b)))
}

/// Combines a block's branch outputs and its input, as its topology says.
fn combine(
    topology: Topology,
    input: &Stream,
    outs: &[Stream],
    widths: &[Option<u64>],
    tokens: Option<u64>,
) -> Stream {
    // Independent parts: E[(Σa)²] = ΣE[a²] + 2Σ E[a]E[b], and so for the cross moment.
    let add = |parts: &[&Stream]| {
        let mut s = Stream::new(0.0, 0.0);
        s.cross = 0.0;
        for (i, p) in parts.iter().enumerate() {
            let prior = parts[..i].iter().map(|q| q.mean).sum::<f64>();
            s.m2 += p.m2 + 2.0 * p.mean * prior;
            s.cross += p.cross + 2.0 * p.mean * prior;
            s.mean += p.mean;
        }
        s.muted = parts.iter().all(|p| p.muted);
        s
    };
    let weighted = |parts: &[(&Stream, Option<u64>)]| {
        let known = parts.iter().all(|(_, w)| w.is_some());
        let weight = |w: Option<u64>| if known { w.unwrap_or(1) as f64 } else { 1.0 };
        let total: f64 = parts.iter().map(|(_, w)| weight(*w)).sum::<f64>().max(1.0);
        let avg = |f: &dyn Fn(&Stream) -> f64| {
            parts.iter().map(|(s, w)| f(s) * weight(*w)).sum::<f64>() / total
        };
        Stream {
            m2: avg(&|s| s.m2),
            mean: avg(&|s| s.mean),
            cross: avg(&|s| s.cross),
            chain: None,
            muted: parts.iter().all(|(s, _)| s.muted),
        }
    };
    let merged = match topology.merge {
        None => outs.last().cloned().unwrap_or_else(|| input.clone()),
        Some(Merge::Add) => add(&outs.iter().collect::<Vec<_>>()),
        Some(Merge::Multiply) => Stream {
            m2: outs.iter().map(|s| s.m2).product(),
            mean: outs.iter().map(|s| s.mean).product(),
            cross: outs.iter().map(|s| s.cross).product(),
            chain: None,
            muted: outs.iter().all(|s| s.muted),
        },
        Some(Merge::Concat) => {
            let parts: Vec<(&Stream, Option<u64>)> =
                outs.iter().zip(widths.iter().copied()).collect();
            weighted(&parts)
        }
        Some(Merge::Attention) => outs
            .last()
            .unwrap_or(input)
            .averaged(keep(tokens, topology.causal)),
    };
    match topology.residual {
        None => merged,
        Some(Merge::Concat) => {
            let w_out = if topology.merge.is_none() {
                widths.first().copied().flatten()
            } else {
                None
            };
            let w_in = widths.last().copied().flatten();
            weighted(&[(input, w_in), (&merged, w_out)])
        }
        Some(_) => add(&[input, &merged]),
    }
}

/// The forward pass: a record per flow step.
fn forward(model: &Model) -> Vec<Record> {
    let mut records = vec![Record::default(); model.flow.len()];
    let mut s = Stream::new(1.0, 0.0);
    // Per open block: its input and its finished branches.
    let mut stack: Vec<(Stream, Vec<Stream>)> = Vec::new();
    let mut prev_embedding = false;
    for (i, step) in model.flow.iter().enumerate() {
        match step {
            Step::Enter { .. } => {
                stack.push((s.clone(), Vec::new()));
                prev_embedding = false;
            }
            Step::Branch => {
                if let Some((input, outs)) = stack.last_mut() {
                    outs.push(std::mem::replace(&mut s, input.clone()));
                }
                prev_embedding = false;
            }
            Step::Exit {
                topology,
                widths,
                tokens,
                ..
            } => {
                if let Some((input, mut outs)) = stack.pop() {
                    outs.push(s.clone());
                    records[i].branches = outs.iter().map(|o| o.m2).collect();
                    s = combine(*topology, &input, &outs, widths, *tokens);
                }
                prev_embedding = false;
            }
            Step::Layer(l) => {
                let rec = &mut records[i];
                match l.signal {
                    Signal::Linear => {
                        let ks = kernels(model, l);
                        if !ks.is_empty() {
                            rec.silent = ks.iter().any(|k| k.init.constant_value().is_some());
                            let gain: f64 = ks
                                .iter()
                                .map(|k| {
                                    let (w2, (inputs, _)) = kernel_facts(l, k);
                                    inputs * w2
                                })
                                .product();
                            let mut base = s.linear(gain, bias(model, l));
                            base.muted |= rec.silent;
                            rec.deriv = 1.0;
                            s = match l.activation {
                                Some(a) => {
                                    if let Some((mu, var, _)) = &base.chain {
                                        rec.deriv = chain_deriv_sq(&[a], *mu, *var);
                                    }
                                    base.then(a)
                                }
                                None => base,
                            };
                        }
                    }
                    Signal::Attention { causal } => {
                        // The value projection, the average over tokens (uniform attention
                        // at init), then the output projection.
                        let ks = kernels(model, l);
                        if ks.len() >= 2 {
                            let (v, o) = (ks[ks.len() - 2], ks[ks.len() - 1]);
                            let (v2, (vi, _)) = kernel_facts(l, v);
                            let (o2, (oi, _)) = kernel_facts(l, o);
                            let b = bias(model, l);
                            let values = s.linear(vi * v2, b).averaged(keep(l.tokens, causal));
                            s = values.linear(oi * o2, b);
                            s.chain = None;
                            rec.deriv = keep(l.tokens, causal);
                        }
                    }
                    Signal::Recurrent { simple } => {
                        if let Some(k) = kernels(model, l).first() {
                            let (w2, (inputs, _)) = kernel_facts(l, k);
                            let z = s.linear(inputs * w2, bias(model, l));
                            let (mu, var) = (z.mean, z.var());
                            let (mean, m2, d) = match simple {
                                Some(a) => {
                                    let (m, m2) = chain_moments(&[a], mu, var);
                                    (m, m2, chain_deriv_sq(&[a], mu, var))
                                }
                                // h = o·tanh(c): a sigmoid gate times a tanh.
                                None => {
                                    let (_, t2) = chain_moments(&[Activation::Tanh], mu, var);
                                    let (_, g2) = chain_moments(&[Activation::Sigmoid], mu, var);
                                    (
                                        0.0,
                                        t2 * g2,
                                        chain_deriv_sq(&[Activation::Tanh], mu, var) * g2,
                                    )
                                }
                            };
                            s = Stream {
                                muted: s.muted,
                                ..Stream::new(m2, mean)
                            };
                            rec.deriv = d;
                        }
                    }
                    Signal::Embedding => {
                        let e = tensors(model, l, Role::Embeddings).next();
                        let (em, e2) =
                            e.map_or((0.0, 1.0), |t| (first_moment(t), second_moment(t)));
                        // Consecutive embeddings (token + position) are summed; rows of
                        // different tokens are independent.
                        s = if prev_embedding {
                            Stream::new(s.m2 + e2 + 2.0 * s.mean * em, s.mean + em)
                        } else {
                            Stream::new(e2, em)
                        };
                    }
                    Signal::Norm { offset } => {
                        // The applied scale is offset + γ: E[(offset + γ)²]; the tokens keep
                        // their correlation.
                        let g2 = tensors(model, l, Role::Gamma).next().map_or(1.0, |g| {
                            offset * offset + 2.0 * offset * first_moment(g) + second_moment(g)
                        });
                        let (bm, b2) = tensors(model, l, Role::Beta)
                            .next()
                            .map_or((0.0, 0.0), |b| (first_moment(b), second_moment(b)));
                        let rho = s.rho();
                        s = Stream {
                            m2: g2 + b2,
                            mean: bm,
                            cross: rho * g2 + b2,
                            chain: None,
                            muted: false,
                        };
                    }
                    Signal::Activation(a) => {
                        let (mu, var, fs) =
                            s.chain.clone().unwrap_or((s.mean, s.var(), Vec::new()));
                        rec.deriv = chain_deriv_sq(&[fs.as_slice(), &[a]].concat(), mu, var)
                            / chain_deriv_sq(&fs, mu, var).max(1e-300);
                        s = s.then(a);
                    }
                    Signal::Prelu => {
                        let a = tensors(model, l, Role::Alpha)
                            .next()
                            .map_or(0.25, first_moment);
                        let f = |x: f64| if x > 0.0 { x } else { a * x };
                        let (mu, var) = (s.mean, s.var());
                        let (mean, m2) = (
                            gauss_mean(mu, var, f),
                            gauss_mean(mu, var, |x| f(x).powi(2)),
                        );
                        rec.deriv = gauss_mean(mu, var, |x| if x > 0.0 { 1.0 } else { a * a });
                        s = s.with(m2, mean);
                    }
                    Signal::MaxPool { window, stride } => {
                        // The largest of `window` values, taken as independent: its mean
                        // and variance are the order statistic's.
                        let (e, v) = max_of_normals(window);
                        let sd = s.var().sqrt();
                        let mean = s.mean + sd * e;
                        s = s.with(mean * mean + sd * sd * v, mean);
                        // Backward, each input is the max of 1 in `window` windows it is in.
                        rec.deriv = 1.0 / stride.max(1) as f64;
                    }
                    Signal::Pass => {}
                }
                if matches!(l.signal, Signal::Norm { .. } | Signal::Embedding) {
                    s.muted = false;
                }
                prev_embedding = l.signal == Signal::Embedding;
                rec.out = Some(s.m2);
                rec.muted = s.muted;
            }
        }
    }
    records
}

/// The predicted forward standard deviation after every layer step (`None` for block
/// markers).
pub fn forward_std(model: &Model) -> Vec<Option<f64>> {
    forward(model)
        .iter()
        .zip(&model.flow)
        .map(|(r, s)| match s {
            Step::Layer(_) => r.out.map(f64::sqrt),
            _ => None,
        })
        .collect()
}

fn outside(s: f64) -> bool {
    s.is_finite() && (s > BAND.1 || (s > 0.0 && s < BAND.0))
}

/// The first layers where the predicted activation or gradient scale leaves [`BAND`].
pub fn check(model: &Model) -> Vec<Escape> {
    let records = forward(model);
    for (i, step) in model.flow.iter().enumerate() {
        let Step::Layer(_) = step else { continue };
        let Some(m2) = records[i].out.filter(|_| !records[i].muted) else {
            continue;
        };
        let s = m2.sqrt();
        if outside(s) {
            return vec![Escape {
                step: i,
                backward: false,
                std: s,
            }];
        }
    }
    backward(model, &records).into_iter().collect()
}

/// The predicted gradient standard deviation at every layer's input, from a unit
/// gradient at the model's output (`None` for markers).
pub fn backward_std(model: &Model) -> Vec<Option<f64>> {
    let records = forward(model);
    let mut out = vec![None; model.flow.len()];
    walk_back(model, &records, |i, g2| {
        out[i] = Some(g2.sqrt());
        false
    });
    out
}

fn backward(model: &Model, records: &[Record]) -> Option<Escape> {
    // Inside a `residual: add` branch the stream's own gradient passes around the branch, so
    // it cannot vanish through the depth there; a branch that starts learning slowly (small
    // output projections, GPT-2's and torchtitan's scaled inits at a fixture's width) is not
    // that. Growth still counts.
    let mut depth = 0usize;
    let in_residual: Vec<bool> = model
        .flow
        .iter()
        .map(|s| match s {
            Step::Enter { topology, .. } if topology.residual == Some(Merge::Add) => {
                depth += 1;
                true
            }
            Step::Exit { topology, .. } if topology.residual == Some(Merge::Add) => {
                depth = depth.saturating_sub(1);
                depth > 0
            }
            _ => depth > 0,
        })
        .collect();
    let mut found = None;
    walk_back(model, records, |i, g2| {
        let s = g2.sqrt();
        if outside(s) && !(s < 1.0 && in_residual[i]) {
            found = Some(Escape {
                step: i,
                backward: true,
                std: s,
            });
            return true;
        }
        false
    });
    found
}

/// The backward pass: calls `visit(step, g2)` with the gradient's E[g²] below each layer
/// (at its input), in reverse flow order, until `visit` returns true.
fn walk_back(model: &Model, records: &[Record], mut visit: impl FnMut(usize, f64) -> bool) {
    struct Frame {
        out: f64,
        topology: Topology,
        tokens: Option<u64>,
        branches: Vec<f64>,
        /// The branch being walked back (counting from the last).
        at: usize,
        sum: f64,
    }
    let grad_of = |f: &Frame| -> f64 {
        let i = f.branches.len().saturating_sub(1 + f.at);
        match f.topology.merge {
            Some(Merge::Multiply) => {
                f.out
                    * f.branches
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, m)| *m)
                        .product::<f64>()
            }
            // At init attention is uniform: the query and key branches get no gradient, and
            // each value 1/T of every query's.
            Some(Merge::Attention) if i + 1 != f.branches.len() => 0.0,
            Some(Merge::Attention) => f.out * keep(f.tokens, f.topology.causal),
            _ => f.out,
        }
    };
    let mut g2 = 1.0f64;
    let mut stack: Vec<Frame> = Vec::new();
    // The gradient is measured from the head's input: the head's own scale (a small
    // classifier init, 10 classes at std 0.01) is the same factor for every layer below,
    // not a shrinking through the depth.
    let mut head = true;
    for (i, step) in model.flow.iter().enumerate().rev() {
        match step {
            Step::Exit {
                topology, tokens, ..
            } => {
                let f = Frame {
                    out: g2,
                    topology: *topology,
                    tokens: *tokens,
                    branches: records[i].branches.clone(),
                    at: 0,
                    sum: 0.0,
                };
                g2 = grad_of(&f);
                stack.push(f);
            }
            Step::Branch => {
                if let Some(f) = stack.last_mut() {
                    f.sum += g2;
                    f.at += 1;
                    g2 = grad_of(f);
                }
            }
            Step::Enter { .. } => {
                if let Some(f) = stack.pop() {
                    g2 = f.sum
                        + g2
                        + if f.topology.residual.is_some() {
                            f.out
                        } else {
                            0.0
                        };
                }
            }
            Step::Layer(l) => {
                let r = &records[i];
                if r.silent {
                    g2 = 0.0;
                }
                if head
                    && stack.is_empty()
                    && matches!(
                        l.signal,
                        Signal::Linear | Signal::Attention { .. } | Signal::Recurrent { .. }
                    )
                {
                    head = false;
                    g2 = 1.0;
                    if visit(i, g2) {
                        return;
                    }
                    continue;
                }
                match l.signal {
                    Signal::Linear => {
                        for k in kernels(model, l) {
                            let (w2, (_, outputs)) = kernel_facts(l, k);
                            g2 *= outputs * w2;
                        }
                        g2 *= r.deriv;
                    }
                    Signal::Attention { .. } => {
                        let ks = kernels(model, l);
                        if ks.len() >= 2 {
                            for k in &ks[ks.len() - 2..] {
                                let (w2, (_, outputs)) = kernel_facts(l, k);
                                g2 *= outputs * w2;
                            }
                            // A value feeds every query's average: 1/T of the gradient each.
                            g2 *= r.deriv;
                        }
                    }
                    Signal::Recurrent { .. } => {
                        if let Some(k) = kernels(model, l).first() {
                            let (w2, (_, outputs)) = kernel_facts(l, k);
                            g2 *= outputs * w2 * r.deriv;
                        }
                    }
                    Signal::Norm { .. } => {
                        g2 = 1.0;
                        continue;
                    }
                    // The gradient stops at an embedding table.
                    Signal::Embedding => {
                        g2 = 0.0;
                        continue;
                    }
                    Signal::Activation(_) | Signal::Prelu | Signal::MaxPool { .. } => g2 *= r.deriv,
                    Signal::Pass => continue,
                }
                if visit(i, g2) {
                    return;
                }
            }
        }
    }
}
