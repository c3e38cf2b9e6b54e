//! zero-kernel, constant-kernel, symmetric-chain and degenerate-init: inits that never break symmetry.

use super::Sink;
use crate::diag::Diagnostic;
use crate::init::{Dist, Init};
use crate::layers::Activation;
use crate::model::{LayerClass, LayerInfo, Model, Role, Signal, Step, TensorDecl};

/// The activation a layer's output goes through: its own, or the next activation layer's.
pub(super) fn effective_activation(model: &Model, i: usize) -> Option<Activation> {
    let Step::Layer(l) = &model.flow[i] else {
        return None;
    };
    if l.activation.is_some() {
        return l.activation;
    }
    for step in &model.flow[i + 1..] {
        match step {
            Step::Layer(n) if n.class == LayerClass::Pointwise => return n.activation,
            Step::Layer(n) if n.kind == "dropout" => continue,
            _ => return None,
        }
    }
    None
}

/// The family of initializers that suits an activation, for help lines.
pub(super) fn suggestion(activation: Option<Activation>) -> &'static str {
    match activation {
        Some(Activation::Selu) => "lecun_normal, made for selu",
        Some(a) if a.is_relu_like() => "he_normal (kaiming_normal), made for relu-like activations",
        _ => "glorot_uniform (xavier_uniform), made for tanh, sigmoid and linear outputs",
    }
}

fn kernels<'m>(model: &'m Model, l: &LayerInfo) -> Vec<&'m TensorDecl> {
    let own: Vec<&TensorDecl> = l
        .tensors
        .iter()
        .map(|&k| &model.tensors[k])
        .filter(|t| matches!(t.role, Role::Kernel | Role::RecurrentKernel))
        .collect();
    if own.is_empty() {
        if let Some(target) = &l.tie {
            return model.tensors.iter().filter(|t| &t.name == target).collect();
        }
    }
    own
}

pub(super) fn check(model: &Model, sink: &mut Sink<'_>) {
    let mut prev: Option<(&LayerInfo, &TensorDecl)> = None;
    for (i, step) in model.flow.iter().enumerate() {
        let l = match step {
            Step::Layer(l) => l,
            Step::Enter { topology, .. } | Step::Exit { topology, .. }
                if topology.merge.is_some() || topology.residual.is_some() =>
            {
                // Branches and residuals mix other paths in: the chain is broken.
                prev = None;
                continue;
            }
            Step::Branch => {
                prev = None;
                continue;
            }
            _ => continue,
        };
        if l.signal == Signal::Embedding {
            prev = None;
        }
        if l.class != LayerClass::Weight {
            continue;
        }
        let ks = kernels(model, l);
        let activation = effective_activation(model, i);
        let zero_residual = ends_residual_branch(model, i);
        for k in &ks {
            let Some(v) = k.init.constant_value() else {
                continue;
            };
            // Zero-init residual (Fixup, ReZero, LLaMA-Pro's new blocks, ControlNet): the
            // stream passes around the branch, the kernel's gradient is its input times the
            // stream's, different per unit, so the first step breaks the symmetry.
            if v == 0.0 && zero_residual {
                continue;
            }
            let (lint, what) = if v == 0.0 {
                ("zero-kernel", "zeros".to_string())
            } else {
                ("constant-kernel", format!("the constant {v}"))
            };
            let d = Diagnostic::error(
                lint,
                k.span,
                format!("kernel `{}` starts as {what}: every unit of `{}` computes the same function", k.name, l.path),
            )
            .label("constant kernel")
            .help(format!(
                "initialize it randomly, e.g. with {}; if this is deliberate (zero-init residual branch, ControlNet zero conv, LoRA B), add `allow: [{lint}]` to the layer",
                suggestion(activation)
            ));
            sink.report(&[l], d);
        }
        let constant = !ks.is_empty() && ks.iter().all(|k| k.init.constant_value().is_some());
        if constant {
            if let Some((pl, pk)) = prev {
                let k = ks[0];
                let d = Diagnostic::error(
                    "symmetric-chain",
                    k.span,
                    format!("`{}` and `{}` both start constant: no gradient step can make their units differ", pl.path, l.path),
                )
                .label(format!("`{}` starts constant", l.path))
                .also(pk.span, format!("`{}` starts constant", pl.path))
                .help("make one of the two random (for LoRA: A random, B zero)");
                sink.report(&[l, pl], d);
            }
            prev = Some((l, ks[0]));
        } else {
            prev = None;
        }
    }
    degenerate(model, sink);
}

/// Whether the layer at `flow[i]` is the last weight layer of a `residual: add` branch:
/// what follows it, before the residual's add, only moves values (a dropout, a reshape) or
/// leaves blocks that merge nothing.
fn ends_residual_branch(model: &Model, i: usize) -> bool {
    use crate::model::Merge;
    for step in &model.flow[i + 1..] {
        match step {
            Step::Layer(n) if n.class == LayerClass::Shape && n.signal == Signal::Pass => {}
            Step::Exit { topology, .. } if topology.residual == Some(Merge::Add) => return true,
            Step::Exit { topology, .. }
                if topology.merge.is_none() && topology.residual.is_none() => {}
            _ => return false,
        }
    }
    false
}

fn degenerate(model: &Model, sink: &mut Sink<'_>) {
    for step in &model.flow {
        let Step::Layer(l) = step else { continue };
        for &k in &l.tensors {
            let t = &model.tensors[k];
            let why = match (&t.init, t.init.dist(t.fans)) {
                (Init::Constant { .. }, _) => None,
                (_, Dist::Normal { std: 0.0, .. }) => {
                    Some("its standard deviation is 0".to_string())
                }
                (_, Dist::TruncatedNormal { std: 0.0, .. }) => {
                    Some("its standard deviation is 0".to_string())
                }
                (_, Dist::TruncatedNormal { low, high, .. }) if low == high => {
                    Some("its bounds are equal".to_string())
                }
                (_, Dist::Uniform { low, high }) if low == high => {
                    Some(format!("its bounds are equal ({low})"))
                }
                (Init::Orthogonal { gain, .. } | Init::Identity { gain }, _) if *gain == 0.0 => {
                    Some("its gain is 0".to_string())
                }
                (Init::Sparse { sparsity, .. }, _)
                    if (sparsity * t.shape[0] as f64).ceil() >= t.shape[0] as f64 =>
                {
                    Some(format!(
                        "sparsity {sparsity} zeroes all {} rows of every column",
                        t.shape[0]
                    ))
                }
                _ => None,
            };
            if let Some(why) = why {
                let d = Diagnostic::error(
                    "degenerate-init",
                    t.span,
                    format!("`{}` is random in name only: {why}", t.name),
                )
                .label("constant in effect")
                .help("give the distribution a spread, or write `zeros` / `constant` if a constant is meant");
                sink.report(&[l], d);
            }
        }
    }
}
