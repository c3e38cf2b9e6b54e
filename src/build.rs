//! Build: a resolved model's tensors as bytes, chunk by chunk, and as a Candle `VarMap`.
//!
//! Values come from [`Plan`]s, which compute any element from its index alone, so a
//! chunk is split across threads (rayon) and the bytes do not depend on the thread count.

use crate::init::sample::Plan;
use crate::model::{DType, Layout, TensorDecl};
use rayon::prelude::*;

/// Elements one thread generates at a time.
const GRAIN: usize = 1 << 15;

/// A tensor's values, ready to be produced in pieces.
pub struct Generator<'a> {
    decl: &'a TensorDecl,
    plan: Plan,
}

impl<'a> Generator<'a> {
    /// Prepares a tensor (structured initializers are computed here, whole).
    pub fn new(decl: &'a TensorDecl, layout: Layout) -> Generator<'a> {
        Generator {
            decl,
            plan: Plan::new(decl, layout),
        }
    }

    /// Appends the little-endian bytes of elements `start .. start + count` to `out`.
    pub fn bytes(&self, start: u64, count: usize, out: &mut Vec<u8>) {
        let size = self.decl.dtype.size() as usize;
        let at = out.len();
        out.resize(at + count * size, 0);
        self.fill(start, &mut out[at..]);
    }

    /// Overwrites `dst` with the little-endian bytes of elements `start ..` (as many as fit).
    pub fn fill(&self, start: u64, dst: &mut [u8]) {
        let size = self.decl.dtype.size() as usize;
        dst.par_chunks_mut(GRAIN * size)
            .enumerate()
            .for_each(|(i, chunk)| self.fill_here(start + (i * GRAIN) as u64, chunk));
    }

    /// [`Generator::fill`] on the calling thread alone.
    pub fn fill_here(&self, first: u64, chunk: &mut [u8]) {
        self.fill_values(first, chunk);
        // Elements the layer keeps at zero (an embedding's padding row) whatever the initializer.
        if let Some(z) = &self.decl.zeroed {
            let size = self.decl.dtype.size();
            let end = first + (chunk.len() as u64) / size;
            let (a, b) = (z.start.max(first), z.end.min(end));
            if a < b {
                chunk[((a - first) * size) as usize..((b - first) * size) as usize].fill(0);
            }
        }
    }

    /// Elements `start .. start + out.len()` as f64, as stored (rounded to the dtype).
    pub fn values_into(&self, start: u64, out: &mut [f64]) {
        match self.decl.dtype {
            DType::F64 | DType::I64 | DType::I32 | DType::Bool => {
                self.plan.fill_f64_in(self.decl.format, start, out)
            }
            dtype => {
                let round: fn(f32) -> f64 = match dtype {
                    DType::F16 => |x| half::f16::from_f32(x).to_f64(),
                    DType::BF16 => |x| half::bf16::from_f32(x).to_f64(),
                    _ => f64::from,
                };
                let mut v = [0f32; 2048];
                for (i, c) in out.chunks_mut(2048).enumerate() {
                    let v = &mut v[..c.len()];
                    self.plan.fill_f32(start + (i * 2048) as u64, v);
                    c.iter_mut().zip(v.iter()).for_each(|(o, x)| *o = round(*x));
                }
            }
        }
        if let Some(z) = &self.decl.zeroed {
            let end = start + out.len() as u64;
            for i in z.start.max(start)..z.end.min(end) {
                out[(i - start) as usize] = 0.0;
            }
        }
    }

    fn fill_values(&self, first: u64, chunk: &mut [u8]) {
        let dtype = self.decl.dtype;
        let size = dtype.size() as usize;
        // A tensor copied from a file in its own dtype: the source's bytes, bit for bit.
        if let Some(src) = self.plan.source_bytes(dtype, first, chunk.len()) {
            return chunk.copy_from_slice(src);
        }
        // In memory, f32s and f64s are their little-endian bytes: generate straight into the
        // output, no scratch buffer and no copy.
        if cfg!(target_endian = "little") {
            // SAFETY (both): every bit pattern is a valid f32 / f64.
            match dtype {
                DType::F32 => {
                    if let ([], v, []) = unsafe { chunk.align_to_mut::<f32>() } {
                        return self.plan.fill_f32(first, v);
                    }
                }
                DType::F64 => {
                    if let ([], v, []) = unsafe { chunk.align_to_mut::<f64>() } {
                        return self.plan.fill_f64_in(self.decl.format, first, v);
                    }
                }
                _ => {}
            }
        }
        // Otherwise block by block through a buffer on the stack (it stays in L1).
        const BLOCK: usize = 2048;
        let mut at = first;
        for c in chunk.chunks_mut(BLOCK * size) {
            let n = c.len() / size;
            if matches!(dtype, DType::F64 | DType::I64 | DType::I32 | DType::Bool) {
                let mut v = [0f64; BLOCK];
                let v = &mut v[..n];
                self.plan.fill_f64_in(self.decl.format, at, v);
                let out = c.chunks_exact_mut(size).zip(v.iter());
                match dtype {
                    DType::F64 => out.for_each(|(c, x)| c.copy_from_slice(&x.to_le_bytes())),
                    DType::I32 => {
                        out.for_each(|(c, x)| c.copy_from_slice(&(*x as i32).to_le_bytes()))
                    }
                    DType::Bool => out.for_each(|(c, x)| c[0] = u8::from(*x != 0.0)),
                    _ => out.for_each(|(c, x)| c.copy_from_slice(&(*x as i64).to_le_bytes())),
                }
            } else {
                let mut v = [0f32; BLOCK];
                let v = &mut v[..n];
                self.plan.fill_f32(at, v);
                store_f32s(dtype, v, c);
            }
            at += n as u64;
        }
    }

    /// All values as f64 (for tests and in-process use).
    pub fn values_f64(&self) -> Vec<f64> {
        let mut v = vec![0f64; self.decl.numel() as usize];
        self.values_into(0, &mut v);
        v
    }
}

/// The little-endian bytes of f32 values `v` as `dtype` (f32, f16 or bf16; half precision
/// rounded to nearest-even) into `out`.
fn store_f32s(dtype: DType, v: &[f32], out: &mut [u8]) {
    use half::slice::HalfFloatSliceExt;
    use half::{bf16, f16};
    if cfg!(target_endian = "little") {
        // Whole slices convert with the CPU's conversion instructions where it has them.
        // SAFETY (both): every bit pattern is a valid f16 / bf16.
        match dtype {
            DType::F16 => {
                if let ([], h, []) = unsafe { out.align_to_mut::<f16>() } {
                    return h.convert_from_f32_slice(v);
                }
            }
            DType::BF16 => {
                if let ([], h, []) = unsafe { out.align_to_mut::<bf16>() } {
                    return h.convert_from_f32_slice(v);
                }
            }
            _ => {}
        }
    }
    let out = out.chunks_exact_mut(dtype.size() as usize).zip(v);
    match dtype {
        DType::F16 => out.for_each(|(c, x)| c.copy_from_slice(&f16::from_f32(*x).to_le_bytes())),
        DType::BF16 => out.for_each(|(c, x)| c.copy_from_slice(&bf16::from_f32(*x).to_le_bytes())),
        _ => out.for_each(|(c, x)| c.copy_from_slice(&x.to_le_bytes())),
    }
}

/// All bytes of one tensor (small tensors; the writer streams big ones).
pub fn tensor_bytes(decl: &TensorDecl, layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    Generator::new(decl, layout).bytes(0, decl.numel() as usize, &mut out);
    out
}

/// A failure turning a model into Candle variables.
#[cfg(feature = "candle")]
#[derive(Debug)]
pub struct CandleError(pub candle_core::Error);

#[cfg(feature = "candle")]
impl std::fmt::Display for CandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "candle: {}", self.0)
    }
}

#[cfg(feature = "candle")]
impl std::error::Error for CandleError {}

/// The model as a Candle `VarMap` on the CPU, named per layout; a tied name shares its target's variable.
#[cfg(feature = "candle")]
pub fn build_varmap(model: &crate::model::Model) -> Result<candle_nn::VarMap, CandleError> {
    use candle_core::{Device, Tensor, Var};
    let map = candle_nn::VarMap::new();
    {
        let mut data = map
            .data()
            .lock()
            .expect("a new VarMap's lock is not poisoned");
        for t in &model.tensors {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            let bytes = tensor_bytes(t, model.layout);
            let dtype = match t.dtype {
                DType::F32 => candle_core::DType::F32,
                DType::F16 => candle_core::DType::F16,
                DType::BF16 => candle_core::DType::BF16,
                DType::F64 => candle_core::DType::F64,
                DType::I64 => candle_core::DType::I64,
                DType::I32 => candle_core::DType::I32,
                DType::Bool => candle_core::DType::U8,
            };
            let tensor = Tensor::from_raw_buffer(&bytes, dtype, &shape, &Device::Cpu)
                .map_err(CandleError)?;
            let var = Var::from_tensor(&tensor).map_err(CandleError)?;
            data.insert(t.name.clone(), var);
        }
        for tie in &model.ties {
            if let Some(v) = data.get(&tie.target).cloned() {
                data.insert(tie.name.clone(), v);
            }
        }
    }
    Ok(map)
}
