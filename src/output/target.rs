//! Where an output file really goes, and whether specc may replace what is there.
//!
//! specc replaces a file by renaming a finished temporary file over it. That is safe for
//! a regular file and nothing else: renaming over `/dev/null` would replace the device
//! node, over a FIFO or socket the endpoint. A symbolic link is followed, as `cp` and
//! Python's `open(path, "wb")` follow it: the link stays and its target gets the new
//! contents (the temporary file is made beside the target, so the rename stays atomic).
//! A link whose target does not exist is refused, as GNU `cp` refuses it.

use super::Error;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file's identity (device, inode), to tell whether two paths name the same file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file `path` names (symlinks followed), if it exists.
    pub fn of(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The word for a file type that is not a regular file.
fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The path a write to `path` lands on: `path` itself, or the end of its chain of
/// symbolic links. Refuses anything but a regular file or nothing, and the files in
/// `protect` (the spec being built).
pub fn resolve(path: &Path, protect: &[FileId]) -> Result<PathBuf, Error> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(at),
            Err(source) => return Err(Error::Io { path: at, source }),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let link = std::fs::read_link(&at).map_err(|source| Error::Io {
                path: at.clone(),
                source,
            })?;
            let next = match at.parent() {
                Some(dir) => dir.join(&link),
                None => link,
            };
            if std::fs::symlink_metadata(&next).is_err() {
                return Err(Error::DanglingLink {
                    path: path.to_path_buf(),
                    target: next,
                });
            }
            at = next;
            continue;
        }
        if !ft.is_file() {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
                kind: kind(ft),
            });
        }
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if protect.contains(&id) {
            return Err(Error::OutputIsInput {
                path: path.to_path_buf(),
            });
        }
        return Ok(at);
    }
    Err(Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("too many levels of symbolic links"),
    })
}

/// The directory that holds `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
