//! Activation functions: the words a spec may write, and each function's value and
//! derivative for the signal prediction.

use crate::init::normal_cdf;

/// A pointwise activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// The identity.
    Linear,
    /// max(0, x).
    Relu,
    /// min(max(0, x), 6) (MobileNet's ReLU6).
    Relu6,
    /// x for x > 0, 0.01·x otherwise (torch and Keras 3 default slope).
    LeakyRelu,
    /// x for x > 0, eˣ − 1 otherwise.
    Elu,
    /// Scaled ELU (self-normalizing).
    Selu,
    /// x·Φ(x), exact.
    Gelu,
    /// x·Φ(x) by the tanh approximation (GPT-2's `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// x·σ(x) (swish).
    Silu,
    /// x·σ(1.702·x) (CLIP's `quick_gelu`).
    QuickGelu,
    /// x·relu6(x + 3)/6 (MobileNetV3).
    HardSwish,
    /// relu6(x + 3)/6.
    HardSigmoid,
    /// ln(1 + eˣ).
    Softplus,
    /// x·tanh(softplus(x)).
    Mish,
    /// tanh.
    Tanh,
    /// The logistic function.
    Sigmoid,
    /// Softmax over the features (taken as linear for the prediction).
    Softmax,
}

impl Activation {
    /// Every word a spec may write, with the function it names (aliases included).
    pub const WORDS: [(&'static str, Activation); 26] = [
        ("linear", Activation::Linear),
        ("relu", Activation::Relu),
        ("relu6", Activation::Relu6),
        ("leaky_relu", Activation::LeakyRelu),
        ("elu", Activation::Elu),
        ("selu", Activation::Selu),
        ("gelu", Activation::Gelu),
        ("gelu_tanh", Activation::GeluTanh),
        ("gelu_new", Activation::GeluTanh),
        ("gelu_pytorch_tanh", Activation::GeluTanh),
        // transformers' other names for the same two functions (ACT2FN).
        ("gelu_fast", Activation::GeluTanh),
        ("gelu_accurate", Activation::GeluTanh),
        ("gelu_python", Activation::Gelu),
        ("quick_gelu", Activation::QuickGelu),
        ("silu", Activation::Silu),
        ("swish", Activation::Silu),
        ("quickgelu", Activation::QuickGelu),
        ("hard_swish", Activation::HardSwish),
        ("hardswish", Activation::HardSwish),
        ("hard_sigmoid", Activation::HardSigmoid),
        ("hardsigmoid", Activation::HardSigmoid),
        ("softplus", Activation::Softplus),
        ("mish", Activation::Mish),
        ("tanh", Activation::Tanh),
        ("sigmoid", Activation::Sigmoid),
        ("softmax", Activation::Softmax),
    ];

    /// The words, for help lines and did-you-mean.
    pub fn words() -> impl Iterator<Item = &'static str> {
        Activation::WORDS.iter().map(|(w, _)| *w)
    }

    /// The function a word names (`swish` is `silu`).
    pub fn parse(word: &str) -> Option<Activation> {
        Activation::WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, a)| *a)
    }

    /// The canonical word.
    pub fn name(self) -> &'static str {
        Activation::WORDS
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(w, _)| *w)
            .expect("every activation has a word")
    }

    /// Whether it keeps the positive half and damps the negative one (the He-init family).
    pub fn is_relu_like(self) -> bool {
        matches!(
            self,
            Activation::Relu
                | Activation::Relu6
                | Activation::LeakyRelu
                | Activation::Elu
                | Activation::Gelu
                | Activation::GeluTanh
                | Activation::Silu
                | Activation::QuickGelu
                | Activation::HardSwish
                | Activation::Mish
        )
    }

    /// Whether it saturates on both sides (the Glorot family).
    pub fn is_saturating(self) -> bool {
        matches!(
            self,
            Activation::Tanh | Activation::Sigmoid | Activation::HardSigmoid
        )
    }

    /// φ(x).
    pub fn apply(self, x: f64) -> f64 {
        const SELU: (f64, f64) = (1.050_700_987_355_480_5, 1.673_263_242_354_377_3);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let softplus = |x: f64| if x > 30.0 { x } else { x.exp().ln_1p() };
        match self {
            Activation::Linear | Activation::Softmax => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    0.01 * x
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU.0 * x
                } else {
                    SELU.0 * SELU.1 * x.exp_m1()
                }
            }
            Activation::Gelu => x * normal_cdf(x),
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::Silu => x * sigmoid(x),
            Activation::QuickGelu => x * sigmoid(1.702 * x),
            Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::Softplus => softplus(x),
            Activation::Mish => x * softplus(x).tanh(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => sigmoid(x),
        }
    }

    /// φ′(x) (a numerical derivative where the closed form is long; it only feeds a scale).
    pub fn derivative(self, x: f64) -> f64 {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            Activation::Linear | Activation::Softmax => 1.0,
            Activation::Relu => f64::from(u8::from(x > 0.0)),
            Activation::Relu6 => f64::from(u8::from(x > 0.0 && x < 6.0)),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.01
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    1.0
                } else {
                    x.exp()
                }
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            _ => {
                let h = 1e-5 * x.abs().max(1.0);
                (self.apply(x + h) - self.apply(x - h)) / (2.0 * h)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_to_one_function_each() {
        assert_eq!(Activation::parse("swish"), Some(Activation::Silu));
        assert_eq!(Activation::parse("gelu_new"), Some(Activation::GeluTanh));
        for (w, a) in Activation::WORDS {
            assert_eq!(Activation::parse(w), Some(a));
            assert_eq!(Activation::parse(a.name()), Some(a));
        }
        assert_eq!(Activation::parse("Relu"), None);
    }

    #[test]
    fn derivatives_match_the_functions() {
        for (_, a) in Activation::WORDS {
            for x in [-2.3, -0.7, 0.4, 1.9] {
                let h = 1e-6;
                let num = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
                assert!((a.derivative(x) - num).abs() < 1e-4, "{a:?} at {x}");
            }
        }
    }
}
