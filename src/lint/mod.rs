//! Lints: the registry of names, levels and explanations, and the checks over a resolved model.
//!
//! Levels are decided in this order, each overriding the one before: the registry's
//! default, the spec's `lints:`, the command line (`--allow/--warn/--deny NAME`), and
//! last a layer's `allow:` (or an enclosing `sequential`'s), because a deliberate zero
//! init written next to the layer is the most specific statement there is.
//! `--deny-warnings` then makes any remaining warning fail the command (exit 1).

mod moments;
mod notes;
mod precision;
pub mod signal;
mod symmetry;

use crate::diag::{Diagnostic, Severity};
use crate::model::{LayerInfo, Model};
use crate::source::Span;
use serde::Serialize;
use std::collections::HashMap;

/// What happens when a lint fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Silent.
    Allow,
    /// Reported as a warning.
    Warn,
    /// Reported as an error.
    Deny,
}

impl Level {
    /// Parses `allow`, `warn` or `deny`.
    pub fn from_word(s: &str) -> Option<Level> {
        Some(match s {
            "allow" => Level::Allow,
            "warn" => Level::Warn,
            "deny" => Level::Deny,
            _ => return None,
        })
    }
}

/// Static facts about one lint.
#[derive(Debug)]
pub struct LintInfo {
    /// Stable kebab-case name.
    pub name: &'static str,
    /// Level when nothing changes it.
    pub default: Level,
    /// One line.
    pub summary: &'static str,
    /// What fires, why it matters, an example, how to fix, how to allow.
    pub explanation: &'static str,
    /// Reported as a note (not a warning) at level `warn`: advice, not a likely bug.
    pub note: bool,
}

/// Every lint (SPEC.md section 7).
pub const LINTS: &[LintInfo] = &[
    LintInfo {
        name: "zero-kernel",
        default: Level::Warn,
        summary: "a dense, conv or recurrent kernel starts as all zeros",
        explanation: "Fires when the kernel of a dense, conv, recurrent or attention layer is initialized \
to all zeros, unless the layer is the last weight layer of a `residual: add` branch (the stream passes \
around it, and its gradient, its input times the stream's, differs per unit: zero-init residual, Fixup, \
ReZero, LLaMA-Pro's new blocks).\n\nWhy it matters: every unit of the layer then computes the same function of its input and \
receives the same gradient, so the units stay identical forever: symmetry is never broken by the layer \
itself, and the layer learns at most one feature.\n\nExample:\n  - {type: dense, units: 256, kernel_initializer: zeros}\n\n\
Fix: use a random initializer suited to the activation (he_normal for relu-like, glorot_uniform for \
tanh/sigmoid/linear, lecun_normal for selu).\n\nDeliberate zero inits exist: the last layer of a residual branch \
not marked as one, ControlNet's zero convolutions, LoRA's B matrix next to a random A, a zero \
classifier head. Allow them on the layer with `allow: [zero-kernel]`, or for the whole spec with \
`lints: {zero-kernel: allow}`.",
        note: false,
    },
    LintInfo {
        name: "constant-kernel",
        default: Level::Warn,
        summary: "a kernel starts as a non-zero constant (ones, constant)",
        explanation: "Fires when a kernel is initialized to the same non-zero value everywhere (`ones`, \
`constant`).\n\nWhy it matters: as with zeros, all units compute the same function and get the same gradient, \
so they never differ.\n\nFix: use a random initializer. Allow with `allow: [constant-kernel]` on the layer.",
        note: false,
    },
    LintInfo {
        name: "symmetric-chain",
        default: Level::Deny,
        summary: "two weight layers in a row both start constant",
        explanation: "Fires when two consecutive weight layers both start constant (for example LoRA with A = B = 0, \
or two chained zero convolutions).\n\nWhy it matters: with one zero layer the gradient of that layer is still \
non-zero because the other layer is random; with both constant, no gradient step can ever make their units \
differ.\n\nFix: make one of the two random (LoRA: A random, B zero). Allow with `allow: [symmetric-chain]`.",
        note: false,
    },
    LintInfo {
        name: "degenerate-init",
        default: Level::Warn,
        summary: "a random initializer that is constant in effect",
        explanation: "Fires when a random initializer cannot produce different values: a standard deviation \
of 0, `minval` equal to `maxval`, or a `sparsity` that zeroes every row of a column.\n\nFix: give the \
distribution a spread, or write `zeros` / `constant` if a constant is meant.",
        note: false,
    },
    LintInfo {
        name: "exploding-signal",
        default: Level::Warn,
        summary: "the activation scale predicted at init grows out of a sane band",
        explanation: "Fires when the activation standard deviation predicted at init (variance propagated layer \
by layer from fans, initializer variances and activation moments) grows past the band over the depth of the \
model.\n\nFix: use an initializer with the gain of the activation (he_* for relu), or add normalization.",
        note: false,
    },
    LintInfo {
        name: "vanishing-signal",
        default: Level::Warn,
        summary: "the activation scale predicted at init shrinks out of a sane band",
        explanation: "Fires when the activation standard deviation predicted at init shrinks below the band over \
the depth of the model.\n\nFix: use an initializer with the gain of the activation, or add normalization.",
        note: false,
    },
    LintInfo {
        name: "half-precision-underflow",
        default: Level::Warn,
        summary: "in f16 / bf16 the initializer's typical magnitude is below the smallest normal number",
        explanation: "Fires when a tensor stored in f16 or bf16 has an initializer whose typical magnitude falls \
below the dtype's smallest normal number, so most values round to subnormals or zero.\n\nFix: store the tensor \
in f32 (`dtype: f32` on the layer) or use a larger scale.",
        note: false,
    },
    LintInfo {
        name: "trunc-normal-uncut",
        default: Level::Warn,
        summary: "trunc_normal's absolute bounds are so far out that they cut nothing",
        explanation: "A note when PyTorch's `trunc_normal` has bounds `a` and `b` 6 standard deviations \
or more from the mean on both sides, so less than 2e-9 of the distribution is cut (a deliberate cut at 3 \
std, as torchtitan and OLMo write, is left alone).\n\nWhy it matters: \
in PyTorch (and timm) `a` and `b` are absolute values, not multiples of `std`: `trunc_normal_(w, std=0.02)` \
keeps the default a=-2, b=2, which lie 100 standard deviations away, so the result is an ordinary normal. \
If a cut at 2 std was meant, the bounds must say so.\n\nExample:\n  kernel_initializer: {name: trunc_normal, std: 0.02}\n\n\
Fix: write the bounds you mean (`a: -0.04, b: 0.04` for ±2 std), use Keras' `truncated_normal` (cut at ±2 \
stddev), or write `normal` if no cut is wanted. Allow with `allow: [trunc-normal-uncut]`.",
        note: true,
    },
    LintInfo {
        name: "gain-mismatch",
        default: Level::Warn,
        summary: "an initializer's gain does not fit the layer's activation",
        explanation: "A note when an initializer's variance is made for another activation: he_* / \
kaiming (gain 2, for relu) before tanh or sigmoid, which then saturate; or glorot_* / xavier_* / lecun_* \
(gain 1) on a stack of four or more relu layers, where each layer halves the signal's variance.\n\n\
Fix: he_normal / kaiming_normal for relu-like activations, glorot_uniform / xavier_uniform for \
tanh, sigmoid and linear, lecun_normal for selu. Allow with `allow: [gain-mismatch]`.",
        note: true,
    },
];

/// Looks up a lint by name.
pub fn find(name: &str) -> Option<&'static LintInfo> {
    LINTS.iter().find(|l| l.name == name)
}

/// A set of lints (an `allow:` list), one bit per registry entry: copying it per layer
/// costs nothing however long the list was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LintSet(u64);

impl LintSet {
    /// Adds the lint named `name`; false if there is no such lint.
    pub fn insert(&mut self, name: &str) -> bool {
        match LINTS.iter().position(|l| l.name == name) {
            Some(i) => {
                self.0 |= 1 << i;
                true
            }
            None => false,
        }
    }

    /// Both sets.
    pub fn union(self, other: LintSet) -> LintSet {
        LintSet(self.0 | other.0)
    }

    /// Whether `lint` is in the set.
    pub fn contains(self, lint: &LintInfo) -> bool {
        LINTS
            .iter()
            .position(|l| l.name == lint.name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// Lint levels for one check.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    map: HashMap<&'static str, Level>,
}

impl Levels {
    /// Defaults, then the spec's `lints:`, then the command line's, in that order.
    pub fn new(spec: &[(String, Level, Span)], cli: &[(String, Level)]) -> Levels {
        let mut map: HashMap<&'static str, Level> =
            LINTS.iter().map(|l| (l.name, l.default)).collect();
        for (name, level) in spec
            .iter()
            .map(|(n, l, _)| (n, l))
            .chain(cli.iter().map(|(n, l)| (n, l)))
        {
            if let Some(l) = find(name) {
                map.insert(l.name, *level);
            }
        }
        Levels { map }
    }

    /// The level of `lint` on a layer with `allow`.
    pub fn of(&self, lint: &LintInfo, allow: LintSet) -> Level {
        if allow.contains(lint) {
            return Level::Allow;
        }
        self.map.get(lint.name).copied().unwrap_or(lint.default)
    }
}

/// Collects lint findings, applying levels as they are made.
pub(crate) struct Sink<'a> {
    levels: &'a Levels,
    out: Vec<Diagnostic>,
}

impl Sink<'_> {
    /// Reports `d` (its code names the lint) on `layers` unless the lint is allowed there.
    pub(crate) fn report(&mut self, layers: &[&LayerInfo], d: Diagnostic) {
        let info = find(d.code).expect("lints report registered names");
        let allow = layers
            .iter()
            .fold(LintSet::default(), |a, l| a.union(l.allow));
        let severity = match self.levels.of(info, allow) {
            Level::Allow => return,
            Level::Warn if info.note => Severity::Note,
            Level::Warn => Severity::Warning,
            Level::Deny => Severity::Error,
        };
        let path = layers.first().map(|l| l.path.as_str()).unwrap_or_default();
        let mut d = Diagnostic {
            code: info.name,
            severity,
            ..d
        }
        .at_path(path);
        if severity == Severity::Error && d.help.is_none() {
            d.help = Some(format!(
                "`{}` is denied; see `specc explain {}`",
                info.name, info.name
            ));
        }
        self.out.push(d);
    }
}

/// Runs every lint over a resolved model.
pub fn run(model: &Model, levels: &Levels) -> Vec<Diagnostic> {
    let mut sink = Sink {
        levels,
        out: Vec::new(),
    };
    symmetry::check(model, &mut sink);
    precision::check(model, &mut sink);
    notes::check(model, &mut sink);
    for e in signal::check(model) {
        let crate::model::Step::Layer(l) = &model.flow[e.step] else {
            continue;
        };
        let (lint, word) = if e.std > 1.0 {
            ("exploding-signal", "grows")
        } else {
            ("vanishing-signal", "shrinks")
        };
        let what = if e.backward { "gradient" } else { "activation" };
        let d = Diagnostic::error(
            lint,
            l.span,
            format!(
                "the predicted {what} scale {word} to {:.1e} at `{}`, outside [{:.0e}, {:.0e}]",
                e.std, l.path, signal::BAND.0, signal::BAND.1
            ),
        )
        .label(format!("{what} std ≈ {:.1e} here", e.std))
        .help(if e.std > 1.0 {
            "scale the initializers down to the activation's gain (he_* for relu, glorot_* for tanh), or add a normalization layer"
        } else {
            "use an initializer with the activation's gain (he_* for relu, glorot_* for tanh, lecun_normal for selu), or add a normalization layer"
        });
        sink.report(&[l], d);
    }
    once_per_place(sink.out)
}

/// One report per lint and place in the spec: a `defaults` entry or a layer of a
/// repeated block that fires for many tensors is reported once, naming the others.
fn once_per_place(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    let mut more: Vec<Vec<String>> = Vec::new();
    let mut at: HashMap<(&'static str, Span), usize> = HashMap::new();
    for d in diags {
        let key = d.primary.as_ref().map(|p| (d.code, p.span));
        match key.and_then(|k| at.get(&k).copied()) {
            Some(i) if out[i].severity == d.severity => {
                more[i].push(d.path.clone().unwrap_or_default());
            }
            _ => {
                if let Some(k) = key {
                    at.insert(k, out.len());
                }
                out.push(d);
                more.push(Vec::new());
            }
        }
    }
    for (d, others) in out.iter_mut().zip(more) {
        if others.is_empty() {
            continue;
        }
        let shown: Vec<String> = others.iter().take(4).map(|p| format!("`{p}`")).collect();
        let rest = others.len().saturating_sub(4);
        d.message = format!(
            "{} (and at {} more: {}{})",
            d.message,
            others.len(),
            shown.join(", "),
            if rest > 0 {
                format!(", … {rest} others")
            } else {
                String::new()
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_fits_a_lint_set() {
        assert!(LINTS.len() <= 64);
        let mut s = LintSet::default();
        assert!(s.insert("zero-kernel") && !s.insert("no-such-lint"));
        assert!(s.contains(&LINTS[0]) && !s.contains(&LINTS[1]));
    }

    #[test]
    fn registry_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for l in LINTS {
            assert!(seen.insert(l.name));
            assert!(l.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            assert!(
                crate::diag::code_info(l.name).is_none(),
                "{} is also an error code",
                l.name
            );
            assert!(
                l.explanation.contains("Fix"),
                "{} explains how to fix",
                l.name
            );
        }
    }
}
