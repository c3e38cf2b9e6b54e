//! `from_file` (SPEC.md §8): a tensor's values read from another file — a safetensors
//! file, a sharded directory or its index, or a `.npy` — cast to the tensor's dtype.
//!
//! The source is memory-mapped when the spec is checked and the mapping is kept, so the
//! build reads exactly what was checked, piece by piece, in bounded memory (the pages are
//! the OS's cache, not ours). A copy to the same dtype without a transpose is a byte copy.

use crate::model::DType;
use memmap2::Mmap;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// `from_file` as written: where, which tensor, whether transposed; bound to the source's
/// tensor when the tensor it fills is declared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileValues {
    /// The path as written (relative to the spec).
    pub path: String,
    /// The source tensor's name (default: the filled tensor's own name).
    pub tensor: Option<String>,
    /// Whether a 2-D source is read transposed (`[in, out]` into `[out, in]`).
    pub transpose: bool,
    /// The source tensor, once found.
    #[serde(skip)]
    pub bound: Option<Bound>,
}

/// Element types a source may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcType {
    /// binary32.
    F32,
    /// binary16.
    F16,
    /// bfloat16.
    BF16,
    /// binary64.
    F64,
    /// Signed integers of 1, 2, 4, 8 bytes.
    I8,
    /// i16.
    I16,
    /// i32.
    I32,
    /// i64.
    I64,
    /// u8.
    U8,
    /// One byte, 0 or 1.
    Bool,
}

impl SrcType {
    fn size(self) -> usize {
        match self {
            SrcType::I8 | SrcType::U8 | SrcType::Bool => 1,
            SrcType::F16 | SrcType::BF16 | SrcType::I16 => 2,
            SrcType::F32 | SrcType::I32 => 4,
            SrcType::F64 | SrcType::I64 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(
            self,
            SrcType::F32 | SrcType::F16 | SrcType::BF16 | SrcType::F64
        )
    }

    /// The spec dtype with the same bytes, if any (a copy then is a byte copy).
    fn same_as(self) -> Option<DType> {
        Some(match self {
            SrcType::F32 => DType::F32,
            SrcType::F16 => DType::F16,
            SrcType::BF16 => DType::BF16,
            SrcType::F64 => DType::F64,
            SrcType::I32 => DType::I32,
            SrcType::I64 => DType::I64,
            SrcType::Bool => DType::Bool,
            _ => return None,
        })
    }

    /// Decodes one element's little-endian bytes (exactly, in f64; a bool as 0 or 1).
    pub fn decoder(self) -> fn(&[u8]) -> f64 {
        match self {
            SrcType::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            SrcType::F16 => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
            SrcType::BF16 => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            SrcType::F64 => |b| f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            SrcType::I8 => |b| b[0] as i8 as f64,
            SrcType::U8 => |b| b[0] as f64,
            SrcType::Bool => |b| f64::from(u8::from(b[0] != 0)),
            SrcType::I16 => |b| i16::from_le_bytes([b[0], b[1]]) as f64,
            SrcType::I32 => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            SrcType::I64 => |b| i64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f64,
        }
    }

    /// The type of a safetensors dtype, if a source may hold it.
    pub fn of_safetensors(d: safetensors::Dtype) -> Option<SrcType> {
        use safetensors::Dtype as D;
        Some(match d {
            D::F32 => SrcType::F32,
            D::F16 => SrcType::F16,
            D::BF16 => SrcType::BF16,
            D::F64 => SrcType::F64,
            D::I8 => SrcType::I8,
            D::I16 => SrcType::I16,
            D::I32 => SrcType::I32,
            D::I64 => SrcType::I64,
            D::U8 => SrcType::U8,
            D::BOOL => SrcType::Bool,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SrcType::F32 => "f32",
            SrcType::F16 => "f16",
            SrcType::BF16 => "bf16",
            SrcType::F64 => "f64",
            SrcType::I8 => "i8",
            SrcType::I16 => "i16",
            SrcType::I32 => "i32",
            SrcType::I64 => "i64",
            SrcType::U8 => "u8",
            SrcType::Bool => "bool",
        }
    }
}

/// A mapped source file, shared by every tensor read from it.
pub struct Mapped {
    /// The file.
    pub path: PathBuf,
    map: Mmap,
    sha256: OnceLock<String>,
}

impl Mapped {
    /// The file's SHA-256, computed once, over the mapping.
    pub fn sha256(&self) -> &str {
        self.sha256
            .get_or_init(|| crate::source::hex_sha256(&self.map))
    }
}

/// A source tensor found: its file, element type, shape and where its bytes start.
#[derive(Clone)]
pub struct Bound {
    /// The mapped file.
    pub file: Arc<Mapped>,
    /// The tensor's name in the source (`array` for a `.npy`).
    pub name: String,
    /// Its element type.
    pub dtype: SrcType,
    /// Its shape as stored.
    pub shape: Vec<u64>,
    /// Offset of its first byte in the file.
    pub offset: usize,
    /// Read transposed (`transpose: true`, or a Fortran-ordered `.npy`).
    pub transpose: bool,
}

impl PartialEq for Bound {
    fn eq(&self, o: &Bound) -> bool {
        Arc::ptr_eq(&self.file, &o.file) && self.offset == o.offset && self.transpose == o.transpose
    }
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} {:?}{}",
            self.file.path.display(),
            self.name,
            self.dtype.name(),
            self.shape,
            if self.transpose { " transposed" } else { "" }
        )
    }
}

/// Which file a cached source is: its canonical path, length and modification time, so
/// that a file re-saved in a long-lived process (a Python session) is read again.
type SourceKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// Sources mapped so far in this process (a model reads hundreds of tensors from one file).
fn cache() -> &'static Mutex<HashMap<SourceKey, Arc<Source>>> {
    static C: OnceLock<Mutex<HashMap<SourceKey, Arc<Source>>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// What a source path is.
enum Source {
    /// A safetensors file: its tensors by name.
    Safetensors {
        file: Arc<Mapped>,
        tensors: HashMap<String, (SrcType, Vec<u64>, usize)>,
    },
    /// A `.npy`: one array.
    Npy {
        file: Arc<Mapped>,
        dtype: SrcType,
        shape: Vec<u64>,
        offset: usize,
        fortran: bool,
    },
    /// A sharded set: which file holds each tensor (paths resolved).
    Index {
        weight_map: HashMap<String, PathBuf>,
    },
}

fn map(path: &Path) -> Result<Arc<Mapped>, String> {
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    // SAFETY: the mapping is read-only; a source changed while specc runs is the user's
    // race (documented), as with any reader of the file.
    let map =
        unsafe { Mmap::map(&f) }.map_err(|e| format!("cannot map `{}`: {e}", path.display()))?;
    Ok(Arc::new(Mapped {
        path: path.to_path_buf(),
        map,
        sha256: OnceLock::new(),
    }))
}

fn open_safetensors(path: &Path) -> Result<Source, String> {
    let file = map(path)?;
    let st = safetensors::SafeTensors::deserialize(&file.map)
        .map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let base = file.map.as_ptr() as usize;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let Some(dtype) = SrcType::of_safetensors(view.dtype()) else {
            continue; // a type specc cannot cast (f8, u64...): refused if asked for
        };
        let shape = view.shape().iter().map(|&d| d as u64).collect();
        tensors.insert(name, (dtype, shape, view.data().as_ptr() as usize - base));
    }
    drop(st);
    Ok(Source::Safetensors { file, tensors })
}

fn open_index(path: &Path) -> Result<Source, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a JSON index: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("`{}` has no `weight_map`", path.display()))?;
    let weight_map = map
        .iter()
        .filter_map(|(k, f)| Some((k.clone(), dir.join(f.as_str()?))))
        .collect();
    Ok(Source::Index { weight_map })
}

/// Parses a `.npy` header (format 1, 2 or 3).
fn open_npy(path: &Path) -> Result<Source, String> {
    let file = map(path)?;
    let b: &[u8] = &file.map;
    let bad = |why: &str| format!("`{}` is not a .npy file numpy wrote: {why}", path.display());
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let (len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err(bad("unknown format version")),
    };
    let header = b
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| bad("no descr"))?;
    let dtype = match descr.trim_start_matches(['<', '|', '=']) {
        _ if descr.starts_with('>') => {
            return Err(format!(
                "`{}` is big-endian ({descr}); save it little-endian (`a.astype('<f4')`)",
                path.display()
            ))
        }
        "f4" => SrcType::F32,
        "f2" => SrcType::F16,
        "f8" => SrcType::F64,
        "i1" => SrcType::I8,
        "i2" => SrcType::I16,
        "i4" => SrcType::I32,
        "i8" => SrcType::I64,
        "u1" => SrcType::U8,
        "b1" => SrcType::Bool,
        other => {
            return Err(format!(
                "`{}` holds `{other}` values, which specc does not read",
                path.display()
            ))
        }
    };
    let fortran = field("fortran_order").is_some_and(|s| s.starts_with("True"));
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<u64> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("a shape that is not whole numbers"))?;
    let offset = start + len;
    let bytes = shape
        .iter()
        .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("a shape too large"))?;
    if (b.len() - offset) as u64 != bytes {
        return Err(bad(&format!(
            "{} data bytes for shape {shape:?}, expected {bytes}",
            b.len() - offset
        )));
    }
    let transposed = fortran && shape.len() == 2;
    if fortran && shape.len() > 2 {
        return Err(format!(
            "`{}` is Fortran-ordered with {} dimensions; save it C-ordered (`np.ascontiguousarray`)",
            path.display(),
            shape.len()
        ));
    }
    Ok(Source::Npy {
        file,
        dtype,
        // A Fortran-ordered matrix is the C-ordered transpose.
        shape: if fortran {
            shape.iter().rev().copied().collect()
        } else {
            shape
        },
        offset,
        fortran: transposed,
    })
}

/// Opens (or finds in the cache) what `path` names.
fn open(path: &Path) -> Result<Arc<Source>, String> {
    let mut path = path.to_path_buf();
    if path.is_dir() {
        // A sharded directory: its index, or its one safetensors file.
        path = crate::inspect::checkpoint_in(&path)
            .map_err(|e| format!("`{}` {e}", path.display()))?;
    }
    // The canonical path only keys the cache: the path as written decides what the file is
    // and where an index's shards are (a Hugging Face snapshot's files are links to
    // extension-less blobs in another directory).
    let cannot = |e: std::io::Error| format!("cannot open `{}`: {e}", path.display());
    let canonical = std::fs::canonicalize(&path).map_err(cannot)?;
    let meta = std::fs::metadata(&canonical).map_err(cannot)?;
    let key = (canonical, meta.len(), meta.modified().ok());
    if let Some(s) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(s.clone());
    }
    let name = path.to_string_lossy();
    let source = if name.ends_with(".npy") {
        open_npy(&path)?
    } else if name.ends_with(".json") {
        open_index(&path)?
    } else {
        open_safetensors(&path)?
    };
    let source = Arc::new(source);
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    // A re-saved file's old mapping is not needed again.
    cache.retain(|(p, _, _), _| *p != key.0);
    cache.insert(key, source.clone());
    Ok(source)
}

/// Finds the tensor `name` at `path` (a `.npy` holds one array and ignores `name`).
pub fn find(path: &Path, name: &str) -> Result<Bound, String> {
    match &*open(path)? {
        Source::Npy {
            file,
            dtype,
            shape,
            offset,
            fortran,
        } => Ok(Bound {
            file: file.clone(),
            name: "array".into(),
            dtype: *dtype,
            shape: shape.clone(),
            offset: *offset,
            transpose: *fortran,
        }),
        Source::Safetensors { file, tensors } => match tensors.get(name) {
            Some((dtype, shape, offset)) => Ok(Bound {
                file: file.clone(),
                name: name.to_string(),
                dtype: *dtype,
                shape: shape.clone(),
                offset: *offset,
                transpose: false,
            }),
            None => {
                let names = tensors.keys().map(String::as_str);
                let hint = match crate::diag::did_you_mean(name, names) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!(" ({} tensors there)", tensors.len()),
                };
                Err(format!(
                    "`{}` has no tensor `{name}`{hint}",
                    file.path.display()
                ))
            }
        },
        Source::Index { weight_map } => match weight_map.get(name) {
            Some(f) => find(f, name),
            None => {
                let hint =
                    match crate::diag::did_you_mean(name, weight_map.keys().map(String::as_str)) {
                        Some(s) => format!("; did you mean `{s}`?"),
                        None => String::new(),
                    };
                Err(format!(
                    "`{}`'s weight_map has no tensor `{name}`{hint}",
                    path.display()
                ))
            }
        },
    }
}

impl FileValues {
    /// Finds the source tensor for a tensor `name` of `shape` and `dtype`, checking that it
    /// can fill it; `dir` is the spec's directory.
    pub fn bind(
        &self,
        dir: &Path,
        name: &str,
        shape: &[u64],
        dtype: DType,
    ) -> Result<FileValues, String> {
        let path = dir.join(&self.path);
        let want = self.tensor.as_deref().unwrap_or(name);
        let mut b = find(&path, want)?;
        b.transpose ^= self.transpose;
        let read_shape: Vec<u64> = if b.transpose {
            if b.shape.len() != 2 {
                return Err(format!(
                    "`transpose` reads a matrix; `{}` has shape {:?}",
                    b.name, b.shape
                ));
            }
            vec![b.shape[1], b.shape[0]]
        } else {
            b.shape.clone()
        };
        if read_shape != shape {
            let t = if b.transpose { " transposed" } else { "" };
            let hint = if !b.transpose && b.shape.len() == 2 && [b.shape[1], b.shape[0]] == shape {
                " (it is this tensor's transpose: add `transpose: true`)"
            } else {
                ""
            };
            return Err(format!(
                "`{}` has shape {:?}{t} and this tensor {shape:?}{hint}",
                b.name, read_shape
            ));
        }
        if b.dtype.is_float() && !dtype.is_float() {
            return Err(format!(
                "`{}` holds {} values and this tensor is {}: a cast would drop the fractions",
                b.name,
                b.dtype.name(),
                dtype.name()
            ));
        }
        Ok(FileValues {
            bound: Some(b),
            ..self.clone()
        })
    }
}

impl Bound {
    fn numel(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }

    /// The source index of element `i` of the tensor it fills.
    fn at(&self, i: u64) -> usize {
        if self.transpose {
            // The tensor is [c, r] where the source is [r, c].
            let (r, c) = (self.shape[0], self.shape[1]);
            ((i % r) * c + i / r) as usize
        } else {
            i as usize
        }
    }

    fn value(&self, k: usize) -> f64 {
        let size = self.dtype.size();
        let o = self.offset + k * size;
        (self.dtype.decoder())(&self.file.map[o..o + size])
    }

    /// The mapped bytes of elements `start .. start + n` of an untransposed source.
    fn contiguous(&self, start: u64, n: usize) -> &[u8] {
        let size = self.dtype.size();
        let o = self.offset + start as usize * size;
        &self.file.map[o..o + n * size]
    }

    /// Elements `start ..` as f32 (rounded to nearest from wider types).
    pub fn fill_f32(&self, start: u64, out: &mut [f32]) {
        if !self.transpose {
            // Contiguous: decode straight from the mapped bytes.
            let src = self.contiguous(start, out.len());
            match self.dtype {
                SrcType::F32 => {
                    for (d, s) in out.iter_mut().zip(src.chunks_exact(4)) {
                        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    }
                    return;
                }
                SrcType::BF16 => {
                    for (d, s) in out.iter_mut().zip(src.chunks_exact(2)) {
                        *d = half::bf16::from_le_bytes([s[0], s[1]]).to_f32();
                    }
                    return;
                }
                SrcType::F16 => {
                    for (d, s) in out.iter_mut().zip(src.chunks_exact(2)) {
                        *d = half::f16::from_le_bytes([s[0], s[1]]).to_f32();
                    }
                    return;
                }
                _ => {
                    let decode = self.dtype.decoder();
                    for (d, s) in out.iter_mut().zip(src.chunks_exact(self.dtype.size())) {
                        *d = decode(s) as f32;
                    }
                    return;
                }
            }
        }
        for (j, d) in out.iter_mut().enumerate() {
            *d = self.value(self.at(start + j as u64)) as f32;
        }
    }

    /// Elements `start ..` as f64.
    pub fn fill_f64(&self, start: u64, out: &mut [f64]) {
        if !self.transpose {
            // Contiguous: one decoder, straight over the mapped bytes.
            let decode = self.dtype.decoder();
            let src = self.contiguous(start, out.len());
            for (d, s) in out.iter_mut().zip(src.chunks_exact(self.dtype.size())) {
                *d = decode(s);
            }
            return;
        }
        for (j, d) in out.iter_mut().enumerate() {
            *d = self.value(self.at(start + j as u64));
        }
    }

    /// The stored bytes of elements `start ..` when they are the tensor's own bytes (the
    /// same dtype, not transposed): a copy, bit for bit.
    pub fn same_bytes(&self, dtype: DType, start: u64, len: usize) -> Option<&[u8]> {
        if self.transpose || self.dtype.same_as() != Some(dtype) {
            return None;
        }
        let o = self.offset + start as usize * self.dtype.size();
        self.file.map.get(o..o + len)
    }

    /// E[x] and E[x²] of the values (every element, or an even stride of 1M of them in a
    /// larger tensor): the lints' moments of a tensor read from a file.
    pub fn moments(&self) -> (f64, f64) {
        let n = self.numel();
        if n == 0 {
            return (0.0, 0.0);
        }
        let step = n.div_ceil(1 << 20);
        let (mut s1, mut s2, mut k) = (0.0, 0.0, 0usize);
        let mut i = 0;
        while i < n {
            let v = self.value(i);
            if v.is_finite() {
                s1 += v;
                s2 += v * v;
                k += 1;
            }
            i += step;
        }
        let k = k.max(1) as f64;
        (s1 / k, s2 / k)
    }
}

impl fmt::Display for FileValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from_file({}", self.path)?;
        match (&self.bound, &self.tensor) {
            (Some(b), _) => write!(f, ", tensor={}", b.name)?,
            (None, Some(t)) => write!(f, ", tensor={t}")?,
            _ => {}
        }
        if self.transpose {
            write!(f, ", transpose")?;
        }
        write!(f, ")")
    }
}
