//! Inspect: what a safetensors file holds — metadata, and per tensor dtype, shape and statistics.

use safetensors::{Dtype, SafeTensors};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Statistics of one tensor.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TensorStats {
    /// Name.
    pub name: String,
    /// safetensors dtype (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub numel: usize,
    /// Mean (null for dtypes without numeric stats or empty tensors).
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

/// A file's contents.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Inspection {
    /// `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// Tensors in file order.
    pub tensors: Vec<TensorStats>,
}

/// Why a file could not be inspected.
#[derive(Debug)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The bytes are not a valid safetensors file.
    Invalid(String),
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Io(e) => write!(f, "{e}"),
            InspectError::Invalid(m) => write!(f, "not a valid safetensors file: {m}"),
        }
    }
}

impl std::error::Error for InspectError {}

/// Reads a safetensors file and computes per-tensor statistics (in f64).
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let file = std::fs::File::open(path).map_err(InspectError::Io)?;
    if file.metadata().map_err(InspectError::Io)?.is_dir() {
        return Err(InspectError::Io(std::io::Error::other("is a directory")));
    }
    // SAFETY: the map is only read; a file changed under us can give wrong numbers, not UB in Rust terms we rely on.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(InspectError::Io)?;
    let _ = map.advise(memmap2::Advice::Sequential);
    inspect_bytes(&map)
}

/// [`inspect`] of a file's bytes already in memory (or mapped).
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, InspectError> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| InspectError::Invalid(format!("{e:?}")))?;
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| InspectError::Invalid(format!("{e:?}")))?;
    let metadata = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (v.data().as_ptr() as usize, n))
        .collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for (_, name) in names {
        let view = st
            .tensor(&name)
            .map_err(|e| InspectError::Invalid(format!("{e:?}")))?;
        let (mean, std, min, max) = stats(view.dtype(), view.data());
        tensors.push(TensorStats {
            name,
            dtype: format!("{:?}", view.dtype()),
            numel: view.shape().iter().product(),
            shape: view.shape().to_vec(),
            mean,
            std,
            min,
            max,
        });
    }
    Ok(Inspection { metadata, tensors })
}

type Stats = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);

fn stats(dtype: Dtype, data: &[u8]) -> Stats {
    let mut acc = Welford::default();
    match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .for_each(|c| acc.push(f32::from_le_bytes(c.try_into().unwrap()) as f64)),
        Dtype::F64 => data
            .chunks_exact(8)
            .for_each(|c| acc.push(f64::from_le_bytes(c.try_into().unwrap()))),
        Dtype::F16 => data
            .chunks_exact(2)
            .for_each(|c| acc.push(half::f16::from_le_bytes([c[0], c[1]]).to_f64())),
        Dtype::BF16 => data
            .chunks_exact(2)
            .for_each(|c| acc.push(half::bf16::from_le_bytes([c[0], c[1]]).to_f64())),
        Dtype::I64 => data
            .chunks_exact(8)
            .for_each(|c| acc.push(i64::from_le_bytes(c.try_into().unwrap()) as f64)),
        Dtype::I32 => data
            .chunks_exact(4)
            .for_each(|c| acc.push(i32::from_le_bytes(c.try_into().unwrap()) as f64)),
        Dtype::I16 => data
            .chunks_exact(2)
            .for_each(|c| acc.push(i16::from_le_bytes([c[0], c[1]]) as f64)),
        Dtype::I8 => data.iter().for_each(|&b| acc.push(b as i8 as f64)),
        Dtype::U8 | Dtype::BOOL => data.iter().for_each(|&b| acc.push(b as f64)),
        Dtype::U16 => data
            .chunks_exact(2)
            .for_each(|c| acc.push(u16::from_le_bytes([c[0], c[1]]) as f64)),
        Dtype::U32 => data
            .chunks_exact(4)
            .for_each(|c| acc.push(u32::from_le_bytes(c.try_into().unwrap()) as f64)),
        Dtype::U64 => data
            .chunks_exact(8)
            .for_each(|c| acc.push(u64::from_le_bytes(c.try_into().unwrap()) as f64)),
        _ => return (None, None, None, None),
    }
    acc.finish()
}

/// Running mean and variance (Welford), min and max.
#[derive(Default)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Welford {
    #[inline]
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn finish(&self) -> Stats {
        if self.n == 0 {
            return (None, None, None, None);
        }
        (
            Some(self.mean),
            Some((self.m2 / self.n as f64).sqrt()),
            Some(self.min),
            Some(self.max),
        )
    }
}
