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
    /// Byte offset where each line starts (after `\n`, `\r\n` or a lone `\r`, as YAML counts).
    line_starts: Vec<usize>,
    /// Characters before every [`BLOCK`]-th byte (empty for ASCII text), for columns in
    /// time independent of the line's length.
    chars_before: Vec<usize>,
}

/// Bytes between character-count checkpoints.
const BLOCK: usize = 4096;

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
    /// Reads a spec from disk (`-`: standard input), refusing files over
    /// [`MAX_SOURCE_BYTES`] without reading them whole.
    #[allow(clippy::result_large_err)]
    pub fn load(path: &Path) -> Result<Result<SourceFile, (SourceFile, NotUtf8)>, LoadError> {
        let shown = path.display().to_string();
        let io = |source| LoadError::Io {
            path: shown.clone(),
            source,
        };
        let mut bytes = Vec::new();
        // `take` bounds the read even for endless files such as /dev/zero.
        if path == Path::new("-") {
            std::io::stdin()
                .lock()
                .take(MAX_SOURCE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
        } else {
            let file = std::fs::File::open(path).map_err(io)?;
            file.take(MAX_SOURCE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
        }
        if bytes.len() as u64 > MAX_SOURCE_BYTES {
            return Err(LoadError::TooLarge { path: shown });
        }
        let with_path = |mut s: SourceFile| {
            if path != Path::new("-") {
                s.path = Some(path.to_path_buf());
            }
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

    /// Builds a source from text; the format follows the name's extension (`.toml`, or
    /// `.yaml`, `.yml`, `.json`), and the text's first line without one (standard input).
    pub fn new(name: &str, text: String) -> SourceFile {
        let sha256 = hex_sha256(text.as_bytes());
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let lower = name.to_ascii_lowercase();
        let format = if lower.ends_with(".toml") {
            SourceFormat::Toml
        } else if [".yaml", ".yml", ".json"]
            .iter()
            .any(|e| lower.ends_with(e))
        {
            SourceFormat::Yaml
        } else {
            sniff(&text)
        };
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            let brk = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if brk {
                line_starts.push(i + 1);
            }
        }
        let chars_before = if text.is_ascii() {
            Vec::new()
        } else {
            let mut v = Vec::with_capacity(bytes.len() / BLOCK + 1);
            let mut chars = 0;
            for block in bytes.chunks(BLOCK) {
                v.push(chars);
                // Characters are counted by their first byte (not a continuation byte).
                chars += block.iter().filter(|&&b| (b as i8) >= -0x40).count();
            }
            v
        };
        SourceFile {
            name: name.to_string(),
            text,
            format,
            sha256,
            path: None,
            line_starts,
            chars_before,
        }
    }

    /// The directory of the file it was read from (`.` for stdin or text).
    pub fn dir(&self) -> std::path::PathBuf {
        match self.path.as_deref().and_then(Path::parent) {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => ".".into(),
        }
    }

    /// Number of lines (a final line break ends the last line; it does not start another).
    pub fn line_count(&self) -> usize {
        let n = self.line_starts.len();
        if n > 1 && self.line_starts[n - 1] == self.text.len() {
            n - 1
        } else {
            n
        }
    }

    /// The 0-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// Byte range of line `line` (0-based), without its line break.
    pub fn line_range(&self, line: usize) -> (usize, usize) {
        let start = self.line_starts[line];
        let mut end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let b = self.text.as_bytes();
        if end > start && b[end - 1] == b'\n' {
            end -= 1;
        }
        if end > start && b[end - 1] == b'\r' {
            end -= 1;
        }
        (start, end)
    }

    /// Characters before byte `offset` in the whole text.
    fn chars_to(&self, offset: usize) -> usize {
        if self.chars_before.is_empty() {
            return offset;
        }
        let k = offset / BLOCK;
        let from = k * BLOCK;
        self.chars_before[k]
            + self.text.as_bytes()[from..offset]
                .iter()
                .filter(|&&b| (b as i8) >= -0x40)
                .count()
    }

    /// 0-based column, in characters, of byte `offset`.
    pub fn column(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let start = self.line_starts[self.line_of(offset)];
        self.chars_to(offset) - self.chars_to(start)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        (self.line_of(offset) + 1, self.column(offset) + 1)
    }
}

/// YAML or TOML, for text whose name says neither: TOML when its first line that is not a
/// comment is a table header (`[[layers]]`) or a `key = value` pair.
fn sniff(text: &str) -> SourceFormat {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(line) = first else {
        return SourceFormat::Yaml;
    };
    let header = line.starts_with("[[")
        || (line.starts_with('[') && line.ends_with(']') && !line.contains(','));
    let key_eq = line.split_once('=').is_some_and(|(k, _)| {
        let k = k.trim();
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c))
    });
    if header || key_eq {
        SourceFormat::Toml
    } else {
        SourceFormat::Yaml
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
    fn lone_carriage_returns_break_lines_as_in_yaml() {
        let s = SourceFile::new("a.yaml", "a: 1\rb: 2\r\nc: é3\n".into());
        assert_eq!(s.line_col(5), (2, 1));
        assert_eq!(s.line_col(11), (3, 1));
        assert_eq!(s.line_col(15), (3, 5), "columns count characters");
        assert_eq!(s.line_range(0), (0, 4));
        assert_eq!(s.line_range(1), (5, 9));
    }

    #[test]
    fn columns_on_a_long_non_ascii_line() {
        let text = "é".repeat(20_000) + "x";
        let s = SourceFile::new("a.yaml", text.clone());
        assert_eq!(s.line_col(40_000), (1, 20_001));
    }

    #[test]
    fn text_without_an_extension_is_sniffed() {
        let toml = SourceFile::new("<stdin>", "# m\nname = 'm'\n[[layers]]\n".into());
        assert_eq!(toml.format, SourceFormat::Toml);
        let toml = SourceFile::new("/dev/fd/63", "[[layers]]\ntype = 'dense'\n".into());
        assert_eq!(toml.format, SourceFormat::Toml);
        let yaml = SourceFile::new("<stdin>", "name: m\nlayers: []\n".into());
        assert_eq!(yaml.format, SourceFormat::Yaml);
        let json = SourceFile::new("-", "{\"name\": \"m\"}".into());
        assert_eq!(json.format, SourceFormat::Yaml);
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
