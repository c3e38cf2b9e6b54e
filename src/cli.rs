//! The `specc` command line: argument parsing, rendering and exit codes over the library
//! (the binary and the Python package's `specc` command both run [`run`]).

use crate::diag::{self, HumanStyle};
use crate::report;
use crate::{Checked, Diagnostic, Severity, SourceFile};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Check a model spec (YAML or TOML) and explain the tensors it declares.
///
/// A spec lists a model's layers and how each weight starts. `specc check` reports every
/// mistake with its line; `specc summary` lists every tensor with its shape and initializer.
///
/// Exit codes: 0 success (warnings allowed), 1 the spec has errors (or warnings under
/// --deny-warnings), 2 the command could not run (bad arguments, unreadable input).
#[derive(Parser)]
#[command(name = "specc", version, about, long_about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and lint specs; print every problem with its location.
    Check {
        /// Spec files (.yaml, .yml or .toml).
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        /// Output format: human-readable, or JSON for tools.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        levels: LevelArgs,
    },
    /// Check a spec, then generate its weights deterministically and write them as safetensors.
    ///
    /// Errors (and denied lints) stop the build with exit 1 and no file is written; the
    /// output appears only when complete (written to a temporary file, then renamed).
    Build {
        /// A spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// The safetensors file to write.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        #[command(flatten)]
        values: ValueArgs,
        /// Worker threads (default: all cores, and never more); the output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Split the output into Hugging Face shards of at most this size (`2GB`, `500MB`,
        /// `1GiB`): OUT-0000k-of-0000N.safetensors plus OUT.index.json beside OUT.
        #[arg(long, value_name = "SIZE", value_parser = crate::output::parse_size, allow_hyphen_values = true)]
        max_shard_size: Option<u64>,
        /// Build only the shards of part I of N (1-based; shard k belongs to part k mod N),
        /// so N processes together write exactly what one would. Without it, read from
        /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/SPECC_PART_COUNT.
        #[arg(long, value_name = "I/N", value_parser = crate::output::Part::parse, allow_hyphen_values = true)]
        part: Option<crate::output::Part>,
        /// Flush each file to the device (fsync) before renaming it into place, so that it
        /// survives a power loss once the build returns; slower, by the disk's write speed.
        #[arg(long)]
        fsync: bool,
        #[command(flatten)]
        levels: LevelArgs,
    },
    /// Show what a safetensors file holds: metadata, and per tensor dtype, shape, mean, std, min, max.
    Inspect {
        /// A .safetensors file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Output format: a table, or JSON for tools.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Check that a safetensors file or sharded directory holds exactly what SPEC builds.
    ///
    /// Compares names, shapes, dtypes and every tensor's bytes, regenerated piece by piece
    /// (bounded memory, in parallel); names the first differing element. With --stats, tests
    /// each tensor against its declared distribution instead (a checkpoint another framework
    /// initialized with the same recipe). Exit 0 match, 1 mismatch, 2 could not run
    /// (unreadable file, or a spec with errors).
    Verify {
        /// A spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// A .safetensors file, a sharded directory, or its .safetensors.index.json.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Test distributions (Kolmogorov-Smirnov per tensor) instead of comparing bytes.
        #[arg(long)]
        stats: bool,
        /// As the build was given them.
        #[command(flatten)]
        values: ValueArgs,
        /// Worker threads (default: all cores); the verdict does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Output format: human-readable, or JSON for tools.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Replace one of the spec's `vars` (repeatable), as the build did.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        set: Vec<(String, String)>,
    },
    /// Write one self-contained HTML page about a spec: its tensors, the predicted signal per
    /// layer against the lint band, each tensor's declared density (over a checkpoint's
    /// histogram with --weights), and the lints at their lines.
    ///
    /// Exit 0 written, 1 the spec has errors (nothing written), 2 the weights cannot be read
    /// or the page cannot be written.
    Report {
        /// A spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// The HTML file to write.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// A checkpoint (file, sharded directory or index) whose values to histogram.
        #[arg(long, value_name = "PATH")]
        weights: Option<PathBuf>,
        #[command(flatten)]
        levels: LevelArgs,
    },
    /// List every tensor a spec declares: name, shape, dtype, initializer, fans, parameters.
    Summary {
        /// A spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// Output format: a table, or JSON for tools.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        levels: LevelArgs,
    },
    /// Write a spec for a model another tool describes (`specc import hf config.json`).
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Print the JSON Schema of the spec format, for editors (yaml-language-server) and validators.
    Schema,
    /// Explain an error code or a lint: what it means, why, and how to fix or allow it.
    Explain {
        /// A code or lint name, e.g. `zero-kernel` or `unknown-key`.
        #[arg(value_name = "NAME", required_unless_present = "list")]
        name: Option<String>,
        /// List every code and lint.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// A spec for a Hugging Face transformers config.json, with its family's `_init_weights`
    /// distributions and its values as the spec's `vars` (no network).
    Hf {
        /// The config.json.
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
        /// Write the spec here (default: stdout).
        #[arg(short, long, value_name = "SPEC")]
        output: Option<PathBuf>,
        /// Use this template spec instead of the family's own (any `model_type`): its
        /// `vars` lines take the config's values of the same names.
        #[arg(long, value_name = "TEMPLATE")]
        template: Option<PathBuf>,
    },
}

/// What changes a build's values besides the spec: `build` takes them, `verify` takes the
/// ones the build was given.
#[derive(clap::Args)]
struct ValueArgs {
    /// Seed for every tensor (overrides the spec's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Element type of every floating-point tensor (overrides the spec and its layers).
    #[arg(long, value_parser = ["f32", "f16", "bf16", "f64"])]
    dtype: Option<String>,
}

impl ValueArgs {
    /// The element type asked for.
    fn dtype(&self) -> Option<crate::DType> {
        self.dtype.as_deref().and_then(crate::DType::from_spec)
    }
}

#[derive(clap::Args)]
struct LevelArgs {
    /// Fail (exit 1) when there are warnings.
    #[arg(long)]
    deny_warnings: bool,
    /// Silence a lint (repeatable, or comma-separated); a layer's `allow:` still wins.
    #[arg(long, value_name = "LINT", value_delimiter = ',')]
    allow: Vec<String>,
    /// Report a lint as a warning.
    #[arg(long, value_name = "LINT", value_delimiter = ',')]
    warn: Vec<String>,
    /// Make a lint an error (applied after --allow and --warn).
    #[arg(long, value_name = "LINT", value_delimiter = ',')]
    deny: Vec<String>,
    /// Replace one of the spec's `vars` (repeatable): `--set n_layers=2 --set d_model=64`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
}

/// Parses `NAME=VALUE`.
fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE, e.g. n_layers=2")),
    }
}

impl LevelArgs {
    /// The check options these arguments give (lint levels and `--set`), or exit 2.
    fn options(&self) -> Result<crate::Options, u8> {
        Ok(crate::Options {
            lints: self.levels()?,
            set: self.set.clone(),
            ..Default::default()
        })
    }

    /// The command line's lint levels, or exit 2 for an unknown lint name.
    fn levels(&self) -> Result<Vec<(String, crate::lint::Level)>, u8> {
        use crate::lint::Level;
        let mut out = Vec::new();
        for (names, level) in [
            (&self.allow, Level::Allow),
            (&self.warn, Level::Warn),
            (&self.deny, Level::Deny),
        ] {
            for n in names {
                if crate::lint::find(n).is_none() {
                    let all = crate::lint::LINTS.iter().map(|l| l.name);
                    match diag::did_you_mean(n, all) {
                        Some(s) => eprintln!("error: unknown lint `{n}`; did you mean `{s}`?"),
                        None => eprintln!(
                            "error: unknown lint `{n}`; `specc explain --list` lists them"
                        ),
                    }
                    return Err(2);
                }
                out.push((n.clone(), level));
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For people (a table for `summary`); no colour when not a terminal or with NO_COLOR.
    #[value(alias = "table")]
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Runs the command line `args` (the program name first); returns the exit code.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are successes; anything else is a usage error.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Check {
            specs,
            format,
            levels,
        } => check(&specs, format, &levels),
        Command::Summary {
            spec,
            format,
            levels,
        } => summary(&spec, format, &levels),
        Command::Explain { name, list } => explain(name.as_deref(), list),
        Command::Schema => {
            let doc = crate::schema::schema();
            stdout(&(serde_json::to_string_pretty(&doc).expect("the schema serializes") + "\n"));
            0
        }
        Command::Import {
            source:
                ImportSource::Hf {
                    config,
                    output,
                    template,
                },
        } => import_hf(&config, output.as_deref(), template.as_deref()),
        Command::Build {
            spec,
            output,
            values,
            threads,
            max_shard_size,
            part,
            fsync,
            levels,
        } => {
            let part = match part
                .map(Ok)
                .or_else(|| crate::output::Part::from_env(|k| std::env::var(k).ok()))
            {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return 2;
                }
                None => crate::output::Part::WHOLE,
            };
            let job = crate::output::Options {
                threads,
                max_shard_size,
                part,
                durability: if fsync {
                    crate::output::Durability::Synced
                } else {
                    crate::output::Durability::Written
                },
            };
            match levels.levels() {
                Ok(lints) => build(
                    &spec,
                    &output,
                    crate::Options {
                        seed: values.seed,
                        dtype: values.dtype(),
                        lints,
                        set: levels.set.clone(),
                    },
                    job,
                    &levels,
                ),
                Err(code) => code,
            }
        }
        Command::Inspect { file, format } => inspect(&file, format),
        Command::Report {
            spec,
            output,
            weights,
            levels,
        } => html_report(&spec, &output, weights.as_deref(), &levels),
        Command::Verify {
            spec,
            path,
            stats,
            values,
            threads,
            format,
            set,
        } => verify(
            &spec,
            &path,
            crate::Options {
                seed: values.seed,
                dtype: values.dtype(),
                set,
                ..Default::default()
            },
            crate::verify::Options { stats, threads },
            format,
        ),
    }
}

/// Loads and checks one spec, or prints why it cannot be read (exit 2).
fn load_checked(path: &Path, options: crate::Options) -> Result<(SourceFile, Checked), u8> {
    crate::load_and_check(path, options).map_err(|e| {
        eprintln!("error: {e}");
        2
    })
}

fn style() -> HumanStyle {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let width = if color {
        terminal_width().unwrap_or(100)
    } else {
        100
    };
    HumanStyle { color, width }
}

fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.parse().ok()
}

fn exit_for(diags: &[Diagnostic], levels: &LevelArgs) -> u8 {
    let errors = crate::diag::has_errors(diags);
    let warnings = diags.iter().any(|d| d.severity == Severity::Warning);
    u8::from(errors || (levels.deny_warnings && warnings))
}

fn print_human(src: &SourceFile, diags: &[Diagnostic]) {
    if diags.is_empty() {
        return;
    }
    let text = diag::render_human(src, diags, style());
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let e = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let w = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    (e, w)
}

fn check(specs: &[PathBuf], format: Format, levels: &LevelArgs) -> u8 {
    let options = match levels.options() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut worst = 0;
    let mut json = Vec::new();
    for path in specs {
        let (src, checked) = match load_checked(path, options.clone()) {
            Ok(x) => x,
            Err(code) => {
                worst = worst.max(code);
                continue;
            }
        };
        worst = worst.max(exit_for(&checked.diagnostics, levels));
        match format {
            Format::Json => json.extend(diag::to_json(&src, &checked.diagnostics)),
            Format::Human => {
                print_human(&src, &checked.diagnostics);
                let (e, w) = counts(&checked.diagnostics);
                let status = match (e, w) {
                    (0, 0) => "ok".to_string(),
                    (0, w) if levels.deny_warnings => {
                        format!("{w} warning{} (denied by --deny-warnings)", plural(w))
                    }
                    (0, w) => format!("ok, {w} warning{}", plural(w)),
                    (e, w) => format!("{e} error{}, {w} warning{}", plural(e), plural(w)),
                };
                eprintln!("{}: {status}", src.name);
            }
        }
    }
    if format == Format::Json {
        let doc = serde_json::json!({ "diagnostics": json });
        stdout(&(serde_json::to_string_pretty(&doc).expect("diagnostics serialize") + "\n"));
    }
    worst
}

/// Writes to stdout; a closed pipe (`specc summary x | head`) is not an error.
fn stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn summary(path: &Path, format: Format, levels: &LevelArgs) -> u8 {
    let options = match levels.options() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (src, checked) = match load_checked(path, options) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let code = exit_for(&checked.diagnostics, levels);
    print_human(&src, &checked.diagnostics);
    let Some(model) = checked.model else {
        let (e, _) = counts(&checked.diagnostics);
        eprintln!("{}: {e} error{}; no summary", src.name, plural(e));
        return 1;
    };
    let out = match format {
        // The sparkline is for people looking at a terminal, not for a file or a pipe.
        Format::Human if std::io::stdout().is_terminal() => {
            report::table(&model) + &report::sparkline(&model)
        }
        Format::Human => report::table(&model),
        Format::Json => {
            // Written as it serializes: a 100k-layer summary is 140 MB of JSON.
            let out = std::io::stdout().lock();
            let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
            let _ = serde_json::to_writer_pretty(&mut w, &report::json(&model))
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"))
                .and_then(|()| w.flush());
            return code;
        }
    };
    stdout(&out);
    code
}

/// `specc import hf`: 0 written, 1 the config cannot be imported (or the spec it gives has
/// errors), 2 it cannot be read or the spec cannot be written.
fn import_hf(config: &Path, output: Option<&Path>, template: Option<&Path>) -> u8 {
    let template_path = template;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            eprintln!("error: cannot read `{}`: {e}", p.display());
            2u8
        })
    };
    let text = match read(config) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let template = match template.map(read).transpose() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let imported =
        match crate::import::hf(&text, &config.display().to_string(), template.as_deref()) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {}: {e}", config.display());
                return 1;
            }
        };
    // The spec must hold: a config whose values do not fit together is reported here.
    let name = format!("{} (imported)", config.display());
    let src = SourceFile::new(&name, imported.text.clone());
    let checked = crate::check(&src);
    if crate::diag::has_errors(&checked.diagnostics) {
        print_human(&src, &checked.diagnostics);
        eprintln!("{name}: the config's values give a spec with errors; nothing written");
        return 1;
    }
    match output {
        None => {
            stdout(&imported.text);
            0
        }
        Some(out) => match crate::output::write_text(
            out,
            &imported.text,
            &[Some(config), template_path]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        ) {
            Ok(()) => {
                eprintln!(
                    "wrote {} ({} from {}, {} vars from the config)",
                    out.display(),
                    imported.model_type,
                    config.display(),
                    imported.from_config.len()
                );
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    }
}

fn explain(name: Option<&str>, list: bool) -> u8 {
    if list {
        let mut out = String::from("lints:\n");
        for l in crate::lint::LINTS {
            out += &format!(
                "  {:<26} {:<5} {}\n",
                l.name,
                format!("{:?}", l.default).to_lowercase(),
                l.summary
            );
        }
        out += "\nerror codes:\n";
        for c in diag::CODES {
            out += &format!("  {:<26} {}\n", c.name, c.summary);
        }
        stdout(&out);
        return 0;
    }
    let name = name.unwrap_or_default();
    if let Some(l) = crate::lint::find(name) {
        stdout(&format!(
            "{} (lint, default level: {})\n\n{}\n\n{}\n",
            l.name,
            format!("{:?}", l.default).to_lowercase(),
            l.summary,
            l.explanation
        ));
        return 0;
    }
    if let Some(c) = diag::code_info(name) {
        stdout(&format!(
            "{} (error)\n\n{}\n\n{}\n",
            c.name, c.summary, c.explanation
        ));
        return 0;
    }
    let all = crate::lint::LINTS
        .iter()
        .map(|l| l.name)
        .chain(diag::CODES.iter().map(|c| c.name));
    match diag::did_you_mean(name, all) {
        Some(s) => eprintln!("error: no lint or error code named `{name}`; did you mean `{s}`?"),
        None => eprintln!(
            "error: no lint or error code named `{name}`; `specc explain --list` lists them"
        ),
    }
    2
}

fn build(
    path: &Path,
    output: &Path,
    options: crate::Options,
    build: crate::output::Options,
    levels: &LevelArgs,
) -> u8 {
    let (src, checked) = match load_checked(path, options) {
        Ok(x) => x,
        Err(code) => return code,
    };
    print_human(&src, &checked.diagnostics);
    let code = exit_for(&checked.diagnostics, levels);
    let model = match (checked.model, code) {
        (Some(m), 0) => m,
        _ => {
            let (e, w) = counts(&checked.diagnostics);
            eprintln!(
                "{}: {e} error{}, {w} warning{}; nothing written",
                src.name,
                plural(e),
                plural(w)
            );
            return 1;
        }
    };
    let part = build.part;
    let job = match crate::output::Build::new(&model, &src, output, build) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let shards = job.files().shards.len();
    if job.my_files() == 0 {
        let what = if shards == 1 {
            "the model fits in one file, which part 1 builds".to_string()
        } else {
            format!("the build has {shards} shards, all of them in other parts")
        };
        eprintln!("part {part} has nothing to build: {what}");
        return 0;
    }
    let total = job.bytes();
    let bar = (std::io::stderr().is_terminal() && total > 256 << 20).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("template is valid"),
        );
        b
    });
    let start = std::time::Instant::now();
    let result = job.run(&mut |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let what = if shards > 1 {
        format!(
            "{} of {shards} shards beside {}",
            report.files,
            output.display()
        )
    } else {
        output.display().to_string()
    };
    eprintln!(
        "wrote {what}: {} tensors, {} parameters, {} bytes in {secs:.2} s ({:.2} GB/s)",
        report.tensors,
        report.params,
        report.bytes,
        report.bytes as f64 / secs.max(1e-9) / 1e9
    );
    for p in &report.removed {
        eprintln!("removed `{}`, superseded by this build", p.display());
    }
    for p in &report.stale {
        eprintln!("removed `{}`, left by a build that died", p.display());
    }
    0
}

fn inspect(path: &Path, format: Format) -> u8 {
    let info = match crate::inspect::inspect(path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot inspect `{}`: {e}", path.display());
            return 2;
        }
    };
    match format {
        Format::Json => {
            stdout(&(serde_json::to_string_pretty(&info).expect("inspection serializes") + "\n"))
        }
        Format::Human => stdout(&report::inspection(&info)),
    }
    0
}

/// `specc verify`: 0 the file is what the spec builds, 1 it is not, 2 it could not be
/// checked (the spec has errors, or the file cannot be read).
fn verify(
    spec: &Path,
    path: &Path,
    options: crate::Options,
    how: crate::verify::Options,
    format: Format,
) -> u8 {
    let (src, checked) = match load_checked(spec, options) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let errors = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect::<Vec<_>>();
    print_human(&src, &errors);
    let Some(model) = checked.model.filter(|_| errors.is_empty()) else {
        let (e, _) = counts(&checked.diagnostics);
        eprintln!("{}: {e} error{}; nothing verified", src.name, plural(e));
        return 2;
    };
    let start = std::time::Instant::now();
    let verdict = match crate::verify::verify(&model, path, how) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match format {
        Format::Json => {
            stdout(&(serde_json::to_string_pretty(&verdict).expect("verdict serializes") + "\n"))
        }
        Format::Human => {
            stdout(&report::verdict(&verdict, how.stats));
            eprintln!(
                "{} bytes in {:.2} s",
                verdict.bytes,
                start.elapsed().as_secs_f64()
            );
        }
    }
    u8::from(!verdict.matched)
}

/// `specc report`: 0 written, 1 the spec has errors, 2 the weights or the output failed.
fn html_report(spec: &Path, output: &Path, weights: Option<&Path>, levels: &LevelArgs) -> u8 {
    let options = match levels.options() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (src, checked) = match load_checked(spec, options) {
        Ok(x) => x,
        Err(code) => return code,
    };
    print_human(&src, &checked.diagnostics);
    let Some(model) = checked.model else {
        let (e, _) = counts(&checked.diagnostics);
        eprintln!("{}: {e} error{}; no report written", src.name, plural(e));
        return 1;
    };
    let page = match report::html::render(&src, &checked.diagnostics, &model, weights) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut inputs = vec![spec];
    inputs.extend(weights);
    match crate::output::write_text(output, &page, &inputs) {
        Ok(()) => {
            eprintln!("wrote {} ({} bytes)", output.display(), page.len());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
