//! `sequential`: a named group of layers, optionally stamped `repeat` times and wrapped in a residual add.

use crate::model::Layout;
use crate::spec::{read_layers, Fields, LayerSpec, Sp};

/// A group of layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequential {
    /// The children.
    pub layers: Vec<LayerSpec>,
    /// Copies, when `repeat` is written (children then sit under `0` … `N-1`).
    pub repeat: Option<Sp<u64>>,
    /// Whether the group's output is added to its input.
    pub residual: bool,
}

impl Sequential {
    pub(super) fn lower(f: &mut Fields<'_>, layout: Layout, path: &str) -> Option<Sequential> {
        let repeat = f.size("repeat");
        let residual = f.bool("residual", false);
        let layers = match f.node("layers") {
            Some(n) => read_layers(n, layout, path, f.diags),
            None => {
                f.missing("layers", "[{type: dense, units: 64}]");
                None
            }
        };
        Some(Sequential {
            layers: layers?,
            repeat,
            residual,
        })
    }
}
