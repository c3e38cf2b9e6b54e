//! Output: the main job of `specc build` — plan the files, check where they go, generate
//! the data in parallel, and put the whole set in place at once.
//!
//! [`Build::new`] plans one safetensors file or a Hugging Face shard set and refuses what
//! would destroy something (the spec itself, a device, a FIFO) or what no reader could
//! open (a header over 100 MB); [`Build::run`] writes this part's files to temporary files
//! beside their final paths, then commits them all with one locked step that also removes
//! the files the new set supersedes. A failed or interrupted build leaves the old output
//! as it was (module `atomic` says how).

mod atomic;
mod file;
mod shards;
mod target;

pub use atomic::{remove_stale, Durability};
pub use file::{header, metadata, Entry, Header, MAX_HEADER_BYTES};
pub use shards::{plan, Files, Shard};
pub use target::FileId;

use crate::model::Model;
use crate::source::SourceFile;
use atomic::Temp;
use std::fmt;
use std::path::{Path, PathBuf};

/// Which part of a build a process makes (1-based): shard k belongs to part k mod `count`,
/// so `count` processes together write exactly what one would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// This part, from 1.
    pub index: u64,
    /// How many parts there are.
    pub count: u64,
}

impl Part {
    /// The whole build in one process.
    pub const WHOLE: Part = Part { index: 1, count: 1 };

    /// Part `index` of `count`, if 1 ≤ index ≤ count.
    pub fn new(index: u64, count: u64) -> Option<Part> {
        (index >= 1 && index <= count).then_some(Part { index, count })
    }

    /// Whether shard `k` (0-based) belongs to this part.
    pub fn owns(self, k: usize) -> bool {
        k as u64 % self.count == self.index - 1
    }
}

impl Default for Part {
    fn default() -> Part {
        Part::WHOLE
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How a build runs; none of it changes the bytes of a tensor.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Generating threads (default: every core; more than the cores are not started).
    pub threads: Option<usize>,
    /// Split the output into shards of at most this many bytes.
    pub max_shard_size: Option<u64>,
    /// Build only this part of the shards.
    pub part: Part,
    /// Flush the files to the device before they replace the old ones.
    pub durability: Durability,
}

/// Why a build could not run (the CLI's exit code 2).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with the path it concerns.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The output path names the spec being built.
    OutputIsInput {
        /// The output path as given.
        path: PathBuf,
    },
    /// The output path exists and is not a regular file (a directory, device, FIFO, socket).
    NotAFile {
        /// The output path as given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The output path is a symbolic link to nothing.
    DanglingLink {
        /// The output path as given.
        path: PathBuf,
        /// Where the link points.
        target: PathBuf,
    },
    /// Not enough free space for this part's files.
    NoSpace {
        /// The first output file.
        path: PathBuf,
        /// Bytes needed.
        need: u64,
        /// Bytes free.
        free: u64,
    },
    /// A file's header would pass what safetensors readers accept.
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// Its header's size.
        bytes: u64,
        /// Its tensors.
        tensors: usize,
    },
    /// The worker threads could not be started.
    Threads(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => {
                write!(f, "cannot write `{}`: {source}", path.display())
            }
            Error::OutputIsInput { path } => write!(
                f,
                "refusing to write `{}`: it is this command's input (the spec being built, or the config imported); choose another output path",
                path.display()
            ),
            Error::NotAFile { path, kind } if *kind == "a directory" => write!(
                f,
                "cannot write `{}`: it is a directory; name the file to write, e.g. `{}`",
                path.display(),
                path.join("model.safetensors").display()
            ),
            Error::NotAFile { path, kind } => write!(
                f,
                "refusing to write `{}`: it is {kind}, not a regular file, and specc replaces its output; choose a file path",
                path.display()
            ),
            Error::DanglingLink { path, target } => write!(
                f,
                "refusing to write `{}`: it is a symbolic link to `{}`, which does not exist",
                path.display(),
                target.display()
            ),
            Error::NoSpace { path, need, free } => write!(
                f,
                "not enough space for `{}`: the build needs {need} bytes, the file system has {free} free; nothing written",
                path.display()
            ),
            Error::HeaderTooLarge {
                path,
                bytes,
                tensors,
            } => write!(
                f,
                "`{}` would have a {bytes}-byte header ({tensors} tensors), over the {MAX_HEADER_BYTES} bytes safetensors readers accept; split the output with `--max-shard-size`",
                path.display()
            ),
            Error::Threads(e) => write!(f, "cannot start the worker threads: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a finished build did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Files this part wrote (0: the part had nothing to do).
    pub files: usize,
    /// Files of the whole build (shards, or 1).
    pub total_files: usize,
    /// Tensors stored by this part.
    pub tensors: usize,
    /// Elements stored by this part.
    pub params: u64,
    /// Bytes written by this part.
    pub bytes: u64,
    /// Files the new output superseded, removed.
    pub removed: Vec<PathBuf>,
    /// Temporary files of builds that died earlier, removed.
    pub stale: Vec<PathBuf>,
}

/// One build of a model into a file or a shard set, checked and ready to run.
pub struct Build<'m> {
    model: &'m Model,
    files: Files<'m>,
    /// Per shard of this part: its index in `files.shards`, the path written, its header.
    mine: Vec<(usize, PathBuf, Header<'m>)>,
    /// The index and where it is written, when sharded.
    index: Option<(PathBuf, String)>,
    protect: Vec<FileId>,
    options: Options,
}

impl<'m> Build<'m> {
    /// Plans the build of `model` (read from `source`) into `output`.
    ///
    /// Refuses, before anything is written: an output that is the spec itself (by any
    /// path or link), one that exists and is not a regular file, a link to nothing, and a
    /// file whose header would be too large for safetensors readers.
    pub fn new(
        model: &'m Model,
        source: &SourceFile,
        output: &Path,
        options: Options,
    ) -> Result<Build<'m>, Error> {
        let protect: Vec<FileId> = source
            .path
            .as_deref()
            .and_then(FileId::of)
            .into_iter()
            .collect();
        // The output itself, even when the build is sharded and does not write it.
        target::resolve(output, &protect)?;
        let files = plan(model, output, options.max_shard_size);
        let mut mine = Vec::new();
        for (k, shard) in files.shards.iter().enumerate() {
            if !options.part.owns(k) {
                continue;
            }
            let dest = target::resolve(&shard.path, &protect)?;
            let meta = metadata(model, &source.sha256, &shard.tensors);
            let head = header(&shard.tensors, &meta);
            if head.json.len() as u64 > MAX_HEADER_BYTES {
                return Err(Error::HeaderTooLarge {
                    path: shard.path.clone(),
                    bytes: head.json.len() as u64,
                    tensors: shard.tensors.len(),
                });
            }
            mine.push((k, dest, head));
        }
        let index = match &files.index {
            Some((p, text)) if !mine.is_empty() => {
                Some((target::resolve(p, &protect)?, text.clone()))
            }
            _ => None,
        };
        Ok(Build {
            model,
            files,
            mine,
            index,
            protect,
            options,
        })
    }

    /// The planned files of the whole build.
    pub fn files(&self) -> &Files<'m> {
        &self.files
    }

    /// How many files this part writes (0 when the part has nothing to do).
    pub fn my_files(&self) -> usize {
        self.mine.len()
    }

    /// Bytes this part writes.
    pub fn bytes(&self) -> u64 {
        self.mine.iter().map(|(_, _, h)| h.file_size()).sum()
    }

    /// Writes this part's files and puts them in place; `progress` gets the bytes written
    /// so far (of [`Build::bytes`]).
    pub fn run(&self, progress: &mut dyn FnMut(u64)) -> Result<Report, Error> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = self.options.threads.unwrap_or(cores).clamp(1, cores);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map_err(|e| Error::Threads(e.to_string()))?;
        let mut report = Report {
            total_files: self.files.shards.len(),
            ..Report::default()
        };
        if self.mine.is_empty() {
            return Ok(report);
        }
        let mut dirs: Vec<PathBuf> = self
            .mine
            .iter()
            .map(|(_, p, _)| target::parent_dir(p))
            .chain(std::iter::once(self.files.dir.clone()))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            report.stale.extend(remove_stale(d));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut temps = Vec::with_capacity(self.mine.len() + 1);
        for (_, dest, _) in &self.mine {
            temps.push(Temp::create(&target::parent_dir(dest)).map_err(io(dest))?);
        }
        self.check_space(&temps)?;
        let mut done = 0u64;
        let mut staged = Vec::with_capacity(temps.len() + 1);
        for (temp, (k, dest, head)) in temps.into_iter().zip(&self.mine) {
            let before = done;
            let written = file::write_data(temp.file(), head, self.model.layout, &pool, &mut |n| {
                progress(before + n)
            })
            .map_err(io(dest))?;
            done += written;
            let tensors = &self.files.shards[*k].tensors;
            report.files += 1;
            report.tensors += tensors.len();
            report.params += tensors.iter().map(|t| t.numel()).sum::<u64>();
            report.bytes += written;
            staged.push((temp, dest.clone()));
        }
        if let Some((dest, text)) = &self.index {
            use std::os::unix::fs::FileExt;
            let temp = Temp::create(&target::parent_dir(dest)).map_err(io(dest))?;
            temp.file()
                .write_all_at(text.as_bytes(), 0)
                .map_err(io(dest))?;
            staged.push((temp, dest.clone()));
        }
        let committed = atomic::commit(&self.files.dir, staged, self.options.durability, &|| {
            self.files.superseded(&self.protect)
        })
        .map_err(io(&self.files.dir))?;
        report.removed = committed.removed;
        Ok(report)
    }

    /// Refuses to start when this part's files do not fit in the free space.
    fn check_space(&self, temps: &[Temp]) -> Result<(), Error> {
        use std::os::unix::io::AsRawFd;
        let mut need: Vec<(u64, u64, u64, PathBuf)> = Vec::new(); // (fsid, need, free, path)
        for (t, (_, dest, head)) in temps.iter().zip(&self.mine) {
            // SAFETY: fstatvfs writes into the zeroed struct we own.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstatvfs(t.file().as_raw_fd(), &mut st) } != 0 {
                continue;
            }
            // Pseudo file systems report no blocks at all: nothing to compare with.
            if st.f_blocks == 0 {
                continue;
            }
            let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
            let fsid = st.f_fsid as u64;
            match need.iter_mut().find(|n| n.0 == fsid) {
                Some(n) => n.1 = n.1.saturating_add(head.file_size()),
                None => need.push((fsid, head.file_size(), free, dest.clone())),
            }
        }
        match need.into_iter().find(|n| n.1 > n.2) {
            Some((_, need, free, path)) => Err(Error::NoSpace { path, need, free }),
            None => Ok(()),
        }
    }
}

impl Part {
    /// Parses `I/N` with 1 ≤ I ≤ N.
    pub fn parse(s: &str) -> Result<Part, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N, e.g. 2/8"))?;
        let i: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: the part is not a whole number"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: the count is not a whole number"))?;
        Part::new(i, n).ok_or_else(|| format!("`{s}`: need 1 <= I <= N"))
    }

    /// The part a job engine gives this process, read through `var`: Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID` of `SLURM_ARRAY_TASK_COUNT`, counted from
    /// `SLURM_ARRAY_TASK_MIN` in steps of `SLURM_ARRAY_TASK_STEP`) or Kubernetes Indexed
    /// Jobs (`JOB_COMPLETION_INDEX` of `SPECC_PART_COUNT`). `None` outside a job engine;
    /// an error names the variables that do not fit together.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Option<Result<Part, String>> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let num = |k: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{k}={v} is not a whole number"))
        };
        if let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        {
            let go = || -> Result<Part, String> {
                let id_n = num("SLURM_ARRAY_TASK_ID", &id)?;
                let count_n = num("SLURM_ARRAY_TASK_COUNT", &count)?;
                // Arrays may start at any index (--array=0-7 or 1-8) and step (--array=0-15:4).
                let min = var("SLURM_ARRAY_TASK_MIN");
                let step = var("SLURM_ARRAY_TASK_STEP");
                let min_n = min
                    .as_deref()
                    .map_or(Ok(0), |m| num("SLURM_ARRAY_TASK_MIN", m))?;
                let step_n = step
                    .as_deref()
                    .map_or(Ok(1), |s| num("SLURM_ARRAY_TASK_STEP", s))?
                    .max(1);
                let vars = format!(
                    "SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_COUNT={count}, SLURM_ARRAY_TASK_MIN={}, SLURM_ARRAY_TASK_STEP={}",
                    min.as_deref().unwrap_or("unset"),
                    step.as_deref().unwrap_or("unset")
                );
                let offset = id_n
                    .checked_sub(min_n)
                    .filter(|o| o % step_n == 0)
                    .ok_or_else(|| {
                        format!("{vars}: the task is not in the array's range; pass --part I/N")
                    })?;
                let part = (offset / step_n)
                    .checked_add(1)
                    .and_then(|i| Part::new(i, count_n));
                part.ok_or_else(|| {
                    format!(
                        "{vars}: that is task {} of {count_n} (counting from 0), not a part; pass --part I/N",
                        offset / step_n
                    )
                })
            };
            return Some(go());
        }
        if let Some(index) = var("JOB_COMPLETION_INDEX") {
            let go = || -> Result<Part, String> {
                let index_n = num("JOB_COMPLETION_INDEX", &index)?;
                let count = var("SPECC_PART_COUNT").ok_or(
                    "JOB_COMPLETION_INDEX is set but SPECC_PART_COUNT is not: set it to the Job's completions",
                )?;
                let count_n = num("SPECC_PART_COUNT", &count)?;
                index_n
                    .checked_add(1)
                    .and_then(|i| Part::new(i, count_n))
                    .ok_or_else(|| {
                        format!(
                            "JOB_COMPLETION_INDEX={index} is not below SPECC_PART_COUNT={count}"
                        )
                    })
            };
            return Some(go());
        }
        None
    }
}

/// Parses a size: `2GB`, `500MB`, `1GiB`, `123` (bytes); decimal units as Hugging Face
/// writes them, binary ones with `i`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "`{s}` is negative: a size is positive, like 2GB or 500MB"
        ));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 2GB or 500MB"))?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024f64.powi(2),
        "GIB" => 1024f64.powi(3),
        "TIB" => 1024f64.powi(4),
        u => {
            return Err(format!(
                "unknown size unit `{u}`: use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB"
            ))
        }
    };
    let v = n * mult;
    if !(1.0..1.8e19).contains(&v) {
        return Err(format!("`{s}` is not a usable shard size"));
    }
    Ok(v as u64)
}

/// Writes `text` to `path` as a build writes a file: whole or not at all (a temporary file
/// renamed into place), never over one of `inputs`, a directory, a device or a dangling link.
pub fn write_text(path: &Path, text: &str, inputs: &[&Path]) -> Result<(), Error> {
    use std::io::Write as _;
    let protect: Vec<FileId> = inputs.iter().filter_map(|p| FileId::of(p)).collect();
    let dest = target::resolve(path, &protect)?;
    let dir = target::parent_dir(&dest);
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let temp = atomic::Temp::create(&dir).map_err(io)?;
    let mut f = temp.file();
    f.write_all(text.as_bytes()).map_err(io)?;
    atomic::commit(&dir, vec![(temp, dest)], Durability::Written, &Vec::new).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parts_from_job_engines() {
        let p = |vars: &[(&str, &str)]| Part::from_env(env(vars));
        assert_eq!(p(&[]), None);
        assert_eq!(
            p(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ]),
            Some(Ok(Part { index: 4, count: 4 }))
        );
        assert_eq!(
            p(&[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "8"),
                ("SLURM_ARRAY_TASK_MIN", "1")
            ]),
            Some(Ok(Part { index: 5, count: 8 }))
        );
        // --array=0-15:4 runs tasks 0, 4, 8, 12.
        let step = |id: &'static str| {
            p(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_STEP", "4"),
            ])
        };
        assert_eq!(step("12"), Some(Ok(Part { index: 4, count: 4 })));
        assert!(step("5")
            .unwrap()
            .unwrap_err()
            .contains("SLURM_ARRAY_TASK_STEP=4"));
        // An index past u64 or past the count is an error naming the variables, never 0/4.
        for id in ["18446744073709551615", "99999999999999999999", "7"] {
            let e = p(&[("SLURM_ARRAY_TASK_ID", id), ("SLURM_ARRAY_TASK_COUNT", "4")])
                .unwrap()
                .unwrap_err();
            assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{e}");
        }
        let e = p(&[
            ("JOB_COMPLETION_INDEX", "18446744073709551615"),
            ("SPECC_PART_COUNT", "4"),
        ])
        .unwrap()
        .unwrap_err();
        assert!(e.contains("SPECC_PART_COUNT=4"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("-5GB").unwrap_err().contains("negative"));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5XB").is_err());
    }
}
