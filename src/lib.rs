//! specc: a declarative model-spec compiler.
//!
//! A spec (YAML or TOML) describes a model's layers and how each tensor starts. specc
//! reads it through a pipeline of stages, each a function from one type to the next:
//!
//! 1. [`syntax::parse`]: text to a spanned value tree ([`syntax::Node`]).
//! 2. [`spec::lower`]: the tree to the spec as written ([`spec::Spec`]), unknown keys reported.
//! 3. [`resolve::resolve`]: the spec to a [`model::Model`]: every tensor's name, shape,
//!    dtype, fans and initializer, as the layout's framework would create it.
//!
//! Every stage reports problems as [`diag::Diagnostic`]s that point into the source;
//! [`check`] runs the stages and returns the model with all problems of the file.

#![deny(missing_docs)]

pub mod build;
pub mod cli;
pub mod diag;
pub mod import;
pub mod init;
pub mod inspect;
pub mod layers;
pub mod lint;
pub mod model;
pub mod output;
pub mod report;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod spec;
pub mod syntax;
pub mod verify;

pub use diag::{Diagnostic, Severity};
pub use model::{DType, Fans, Layout, Model, Role, TensorDecl};
pub use source::{SourceFile, Span};

/// The result of checking one spec.
#[derive(Debug)]
pub struct Checked {
    /// The resolved model, when the spec has no errors.
    pub model: Option<Model>,
    /// Every problem found, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        diag::has_errors(&self.diagnostics)
    }
}

/// Command-line overrides of what the spec says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Lint levels from the command line (`--allow/--warn/--deny NAME`), in order.
    pub lints: Vec<(String, lint::Level)>,
    /// Replaces the spec's `seed` (initializers with their own `seed` keep it).
    pub seed: Option<u64>,
    /// Replaces the dtype of every floating-point tensor, layer overrides included.
    pub dtype: Option<DType>,
    /// `--set NAME=VALUE`: values replacing the spec's `vars`, in order.
    pub set: Vec<(String, String)>,
}

/// Parses, lowers and resolves one spec, collecting every problem of the file.
pub fn check(source: &SourceFile) -> Checked {
    check_with(source, Options::default())
}

/// Reads the spec at `path` and checks it with `options`. A file that is not UTF-8 is an
/// error diagnostic at its first invalid byte (the check stops there); a file that cannot
/// be read is the `Err`.
pub fn load_and_check(
    path: &std::path::Path,
    options: Options,
) -> Result<(SourceFile, Checked), source::LoadError> {
    Ok(match SourceFile::load(path)? {
        Ok(src) => {
            let checked = check_with(&src, options);
            (src, checked)
        }
        Err((src, bad)) => {
            let d = Diagnostic::error(
                diag::NOT_UTF8,
                Span::new(bad.offset, bad.offset + 1),
                "the file is not UTF-8 text",
            )
            .label("first invalid byte")
            .help("save the spec as UTF-8");
            let checked = Checked {
                model: None,
                diagnostics: vec![d],
            };
            (src, checked)
        }
    })
}

/// [`check`] with command-line overrides.
pub fn check_with(source: &SourceFile, options: Options) -> Checked {
    let mut diags = diag::Diags::new();
    let model = match syntax::parse(source) {
        Err(d) => {
            diags.extend(d);
            None
        }
        Ok(root) => spec::lower(&root, &options.set, &mut diags).and_then(|mut s| {
            if let Some(seed) = options.seed {
                s.seed = seed;
            }
            s.dir = source.dir();
            // Past the diagnostics limit the spec was not read whole: nothing to resolve.
            (!diags.is_full()).then(|| resolve::resolve(&s, options.dtype, &mut diags))
        }),
    };
    // Lints judge a model that resolved cleanly; on a broken one they would only add noise.
    if let Some(m) = &model {
        if !diags.has_errors() {
            let levels = lint::Levels::new(&m.lint_levels, &options.lints);
            diags.extend(lint::run(m, &levels));
        }
    }
    let failed = diags.has_errors();
    let mut diagnostics = diags.into_vec();
    diagnostics.sort_by_key(|d| d.primary.as_ref().map_or(usize::MAX, |l| l.span.start));
    Checked {
        model: if failed { None } else { model },
        diagnostics,
    }
}
