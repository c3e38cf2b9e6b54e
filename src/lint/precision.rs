//! half-precision-underflow: initial values below f16 / bf16's smallest normal number.

use super::moments::second_moment;
use super::Sink;
use crate::diag::Diagnostic;
use crate::init::Dist;
use crate::model::{DType, Model, Step};

pub(super) fn check(model: &Model, sink: &mut Sink<'_>) {
    for step in &model.flow {
        let Step::Layer(l) = step else { continue };
        for &k in &l.tensors {
            let t = &model.tensors[k];
            let (tiny, dtype) = match t.dtype {
                DType::F16 => (6.103_515_625e-5, "f16"),
                DType::BF16 => (f32::MIN_POSITIVE as f64, "bf16"),
                _ => continue,
            };
            let typical = match t.init.dist(t.fans) {
                Dist::Constant(v) => v.abs(),
                _ => second_moment(t).sqrt(),
            };
            if typical > 0.0 && typical < tiny {
                let d = Diagnostic::error(
                    "half-precision-underflow",
                    t.span,
                    format!(
                        "`{}` has typical magnitude {typical:.1e}, below {dtype}'s smallest normal number {tiny:.1e}: most values become subnormal or zero",
                        t.name
                    ),
                )
                .label(format!("too small for {dtype}"))
                .help("store this layer in f32 (`dtype: f32` on the layer), or use a larger scale");
                sink.report(&[l], d);
            }
        }
    }
}
