//! `embedding`: nn.Embedding / keras Embedding.

use super::{dflt, Act, Cx, EmbeddingInfo};
use crate::init::Init;
use crate::model::{Fans, Layout, Role};
use crate::spec::Fields;

/// A lookup table of `num_embeddings` rows of `embedding_dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    /// Rows (vocabulary size).
    pub num_embeddings: u64,
    /// Columns.
    pub embedding_dim: u64,
}

impl Embedding {
    pub(super) fn lower(f: &mut Fields<'_>) -> Option<Embedding> {
        let n = f.req_size("num_embeddings", "50257");
        let d = f.req_size("embedding_dim", "768");
        Some(Embedding {
            num_embeddings: n?.value,
            embedding_dim: d?.value,
        })
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
        let before = cx.tensors.len();
        cx.tensor(
            &[wname],
            "embeddings_initializer",
            Role::Embeddings,
            shape,
            fans,
            d,
        );
        if cx.tensors.len() > before {
            let tensor = cx.tensors[before].name.clone();
            let path = cx.path();
            cx.embeddings.push(EmbeddingInfo {
                path,
                tensor,
                num: self.num_embeddings,
                dim: self.embedding_dim,
            });
        }
        let mut out = input.clone();
        out.dims.push(Some(self.embedding_dim));
        out
    }
}
