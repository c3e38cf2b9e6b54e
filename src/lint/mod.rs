//! Lints: the registry of names, levels and explanations, and the checks over a resolved model.

use serde::Serialize;

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
}

/// Every lint (SPEC.md section 7).
pub const LINTS: &[LintInfo] = &[
    LintInfo {
        name: "zero-kernel",
        default: Level::Warn,
        summary: "a dense, conv or recurrent kernel starts as all zeros",
        explanation: "Fires when the kernel of a dense, conv, recurrent or attention layer is initialized \
to all zeros.\n\nWhy it matters: every unit of the layer then computes the same function of its input and \
receives the same gradient, so the units stay identical forever: symmetry is never broken by the layer \
itself, and the layer learns at most one feature.\n\nExample:\n  - {type: dense, units: 256, kernel_initializer: zeros}\n\n\
Fix: use a random initializer suited to the activation (he_normal for relu-like, glorot_uniform for \
tanh/sigmoid/linear, lecun_normal for selu).\n\nDeliberate zero inits exist: the last layer of a residual branch \
(zero-init residual, Fixup, ReZero), ControlNet's zero convolutions, LoRA's B matrix next to a random A, a zero \
classifier head. Allow them on the layer with `allow: [zero-kernel]`, or for the whole spec with \
`lints: {zero-kernel: allow}`.",
    },
    LintInfo {
        name: "constant-kernel",
        default: Level::Warn,
        summary: "a kernel starts as a non-zero constant (ones, constant)",
        explanation: "Fires when a kernel is initialized to the same non-zero value everywhere (`ones`, \
`constant`).\n\nWhy it matters: as with zeros, all units compute the same function and get the same gradient, \
so they never differ.\n\nFix: use a random initializer. Allow with `allow: [constant-kernel]` on the layer.",
    },
    LintInfo {
        name: "symmetric-chain",
        default: Level::Deny,
        summary: "two weight layers in a row both start constant",
        explanation: "Fires when two consecutive weight layers both start constant (for example LoRA with A = B = 0, \
or two chained zero convolutions).\n\nWhy it matters: with one zero layer the gradient of that layer is still \
non-zero because the other layer is random; with both constant, no gradient step can ever make their units \
differ.\n\nFix: make one of the two random (LoRA: A random, B zero). Allow with `allow: [symmetric-chain]`.",
    },
    LintInfo {
        name: "degenerate-init",
        default: Level::Warn,
        summary: "a random initializer that is constant in effect",
        explanation: "Fires when a random initializer cannot produce different values: a standard deviation \
of 0, `minval` equal to `maxval`, or a `sparsity` that zeroes every row of a column.\n\nFix: give the \
distribution a spread, or write `zeros` / `constant` if a constant is meant.",
    },
    LintInfo {
        name: "exploding-signal",
        default: Level::Warn,
        summary: "the activation scale predicted at init grows out of a sane band",
        explanation: "Fires when the activation standard deviation predicted at init (variance propagated layer \
by layer from fans, initializer variances and activation moments) grows past the band over the depth of the \
model.\n\nFix: use an initializer with the gain of the activation (he_* for relu), or add normalization.",
    },
    LintInfo {
        name: "vanishing-signal",
        default: Level::Warn,
        summary: "the activation scale predicted at init shrinks out of a sane band",
        explanation: "Fires when the activation standard deviation predicted at init shrinks below the band over \
the depth of the model.\n\nFix: use an initializer with the gain of the activation, or add normalization.",
    },
    LintInfo {
        name: "half-precision-underflow",
        default: Level::Warn,
        summary: "in f16 / bf16 the initializer's typical magnitude is below the smallest normal number",
        explanation: "Fires when a tensor stored in f16 or bf16 has an initializer whose typical magnitude falls \
below the dtype's smallest normal number, so most values round to subnormals or zero.\n\nFix: store the tensor \
in f32 (`dtype: f32` on the layer) or use a larger scale.",
    },
];

/// Looks up a lint by name.
pub fn find(name: &str) -> Option<&'static LintInfo> {
    LINTS.iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

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
