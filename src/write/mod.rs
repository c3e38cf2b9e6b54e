//! Write: safetensors output, streamed through a small reused buffer, atomically.
//!
//! The header is computed from the resolved model alone; tensor data is generated chunk
//! by chunk into one buffer and written in file order. Output goes to a temporary file in
//! the target directory and is renamed into place only when complete, so a failed build
//! never leaves a partial file nor damages an existing one.

mod cleanup;

use crate::build::Generator;
use crate::model::{Layout, Model, TensorDecl};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes generated and written per step.
const CHUNK_BYTES: usize = 64 << 20;

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

/// Writes `tensors` (in the given order) to a temporary file beside `path`, then renames it there.
///
/// Generation (parallel, on the caller's thread pool) and writing (a thread of its own)
/// overlap through two reused buffers, so memory stays at two chunks whatever the size.
/// `progress` is called with the bytes written so far.
pub fn write_file(
    path: &Path,
    tensors: &[&TensorDecl],
    layout: Layout,
    metadata: &BTreeMap<String, String>,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, WriteError> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| WriteError::Io { path: p, source }
    };
    let dir = parent_dir(path);
    let head = header(tensors, metadata);
    let mut tmp = tempfile::Builder::new()
        .prefix(".specc-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err(&dir))?;
    let _guard = cleanup::Guard::new(tmp.path());
    let file = tmp.as_file_mut();
    file.write_all(&(head.json.len() as u64).to_le_bytes())
        .map_err(err(path))?;
    file.write_all(&head.json).map_err(err(path))?;
    let mut written = 8 + head.json.len() as u64;
    progress(written);

    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        let _ = empty_tx.send(Vec::with_capacity(CHUNK_BYTES));
    }
    let result = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for buf in full_rx {
                file.write_all(&buf)?;
                if empty_tx.send(buf).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut failed = false;
        'tensors: for e in &head.entries {
            let gen = Generator::new(e.decl, layout);
            let numel = e.decl.numel();
            let per_chunk = (CHUNK_BYTES as u64 / e.decl.dtype.size()).max(1);
            let mut start = 0;
            while start < numel {
                let n = per_chunk.min(numel - start) as usize;
                let Ok(mut buf) = empty_rx.recv() else {
                    failed = true;
                    break 'tensors;
                };
                // Resizing a reused buffer only zeroes bytes it never had; fill overwrites all.
                buf.resize(n * e.decl.dtype.size() as usize, 0);
                gen.fill(start, &mut buf);
                written += buf.len() as u64;
                if full_tx.send(buf).is_err() {
                    failed = true;
                    break 'tensors;
                }
                progress(written);
                start += n as u64;
            }
        }
        drop(full_tx);
        let w = writer.join().expect("the writer thread does not panic");
        match (w, failed) {
            (Err(e), _) => Err(e),
            (Ok(()), true) => Err(std::io::Error::other("the writer stopped early")),
            (Ok(()), false) => Ok(()),
        }
    });
    result.map_err(err(path))?;
    tmp.as_file().sync_all().map_err(err(path))?;
    set_default_mode(tmp.as_file()).map_err(err(path))?;
    tmp.persist(path).map_err(|e| WriteError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(Written {
        tensors: tensors.len(),
        params: tensors.iter().map(|t| t.numel()).sum(),
        bytes: written,
    })
}

/// Writes small text (the shard index) atomically: temporary file, then rename.
pub fn write_text(path: &Path, text: &str) -> Result<(), WriteError> {
    let err = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".specc-")
        .suffix(".tmp")
        .tempfile_in(parent_dir(path))
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    set_default_mode(tmp.as_file()).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
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

/// Gives the file the mode a new file gets from the user's umask (tempfiles are 0600).
fn set_default_mode(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // umask can only be read by setting it; set it straight back.
    // SAFETY: umask has no memory-safety preconditions.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    file.set_permissions(std::fs::Permissions::from_mode(0o666 & !(mask as u32)))
}
