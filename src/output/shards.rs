//! Which files a build writes: one safetensors file, or Hugging Face shards and their
//! index; and which files already there a new build supersedes.

use super::target::{parent_dir, FileId};
use crate::model::{Model, TensorDecl};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One output file of a (possibly sharded) build.
#[derive(Clone, Debug)]
pub struct Shard<'a> {
    /// Where it goes, as the user named it (or as the shard naming derives it).
    pub path: PathBuf,
    /// Its tensors, in file order.
    pub tensors: Vec<&'a TensorDecl>,
}

/// The files a build writes: one file, or Hugging Face shards plus their index.
#[derive(Clone, Debug)]
pub struct Files<'a> {
    /// The safetensors files, in order.
    pub shards: Vec<Shard<'a>>,
    /// `model.safetensors.index.json` and its text, when sharded.
    pub index: Option<(PathBuf, String)>,
    /// The directory the shards and the index go to.
    pub dir: PathBuf,
    /// The output's file name (`model.safetensors`).
    pub file_name: String,
    /// Its stem (`model`), which shard names start with.
    pub stem: String,
}

/// Splits the model as huggingface_hub does: tensors in model order, a new shard when the
/// next tensor would pass `max_shard_bytes` (a bigger tensor gets a shard of its own);
/// one shard means one plain file and no index.
pub fn plan<'a>(model: &'a Model, path: &Path, max_shard_bytes: Option<u64>) -> Files<'a> {
    let mut groups: Vec<Vec<&TensorDecl>> = Vec::new();
    match max_shard_bytes {
        None => groups.push(model.tensors.iter().collect()),
        Some(max) => {
            let mut size = 0u64;
            for t in &model.tensors {
                if groups.is_empty() || (size.saturating_add(t.bytes()) > max && size > 0) {
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
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.safetensors".into());
    let stem = file_name
        .strip_suffix(".safetensors")
        .unwrap_or(&file_name)
        .to_string();
    if groups.len() == 1 {
        return Files {
            shards: vec![Shard {
                path: path.to_path_buf(),
                tensors: order(&groups[0]),
            }],
            index: None,
            dir,
            file_name,
            stem,
        };
    }
    let n = groups.len();
    let mut weight_map = BTreeMap::new();
    let mut shards = Vec::with_capacity(n);
    for (k, g) in groups.iter().enumerate() {
        let name = shard_name(&stem, k + 1, n);
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
    Files {
        shards,
        index: Some((dir.join(format!("{file_name}.index.json")), text)),
        dir,
        file_name,
        stem,
    }
}

/// `model-00002-of-00005.safetensors`.
fn shard_name(stem: &str, k: usize, n: usize) -> String {
    format!("{stem}-{k:05}-of-{n:05}.safetensors")
}

/// `(k, n)` if `name` is a shard name of `stem` (`{stem}-KKKKK-of-NNNNN.safetensors`).
fn parse_shard_name(stem: &str, name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix(stem)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(".safetensors")?;
    let (k, n) = rest.split_once("-of-")?;
    let digits = |s: &str| s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(n) {
        return None;
    }
    Some((k.parse().ok()?, n.parse().ok()?))
}

impl Files<'_> {
    /// Files in the directory that this build's output supersedes, to be removed once it
    /// is in place: a sharded build supersedes the plain file of the same name (which
    /// Hugging Face loaders would read first) and shard sets of another count; a plain
    /// build supersedes the index and every shard of its name. Only regular files and
    /// symlinks, and never a file in `protect`.
    pub fn superseded(&self, protect: &[FileId]) -> Vec<PathBuf> {
        let sharded = self.index.is_some();
        let n = self.shards.len();
        let mut out = Vec::new();
        let mut consider = |p: PathBuf| {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                return;
            };
            let kind = meta.file_type();
            if !(kind.is_file() || kind.is_symlink()) {
                return;
            }
            if FileId::of(&p).is_some_and(|id| protect.contains(&id)) {
                return;
            }
            out.push(p);
        };
        if sharded {
            consider(self.dir.join(&self.file_name));
        } else {
            consider(self.dir.join(format!("{}.index.json", self.file_name)));
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            if let Some((_, count)) = parse_shard_name(&self.stem, &name) {
                if !sharded || count != n {
                    consider(self.dir.join(name));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip() {
        assert_eq!(
            shard_name("model", 2, 5),
            "model-00002-of-00005.safetensors"
        );
        assert_eq!(
            parse_shard_name("model", "model-00002-of-00005.safetensors"),
            Some((2, 5))
        );
        assert_eq!(
            parse_shard_name("model", "model-123456-of-123456.safetensors"),
            Some((123456, 123456))
        );
        for other in [
            "model.safetensors",
            "model-2-of-5.safetensors",
            "model-00002-of-00005.bin",
            "other-00002-of-00005.safetensors",
            "model-0000a-of-00005.safetensors",
        ] {
            assert_eq!(parse_shard_name("model", other), None, "{other}");
        }
    }
}
