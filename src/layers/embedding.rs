//! `embedding`: nn.Embedding / keras Embedding.

use super::{dflt, Act, Cx, Decl, EmbeddingInfo};
use crate::diag::{self, Diagnostic};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::{Fields, Sp};
use crate::syntax::Value;

/// A lookup table of `num_embeddings` rows of `embedding_dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    /// Rows (vocabulary size).
    pub num_embeddings: u64,
    /// Columns.
    pub embedding_dim: u64,
    /// The row kept at zero (torch `padding_idx`; negative counts from the end).
    pub padding_idx: Option<Sp<i128>>,
}

impl Embedding {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Embedding> {
        let n = f.req_size("num_embeddings", "50257");
        let d = f.req_size("embedding_dim", "768");
        let padding_idx = f.node("padding_idx").and_then(|p| match p.value {
            Value::Int(i) => Some(Sp {
                value: i,
                span: p.span,
            }),
            _ => {
                f.diags.push(crate::spec::fields::wrong_type(
                    p,
                    "padding_idx",
                    "a row number",
                    "0",
                ));
                None
            }
        });
        Some(Embedding {
            num_embeddings: n?.value,
            embedding_dim: d?.value,
            padding_idx,
        })
    }

    /// The zeroed row, or why `padding_idx` is not a row.
    fn padding_row(&self, cx: &mut Cx<'_>) -> Option<u64> {
        let p = self.padding_idx.as_ref()?;
        if cx.layout == Layout::Keras {
            let d = Diagnostic::error(
                diag::INVALID_VALUE,
                p.span,
                "`padding_idx` is PyTorch's; Keras' Embedding zeroes no row",
            )
            .label("layout keras")
            .help("remove `padding_idx` (Keras masks padding with `mask_zero` at run time)");
            cx.error(d);
            return None;
        }
        // torch: a negative index counts from the end (−1 is the last row).
        let n = self.num_embeddings as i128;
        let row = if p.value < 0 { n + p.value } else { p.value };
        if !(0..n).contains(&row) {
            let d = Diagnostic::error(
                diag::INVALID_VALUE,
                p.span,
                format!(
                    "`padding_idx` {} is not a row of {} embeddings",
                    p.value, self.num_embeddings
                ),
            )
            .label("no such row")
            .help("write a row in [-num_embeddings, num_embeddings), e.g. `padding_idx: 0`");
            cx.error(d);
            return None;
        }
        Some(row as u64)
    }

    pub(crate) fn resolve(&self, input: &Act, cx: &mut Cx<'_>) -> Act {
        let shape = vec![self.num_embeddings, self.embedding_dim];
        // Fans as a dense layer from a one-hot input: in = rows, out = columns (Keras' rule on [num, dim]).
        let fans = Fans {
            fan_in: self.num_embeddings,
            fan_out: self.embedding_dim,
        };
        let (wname, d) = match cx.layout {
            Layout::Pytorch => (
                "weight",
                dflt(
                    Init::Normal {
                        mean: 0.0,
                        std: 1.0,
                    },
                    "torch: N(0, 1)",
                ),
            ),
            Layout::Keras => (
                "embeddings",
                dflt(
                    Init::Uniform {
                        low: -0.05,
                        high: 0.05,
                    },
                    "keras: random_uniform(-0.05, 0.05)",
                ),
            ),
        };
        let row = self.padding_row(cx);
        let mut decl = Decl::new(
            cx.at(&[wname]),
            "embeddings_initializer",
            Role::Embeddings,
            shape,
            fans,
            d,
        );
        // nn.Embedding zeroes the padding row after any initializer (reset_parameters and
        // transformers' _init_weights both do).
        decl.zeroed = row.map(|r| r * self.embedding_dim..(r + 1) * self.embedding_dim);
        if let Some(k) = cx.declare(decl) {
            let tensor = cx.tensors[k].name.clone();
            let path = cx.path();
            cx.embeddings.push(EmbeddingInfo {
                path,
                tensor,
                num: self.num_embeddings,
                dim: self.embedding_dim,
            });
        }
        // Token ids [T] become [T, D]; an embedding right after another (positions after
        // tokens) is added to its output: the shape stays, with this width.
        if cx.after_embedding {
            return input.with_last(self.embedding_dim);
        }
        let mut out = input.clone();
        out.dims.push(Some(self.embedding_dim));
        out
    }
}
