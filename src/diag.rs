//! Diagnostics: one struct for every problem specc reports, its stable codes, and renderers.
//!
//! Stages build [`Diagnostic`]s and never print; the CLI picks a renderer
//! ([`render_human`] or [`render_json`]) that only reads them.

use crate::source::{SourceFile, Span};
use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: never changes the exit code.
    Note,
    /// Reported; fails only under `--deny-warnings`.
    Warning,
    /// The spec cannot be built.
    Error,
}

/// A labelled span in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub text: String,
}

/// One problem found in a spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Stable kebab-case code (an error code of [`CODES`] or a lint name).
    pub code: &'static str,
    /// Error, warning or note.
    pub severity: Severity,
    /// One line, lowercase, no final period, spec words in backticks.
    pub message: String,
    /// The offending key or value; `None` only for problems of the whole file.
    pub primary: Option<Label>,
    /// Other places involved (the first definition of a duplicate, say).
    pub secondary: Vec<Label>,
    /// What to write instead.
    pub help: Option<String>,
    /// The layer's path (`h.0.attn`), when the problem belongs to a layer.
    pub path: Option<String>,
}

/// Longest message, label or help kept whole: user text quoted in a message (a 12 MB
/// unknown name) is cut in the middle so that a report stays readable and small.
const MAX_TEXT: usize = 400;

/// `s`, or its start and end around an elision mark when it is longer than [`MAX_TEXT`].
fn clip(s: String) -> String {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut head = MAX_TEXT * 2 / 3;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - MAX_TEXT / 3;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…({} bytes)…{}", &s[..head], tail - head, &s[tail..])
}

impl Diagnostic {
    /// An error with `code` at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: clip(message.into()),
            primary: Some(Label {
                span,
                text: String::new(),
            }),
            secondary: Vec::new(),
            help: None,
            path: None,
        }
    }

    /// Sets the text of the primary label.
    pub fn label(mut self, text: impl Into<String>) -> Diagnostic {
        if let Some(l) = &mut self.primary {
            l.text = clip(text.into());
        }
        self
    }

    /// Adds a secondary label.
    pub fn also(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            text: clip(text.into()),
        });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(clip(help.into()));
        self
    }

    /// Sets the layer path, unless one is already set.
    pub fn at_path(mut self, path: &str) -> Diagnostic {
        if self.path.is_none() && !path.is_empty() {
            self.path = Some(path.to_string());
        }
        self
    }
}

/// Most diagnostics kept for one spec; past it, problems are counted, not stored, and
/// reading stops where it can (a spec with a thousand problems needs fixing, not more).
pub const MAX_DIAGNOSTICS: usize = 1000;

/// The problems of one spec as they are found: the first [`MAX_DIAGNOSTICS`] in full, the
/// rest counted, so that a hostile file cannot make the report itself unbounded.
#[derive(Debug, Default)]
pub struct Diags {
    kept: Vec<Diagnostic>,
    dropped: usize,
    dropped_errors: bool,
    /// Values already reported (a broken expression): later problems there are its echo.
    poisoned: Vec<Span>,
}

impl Diags {
    /// No problems yet.
    pub fn new() -> Diags {
        Diags::default()
    }

    /// Marks a value as reported: diagnostics pointing at it are dropped from now on.
    pub fn poison(&mut self, span: Span) {
        self.poisoned.push(span);
    }

    /// Records a problem.
    pub fn push(&mut self, d: Diagnostic) {
        if let Some(p) = &d.primary {
            if self.poisoned.contains(&p.span) {
                return;
            }
        }
        if self.kept.len() < MAX_DIAGNOSTICS {
            self.kept.push(d);
        } else {
            self.dropped += 1;
            self.dropped_errors |= d.severity == Severity::Error;
        }
    }

    /// Records several problems.
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        for d in ds {
            self.push(d);
        }
    }

    /// Every problem recorded, kept or only counted (a mark for [`Diags::since`]).
    pub fn len(&self) -> usize {
        self.kept.len() + self.dropped
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no more diagnostics are kept: callers that loop over user input stop.
    pub fn is_full(&self) -> bool {
        self.kept.len() >= MAX_DIAGNOSTICS
    }

    /// The kept diagnostics recorded after `mark` (a former [`Diags::len`]).
    pub fn since(&mut self, mark: usize) -> &mut [Diagnostic] {
        let from = mark.min(self.kept.len());
        &mut self.kept[from..]
    }

    /// Whether any recorded problem is an error.
    pub fn has_errors(&self) -> bool {
        self.dropped_errors || has_errors(&self.kept)
    }

    /// The kept diagnostics, and a last one saying how many more there were.
    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        if self.is_full() {
            let more = if self.dropped > 0 {
                format!("{} more not shown", self.dropped)
            } else {
                "specc stopped reading there".to_string()
            };
            self.kept.push(Diagnostic {
                code: INPUT_LIMIT,
                severity: if self.dropped_errors || has_errors(&self.kept) {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: format!("more than {MAX_DIAGNOSTICS} problems: {more}"),
                primary: None,
                secondary: Vec::new(),
                help: Some("fix the problems shown and check again".into()),
                path: None,
            });
        }
        self.kept
    }
}

/// Static facts about one error code.
#[derive(Debug)]
pub struct CodeInfo {
    /// The code as users see it.
    pub name: &'static str,
    /// One line.
    pub summary: &'static str,
    /// What triggers it and how to fix it; shown by `specc explain`.
    pub explanation: &'static str,
}

macro_rules! codes {
    ($($konst:ident = $name:literal, $summary:literal, $expl:literal;)*) => {
        $(#[doc = $summary] pub const $konst: &str = $name;)*
        /// Every hard-error code, in the order of the docs.
        pub const CODES: &[CodeInfo] = &[$(CodeInfo { name: $name, summary: $summary, explanation: $expl }),*];
    };
}

codes! {
    SYNTAX = "syntax-error", "the file is not valid YAML or TOML",
        "The parser could not read the file. The label points at the first character it could not \
         understand. Common causes: a tab used for indentation in YAML, a missing `:` after a key, \
         an unclosed bracket or quote, or a TOML key defined twice.";
    INPUT_LIMIT = "input-limit", "the spec exceeds a safety limit (size, nesting, values, layers, tensors, memory)",
        "specc refuses inputs that would take unbounded time or memory: files over 16 MiB, \
         nesting deeper than 64 levels, more than 1,000,000 values (after YAML aliases are \
         expanded: \"billion laughs\"), a model of more than 1,000,000 layers or 250,000 tensors \
         once `repeat` is applied, a structured initializer (orthogonal, sparse) that would need more \
         than 2 GiB of memory to compute, and more than 1,000 problems in one file. A real model \
         spec is far below every limit; use `repeat:` on a `sequential` instead of copying blocks.";
    NOT_UTF8 = "not-utf8", "the file is not UTF-8 text",
        "Specs are UTF-8 text. The label points at the first byte that is not valid UTF-8; \
         re-save the file as UTF-8.";
    UNKNOWN_KEY = "unknown-key", "a key that this place of the spec does not have",
        "Every map in a spec has a fixed set of keys (SPEC.md sections 1-3). A misspelt key is an \
         error rather than being ignored, so that a typo such as `kernel_initialiser` does not \
         silently fall back to a default. The help line names the nearest valid key.";
    MISSING_KEY = "missing-key", "a required key is absent",
        "Some keys have no default: `name` and `layers` at the top, `type` on every layer, \
         `units` on dense, `filters` and `kernel_size` on convolutions, and so on. Add the key.";
    WRONG_TYPE = "wrong-type", "a value of the wrong kind (string, number, list, map)",
        "The value has the wrong kind: for example a string where a whole number is expected \
         (`units: \"64\"`), or a map where a list is expected. Write the kind the help line names.";
    INVALID_VALUE = "invalid-value", "a value outside the allowed set or range",
        "The value has the right kind but is not allowed here: an unknown `dtype`, `layout`, \
         `padding` or `activation` word, a negative number where a size is expected, a number \
         too large for its field. The help line lists the valid choices.";
    UNKNOWN_LAYER_TYPE = "unknown-layer-type", "a layer `type` that specc does not know",
        "Layer types are: dense, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, \
         conv_transpose3d, depthwise_conv2d, separable_conv2d (keras), embedding, layer_norm, \
         rms_norm, batch_norm, group_norm, instance_norm, normalization (keras), prelu, lstm, \
         gru, rnn, multi_head_attention, max_pool1d, max_pool2d, max_pool3d, avg_pool1d, \
         avg_pool2d, avg_pool3d, adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, \
         adaptive_max_pool2d, global_avg_pool1d, global_avg_pool2d, global_avg_pool3d, \
         global_max_pool1d, global_max_pool2d, upsample, permute, reshape, zero_padding1d, zero_padding2d, \
         zero_padding3d, flatten, activation, \
         dropout, parameter, sequential, parallel. docs/format.md describes each; the help line \
         names the nearest one.";
    UNKNOWN_INITIALIZER = "unknown-initializer", "an initializer name that specc does not know",
        "Initializer names are those of Keras (glorot_uniform, he_normal, truncated_normal, ...) \
         and PyTorch (xavier_uniform, kaiming_normal, trunc_normal, ...), plus `default`. Case, \
         CamelCase, a trailing `_initializer` or a trailing `_` do not matter. The help line \
         names the nearest one.";
    UNKNOWN_PARAMETER = "unknown-parameter", "an initializer parameter that this initializer does not take",
        "Each initializer takes its home framework's parameter names: Keras `random_normal` takes \
         `mean` and `stddev`, PyTorch `normal` takes `mean` and `std`, `kaiming_normal` takes `a`, \
         `mode` and `nonlinearity`. Every initializer also takes `seed`.";
    INVALID_PARAMETER = "invalid-parameter", "an initializer parameter with an impossible value",
        "The parameter value cannot describe a distribution: a negative standard deviation, \
         `minval` greater than `maxval`, a `sparsity` outside [0, 1), a truncation range that \
         holds no probability mass, an unknown `mode` or `nonlinearity`.";
    FROM_FILE = "from-file", "a `from_file` source that cannot fill its tensor",
        "`from_file` reads a tensor's values from a safetensors file, a sharded directory or its \
         index, or a `.npy`, at a path relative to the spec. The source must exist, hold the \
         tensor (by default the one of the same name; `tensor:` names another), and have its \
         shape (`transpose: true` reads a matrix transposed); floating-point values do not fill \
         an integer tensor. The message says which of these failed.";
    IMPOSSIBLE_SHAPE = "impossible-shape", "an initializer that cannot fill this tensor's shape",
        "Some initializers only make sense for some shapes: `identity` and `eye` need a matrix, \
         `orthogonal` needs at least two dimensions, `dirac` needs a convolution kernel whose \
         output channels divide into its groups, `sparse` needs a matrix. Pick an initializer \
         for the tensor's shape, or change the layer.";
    ZERO_SIZE = "zero-size", "a size of zero",
        "A size (units, filters, kernel size, number of heads...) of zero makes an empty tensor, \
         which no framework builds. Write a positive size.";
    SHAPE_OVERFLOW = "shape-overflow", "a shape whose element count does not fit in 64 bits",
        "The product of the tensor's dimensions (or the model's total) overflows a 64-bit \
         integer. No machine can hold such a tensor; check the sizes for a typo.";
    SHAPE_MISMATCH = "shape-mismatch", "sizes that do not fit together",
        "Two sizes disagree: channels not divisible by `groups`, `embed_dim` not divisible by \
         `num_heads`, a residual block whose output shape differs from its input, a pooling or \
         convolution window larger than its (padded) input.";
    MISSING_INPUT_SIZE = "missing-input-size", "a layer's input size cannot be inferred",
        "A layer's input size comes from the previous layer's output, or from the top-level \
         `input` for the first layer. Here neither gives it (the first layer with no `input`, \
         or after a `flatten` of a shape with unknown sizes). State it on the layer \
         (`in_features`, `in_channels`, ...) or give `input:`.";
    DUPLICATE_TENSOR = "duplicate-tensor", "two tensors with the same name",
        "Two layers produce the same tensor name, so one would overwrite the other in the \
         output file. Give the layers different `name`s.";
    BAD_TIE = "bad-tie", "a `tie` that does not name an embedding of the right shape",
        "`tie:` makes a dense layer reuse an embedding's matrix (GPT-2's `lm_head` reuses `wte`). \
         It must name the path of an `embedding` layer defined earlier, whose `num_embeddings` \
         equals the dense `units` and whose `embedding_dim` equals its `in_features`.";
    UNKNOWN_VARIABLE = "unknown-variable", "an expression names a variable that is not defined there",
        "A `${...}` expression may read the spec's `vars`, the index of each `repeat` around it \
         (`i`, or the name its `index:` gives) and, inside an initializer, `fan_in` and `fan_out` \
         of the tensor. Any other name is an error; the help line names the nearest one. \
         `--set NAME=VALUE` must name a variable the spec defines under `vars:`.";
    INVALID_EXPRESSION = "invalid-expression", "a `${...}` expression that cannot be computed",
        "The expression is not well formed (an unclosed parenthesis, an unknown operator or \
         function), or its value cannot be computed: a division by zero, the square root or \
         logarithm of a negative number, a result that is not finite, variables whose values \
         refer to each other in a cycle. Where a size is expected the value must be a whole \
         number.";
    UNKNOWN_LINT = "unknown-lint", "a lint name that specc does not know",
        "`lints:`, `allow:` and the `--allow/--warn/--deny` flags take lint names as listed by \
         `specc explain --list`. The help line names the nearest one.";
}

/// Looks up an error code.
pub fn code_info(name: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.name == name)
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Longer than any name could be: nothing is close, and comparing costs |word|·|name|.
    if word.len() > 256 {
        return None;
    }
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let limit = (c.len().max(w.len()) / 3).max(1);
            let prefix =
                c.len() >= w.len() && w.len() >= 3 && c.to_ascii_lowercase().starts_with(&w);
            // The distance is at least the difference in length: skip hopeless pairs.
            if c.len().abs_diff(w.len()) > limit && !prefix {
                return None;
            }
            let d = strsim::damerau_levenshtein(&w, &c.to_ascii_lowercase());
            (d <= limit || prefix).then_some((d, c))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// A diagnostic paired with the excerpt of its file that miette renders.
struct Rendered<'a> {
    diag: &'a Diagnostic,
    excerpt: &'a Excerpt<'a>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diag
            .primary
            .as_ref()
            .map(|_| self.excerpt as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let spans = self.excerpt.labels.iter();
        let labels = self.diag.primary.iter().chain(&self.diag.secondary);
        Some(Box::new(labels.zip(spans).enumerate().map(
            |(i, (l, s))| {
                let text = (!l.text.is_empty()).then(|| l.text.clone());
                let at = (s.start, s.len());
                if i == 0 && self.diag.primary.is_some() {
                    miette::LabeledSpan::new_primary_with_span(text, at)
                } else {
                    miette::LabeledSpan::new_with_span(text, at)
                }
            },
        )))
    }
}

/// Widest part of a line an excerpt shows, in bytes; longer lines are cut around the labels.
const EXCERPT_LINE: usize = 240;
/// A label over more lines than this is shown on its first line only.
const EXCERPT_SPAN_LINES: usize = 4;

/// One line of an excerpt.
struct ExcerptLine {
    /// Where it starts in the excerpt's text.
    start: usize,
    /// Where its shown part ends (before its `\n`).
    end: usize,
    /// Its line in the file, 0-based.
    line: usize,
    /// Bytes of the file before the shown part (an elided line start).
    from: usize,
    /// Bytes of `…` put before the shown part.
    prefix: usize,
    /// Consecutive lines of the file share a group.
    group: usize,
}

/// The lines of a file around one diagnostic's labels, each cut to [`EXCERPT_LINE`]
/// bytes around what is labelled, with the labels moved onto it: rendering then costs
/// the excerpt's size, not the file's, whatever the file's line lengths and line breaks.
struct Excerpt<'a> {
    name: String,
    text: String,
    lines: Vec<ExcerptLine>,
    /// The diagnostic's labels (primary first) as spans of `text`.
    labels: Vec<Span>,
    /// The file, for real columns.
    source: &'a SourceFile,
}

impl<'a> Excerpt<'a> {
    fn new(src: &'a SourceFile, d: &Diagnostic) -> Excerpt<'a> {
        let text_len = src.text.len();
        let last = src.line_count() - 1;
        // A label at the very end (after the final line break) is shown on the last line.
        let line = |o: usize| src.line_of(o).min(last);
        // Label spans in the file, clipped to the text and to a few lines.
        let spans: Vec<Span> = d
            .primary
            .iter()
            .chain(&d.secondary)
            .map(|l| {
                let start = l.span.start.min(text_len);
                let mut end = l.span.end.clamp(start, text_len);
                let (l0, l1) = (line(start), line(end));
                if l1 > l0 + EXCERPT_SPAN_LINES {
                    end = src.line_range(l0).1.max(start);
                }
                Span::new(start, end)
            })
            .collect();
        // Lines to show: each label's lines and one of context on either side, and the lines
        // between two labels up to a few lines apart (one snippet reads better than two).
        let mut ranges: Vec<(usize, usize)> = spans
            .iter()
            .map(|s| {
                let (l0, l1) = (line(s.start), line(s.end));
                (l0.saturating_sub(1), (l1 + 1).min(last))
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some((_, e)) if a <= *e + 3 => *e = (*e).max(b),
                _ => merged.push((a, b)),
            }
        }
        let wanted: Vec<usize> = merged.iter().flat_map(|&(a, b)| a..=b).collect();
        let mut text = String::new();
        let mut lines: Vec<ExcerptLine> = Vec::with_capacity(wanted.len());
        let mut group = 0;
        for (i, &line) in wanted.iter().enumerate() {
            if i > 0 && wanted[i - 1] + 1 != line {
                group += 1;
            }
            let (ls, le) = src.line_range(line);
            let on_line: Vec<&Span> = spans
                .iter()
                .filter(|s| s.start <= le && s.end >= ls)
                .collect();
            let (mut from, mut to) = (ls, le);
            if le - ls > EXCERPT_LINE {
                let anchor = on_line.first().map_or(ls, |s| s.start.max(ls));
                from = anchor.saturating_sub(EXCERPT_LINE / 3).max(ls);
                to = (from + EXCERPT_LINE).min(le);
                while !src.text.is_char_boundary(from) {
                    from -= 1;
                }
                while !src.text.is_char_boundary(to) {
                    to += 1;
                }
            }
            let start = text.len();
            if from > ls {
                text.push('…');
            }
            let prefix = text.len() - start;
            // A tab or a lone carriage return would move what follows; show it as a space.
            text.extend(src.text[from..to].chars().map(|c| match c {
                '\r' | '\t' => ' ',
                c => c,
            }));
            let end = text.len();
            if to < le {
                text.push('…');
            }
            text.push('\n');
            lines.push(ExcerptLine {
                start,
                end,
                line,
                from,
                prefix,
                group,
            });
        }
        let excerpt_offset = |o: usize, lines: &[ExcerptLine]| -> usize {
            let l = line(o);
            match lines.iter().find(|x| x.line == l) {
                Some(x) => {
                    let shown = o.saturating_sub(x.from);
                    (x.start + x.prefix + shown).min(x.end)
                }
                None => 0,
            }
        };
        let labels = spans
            .iter()
            .map(|s| {
                let a = excerpt_offset(s.start, &lines);
                let b = excerpt_offset(s.end, &lines).max(a);
                Span::new(a, b)
            })
            .collect();
        Excerpt {
            name: src.name.clone(),
            text,
            lines,
            labels,
            source: src,
        }
    }

    /// The excerpt line holding excerpt offset `o`.
    fn line_at(&self, o: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= o)
            .saturating_sub(1)
    }
}

impl miette::SourceCode for Excerpt<'_> {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        if self.lines.is_empty() {
            return Err(miette::MietteError::OutOfBounds);
        }
        let (a, b) = (
            self.line_at(span.offset()),
            self.line_at(span.offset() + span.len().saturating_sub(1)),
        );
        let group = self.lines[a].group;
        let mut first = a.saturating_sub(before);
        while self.lines[first].group != group {
            first += 1;
        }
        let mut last = (b + after).min(self.lines.len() - 1);
        while self.lines[last].group != self.lines[b].group {
            last -= 1;
        }
        let data_start = self.lines[first].start;
        let data_end = self
            .lines
            .get(last + 1)
            .map_or(self.text.len(), |l| l.start);
        // The column of the span's start in the file (for the `[file:line:col]` header).
        let src = self.source;
        let at = &self.lines[a];
        let shown = span.offset().saturating_sub(at.start + at.prefix);
        let file_offset = (at.from + shown).min(src.line_range(at.line).1);
        let column = if before == 0 {
            src.column(file_offset)
        } else {
            0
        };
        // miette joins two labels' snippets when one's lines reach the other's: lines of
        // one group are consecutive in the file, so count to the group's end.
        let group_end = self.lines[first..]
            .iter()
            .take_while(|l| l.group == group)
            .count();
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[data_start..data_end],
            (data_start, data_end - data_start).into(),
            self.lines[first].line,
            column,
            group_end,
        )))
    }
}

/// Human rendering options.
#[derive(Clone, Copy, Debug)]
pub struct HumanStyle {
    /// ANSI colours and Unicode box drawing.
    pub color: bool,
    /// Wrap width in columns.
    pub width: usize,
}

/// Renders diagnostics of one file the way a terminal user reads them.
pub fn render_human(source: &SourceFile, diags: &[Diagnostic], style: HumanStyle) -> String {
    let theme = if style.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let excerpt = Excerpt::new(source, d);
        let r = Rendered {
            diag: d,
            excerpt: &excerpt,
        };
        if handler.render_report(&mut out, &r).is_err() {
            out.push_str(&format!("{}: {}\n", d.code, d.message));
        }
        if let Some(p) = &d.path {
            out.push_str(&format!("  layer: {p}\n"));
        }
        out.push('\n');
    }
    out
}

/// One diagnostic in the `--format json` output (SPEC.md section 6).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    /// Stable code or lint name.
    pub code: &'static str,
    /// error / warning / note.
    pub severity: Severity,
    /// One line.
    pub message: String,
    /// The spec file.
    pub file: String,
    /// 1-based line of the offending key or value (0 when the whole file is meant).
    pub line: usize,
    /// 1-based column (0 when the whole file is meant).
    pub column: usize,
    /// Layer path, or null.
    pub path: Option<String>,
    /// What to write instead, or null.
    pub help: Option<String>,
    /// Label text at the primary location.
    pub label: Option<String>,
    /// Byte offsets `[start, end)` of the primary location.
    pub span: Option<[usize; 2]>,
}

/// Converts diagnostics of one file to their JSON form.
pub fn to_json(source: &SourceFile, diags: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    diags
        .iter()
        .map(|d| {
            let (line, column) = d
                .primary
                .as_ref()
                .map_or((0, 0), |l| source.line_col(l.span.start));
            JsonDiagnostic {
                code: d.code,
                severity: d.severity,
                message: d.message.clone(),
                file: source.name.clone(),
                line,
                column,
                path: d.path.clone(),
                help: d.help.clone(),
                label: d
                    .primary
                    .as_ref()
                    .and_then(|l| (!l.text.is_empty()).then(|| l.text.clone())),
                span: d.primary.as_ref().map(|l| [l.span.start, l.span.end]),
            }
        })
        .collect()
}

/// Whether any of `diags` is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for c in CODES {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert!(c
                .name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'));
            assert!(
                c.explanation.len() > 60,
                "{} needs a real explanation",
                c.name
            );
        }
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let c = ["units", "in_features", "kernel_initializer"];
        assert_eq!(did_you_mean("unit", c), Some("units"));
        assert_eq!(
            did_you_mean("kernel_initialiser", c),
            Some("kernel_initializer")
        );
        assert_eq!(did_you_mean("zzz", c), None);
    }
}
