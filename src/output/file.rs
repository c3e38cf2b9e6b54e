//! One safetensors file: its header, its metadata, and its data generated piece by piece.
//!
//! The header is computed from the resolved model alone; tensor data is cut into pieces
//! that worker threads generate and one thread writes at their offsets, in file order.

use crate::build::Generator;
use crate::model::{Layout, Model, TensorDecl};
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes a worker generates and writes at a time: small enough to stay in a core's L2
/// cache, so the kernel copies them into the page cache from cache, not from memory.
const PIECE_BYTES: usize = 1 << 20;

/// Most pieces in flight at once, whatever the thread count (64 MiB of buffers).
const MAX_BUFFERS: usize = 64;

/// The largest header safetensors readers accept (`safetensors` MAX_HEADER_SIZE).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

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

/// The `__metadata__` of a file holding `tensors` of `model` (SPEC.md section 4): the
/// model's facts, and the initializers and ties of this file's own tensors.
pub fn metadata(
    model: &Model,
    spec_sha256: &str,
    tensors: &[&TensorDecl],
) -> BTreeMap<String, String> {
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
    m.insert("specc_format".into(), model.format.number().to_string());
    m.insert("model".into(), model.name.clone());
    m.insert(
        "layout".into(),
        format!("{:?}", model.layout).to_lowercase(),
    );
    m.insert("seed".into(), model.seed.to_string());
    m.insert("spec_sha256".into(), spec_sha256.into());
    let inits: BTreeMap<&str, String> = tensors
        .iter()
        .map(|t| (t.name.as_str(), format!("{}: {}", t.choice.written, t.init)))
        .collect();
    m.insert(
        "initializers".into(),
        serde_json::to_string(&inits).expect("map serializes"),
    );
    // A `parameter`'s trainable flag: the framework cannot tell it from the tensor.
    let trainable: BTreeMap<&str, bool> = tensors
        .iter()
        .filter(|t| t.role == crate::model::Role::Parameter)
        .map(|t| (t.name.as_str(), t.trainable))
        .collect();
    if !trainable.is_empty() {
        m.insert(
            "trainable".into(),
            serde_json::to_string(&trainable).expect("map serializes"),
        );
    }
    // Fans that are not the layer's meaning (read off the stored shape, or written).
    let fans: BTreeMap<&str, String> = tensors
        .iter()
        .filter(|t| t.fans_from != crate::model::FansFrom::Layer)
        .map(|t| {
            let from = match t.fans_from {
                crate::model::FansFrom::Spec => "spec",
                _ => "stored shape",
            };
            (
                t.name.as_str(),
                format!("{}, {} ({from})", t.fans.fan_in, t.fans.fan_out),
            )
        })
        .collect();
    if !fans.is_empty() {
        m.insert(
            "fans".into(),
            serde_json::to_string(&fans).expect("map serializes"),
        );
    }
    let ties: BTreeMap<&str, &str> = model
        .ties
        .iter()
        .filter(|t| inits.contains_key(t.target.as_str()))
        .map(|t| (t.name.as_str(), t.target.as_str()))
        .collect();
    if !ties.is_empty() {
        m.insert(
            "ties".into(),
            serde_json::to_string(&ties).expect("map serializes"),
        );
    }
    // Where `from_file` values came from: each source file, as the spec names it, and its
    // SHA-256 (hashed once per process, streamed over its mapping).
    let sources: BTreeMap<String, &str> = tensors
        .iter()
        .filter_map(|t| match &t.init {
            crate::init::Init::FromFile(v) => Some((v, v.bound.as_ref()?)),
            _ => None,
        })
        .map(|(v, b)| (source_name(&v.path, &b.file.path), b.file.sha256()))
        .collect();
    if !sources.is_empty() {
        m.insert(
            "from_file".into(),
            serde_json::to_string(&sources).expect("map serializes"),
        );
    }
    m
}

/// The source file `file` as the spec's `path` leads to it: `path` itself, or the shard
/// of a directory or index it names (`base/model-00001-of-00002.safetensors`).
fn source_name(path: &str, file: &std::path::Path) -> String {
    let p = std::path::Path::new(path);
    let name = file.file_name().unwrap_or_default();
    if p.file_name() == Some(name) {
        return path.to_string();
    }
    let dir = if path.ends_with(".json") {
        p.parent().unwrap_or(std::path::Path::new(""))
    } else {
        p
    };
    dir.join(name).to_string_lossy().into_owned()
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

/// Writes `head` and its tensors' data into `file`, with as many generating threads as
/// `pool` has.
///
/// Each worker takes the next piece in file order, generates it into a buffer of its own
/// that stays in cache, and hands it to this thread, which writes it at its offset:
/// generation and writing overlap, and memory stays at a few pieces per thread whatever
/// the size. `progress` is called with the bytes of this file written so far.
pub fn write_data(
    file: &File,
    head: &Header<'_>,
    layout: Layout,
    pool: &rayon::ThreadPool,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let data_start = 8 + head.json.len() as u64;
    let mut prefix = (head.json.len() as u64).to_le_bytes().to_vec();
    prefix.extend_from_slice(&head.json);
    file.write_all_at(&prefix, 0)?;
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
    let workers = pool.current_num_threads().max(1);
    // Two pieces per generator (one being filled, one queued or being written), and at
    // least eight: with two workers, four left them waiting on the writer (llama-1b
    // ~5% slower, measured).
    let buffers = (2 * workers).clamp(8, MAX_BUFFERS);
    // A full buffer: its first `len` bytes go to `offset`. Buffers stay PIECE_BYTES long, so
    // nothing is zeroed again when a short last piece is followed by a full one.
    type Full = (Vec<u8>, usize, u64);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Full>(buffers);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..buffers {
        let mut b = Vec::new();
        b.try_reserve_exact(PIECE_BYTES)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        b.resize(PIECE_BYTES, 0);
        let _ = empty_tx.send(b);
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
                // Tensors computed whole (orthogonal) use the build's pool, not rayon's global one.
                g.get_or_insert_with(|| Arc::new(pool.install(|| Generator::new(e.decl, layout))))
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
        let mut started = 0;
        for _ in 0..workers {
            let tx = full_tx.clone();
            match std::thread::Builder::new().spawn_scoped(scope, || work(tx)) {
                Ok(_) => started += 1,
                Err(e) => {
                    // Fewer threads than asked is only slower; none at all cannot work.
                    if started == 0 {
                        failure = Some(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                    break;
                }
            }
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
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}
