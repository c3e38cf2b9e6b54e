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

use super::moments::{chain_sq, first_moment, second_moment};
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
    /// When the stream is h(z) of one Gaussian pre-activation: its variance q and h's
    /// pointwise functions, in order.
    chain: Option<(f64, Vec<Activation>)>,
    /// After a constant kernel: nothing to judge until a norm or embedding re-anchors it.
    muted: bool,
}

impl Stream {
    fn gaussian(m2: f64) -> Stream {
        Stream {
            m2,
            chain: None,
            muted: false,
        }
    }

    /// The stream after the pointwise function `a`.
    fn then(&self, a: Activation) -> Stream {
        let (q, mut fs) = self.chain.clone().unwrap_or((self.m2, Vec::new()));
        fs.push(a);
        Stream {
            m2: chain_sq(&fs, q, false),
            chain: Some((q, fs)),
            muted: self.muted,
        }
    }
}

/// What the forward pass records per step, for the backward pass and the summary.
#[derive(Clone, Debug, Default)]
struct Record {
    /// The stream after the step (layers only).
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

fn mean_sq(it: impl Iterator<Item = f64>) -> Option<f64> {
    it.fold(None, |a: Option<f64>, x| Some(a.unwrap_or(0.0) + x))
}

/// Combines a block's branch outputs and its input, as its topology says.
fn combine(topology: Topology, input: &Stream, outs: &[Stream], widths: &[Option<u64>]) -> Stream {
    let weighted = |parts: &[(f64, Option<u64>)]| {
        let known = parts.iter().all(|(_, w)| w.is_some());
        let total: f64 = parts
            .iter()
            .map(|(_, w)| if known { w.unwrap_or(1) as f64 } else { 1.0 })
            .sum();
        parts
            .iter()
            .map(|(m, w)| m * if known { w.unwrap_or(1) as f64 } else { 1.0 })
            .sum::<f64>()
            / total.max(1.0)
    };
    let muted = outs.iter().all(|s| s.muted);
    let m2 = match topology.merge {
        None => outs.last().map_or(input.m2, |s| s.m2),
        Some(Merge::Add) => outs.iter().map(|s| s.m2).sum(),
        Some(Merge::Multiply) => outs.iter().map(|s| s.m2).product(),
        Some(Merge::Concat) => {
            let parts: Vec<(f64, Option<u64>)> =
                outs.iter().zip(widths).map(|(s, w)| (s.m2, *w)).collect();
            weighted(&parts)
        }
        Some(Merge::Attention) => outs.last().map_or(input.m2, |s| s.m2),
    };
    let merged = Stream {
        m2,
        chain: if topology.merge.is_none() {
            outs.last().and_then(|s| s.chain.clone())
        } else {
            None
        },
        muted,
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
            Stream {
                m2: weighted(&[(input.m2, w_in), (merged.m2, w_out)]),
                chain: None,
                muted: merged.muted && input.muted,
            }
        }
        Some(_) => Stream {
            m2: input.m2 + merged.m2,
            chain: None,
            muted: merged.muted && input.muted,
        },
    }
}

/// The forward pass: a record per flow step.
fn forward(model: &Model) -> Vec<Record> {
    let mut records = vec![Record::default(); model.flow.len()];
    let mut s = Stream::gaussian(1.0);
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
                topology, widths, ..
            } => {
                if let Some((input, mut outs)) = stack.pop() {
                    outs.push(s.clone());
                    records[i].branches = outs.iter().map(|o| o.m2).collect();
                    s = combine(*topology, &input, &outs, widths);
                }
                prev_embedding = false;
            }
            Step::Layer(l) => {
                let rec = &mut records[i];
                let bias2 = mean_sq(tensors(model, l, Role::Bias).take(1).map(second_moment))
                    .unwrap_or(0.0);
                match l.signal {
                    Signal::Linear => {
                        let ks = kernels(model, l);
                        if !ks.is_empty() {
                            rec.silent = ks.iter().any(|k| k.init.constant_value().is_some());
                            let mut q = s.m2;
                            for k in &ks {
                                let (w2, (inputs, _)) = kernel_facts(l, k);
                                q *= inputs * w2;
                            }
                            q += bias2;
                            let base = Stream {
                                m2: q,
                                chain: Some((q, Vec::new())),
                                muted: s.muted || rec.silent,
                            };
                            s = match l.activation {
                                Some(a) => {
                                    rec.deriv = chain_sq(&[a], q, true);
                                    base.then(a)
                                }
                                None => {
                                    rec.deriv = 1.0;
                                    base
                                }
                            };
                        }
                    }
                    Signal::Attention => {
                        // The value projection, then the output projection (uniform attention at init).
                        let ks = kernels(model, l);
                        if ks.len() >= 2 {
                            let (v, o) = (ks[ks.len() - 2], ks[ks.len() - 1]);
                            let (v2, (vi, _)) = kernel_facts(l, v);
                            let (o2, (oi, _)) = kernel_facts(l, o);
                            let qv = vi * v2 * s.m2 + bias2;
                            s = Stream {
                                m2: oi * o2 * qv + bias2,
                                chain: None,
                                muted: s.muted,
                            };
                            rec.deriv = 1.0;
                        }
                    }
                    Signal::Recurrent { simple } => {
                        if let Some(k) = kernels(model, l).first() {
                            let (w2, (inputs, _)) = kernel_facts(l, k);
                            let q = inputs * w2 * s.m2 + bias2;
                            let (m2, d) = match simple {
                                Some(a) => (chain_sq(&[a], q, false), chain_sq(&[a], q, true)),
                                // h = o·tanh(c): a sigmoid gate times a tanh.
                                None => (
                                    chain_sq(&[Activation::Tanh], q, false)
                                        * chain_sq(&[Activation::Sigmoid], q, false),
                                    chain_sq(&[Activation::Tanh], q, true)
                                        * chain_sq(&[Activation::Sigmoid], q, false),
                                ),
                            };
                            s = Stream {
                                m2,
                                chain: None,
                                muted: s.muted,
                            };
                            rec.deriv = d;
                        }
                    }
                    Signal::Embedding => {
                        let e2 = tensors(model, l, Role::Embeddings)
                            .next()
                            .map_or(1.0, second_moment);
                        // Consecutive embeddings (token + position) are summed.
                        let m2 = if prev_embedding { s.m2 + e2 } else { e2 };
                        s = Stream::gaussian(m2);
                    }
                    Signal::Norm { offset } => {
                        // The applied scale is offset + γ: E[(offset + γ)²].
                        let g2 = tensors(model, l, Role::Gamma).next().map_or(1.0, |g| {
                            offset * offset + 2.0 * offset * first_moment(g) + second_moment(g)
                        });
                        let b2 = tensors(model, l, Role::Beta)
                            .next()
                            .map_or(0.0, second_moment);
                        s = Stream::gaussian(g2 + b2);
                    }
                    Signal::Activation(a) => {
                        let (q, fs) = s.chain.clone().unwrap_or((s.m2, Vec::new()));
                        rec.deriv = chain_sq(&[fs.as_slice(), &[a]].concat(), q, true);
                        s = s.then(a);
                    }
                    Signal::Prelu => {
                        let a = tensors(model, l, Role::Alpha)
                            .next()
                            .map_or(0.25, first_moment);
                        let f = (1.0 + a * a) / 2.0;
                        s = Stream {
                            m2: s.m2 * f,
                            chain: None,
                            muted: s.muted,
                        };
                        rec.deriv = f;
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
    let mut found = None;
    walk_back(model, records, |i, g2| {
        let s = g2.sqrt();
        if outside(s) {
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
            // At init attention is uniform: the query and key branches get no gradient.
            Some(Merge::Attention) if i + 1 != f.branches.len() => 0.0,
            _ => f.out,
        }
    };
    let mut g2 = 1.0f64;
    let mut stack: Vec<Frame> = Vec::new();
    for (i, step) in model.flow.iter().enumerate().rev() {
        match step {
            Step::Exit { topology, .. } => {
                let f = Frame {
                    out: g2,
                    topology: *topology,
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
                match l.signal {
                    Signal::Linear => {
                        for k in kernels(model, l) {
                            let (w2, (_, outputs)) = kernel_facts(l, k);
                            g2 *= outputs * w2;
                        }
                        g2 *= r.deriv;
                    }
                    Signal::Attention => {
                        let ks = kernels(model, l);
                        if ks.len() >= 2 {
                            for k in &ks[ks.len() - 2..] {
                                let (w2, (_, outputs)) = kernel_facts(l, k);
                                g2 *= outputs * w2;
                            }
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
                    Signal::Activation(_) | Signal::Prelu => g2 *= r.deriv,
                    Signal::Pass => continue,
                }
                if visit(i, g2) {
                    return;
                }
            }
        }
    }
}
