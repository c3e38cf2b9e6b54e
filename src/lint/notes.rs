//! Notes beyond SPEC.md: trunc-normal-uncut and gain-mismatch.

use super::symmetry::{effective_activation, suggestion};
use super::Sink;
use crate::diag::Diagnostic;
use crate::init::{num, Init};
use crate::layers::Activation;
use crate::model::{LayerClass, LayerInfo, Model, Role, Step, TensorDecl};

pub(super) fn check(model: &Model, sink: &mut Sink<'_>) {
    uncut(model, sink);
    gains(model, sink);
}

fn uncut(model: &Model, sink: &mut Sink<'_>) {
    for step in &model.flow {
        let Step::Layer(l) = step else { continue };
        for &k in &l.tensors {
            let t = &model.tensors[k];
            let Init::TruncatedNormal {
                mean,
                std,
                low,
                high,
            } = t.init
            else {
                continue;
            };
            if t.choice.written != "trunc_normal" || std <= 0.0 {
                continue;
            }
            let (a, b) = ((low - mean) / std, (high - mean) / std);
            // Beyond 6 std the cut is below 2e-9 of the mass: nothing. A deliberate cut at
            // 3 std (torchtitan's output layer, OLMo) cuts 0.27% and is left alone.
            if a <= -6.0 && b >= 6.0 {
                let d = Diagnostic::error(
                    "trunc-normal-uncut",
                    t.span,
                    format!(
                        "`trunc_normal` bounds a={}, b={} are absolute and lie {} std from the mean: they cut nothing",
                        num(low),
                        num(high),
                        num(a.abs().min(b))
                    ),
                )
                .label("effectively an untruncated normal")
                .help(format!(
                    "to cut at ±2 std write `a: {}, b: {}`, or use `truncated_normal` (Keras, cut at ±2 stddev), or `normal` if no cut is meant",
                    num(mean - 2.0 * std),
                    num(mean + 2.0 * std)
                ));
                sink.report(&[l], d);
            }
        }
    }
}

fn kernel<'m>(model: &'m Model, l: &LayerInfo) -> Option<&'m TensorDecl> {
    l.tensors
        .iter()
        .map(|&k| &model.tensors[k])
        .find(|t| t.role == Role::Kernel)
}

fn gains(model: &Model, sink: &mut Sink<'_>) {
    let mut run: Vec<(&LayerInfo, &TensorDecl)> = Vec::new();
    let flush = |run: &mut Vec<(&LayerInfo, &TensorDecl)>, sink: &mut Sink<'_>| {
        if run.len() >= 4 {
            let (l, k) = run[0];
            let d = Diagnostic::error(
                "gain-mismatch",
                k.span,
                format!(
                    "`{}` feeds a stack of {} relu layers: gain-1 initializers halve the signal's variance at every one",
                    l.path,
                    run.len()
                ),
            )
            .label(format!("`{}` has gain 1", k.choice.written))
            .help(format!("use {}", suggestion(Some(Activation::Relu))));
            sink.report(&[l], d);
        }
        run.clear();
    };
    for (i, step) in model.flow.iter().enumerate() {
        let l = match step {
            Step::Layer(l) => l,
            // A stack of relu layers is a chain: branches and residuals end it.
            Step::Branch => {
                flush(&mut run, sink);
                continue;
            }
            Step::Enter { topology, .. } | Step::Exit { topology, .. }
                if topology.merge.is_some() || topology.residual.is_some() =>
            {
                flush(&mut run, sink);
                continue;
            }
            _ => continue,
        };
        if l.class != LayerClass::Weight {
            continue;
        }
        let Some(k) = kernel(model, l) else {
            flush(&mut run, sink);
            continue;
        };
        let act = effective_activation(model, i);
        let w = k.choice.written.as_str();
        let relu_gain = matches!(w, "he_normal" | "he_uniform")
            || matches!((w, &k.init), ("kaiming_normal" | "kaiming_uniform", Init::VarianceScaling { scale, .. }) if *scale > 1.9);
        if relu_gain && act.is_some_and(Activation::is_saturating) {
            let d = Diagnostic::error(
                "gain-mismatch",
                k.span,
                format!(
                    "`{w}` has the gain of relu, but `{}` is followed by {}",
                    l.path,
                    act.map_or("", Activation::name)
                ),
            )
            .label("relu gain")
            .help(format!("use {}", suggestion(act)));
            sink.report(&[l], d);
        }
        let unit_gain = matches!(
            w,
            "glorot_uniform"
                | "glorot_normal"
                | "xavier_uniform"
                | "xavier_normal"
                | "lecun_uniform"
                | "lecun_normal"
        );
        if unit_gain && act.is_some_and(Activation::is_relu_like) {
            run.push((l, k));
        } else {
            flush(&mut run, sink);
        }
    }
    flush(&mut run, sink);
}
