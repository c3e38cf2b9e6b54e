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

/// Orders tensors as the safetensors crate's writer does: larger dtype alignment first, then by name.
pub fn file_order(tensors: &[TensorDecl]) -> Vec<&TensorDecl> {
    let mut v: Vec<&TensorDecl> = tensors.iter().collect();
    v.sort_by(|a, b| {
        b.dtype
            .size()
            .cmp(&a.dtype.size())
            .then_with(|| a.name.cmp(&b.name))
    });
    v
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
        .map(|t| {
            let how = if t.choice.written == "default" {
                "default".to_string()
            } else {
                t.choice.written.clone()
            };
            (t.name.as_str(), format!("{how}: {}", t.init))
        })
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let head = header(tensors, metadata);
    let mut tmp = tempfile::Builder::new()
        .prefix(".specc-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err(&dir))?;
    let _guard = cleanup::Guard::new(tmp.path());
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        out.write_all(&(head.json.len() as u64).to_le_bytes())
            .map_err(err(path))?;
        out.write_all(&head.json).map_err(err(path))?;
        out.flush().map_err(err(path))?;
    }
    let mut written = 8 + head.json.len() as u64;
    progress(written);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    for e in &head.entries {
        let gen = Generator::new(e.decl, layout);
        let numel = e.decl.numel();
        let per_chunk = (CHUNK_BYTES as u64 / e.decl.dtype.size()).max(1);
        let mut start = 0;
        while start < numel {
            let n = per_chunk.min(numel - start) as usize;
            buf.clear();
            gen.bytes(start, n, &mut buf);
            tmp.as_file_mut().write_all(&buf).map_err(err(path))?;
            written += buf.len() as u64;
            progress(written);
            start += n as u64;
        }
    }
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
