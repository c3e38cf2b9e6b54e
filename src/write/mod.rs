//! Write: safetensors output, generated piece by piece in parallel, written atomically.
//!
//! The header is computed from the resolved model alone; tensor data is cut into pieces
//! that worker threads generate and write at their offsets, in file order. Output goes to
//! a temporary file in the target directory and is renamed into place only when complete,
//! so a failed build never leaves a partial file nor damages an existing one.

mod cleanup;

use crate::build::Generator;
use crate::model::{Layout, Model, TensorDecl};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::NamedTempFile;

/// Bytes a worker generates and writes at a time: small enough to stay in a core's L2
/// cache, so the kernel copies them into the page cache from cache, not from memory.
const PIECE_BYTES: usize = 1 << 20;

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    /// The declaration.
    pub decl: &'a TensorDecl,
    /// Byte range in the data section.
    pub begin: u64,
    /// End of the range (exclusive).
    pub end: u64,
}

/// A safetensors header: the JSON (space-padded to 8 bytes) and the tensors in file order.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    /// The header bytes, padded.
    pub json: Vec<u8>,
    /// Tensors in data order.
    pub entries: Vec<Entry<'a>>,
}

impl Header<'_> {
    /// Bytes of the whole file.
    pub fn file_size(&self) -> u64 {
        8 + self.json.len() as u64 + self.entries.last().map_or(0, |e| e.end)
    }
}

/// Computes the header for `tensors` with `metadata` (values are strings by the format).
pub fn header<'a>(tensors: &[&'a TensorDecl], metadata: &BTreeMap<String, String>) -> Header<'a> {
    let mut entries = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    let mut json = String::from("{");
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":");
        json.push_str(&serde_json::to_string(metadata).expect("string map serializes"));
    }
    for (i, t) in tensors.iter().enumerate() {
        let end = offset + t.bytes();
        if i > 0 || !metadata.is_empty() {
            json.push(',');
        }
        json.push_str(&serde_json::to_string(&t.name).expect("string serializes"));
        json.push_str(&format!(
            ":{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            t.dtype.safetensors_name(),
            serde_json::to_string(&t.shape).expect("shape serializes"),
        ));
        entries.push(Entry {
            decl: t,
            begin: offset,
            end,
        });
        offset = end;
    }
    json.push('}');
    let mut json = json.into_bytes();
    // Pad with spaces so the data section starts 8-aligned, as the reference writer does.
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    Header { json, entries }
}

/// The `__metadata__` specc writes (SPEC.md section 4).
pub fn metadata(model: &Model, spec_sha256: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "format".into(),
        match model.layout {
            Layout::Pytorch => "pt",
            Layout::Keras => "keras",
        }
        .into(),
    );
    m.insert("specc_version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("specc_format".into(), "1".into());
    m.insert("model".into(), model.name.clone());
    m.insert(
        "layout".into(),
        format!("{:?}", model.layout).to_lowercase(),
    );
    m.insert("seed".into(), model.seed.to_string());
    m.insert("spec_sha256".into(), spec_sha256.into());
    let inits: BTreeMap<&str, String> = model
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), format!("{}: {}", t.choice.written, t.init)))
        .collect();
    m.insert(
        "initializers".into(),
        serde_json::to_string(&inits).expect("map serializes"),
    );
    if !model.ties.is_empty() {
        let ties: BTreeMap<&str, &str> = model
            .ties
            .iter()
            .map(|t| (t.name.as_str(), t.target.as_str()))
            .collect();
        m.insert(
            "ties".into(),
            serde_json::to_string(&ties).expect("map serializes"),
        );
    }
    m
}

/// Why writing failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError {
    /// An I/O error, with the path it concerns.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io { path, source } => {
                write!(f, "cannot write `{}`: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Io { source, .. } => Some(source),
        }
    }
}

/// What a finished write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Tensors stored.
    pub tensors: usize,
    /// Elements stored.
    pub params: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Whether a finished file is flushed to the device before it is renamed into place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Rename once written (as `cp`, `dd` and `safetensors.save_file` do): the file is whole
    /// or absent whatever the process does, and the OS writes it back in its own time.
    #[default]
    Written,
    /// `fsync` the file before the rename (and the directory after), so the new file is
    /// on the device when the build returns, and survives a power loss.
    Synced,
}

/// One piece of the data section: elements `start .. start + count` of entry `entry`.
struct Piece {
    entry: usize,
    start: u64,
    count: usize,
    /// Offset in the file.
    offset: u64,
}

/// A tensor's generator while pieces of it are in flight; dropped after its last piece, so
/// tensors computed whole (orthogonal) do not pile up.
struct Slot<'a> {
    generator: Mutex<Option<Arc<Generator<'a>>>>,
    left: AtomicUsize,
}

/// Writes `tensors` (in the given order) to a temporary file beside `path`, then renames it there.
///
/// Each worker thread (as many as rayon's pool has) takes the next piece in file order,
/// generates it into a buffer of its own that stays in cache, and writes it at its offset:
/// generation and writing overlap across threads, and memory stays at one piece per thread
/// whatever the size. `progress` is called with the bytes written so far.
pub fn write_file(
    path: &Path,
    tensors: &[&TensorDecl],
    layout: Layout,
    metadata: &BTreeMap<String, String>,
    durability: Durability,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, WriteError> {
    use std::os::unix::fs::FileExt;
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| WriteError::Io { path: p, source }
    };
    let dir = parent_dir(path);
    let head = header(tensors, metadata);
    let (tmp, _guard) = create_temp(&dir).map_err(err(&dir))?;
    let file = tmp.as_file();
    let data_start = 8 + head.json.len() as u64;
    let mut prefix = (head.json.len() as u64).to_le_bytes().to_vec();
    prefix.extend_from_slice(&head.json);
    file.write_all_at(&prefix, 0).map_err(err(path))?;
    progress(data_start);

    let mut pieces = Vec::new();
    let mut slots = Vec::with_capacity(head.entries.len());
    for (k, e) in head.entries.iter().enumerate() {
        let size = e.decl.dtype.size();
        let per_piece = (PIECE_BYTES as u64 / size).max(1);
        let numel = e.decl.numel();
        let mut start = 0;
        while start < numel {
            let count = per_piece.min(numel - start);
            pieces.push(Piece {
                entry: k,
                start,
                count: count as usize,
                offset: data_start + e.begin + start * size,
            });
            start += count;
        }
        slots.push(Slot {
            generator: Mutex::new(None),
            left: AtomicUsize::new(numel.div_ceil(per_piece) as usize),
        });
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let workers = rayon::current_num_threads().max(1);
    // Two pieces per generator (one being filled, one queued or being written), and at
    // least eight: with two workers, four left them waiting on the writer (llama-1b
    // ~5% slower, measured).
    let buffers = (2 * workers).max(8);
    // A full buffer: its first `len` bytes go to `offset`. Buffers stay PIECE_BYTES long, so
    // nothing is zeroed again when a short last piece is followed by a full one.
    type Full = (Vec<u8>, usize, u64);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Full>(buffers);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..buffers {
        let _ = empty_tx.send(vec![0u8; PIECE_BYTES]);
    }
    let empty_rx = Mutex::new(empty_rx);
    // A generator: takes the next piece in file order, fills a free buffer, hands it on.
    let work = |full_tx: std::sync::mpsc::SyncSender<Full>| {
        while !stop.load(Ordering::Relaxed) {
            let Some(p) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let e = &head.entries[p.entry];
            let slot = &slots[p.entry];
            let generator = {
                let mut g = slot.generator.lock().unwrap_or_else(|e| e.into_inner());
                g.get_or_insert_with(|| Arc::new(Generator::new(e.decl, layout)))
                    .clone()
            };
            let recv = empty_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok(mut buf) = recv else {
                break; // the writer stopped
            };
            let len = p.count * e.decl.dtype.size() as usize;
            generator.fill_here(p.start, &mut buf[..len]);
            drop(generator);
            if slot.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                *slot.generator.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            if full_tx.send((buf, len, p.offset)).is_err() {
                break;
            }
        }
    };
    let mut failure = None;
    let mut written = data_start;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = full_tx.clone();
            scope.spawn(|| work(tx));
        }
        drop(full_tx);
        // This thread writes (one writer: concurrent writes to one file contend in the kernel).
        for (buf, len, offset) in full_rx {
            if let Err(e) = file.write_all_at(&buf[..len], offset) {
                failure = Some(e);
                stop.store(true, Ordering::Relaxed);
                break;
            }
            written += len as u64;
            progress(written);
            let _ = empty_tx.send(buf);
        }
        // Unblocks generators waiting for a buffer.
        drop(empty_tx);
    });
    if let Some(e) = failure {
        return Err(err(path)(e));
    }
    commit(tmp, path, durability).map_err(err(path))?;
    Ok(Written {
        tensors: tensors.len(),
        params: tensors.iter().map(|t| t.numel()).sum(),
        bytes: written,
    })
}

/// Creates a temporary file in `dir`, registered for removal on SIGINT/SIGTERM/SIGHUP
/// (for as long as the guard lives) before it exists, so no signal can leave it behind.
fn create_temp(dir: &Path) -> std::io::Result<(NamedTempFile, cleanup::Guard)> {
    let mut guard = None;
    let tmp = tempfile::Builder::new()
        .prefix(".specc-")
        .suffix(".tmp")
        .make_in(dir, |p| {
            let g = cleanup::Guard::new(p);
            // create_new with std's mode, 0666 less the umask: the mode a new output gets
            // (tempfile's own files are 0600).
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)?;
            guard = Some(g);
            Ok(file)
        })?;
    Ok((
        tmp,
        guard.expect("make_in opened a file through the closure"),
    ))
}

/// Renames the finished temporary file to `path`; with [`Durability::Synced`], flushes the
/// file before and the directory after.
fn commit(tmp: NamedTempFile, path: &Path, durability: Durability) -> std::io::Result<()> {
    let synced = durability == Durability::Synced;
    if synced {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if synced {
        std::fs::File::open(parent_dir(path))?.sync_all()?;
    }
    Ok(())
}

/// Writes small text (the shard index) atomically: temporary file, then rename.
pub fn write_text(path: &Path, text: &str, durability: Durability) -> Result<(), WriteError> {
    let err = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut tmp, _guard) = create_temp(&parent_dir(path)).map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    commit(tmp, path, durability).map_err(err)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes free for an unprivileged writer in the directory that will hold `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = parent_dir(path);
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// One output file of a (possibly sharded) build.
#[derive(Clone, Debug)]
pub struct Shard<'a> {
    /// Where it goes.
    pub path: PathBuf,
    /// Its tensors, in file order.
    pub tensors: Vec<&'a TensorDecl>,
}

/// The files a build writes: one file, or Hugging Face shards plus their index.
#[derive(Clone, Debug)]
pub struct Output<'a> {
    /// The safetensors files, in order.
    pub shards: Vec<Shard<'a>>,
    /// `model.safetensors.index.json` and its text, when sharded.
    pub index: Option<(PathBuf, String)>,
}

/// Splits the model as huggingface_hub does: tensors in model order, a new shard when the
/// next tensor would pass `max_shard_bytes` (a bigger tensor gets a shard of its own);
/// one shard means one plain file and no index.
pub fn plan<'a>(model: &'a Model, path: &Path, max_shard_bytes: Option<u64>) -> Output<'a> {
    let mut groups: Vec<Vec<&TensorDecl>> = Vec::new();
    match max_shard_bytes {
        None => groups.push(model.tensors.iter().collect()),
        Some(max) => {
            let mut size = 0u64;
            for t in &model.tensors {
                if groups.is_empty() || (size + t.bytes() > max && size > 0) {
                    groups.push(Vec::new());
                    size = 0;
                }
                groups.last_mut().expect("pushed above").push(t);
                size += t.bytes();
            }
            if groups.is_empty() {
                groups.push(Vec::new());
            }
        }
    }
    // Within a file, the reference writer's order: larger dtype alignment first, then by name.
    let order = |g: &[&'a TensorDecl]| {
        let mut v = g.to_vec();
        v.sort_by(|a, b| {
            b.dtype
                .size()
                .cmp(&a.dtype.size())
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    };
    if groups.len() == 1 {
        return Output {
            shards: vec![Shard {
                path: path.to_path_buf(),
                tensors: order(&groups[0]),
            }],
            index: None,
        };
    }
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.safetensors".into());
    let stem = file_name
        .strip_suffix(".safetensors")
        .unwrap_or(&file_name)
        .to_string();
    let n = groups.len();
    let mut weight_map = BTreeMap::new();
    let mut shards = Vec::with_capacity(n);
    for (k, g) in groups.iter().enumerate() {
        let name = format!("{stem}-{:05}-of-{n:05}.safetensors", k + 1);
        for t in g {
            weight_map.insert(t.name.clone(), name.clone());
        }
        shards.push(Shard {
            path: dir.join(&name),
            tensors: order(g),
        });
    }
    let index = serde_json::json!({
        "metadata": { "total_size": model.total_bytes() },
        "weight_map": weight_map,
    });
    let text = serde_json::to_string_pretty(&index).expect("index serializes") + "\n";
    Output {
        shards,
        index: Some((dir.join(format!("{file_name}.index.json")), text)),
    }
}
