//! `lstm`, `gru`, `rnn`: nn.LSTM / nn.GRU / nn.RNN and keras LSTM / GRU / SimpleRNN
//! (stacked and bidirectional).

use super::{dflt, glorot_uniform, orthogonal, overflow, Act, Activation, Cx};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::Fields;

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// 4 gates: i, f, g, o (keras: i, f, c, o).
    Lstm,
    /// 3 gates: r, z, n (keras: z, r, h).
    Gru,
    /// No gates: h = φ(W x + U h + b) (nn.RNN, SimpleRNN).
    Rnn,
}

impl Cell {
    fn gates(self) -> u64 {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    /// Keras' class name in snake_case (`forward_<it>`, `<it>_cell`).
    pub fn keras(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::Rnn => "simple_rnn",
        }
    }
}

/// A (possibly stacked, possibly bidirectional) recurrent layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurrent {
    /// LSTM or GRU.
    pub cell: Cell,
    /// Hidden size.
    pub units: u64,
    /// Input features, if stated.
    pub input_size: Option<u64>,
    /// Stacked layers.
    pub num_layers: u64,
    /// Whether a backward direction runs too.
    pub bidirectional: bool,
    /// Whether it has biases.
    pub use_bias: bool,
    /// A simple RNN's nonlinearity (tanh or relu).
    pub nonlinearity: Activation,
    /// Whether it outputs every step (`[T, H]`) or the last only (`[H]`): Keras'
    /// `return_sequences` (default false); torch modules return the sequence (true).
    pub return_sequences: bool,
}

impl Recurrent {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout, cell: Cell) -> Option<Recurrent> {
        let units = f.req_size("units", "128");
        let input_size = f.size("input_size").map(|s| s.value);
        let num_layers = f.size("num_layers").map_or(1, |s| s.value);
        let bidirectional = f.bool("bidirectional", false);
        let use_bias = f.bool("use_bias", true);
        let return_sequences = f.bool("return_sequences", layout == Layout::Pytorch);
        let nonlinearity = if cell == Cell::Rnn {
            // torch's `nonlinearity`, Keras' `activation`: tanh or relu.
            match f.choice("nonlinearity", &["tanh", "relu"]).map(|s| s.value) {
                Some("relu") => Activation::Relu,
                _ => Activation::Tanh,
            }
        } else {
            Activation::Tanh
        };
        Some(Recurrent {
            cell,
            units: units?.value,
            input_size,
            num_layers,
            bidirectional,
            use_bias,
            nonlinearity,
            return_sequences,
        })
    }

    /// A simple RNN's nonlinearity; `None` for a gated cell.
    pub fn simple_activation(&self) -> Option<Activation> {
        (self.cell == Cell::Rnn).then_some(self.nonlinearity)
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let dirs: u64 = if self.bidirectional { 2 } else { 1 };
        let h = self.units;
        let Some(out_features) = h.checked_mul(dirs) else {
            cx.error(overflow(cx.layer.type_span, "`units` times directions"));
            return Act::unknown();
        };
        let mut out = input.with_last(out_features);
        if !self.return_sequences && out.dims.len() >= 2 {
            // The last step only: the time axis goes.
            out.dims.remove(out.dims.len() - 2);
        }
        let Some(input_size) = self.input_size.or(input.last()) else {
            cx.missing_input("input_size", input);
            return out;
        };
        let Some(gh) = h.checked_mul(self.cell.gates()) else {
            cx.error(overflow(cx.layer.type_span, "the gate size"));
            return out;
        };
        for l in 0..self.num_layers {
            if *cx.full {
                break;
            }
            let in_l = if l == 0 { input_size } else { out_features };
            let ih = Fans {
                fan_in: in_l,
                fan_out: gh,
            };
            let hh = Fans {
                fan_in: h,
                fan_out: gh,
            };
            match cx.layout {
                Layout::Pytorch => {
                    // torch: every parameter U(±1/sqrt(hidden_size)) (nn.RNNBase.reset_parameters).
                    let b = 1.0 / (h as f64).sqrt();
                    let u = || {
                        dflt(
                            Init::Uniform { low: -b, high: b },
                            "torch: U(±1/sqrt(hidden_size))",
                        )
                    };
                    for sfx in ["", "_reverse"].iter().take(dirs as usize) {
                        let n = |w: &str| format!("{w}_l{l}{sfx}");
                        cx.tensor(
                            &[&n("weight_ih")],
                            "kernel_initializer",
                            Role::Kernel,
                            vec![gh, in_l],
                            ih,
                            u(),
                        );
                        cx.tensor(
                            &[&n("weight_hh")],
                            "recurrent_initializer",
                            Role::RecurrentKernel,
                            vec![gh, h],
                            hh,
                            u(),
                        );
                        if self.use_bias {
                            cx.tensor(
                                &[&n("bias_ih")],
                                "bias_initializer",
                                Role::Bias,
                                vec![gh],
                                ih,
                                u(),
                            );
                            cx.tensor(
                                &[&n("bias_hh")],
                                "bias_initializer",
                                Role::Bias,
                                vec![gh],
                                hh,
                                u(),
                            );
                        }
                    }
                }
                Layout::Keras => {
                    // Stacked Keras layers are siblings named as Keras numbers them: enc, enc_1, ...
                    let layer_name = if l == 0 {
                        cx.name.clone()
                    } else {
                        format!("{}_{l}", cx.name)
                    };
                    let cell = format!("{}_cell", self.cell.keras());
                    // Bidirectional copies the wrapped layer as forward_<its name> and
                    // backward_<its name>; the wrapped layer took an automatic name first.
                    let wrapped = cx
                        .keras_wrapped
                        .clone()
                        .unwrap_or_else(|| self.cell.keras().to_string());
                    let wrapped = if l == 0 {
                        wrapped
                    } else {
                        format!("{wrapped}_{l}")
                    };
                    let dir_names: Vec<Option<String>> = if self.bidirectional {
                        vec![
                            Some(format!("forward_{wrapped}")),
                            Some(format!("backward_{wrapped}")),
                        ]
                    } else {
                        vec![None]
                    };
                    for dir in dir_names {
                        let at = |leaf: &str| {
                            let mut p = cx.parent.clone();
                            p.push(layer_name.clone());
                            p.extend(dir.clone());
                            p.push(cell.clone());
                            p.push(leaf.to_string());
                            p
                        };
                        let (k, rk, b) = (at("kernel"), at("recurrent_kernel"), at("bias"));
                        cx.tensor_at(
                            k,
                            "kernel_initializer",
                            Role::Kernel,
                            vec![in_l, gh],
                            ih,
                            glorot_uniform(),
                        );
                        cx.tensor_at(
                            rk,
                            "recurrent_initializer",
                            Role::RecurrentKernel,
                            vec![h, gh],
                            hh,
                            dflt(orthogonal(cx.layout), "keras: orthogonal"),
                        );
                        if self.use_bias {
                            let _ = match self.cell {
                                Cell::Lstm => cx.tensor_at(
                                    b,
                                    "bias_initializer",
                                    Role::Bias,
                                    vec![gh],
                                    ih,
                                    dflt(
                                        Init::UnitForgetBias { units: h },
                                        "keras: zeros, forget gate 1 (unit_forget_bias)",
                                    ),
                                ),
                                Cell::Rnn => cx.tensor_at(
                                    b,
                                    "bias_initializer",
                                    Role::Bias,
                                    vec![h],
                                    ih,
                                    dflt(Init::ZEROS, "keras: zeros"),
                                ),
                                // reset_after=True (the Keras 3 default) keeps input and recurrent biases apart.
                                Cell::Gru => cx.tensor_at(
                                    b,
                                    "bias_initializer",
                                    Role::Bias,
                                    vec![2, gh],
                                    ih,
                                    dflt(Init::ZEROS, "keras: zeros"),
                                ),
                            };
                        }
                    }
                }
            }
        }
        out
    }
}
