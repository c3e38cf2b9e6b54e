//! Spec source text: file name, contents, digest, and byte spans with line/column lookup.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest spec file accepted; anything bigger is refused before parsing.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// A byte range `[start, end)` in a [`SourceFile`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Number of bytes covered.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The format a spec is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// YAML 1.2 (also reads JSON).
    Yaml,
    /// TOML 1.0.
    Toml,
}

/// One spec file held in memory.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as given).
    pub name: String,
    /// The text, without a leading byte-order mark.
    pub text: String,
    /// Which parser reads it.
    pub format: SourceFormat,
    /// Hex SHA-256 of the file's bytes as read (byte-order mark included).
    pub sha256: String,
    /// The file it was read from, when read from one (a build never overwrites it).
    pub path: Option<PathBuf>,
    line_starts: Vec<usize>,
}

/// Why a spec file could not be read at all (the CLI exits with 2).
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The OS refused to open or read it.
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is bigger than [`MAX_SOURCE_BYTES`].
    TooLarge {
        /// The path as given.
        path: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => write!(f, "cannot read `{path}`: {source}"),
            LoadError::TooLarge { path } => write!(
                f,
                "`{path}` is larger than {} MiB; a model spec is a few kilobytes",
                MAX_SOURCE_BYTES / (1024 * 1024)
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            LoadError::TooLarge { .. } => None,
        }
    }
}

/// Text that is not valid UTF-8: the byte offset of the first bad byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8 {
    /// Offset of the first invalid byte.
    pub offset: usize,
}

impl SourceFile {
    /// Reads a spec from disk, refusing files over [`MAX_SOURCE_BYTES`] without reading them whole.
    #[allow(clippy::result_large_err)]
    pub fn load(path: &Path) -> Result<Result<SourceFile, (SourceFile, NotUtf8)>, LoadError> {
        let shown = path.display().to_string();
        let io = |source| LoadError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        // `take` bounds the read even for endless files such as /dev/zero.
        file.take(MAX_SOURCE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_SOURCE_BYTES {
            return Err(LoadError::TooLarge { path: shown });
        }
        let with_path = |mut s: SourceFile| {
            s.path = Some(path.to_path_buf());
            s
        };
        Ok(match SourceFile::from_bytes(&shown, bytes) {
            Ok(s) => Ok(with_path(s)),
            Err((s, bad)) => Err((with_path(s), bad)),
        })
    }

    /// Builds a source from bytes; invalid UTF-8 yields a lossy copy and the bad offset.
    // The error keeps the (lossy) text so its diagnostic can point into it; it is the rare path.
    #[allow(clippy::result_large_err)]
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<SourceFile, (SourceFile, NotUtf8)> {
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile::new(name, text)),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                Err((SourceFile::new(name, text), NotUtf8 { offset }))
            }
        }
    }

    /// Builds a source from text; the format follows the name's extension (`.toml`, else YAML).
    pub fn new(name: &str, text: String) -> SourceFile {
        let sha256 = hex_sha256(text.as_bytes());
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let format = if name.to_ascii_lowercase().ends_with(".toml") {
            SourceFormat::Toml
        } else {
            SourceFormat::Yaml
        };
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.to_string(),
            text,
            format,
            sha256,
            path: None,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = SourceFile::new("a.yaml", "ab\ncdé\nf".into());
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(7), (2, 4));
        assert_eq!(s.line_col(8), (3, 1));
    }

    #[test]
    fn bom_is_stripped_and_format_follows_extension() {
        let s = SourceFile::new("M.TOML", "\u{feff}a = 1".into());
        assert_eq!(s.text, "a = 1");
        assert_eq!(s.format, SourceFormat::Toml);
    }

    #[test]
    fn digest_is_of_the_bytes_as_read() {
        let s = SourceFile::new("a.yaml", "abc".into());
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn invalid_utf8_reports_offset() {
        let err = SourceFile::from_bytes("x.yaml", b"ab\xffcd".to_vec()).unwrap_err();
        assert_eq!(err.1.offset, 2);
    }
}
