//! Inspect: what a safetensors file holds — metadata, and per tensor dtype, shape and statistics.

use safetensors::tensor::Metadata;
use safetensors::Dtype;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

/// The largest header safetensors readers accept.
const MAX_HEADER: u64 = 100_000_000;

/// Bytes of tensor data read at a time.
const CHUNK: usize = 1 << 20;

/// Where the bytes of a file come from: a file read piece by piece, or bytes in memory.
trait ReadAt {
    /// Total length.
    fn len(&self) -> u64;
    /// Fills `buf` from `offset`, or fails (a file that shrank says so).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), InspectError>;
}

impl ReadAt for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), InspectError> {
        let o = offset as usize;
        let src = self
            .get(o..o + buf.len())
            .ok_or_else(|| InspectError::Invalid("the data ends early".into()))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A regular file and its length when opened.
struct Opened {
    file: std::fs::File,
    len: u64,
}

impl ReadAt for Opened {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), InspectError> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                InspectError::Io(std::io::Error::other(
                    "the file became shorter while it was read (is something writing it?)",
                ))
            } else {
                InspectError::Io(e)
            }
        })
    }
}

/// Opens `path` for reading if it is a regular file: a FIFO would block, a device would
/// never end. The open does not block (O_NONBLOCK) and the type is checked on the open file.
fn open_regular(path: &Path) -> Result<Opened, InspectError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(InspectError::Io)?;
    let meta = file.metadata().map_err(InspectError::Io)?;
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        return Ok(Opened {
            file,
            len: meta.len(),
        });
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(InspectError::Io(std::io::Error::other(format!(
        "it is {kind}, not a safetensors file"
    ))))
}

/// Why a directory names no one checkpoint ([`checkpoint_in`]).
#[derive(Debug)]
pub enum DirError {
    /// It could not be listed.
    List(std::io::Error),
    /// It holds no safetensors file and no index.
    Empty,
    /// It holds several indexes, or no index and several safetensors files.
    Several,
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::List(e) => write!(f, "cannot be listed: {e}"),
            DirError::Empty => write!(f, "holds no safetensors file or index"),
            DirError::Several => write!(
                f,
                "holds several safetensors files or indexes; name the one to read"
            ),
        }
    }
}

/// The checkpoint a directory holds, as `save_pretrained` and `specc build` leave one: its
/// one `*.safetensors.index.json`, else its one `*.safetensors` file.
pub fn checkpoint_in(dir: &Path) -> Result<PathBuf, DirError> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(DirError::List)?
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    let index: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".safetensors.index.json"))
        .collect();
    let single: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    match (index.as_slice(), single.as_slice()) {
        ([i], _) => Ok((*i).clone()),
        ([], [s]) => Ok((*s).clone()),
        ([], []) => Err(DirError::Empty),
        _ => Err(DirError::Several),
    }
}

/// Reads a safetensors file piece by piece and computes per-tensor statistics (in f64).
///
/// The file is read with positioned reads, never mapped: a file truncated while it is
/// read gives an error, not SIGBUS; memory stays at one piece whatever the file's size.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let opened = open_regular(path)?;
    inspect_from(&opened)
}

/// [`inspect`] of a file's bytes already in memory.
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, InspectError> {
    inspect_from(bytes)
}

/// The header of a safetensors file: its length and what it says, checked against the
/// file's length.
fn read_header(src: &(impl ReadAt + ?Sized)) -> Result<(u64, Metadata), InspectError> {
    let invalid = |m: String| InspectError::Invalid(m);
    let len = src.len();
    if len < 8 {
        return Err(invalid(format!(
            "{len} bytes, shorter than the 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    src.read_at(0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        return Err(invalid(format!(
            "HeaderTooLarge: the header claims {n} bytes, over 100 MB"
        )));
    }
    if 8 + n > len {
        return Err(invalid(format!(
            "InvalidHeaderLength: the header claims {n} bytes, the file has {}",
            len - 8
        )));
    }
    let mut header = vec![0u8; n as usize];
    src.read_at(8, &mut header)?;
    let meta: Metadata = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("InvalidHeaderDeserialization: {e}")))?;
    let order = meta.offset_keys();
    let end = order
        .last()
        .and_then(|k| meta.info(k))
        .map_or(0, |i| i.data_offsets.1 as u64);
    if 8 + n + end != len {
        return Err(invalid(format!(
            "MetadataIncompleteBuffer: the tensors end at byte {end} of the data, the file has {}",
            len - 8 - n
        )));
    }
    Ok((n, meta))
}

/// One tensor of a [`Reader`]'s file: where its bytes are.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Offset of its first byte in the file.
    pub offset: u64,
    /// Its bytes.
    pub len: u64,
}

/// A safetensors file opened for positioned reads (never mapped): its metadata and
/// tensors, read piece by piece by whoever needs them (`verify`, `report --weights`).
pub struct Reader {
    file: Opened,
    /// `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// The tensors, in file order.
    pub entries: Vec<Entry>,
}

impl Reader {
    /// Opens `path`, which must be a regular safetensors file.
    pub fn open(path: &Path) -> Result<Reader, InspectError> {
        let file = open_regular(path)?;
        let (n, meta) = read_header(&file)?;
        let entries = meta
            .offset_keys()
            .into_iter()
            .map(|name| {
                let i = meta.info(&name).expect("a key of the header");
                Entry {
                    dtype: i.dtype,
                    shape: i.shape.clone(),
                    offset: 8 + n + i.data_offsets.0 as u64,
                    len: (i.data_offsets.1 - i.data_offsets.0) as u64,
                    name,
                }
            })
            .collect();
        let metadata = meta
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        Ok(Reader {
            file,
            metadata,
            entries,
        })
    }

    /// Fills `buf` from byte `offset` of the file.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), InspectError> {
        self.file.read_at(offset, buf)
    }
}

fn inspect_from(src: &(impl ReadAt + ?Sized)) -> Result<Inspection, InspectError> {
    let (n, meta) = read_header(src)?;
    let order = meta.offset_keys();
    let metadata = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let mut tensors = Vec::with_capacity(order.len());
    let mut buf = vec![0u8; CHUNK];
    for name in order {
        let info = meta.info(&name).expect("a key of the header");
        let (begin, stop) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        // Statistics for the dtypes of whole bytes that have a numeric reading.
        let (mean, std, min, max) = match supported(info.dtype).then(|| info.dtype.bitsize() / 8) {
            Some(width) => {
                let mut acc = Welford::default();
                // Whole elements per read.
                let step = CHUNK / width * width;
                let mut at = begin;
                while at < stop {
                    let k = step.min((stop - at) as usize);
                    src.read_at(8 + n + at, &mut buf[..k])?;
                    push_all(&mut acc, info.dtype, &buf[..k]);
                    at += k as u64;
                }
                acc.finish()
            }
            None => (None, None, None, None),
        };
        tensors.push(TensorStats {
            name,
            dtype: format!("{:?}", info.dtype),
            numel: info.shape.iter().product(),
            shape: info.shape.clone(),
            mean,
            std,
            min,
            max,
        });
    }
    Ok(Inspection { metadata, tensors })
}

fn supported(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::F32
            | Dtype::F64
            | Dtype::F16
            | Dtype::BF16
            | Dtype::I64
            | Dtype::I32
            | Dtype::I16
            | Dtype::I8
            | Dtype::U8
            | Dtype::BOOL
            | Dtype::U16
            | Dtype::U32
            | Dtype::U64
    )
}

/// Adds every element of `data` (whole elements of `dtype`) to `acc`.
fn push_all(acc: &mut Welford, dtype: Dtype, data: &[u8]) {
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
        _ => {}
    }
}

type Stats = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_names_its_one_index_else_its_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let touch = |name: &str| std::fs::write(at(name), b"").unwrap();
        assert!(matches!(checkpoint_in(dir.path()), Err(DirError::Empty)));
        touch("notes.txt");
        assert!(matches!(checkpoint_in(dir.path()), Err(DirError::Empty)));
        touch("model-00001-of-00002.safetensors");
        assert_eq!(
            checkpoint_in(dir.path()).unwrap(),
            at("model-00001-of-00002.safetensors")
        );
        touch("model-00002-of-00002.safetensors");
        assert!(matches!(checkpoint_in(dir.path()), Err(DirError::Several)));
        // An index names the shards, however many.
        touch("model.safetensors.index.json");
        assert_eq!(
            checkpoint_in(dir.path()).unwrap(),
            at("model.safetensors.index.json")
        );
        touch("other.safetensors.index.json");
        assert!(matches!(checkpoint_in(dir.path()), Err(DirError::Several)));
        assert!(matches!(
            checkpoint_in(&at("missing")),
            Err(DirError::List(_))
        ));
    }
}
