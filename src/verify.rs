//! `specc verify SPEC PATH` (SPEC.md §11): does the file or sharded set at PATH hold exactly
//! what SPEC builds? Names, shapes and dtypes, then every tensor's bytes, regenerated piece
//! by piece and compared with positioned reads of the file (never a whole tensor in
//! memory, pieces in parallel), naming the first differing element. With `stats`, each
//! tensor is instead tested against its declared distribution (a checkpoint another
//! framework initialized with the same recipe): a Kolmogorov–Smirnov test that accounts for
//! the file's rounding, constants exactly, deterministic tables within 1e-4.

use crate::build::Generator;
use crate::init::{normal_cdf, Dist, Init};
use crate::inspect::{Entry, InspectError, Reader};
use crate::model::{DType, Model, TensorDecl};
use rayon::prelude::*;
use safetensors::Dtype;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bytes compared at a time per worker.
const PIECE: usize = 1 << 20;

/// The significance of each tensor's KS test under `stats`: a correct checkpoint of N
/// tensors raises a false alarm with probability about N · 1e-6.
pub const ALPHA: f64 = 1e-6;

/// Values a KS test reads from one tensor at most (an even stride of a larger one).
const SAMPLE: u64 = 1 << 20;

/// How a run is done.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Test distributions instead of comparing bytes.
    pub stats: bool,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

/// One difference between the file and the spec.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Problem {
    /// The tensor.
    pub tensor: String,
    /// `missing`, `unexpected`, `duplicate`, `dtype`, `shape`, `bytes`, `format`,
    /// `distribution`.
    pub kind: &'static str,
    /// What differs, in words.
    pub message: String,
    /// The first differing element (row-major), for `bytes` and constants.
    pub element: Option<u64>,
    /// The file it is in.
    pub file: Option<String>,
}

/// The result of one tensor's `stats` test.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stat {
    /// The tensor.
    pub tensor: String,
    /// The test: `ks`, `constant`, `table`, `orthogonal`, `sparse`, or `none` (weight_norm's
    /// g, another tensor's norm).
    pub test: &'static str,
    /// The KS statistic, or the largest deviation of a table or of a Gram matrix.
    pub statistic: Option<f64>,
    /// The KS p-value.
    pub p: Option<f64>,
    /// Values tested.
    pub n: u64,
    /// Whether it passed.
    pub pass: bool,
}

/// What `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// No problem.
    pub matched: bool,
    /// Tensors the spec declares (stored ones).
    pub tensors: usize,
    /// Bytes compared or tested.
    pub bytes: u64,
    /// Files read.
    pub files: Vec<String>,
    /// Every difference.
    pub problems: Vec<Problem>,
    /// Under `stats`, each tensor's test.
    pub stats: Vec<Stat>,
    /// Likely causes of the problems (a different seed in the file's metadata).
    pub hints: Vec<String>,
}

/// Why verify could not run (exit 2).
#[derive(Debug)]
pub enum VerifyError {
    /// The directory names no one checkpoint.
    Dir(PathBuf, crate::inspect::DirError),
    /// A file could not be read.
    Read(PathBuf, InspectError),
    /// The index is not a Hugging Face index.
    Index(PathBuf, String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Dir(p, e) => write!(f, "`{}` {e}", p.display()),
            VerifyError::Read(p, e) => write!(f, "cannot read `{}`: {e}", p.display()),
            VerifyError::Index(p, e) => {
                write!(f, "`{}` is not a safetensors index: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for VerifyError {}

/// A file to read, with the tensors an index says it holds (`None` without an index).
pub(crate) type Listed = (PathBuf, Option<Vec<String>>);

/// The first differing element: its index, the file's bytes, the spec's.
type Difference = (u64, Vec<u8>, Vec<u8>);

/// The files `path` names: itself, or the shards of an index (the index itself, or the one
/// in a directory) with the tensors it lists in each, or a directory's one safetensors file.
pub(crate) fn files(path: &Path) -> Result<Vec<Listed>, VerifyError> {
    let index = if path.is_dir() {
        let found = crate::inspect::checkpoint_in(path).map_err(|e| match e {
            crate::inspect::DirError::List(e) => {
                VerifyError::Read(path.into(), InspectError::Io(e))
            }
            e => VerifyError::Dir(path.into(), e),
        })?;
        if !found.to_string_lossy().ends_with(".json") {
            return Ok(vec![(found, None)]);
        }
        found
    } else if path.to_string_lossy().ends_with(".json") {
        path.to_path_buf()
    } else {
        return Ok(vec![(path.to_path_buf(), None)]);
    };
    let text = std::fs::read_to_string(&index)
        .map_err(|e| VerifyError::Read(index.clone(), InspectError::Io(e)))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| VerifyError::Index(index.clone(), e.to_string()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| VerifyError::Index(index.clone(), "no weight_map".into()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in map {
        let f = file.as_str().ok_or_else(|| {
            VerifyError::Index(index.clone(), format!("`{name}` maps to no file name"))
        })?;
        by_file.entry(f.to_string()).or_default().push(name.clone());
    }
    Ok(by_file
        .into_iter()
        .map(|(f, names)| (dir.join(f), Some(names)))
        .collect())
}

/// A checkpoint's files, opened.
pub(crate) struct Opened {
    /// Each file as shown in messages, and its reader.
    pub files: Vec<(String, Reader)>,
    /// Shards an index lists that are absent, with the tensors it lists in each.
    pub absent: Vec<(String, Vec<String>)>,
}

/// Opens every file `path` names ([`files`]); an absent shard of an index is not an error.
pub(crate) fn open_all(path: &Path) -> Result<Opened, VerifyError> {
    let mut opened = Opened {
        files: Vec::new(),
        absent: Vec::new(),
    };
    for (file, listed) in files(path)? {
        let shown = file.display().to_string();
        match (Reader::open(&file), listed) {
            (Ok(r), _) => opened.files.push((shown, r)),
            (Err(InspectError::Io(e)), Some(tensors))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                opened.absent.push((shown, tensors))
            }
            (Err(e), _) => return Err(VerifyError::Read(file, e)),
        }
    }
    Ok(opened)
}

/// safetensors' dtype for a spec dtype.
fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::Bool => Dtype::BOOL,
    }
}

/// Checks the file or set at `path` against `model`.
pub fn verify(model: &Model, path: &Path, options: Options) -> Result<Verdict, VerifyError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.unwrap_or(0))
        .build()
        .map_err(|e| VerifyError::Read(path.into(), InspectError::Io(std::io::Error::other(e))))?;
    let mut problems = Vec::new();
    let Opened {
        files: readers,
        absent,
    } = open_all(path)?;
    for (shown, tensors) in absent {
        for t in tensors {
            problems.push(Problem {
                message: format!("its shard `{shown}` is missing"),
                tensor: t,
                kind: "missing",
                element: None,
                file: Some(shown.clone()),
            });
        }
    }
    // Every tensor the files hold, where.
    let mut found: BTreeMap<&str, (usize, &Entry)> = BTreeMap::new();
    // The generator format each file was built with: its tensors are regenerated in it.
    let mut formats: Vec<Option<crate::init::Format>> = Vec::with_capacity(readers.len());
    for (k, (shown, r)) in readers.iter().enumerate() {
        let format = match r.metadata.get("specc_format") {
            // Not a specc build (or written before format numbers): the spec's own.
            None => Some(model.format),
            Some(f) => f.parse().ok().and_then(crate::init::Format::from_number),
        };
        if format.is_none() && !options.stats {
            let f = r.metadata.get("specc_format").map_or("", String::as_str);
            problems.push(Problem {
                tensor: String::new(),
                kind: "format",
                message: format!("`{shown}` was built by specc format {f}; this specc generates formats 1 to 3, so its bytes cannot be regenerated (`--stats` tests the distributions)"),
                element: None,
                file: Some(shown.clone()),
            });
        }
        formats.push(format);
        for e in &r.entries {
            if found.insert(&e.name, (k, e)).is_some() {
                problems.push(Problem {
                    tensor: e.name.clone(),
                    kind: "duplicate",
                    message: "stored in more than one file".into(),
                    element: None,
                    file: Some(shown.clone()),
                });
            }
        }
    }
    let already_missing: Vec<String> = problems
        .iter()
        .filter(|p| p.kind == "missing")
        .map(|p| p.tensor.clone())
        .collect();

    let ties: BTreeMap<&str, &str> = model
        .ties
        .iter()
        .map(|t| (t.name.as_str(), t.target.as_str()))
        .collect();
    let decls: BTreeMap<&str, &TensorDecl> =
        model.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for name in found.keys() {
        if !decls.contains_key(name) && !ties.contains_key(name) {
            problems.push(Problem {
                tensor: name.to_string(),
                kind: "unexpected",
                message: "in the file, not in the spec".into(),
                element: None,
                file: Some(readers[found[name].0].0.clone()),
            });
        }
    }
    let mut stats = Vec::new();
    let mut bytes = 0u64;
    // Stored tensors, then tied names a file stores anyway (torch.save of a state dict).
    // A file may hold a tie's other name instead (safetensors' save_model keeps one name of
    // each shared tensor, not always the spec's): that name stands for the stored tensor.
    let mut alias_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, target) in &ties {
        if found.contains_key(name) {
            alias_of.entry(target).or_insert(name);
        }
    }
    let mut todo: Vec<(&str, &TensorDecl)> = Vec::new();
    for t in &model.tensors {
        match alias_of.get(t.name.as_str()).copied() {
            Some(a) if !found.contains_key(t.name.as_str()) => todo.push((a, t)),
            _ => todo.push((t.name.as_str(), t)),
        }
    }
    let queued: std::collections::BTreeSet<&str> = todo.iter().map(|(n, _)| *n).collect();
    for (name, target) in &ties {
        if found.contains_key(name) && !queued.contains(name) {
            if let Some(t) = decls.get(target) {
                todo.push((name, t));
            }
        }
    }
    // Each tensor on its own (in parallel; byte comparison is parallel inside a tensor too).
    type Outcome = (Option<Problem>, Option<Stat>, u64);
    let one = |&(name, t): &(&str, &TensorDecl)| -> Result<Outcome, VerifyError> {
        let Some(&(k, e)) = found.get(name) else {
            let listed = already_missing.iter().any(|m| m == name);
            return Ok((
                (!listed).then(|| Problem {
                    tensor: name.to_string(),
                    kind: "missing",
                    message: "in the spec, not in the file".into(),
                    element: None,
                    file: None,
                }),
                None,
                0,
            ));
        };
        let (shown, reader) = &readers[k];
        let problem = |kind, message: String, element| Problem {
            tensor: name.to_string(),
            kind,
            message,
            element,
            file: Some(shown.clone()),
        };
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        if e.shape != shape {
            let m = format!(
                "the file's shape is {:?}, the spec's {:?}",
                e.shape, t.shape
            );
            return Ok((Some(problem("shape", m, None)), None, 0));
        }
        if e.dtype != st_dtype(t.dtype) {
            let m = format!(
                "the file's dtype is {:?}, the spec's {}",
                e.dtype,
                t.dtype.name()
            );
            return Ok((Some(problem("dtype", m, None)), None, 0));
        }
        let read = |err| VerifyError::Read(shown.into(), err);
        if options.stats {
            let s = stat(t, e, reader, model).map_err(read)?;
            let p = (!s.pass).then(|| {
                let what = match (s.test, s.p) {
                    ("ks", Some(p)) => format!(
                        "the values do not follow {} (KS D = {:.4}, p = {p:.1e}, n = {})",
                        t.init.dist(t.fans),
                        s.statistic.unwrap_or(0.0),
                        s.n
                    ),
                    ("constant", _) => format!("not every value is {}", t.init.dist(t.fans)),
                    ("orthogonal", _) => format!(
                        "not {}: its Gram matrix is {:.2e} from gain² · I (tolerance {:.1e})",
                        t.init,
                        s.statistic.unwrap_or(0.0),
                        orthogonal_tolerance(e.dtype)
                    ),
                    ("sparse", _) => format!(
                        "not {}: a column's zero count differs, or the rest do not follow N(0, std²) (KS D = {:.4}, p = {:.1e})",
                        t.init,
                        s.statistic.unwrap_or(0.0),
                        s.p.unwrap_or(1.0)
                    ),
                    _ => format!(
                        "the values differ from the {} table by up to {:.3e}",
                        t.init,
                        s.statistic.unwrap_or(0.0)
                    ),
                };
                problem("distribution", what, None)
            });
            return Ok((p, Some(s), e.len));
        }
        let Some(format) = formats[k] else {
            return Ok((None, None, 0));
        };
        // The tensor as the file's format makes it.
        let mut t = t.clone();
        t.format = format;
        let t = &t;
        Ok(match first_difference(t, e, reader, model).map_err(read)? {
            None => (None, None, e.len),
            Some((el, file, want)) => {
                let m = format!(
                    "element {el} ({}) is {} in the file, {} in the spec",
                    index_of(el, &t.shape),
                    hex(&file),
                    hex(&want)
                );
                (Some(problem("bytes", m, Some(el))), None, 0)
            }
        })
    };
    let outcomes = pool.install(|| todo.par_iter().map(one).collect::<Result<Vec<_>, _>>())?;
    for (p, s, n) in outcomes {
        problems.extend(p);
        stats.extend(s);
        bytes += n;
    }
    problems.sort_by(|a, b| (a.kind == "format").cmp(&(b.kind == "format")).reverse());
    let mut hints = Vec::new();
    if problems.iter().any(|p| p.kind == "bytes") {
        let seeds: std::collections::BTreeSet<&str> = readers
            .iter()
            .filter_map(|(_, r)| r.metadata.get("seed").map(String::as_str))
            .collect();
        for s in seeds {
            if s != model.seed.to_string() {
                hints.push(format!("the file's metadata says it was built with seed {s}, the spec has {}: try `--seed {s}`", model.seed));
            }
        }
    }
    Ok(Verdict {
        hints,
        matched: problems.is_empty(),
        tensors: model.tensors.len(),
        bytes,
        files: readers.into_iter().map(|(s, _)| s).collect(),
        problems,
        stats,
    })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b.iter().rev() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Element `el` of a tensor of `shape` as an index `[i, j, ...]`.
fn index_of(el: u64, shape: &[u64]) -> String {
    let mut rest = el;
    let mut idx = vec![0u64; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = rest % d;
            rest /= d;
        }
    }
    format!("{idx:?}")
}

/// The first element whose bytes differ: (its index, the file's bytes, the spec's).
fn first_difference(
    t: &TensorDecl,
    e: &Entry,
    reader: &Reader,
    model: &Model,
) -> Result<Option<Difference>, InspectError> {
    let size = t.dtype.size() as usize;
    let per = (PIECE / size).max(1) as u64;
    let numel = t.numel();
    let generator = Generator::new(t, model.layout);
    let pieces: Vec<u64> = (0..numel.div_ceil(per)).collect();
    let found = pieces
        .par_iter()
        // Two reused buffers per worker: a fresh 1 MiB allocation per piece is a fresh
        // mapping, whose pages fault on first touch.
        .map_init(
            || (vec![0u8; PIECE.max(size)], vec![0u8; PIECE.max(size)]),
            |(want, have), &k| -> Result<Option<Difference>, InspectError> {
                let start = k * per;
                let n = per.min(numel - start) as usize;
                let (want, have) = (&mut want[..n * size], &mut have[..n * size]);
                generator.fill_here(start, want);
                reader.read_at(e.offset + start * size as u64, have)?;
                if want == have {
                    return Ok(None);
                }
                Ok(have
                    .chunks_exact(size)
                    .zip(want.chunks_exact(size))
                    .position(|(a, b)| a != b)
                    .map(|i| {
                        let o = i * size;
                        (
                            start + i as u64,
                            have[o..o + size].to_vec(),
                            want[o..o + size].to_vec(),
                        )
                    }))
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    Ok(found.into_iter().flatten().min_by_key(|(el, _, _)| *el))
}

/// The real numbers that round to `x` in `dtype` (x a value of that dtype): the midpoints
/// to its two neighbours. Exact types stand for themselves.
fn interval(dtype: Dtype, x: f64) -> (f64, f64) {
    // The neighbours of a value with `bits`, below and above, in a sign-magnitude format.
    fn around(bits: u64, sign: u64, to: impl Fn(u64) -> f64) -> (f64, f64) {
        let mag = bits & !sign;
        let neg = bits & sign != 0;
        let away = to((bits & sign) | (mag + 1));
        let toward = to(if mag == 0 {
            sign | 1
        } else {
            (bits & sign) | (mag - 1)
        });
        if neg {
            (away, toward)
        } else {
            (toward, away)
        }
    }
    let (below, above) = match dtype {
        Dtype::F32 => around((x as f32).to_bits() as u64, 1 << 31, |b| {
            f32::from_bits(b as u32) as f64
        }),
        Dtype::F16 => around(half::f16::from_f64(x).to_bits() as u64, 1 << 15, |b| {
            half::f16::from_bits(b as u16).to_f64()
        }),
        Dtype::BF16 => around(half::bf16::from_f64(x).to_bits() as u64, 1 << 15, |b| {
            half::bf16::from_bits(b as u16).to_f64()
        }),
        _ => return (x, x),
    };
    ((x + below) / 2.0, (x + above) / 2.0)
}

/// Reads elements `ranges` of a tensor piece by piece, calling `f(index, value)` on each.
pub(crate) fn scan(
    e: &Entry,
    reader: &Reader,
    ranges: impl IntoIterator<Item = std::ops::Range<u64>>,
    mut f: impl FnMut(u64, f64),
) -> Result<(), InspectError> {
    // Dtypes with no decoder (f8, u32, …) have no values to test.
    let Some(decode) = crate::init::file::SrcType::of_safetensors(e.dtype).map(|t| t.decoder())
    else {
        return Ok(());
    };
    let size = e.dtype.bitsize() / 8;
    let per = (PIECE / size).max(1) as u64;
    let mut buf = vec![0u8; per as usize * size];
    for r in ranges {
        let mut start = r.start;
        while start < r.end {
            let n = per.min(r.end - start);
            let b = &mut buf[..n as usize * size];
            reader.read_at(e.offset + start * size as u64, b)?;
            for (i, x) in b.chunks_exact(size).enumerate() {
                f(start + i as u64, decode(x));
            }
            start += n;
        }
    }
    Ok(())
}

/// Contiguous runs a KS sample reads from a tensor larger than [`SAMPLE`]: evenly spread, so
/// that the sample costs [`SAMPLE`] elements of I/O, not the tensor (the values of an
/// initializer are independent of their position).
const RUNS: u64 = 256;

/// The ranges of a `numel`-element tensor a KS test reads.
pub(crate) fn sample_ranges(numel: u64) -> Vec<std::ops::Range<u64>> {
    if numel <= SAMPLE {
        return std::iter::once(0..numel).collect();
    }
    let run = SAMPLE / RUNS;
    (0..RUNS)
        .map(|k| {
            let start = k * (numel / RUNS);
            start..start + run
        })
        .collect()
}

/// The Kolmogorov distribution's survival function.
fn kolmogorov_sf(lam: f64) -> f64 {
    if lam < 0.2 {
        return 1.0;
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        s += 2.0 * if k as i64 % 2 == 1 { 1.0 } else { -1.0 } * (-2.0 * k * k * lam * lam).exp();
    }
    s.clamp(0.0, 1.0)
}

/// The one-sample KS statistic and p-value of `values` (of `dtype`) against `cdf`, where
/// each value stands for the real numbers that round to it: the rounded distribution's CDF
/// steps at each value from cdf(lo) to cdf(hi), so coarse types (bf16) are not refused for
/// their rounding.
fn ks(values: Vec<f64>, dtype: Dtype, cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    let values = sorted(values);
    // An f32 value's interval is 6e-8 of it wide: its CDF step is its CDF, one evaluation.
    let coarse = matches!(dtype, Dtype::F16 | Dtype::BF16);
    let n = values.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j < values.len() && values[j] == values[i] {
            j += 1;
        }
        let (lo, hi) = if coarse {
            let (lo, hi) = interval(dtype, values[i]);
            (cdf(lo), cdf(hi))
        } else {
            let c = cdf(values[i]);
            (c, c)
        };
        d = d
            .max((i as f64 / n - lo).abs())
            .max((j as f64 / n - hi).abs());
        i = j;
    }
    let en = n.sqrt();
    (d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d))
}

/// `values` in ascending order (NaN last): an LSD radix sort on the order-preserving bits,
/// 16 bits a pass, skipping the passes whose digit all keys share (the low mantissa of
/// values that came from f32 or bf16); several times faster than a comparison sort here.
fn sorted(values: Vec<f64>) -> Vec<f64> {
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | 1 << 63
        }
    };
    let mut keys: Vec<u64> = values.into_iter().map(key).collect();
    let mut spare = vec![0u64; keys.len()];
    for pass in 0..4 {
        let shift = pass * 16;
        let mut count = vec![0usize; 1 << 16];
        for &k in &keys {
            count[(k >> shift) as usize & 0xffff] += 1;
        }
        if count.contains(&keys.len()) {
            continue;
        }
        let mut at = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &k in &keys {
            let slot = &mut count[(k >> shift) as usize & 0xffff];
            spare[*slot] = k;
            *slot += 1;
        }
        std::mem::swap(&mut keys, &mut spare);
    }
    keys.into_iter()
        .map(|k| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k }))
        .collect()
}

/// The largest deviation of a (semi-)orthogonal tensor's Gram matrix from gain² · I, over
/// up to 64 evenly chosen vectors of its shorter side (rows when there are no more rows
/// than columns, as the framework flattens it).
fn orthogonality(
    t: &TensorDecl,
    e: &Entry,
    reader: &Reader,
    gain: f64,
    flatten: crate::init::Flatten,
) -> Result<f64, InspectError> {
    let numel = t.numel();
    if numel == 0 {
        return Ok(0.0);
    }
    let (rows, cols) = flatten.matrix(&t.shape);
    let by_rows = rows <= cols;
    let (count, len) = if by_rows { (rows, cols) } else { (cols, rows) };
    let k = count.min(64);
    let picks: Vec<u64> = (0..k).map(|i| i * count / k).collect();
    let mut vecs = vec![vec![0f64; len as usize]; k as usize];
    if by_rows {
        let ranges = picks.iter().map(|&r| r * cols..(r + 1) * cols);
        scan(e, reader, ranges, |i, x| {
            if let Ok(slot) = picks.binary_search(&(i / cols)) {
                vecs[slot][(i % cols) as usize] = x;
            }
        })?;
    } else {
        scan(e, reader, std::iter::once(0..numel), |i, x| {
            if let Ok(slot) = picks.binary_search(&(i % cols)) {
                vecs[slot][(i / cols) as usize] = x;
            }
        })?;
    }
    let g2 = gain * gain;
    let mut worst: f64 = 0.0;
    for a in 0..vecs.len() {
        for b in a..vecs.len() {
            let dot: f64 = vecs[a].iter().zip(&vecs[b]).map(|(x, y)| x * y).sum();
            let want = if a == b { 1.0 } else { 0.0 };
            worst = worst.max((dot / g2.max(f64::MIN_POSITIVE) - want).abs());
        }
    }
    Ok(worst)
}

/// How far a stored orthogonal matrix's Gram entries may be from the identity: a few
/// roundings of the dtype, and never tighter than 1e-4 (an f32 QR, as torch's and Keras'
/// are, is orthogonal to about 1e-5).
fn orthogonal_tolerance(dtype: Dtype) -> f64 {
    let eps = match dtype {
        Dtype::BF16 => 2f64.powi(-7),
        Dtype::F16 => 2f64.powi(-10),
        Dtype::F32 => 2f64.powi(-23),
        _ => 2f64.powi(-52),
    };
    (4.0 * eps).max(1e-4)
}

/// The `stats` test of one tensor.
fn stat(t: &TensorDecl, e: &Entry, reader: &Reader, model: &Model) -> Result<Stat, InspectError> {
    let numel = t.numel();
    let zeroed = t.zeroed.clone().unwrap_or(0..0);
    let dist = t.init.dist(t.fans);
    let mut s = Stat {
        tensor: t.name.clone(),
        test: "none",
        statistic: None,
        p: None,
        n: 0,
        pass: true,
    };
    // The elements a layer keeps at zero (an embedding's padding row) whatever the recipe.
    let mut zero_ok = true;
    scan(e, reader, std::iter::once(zeroed.clone()), |_, v| {
        zero_ok &= v == 0.0
    })?;
    s.pass &= zero_ok;
    let kept = |r: std::ops::Range<u64>| -> Vec<std::ops::Range<u64>> {
        // `r` without the zeroed elements.
        let (a, b) = (
            zeroed.start.clamp(r.start, r.end),
            zeroed.end.clamp(r.start, r.end),
        );
        [r.start..a, b..r.end]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect()
    };
    match dist {
        Dist::Constant(c) => {
            // The constant as the file's dtype rounds it.
            let (mut all, mut n) = (true, 0);
            scan(e, reader, kept(0..numel), |_, x| {
                let (lo, hi) = interval(e.dtype, x);
                all &= x == c || (lo <= c && c <= hi);
                n += 1;
            })?;
            s.test = "constant";
            s.n = n;
            s.pass &= all;
        }
        Dist::Normal { .. } | Dist::Uniform { .. } | Dist::TruncatedNormal { .. } => {
            let mut values = Vec::with_capacity(numel.min(SAMPLE) as usize);
            let ranges = sample_ranges(numel).into_iter().flat_map(kept);
            scan(e, reader, ranges, |_, x| values.push(x))?;
            s.test = "ks";
            s.n = values.len() as u64;
            if values.len() >= 2 {
                let cdf = move |x: f64| match dist {
                    Dist::Normal { mean, std } if std > 0.0 => normal_cdf((x - mean) / std),
                    Dist::Normal { mean, .. } => f64::from(u8::from(x >= mean)),
                    Dist::Uniform { low, high } if high > low => {
                        ((x - low) / (high - low)).clamp(0.0, 1.0)
                    }
                    Dist::Uniform { low, .. } => f64::from(u8::from(x >= low)),
                    Dist::TruncatedNormal {
                        mean,
                        std,
                        low,
                        high,
                    } if std > 0.0 => {
                        let (a, b) = (
                            normal_cdf((low - mean) / std),
                            normal_cdf((high - mean) / std),
                        );
                        ((normal_cdf((x.clamp(low, high) - mean) / std) - a) / (b - a))
                            .clamp(0.0, 1.0)
                    }
                    _ => 0.5,
                };
                let (d, p) = ks(values, e.dtype, cdf);
                s.statistic = Some(d);
                s.p = Some(p);
                s.pass &= p > ALPHA;
            }
        }
        Dist::Structured => match &t.init {
            // Tables that do not depend on a random stream: the spec's values, within 1e-4.
            Init::Identity { .. }
            | Init::Dirac { .. }
            | Init::UnitForgetBias { .. }
            | Init::Sinusoidal { .. }
            | Init::RelativePositionIndex { .. }
            | Init::FromFile(_) => {
                let g = Generator::new(t, model.layout);
                let per = (PIECE / 8) as u64;
                let mut want = vec![0f64; per.min(numel) as usize];
                let (mut worst, mut n) = (0f64, 0);
                let mut start = 0;
                while start < numel {
                    let m = per.min(numel - start);
                    g.values_into(start, &mut want[..m as usize]);
                    scan(e, reader, std::iter::once(start..start + m), |i, x| {
                        let w = want[(i - start) as usize];
                        worst = worst.max((x - w).abs() / w.abs().max(1.0));
                        n += 1;
                    })?;
                    start += m;
                }
                s.test = "table";
                s.n = n;
                s.statistic = Some(worst);
                s.pass &= worst <= 1e-4;
            }
            Init::Orthogonal { gain, flatten } => {
                let worst = orthogonality(t, e, reader, *gain, *flatten)?;
                s.test = "orthogonal";
                s.n = numel;
                s.statistic = Some(worst);
                s.pass &= worst <= orthogonal_tolerance(e.dtype);
            }
            Init::Sparse { sparsity, std } => {
                let (rows, cols) = (t.shape[0], t.shape[1]);
                let zeros = (sparsity * rows as f64).ceil() as u64;
                // Every column has exactly `zeros` zeros (torch's sparse_); the rest are N(0, std²).
                let mut per_column = vec![0u64; cols as usize];
                let step = numel.div_ceil(SAMPLE).max(1);
                let mut values = Vec::new();
                scan(e, reader, std::iter::once(0..numel), |i, x| {
                    if x == 0.0 {
                        per_column[(i % cols) as usize] += 1;
                    } else if i % step == 0 {
                        values.push(x);
                    }
                })?;
                let (d, p) = if values.len() >= 2 && *std > 0.0 {
                    ks(values, e.dtype, |x| normal_cdf(x / std))
                } else {
                    (0.0, 1.0)
                };
                s.test = "sparse";
                s.n = numel;
                s.statistic = Some(d);
                s.p = Some(p);
                s.pass &= p > ALPHA && per_column.iter().all(|&z| z == zeros);
            }
            // weight_norm's g is another tensor's norm: no test of its own.
            _ => {}
        },
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_intervals_hold_their_value() {
        for x in [0.0f32, 1.0, -1.0, 3.5e-3, -2.2e-7, f32::MIN_POSITIVE] {
            let (lo, hi) = interval(Dtype::F32, x as f64);
            assert!(lo < x as f64 && (x as f64) < hi, "{x}");
            assert_eq!((lo * 0.999 + hi * 0.001) as f32, x, "{x}");
        }
        for x in [0.0f32, 0.02, -0.02, 1.0, -3.0e-5] {
            let b = half::bf16::from_f32(x);
            let (lo, hi) = interval(Dtype::BF16, b.to_f64());
            assert!(lo < b.to_f64() && b.to_f64() < hi, "{x}: {lo} {hi}");
            assert_eq!(half::bf16::from_f64(lo + (hi - lo) * 0.01), b, "{x}");
            assert_eq!(half::bf16::from_f64(hi - (hi - lo) * 0.01), b, "{x}");
        }
        assert_eq!(interval(Dtype::I64, 3.0), (3.0, 3.0));
    }

    #[test]
    fn ks_accepts_its_distribution_and_refuses_another() {
        // 10,000 evenly spaced quantiles of N(0, 0.02) in bf16: the rounded CDF fits them.
        let qs: Vec<f64> = (0..10_000)
            .map(|i| {
                let p = (i as f64 + 0.5) / 10_000.0;
                half::bf16::from_f64(crate::init::special::inv_norm_cdf_f64(p) * 0.02).to_f64()
            })
            .collect();
        let (d, p) = ks(qs.clone(), Dtype::BF16, |x| normal_cdf(x / 0.02));
        assert!(p > 0.5, "{p}");
        // Read as exact values, the rounding's steps count against them.
        let (exact, _) = ks(qs.clone(), Dtype::F64, |x| normal_cdf(x / 0.02));
        assert!(exact > 2.0 * d, "{exact} {d}");
        let (_, p) = ks(qs, Dtype::BF16, |x| normal_cdf(x / 0.025));
        assert!(p < 1e-6, "{p}");
    }

    #[test]
    fn radix_sort_orders_like_total_cmp() {
        let mut xs: Vec<f64> = (0..5000u64)
            .map(|i| {
                ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                    * 3.0
            })
            .collect();
        xs.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -1e-300,
        ]);
        xs.extend(xs.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>());
        let mut want = xs.clone();
        want.sort_by(f64::total_cmp);
        let got = sorted(xs);
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn samples_are_bounded_runs() {
        assert_eq!(sample_ranges(10), vec![0..10]);
        let r = sample_ranges(1 << 30);
        assert_eq!(r.len() as u64, RUNS);
        assert_eq!(r.iter().map(|r| r.end - r.start).sum::<u64>(), SAMPLE);
        assert!(r.last().unwrap().end <= 1 << 30);
    }
}
