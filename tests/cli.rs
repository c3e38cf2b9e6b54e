//! The `specc` binary end to end: exit codes, JSON output decoded into typed structs,
//! and golden renders of diagnostics (no colour, fixed width).

use crate::common::{specc_cmd, test_env};
use serde::Deserialize;
use std::process::{Command, Output};

fn specc(args: &[&str]) -> Output {
    specc_cmd().args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Deserialize, Debug)]
struct CheckJson {
    diagnostics: Vec<DiagJson>,
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)] // fields are decoded to prove they are present and typed
struct DiagJson {
    code: String,
    severity: String,
    message: String,
    file: String,
    line: usize,
    column: usize,
    path: Option<String>,
    help: Option<String>,
}

#[derive(Deserialize, Debug)]
struct SummaryJson {
    tensors: Vec<TensorJson>,
    total_params: u64,
    total_bytes: u64,
    ties: Vec<TieJson>,
}

#[derive(Deserialize, Debug)]
struct TensorJson {
    name: String,
    shape: Vec<u64>,
    dtype: String,
    initializer: InitJson,
    fan_in: u64,
    fan_out: u64,
    params: u64,
    bytes: u64,
}

#[derive(Deserialize, Debug)]
struct InitJson {
    name: String,
    rule: String,
}

#[derive(Deserialize, Debug)]
struct TieJson {
    name: String,
    target: String,
}

fn temp_spec(name: &str, text: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    (dir, p.display().to_string())
}

#[test]
fn check_accepts_every_example_spec_with_exit_0() {
    let o = specc(&[
        "check",
        "specs/mlp.yaml",
        "specs/mnist-cnn.toml",
        "specs/gpt2-tiny.yaml",
        "specs/lstm-tagger.yaml",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/mlp.yaml: ok"));
}

#[test]
fn check_reports_errors_with_exit_1_and_json_locations() {
    let o = specc(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/errors/initializers.yaml",
    ]);
    assert_eq!(code(&o), 1);
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j.diagnostics.len(), 7);
    let d = &j.diagnostics[0];
    assert_eq!(
        (d.code.as_str(), d.severity.as_str(), d.line, d.column),
        ("unknown-initializer", "error", 6, 25)
    );
    assert_eq!(d.file, "tests/fixtures/errors/initializers.yaml");
    assert_eq!(d.path.as_deref(), Some("0"));
    assert_eq!(d.help.as_deref(), Some("did you mean `glorot_uniform`?"));
    assert!(j
        .diagnostics
        .iter()
        .all(|d| d.severity == "error" && d.line > 0 && d.column > 0));
}

#[test]
fn check_of_several_files_reports_all_and_the_worst_exit() {
    let o = specc(&[
        "check",
        "--format",
        "json",
        "specs/mlp.yaml",
        "tests/fixtures/errors/tie.yaml",
        "tests/fixtures/errors/keys.yaml",
    ]);
    assert_eq!(code(&o), 1);
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    let files: std::collections::BTreeSet<&str> =
        j.diagnostics.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files.len(), 2);
}

#[test]
fn unreadable_inputs_exit_2() {
    let o = specc(&["check", "no/such/spec.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("cannot read `no/such/spec.yaml`"),
        "{}",
        stderr(&o)
    );
    let o = specc(&["check", "specs"]);
    assert_eq!(code(&o), 2, "a directory is not a spec");
    let o = specc(&["summary", "/dev/zero"]);
    assert_eq!(code(&o), 2, "an endless file is refused at the size limit");
    assert!(stderr(&o).contains("larger than 16 MiB"));
    // 2 wins over 1 when files differ
    let o = specc(&["check", "tests/fixtures/errors/tie.yaml", "missing.yaml"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(code(&specc(&["check"])), 2);
    assert_eq!(code(&specc(&["frobnicate"])), 2);
    assert_eq!(
        code(&specc(&["check", "--format", "xml", "specs/mlp.yaml"])),
        2
    );
    assert_eq!(code(&specc(&["explain", "no-such-lint"])), 2);
}

#[test]
fn help_and_version_exit_0() {
    let o = specc(&["--help"]);
    assert_eq!(code(&o), 0);
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in ["check", "summary", "explain"] {
        assert!(text.contains(cmd), "{text}");
    }
    let o = specc(&["--version"]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn non_utf8_and_bom_inputs() {
    let (_d, p) = temp_spec("bad.yaml", b"name: m\xff\nlayers: []\n");
    let o = specc(&["check", "--format", "json", &p]);
    assert_eq!(code(&o), 1);
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j.diagnostics[0].code, "not-utf8");
    assert_eq!((j.diagnostics[0].line, j.diagnostics[0].column), (1, 8));

    let (_d, p) = temp_spec(
        "bom.yaml",
        "\u{feff}name: m\ninput: [2]\nlayers: [{type: dense, units: 1}]\n".as_bytes(),
    );
    assert_eq!(code(&specc(&["check", &p])), 0);
}

#[test]
fn empty_and_wrong_files_are_spec_errors() {
    for (name, text) in [
        ("e.yaml", ""),
        ("l.yaml", "[1, 2]"),
        ("s.toml", "x = 1"),
        ("n.yaml", "# only a comment\n"),
    ] {
        let (_d, p) = temp_spec(name, text.as_bytes());
        let o = specc(&["check", &p]);
        assert_eq!(code(&o), 1, "{name}: {}", stderr(&o));
    }
}

#[test]
fn huge_numbers_and_overflow_are_errors_not_panics() {
    let (_d, p) = temp_spec(
        "big.yaml",
        b"name: big\ninput: [10000000000]\nlayers:\n  - {type: dense, units: 100000000000}\n  - {type: dense, units: 18446744073709551616}\n",
    );
    let o = specc(&["check", "--format", "json", &p]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = j.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["shape-overflow", "invalid-value"]);
    // 10^21 parameters in tensors that each fit: the model total overflows bytes
    let (_d, p) = temp_spec(
        "huge.yaml",
        b"name: huge\ninput: [1000000000]\nlayers:\n  - {type: dense, units: 1000000000000, use_bias: false}\n",
    );
    let o = specc(&["check", &p]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

#[test]
fn summary_json_decodes_and_adds_up() {
    let o = specc(&["summary", "--format", "json", "specs/mlp.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s: SummaryJson = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = s.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "out.weight",
            "out.bias"
        ]
    );
    let w = &s.tensors[0];
    assert_eq!(
        (
            w.shape.as_slice(),
            w.dtype.as_str(),
            w.fan_in,
            w.fan_out,
            w.params,
            w.bytes
        ),
        (&[256, 784][..], "f32", 784, 256, 200_704, 802_816)
    );
    assert_eq!(w.initializer.name, "he_normal");
    assert_eq!(
        w.initializer.rule,
        "variance_scaling(scale=2, mode=fan_in, distribution=truncated_normal)"
    );
    assert_eq!(
        s.total_params,
        s.tensors.iter().map(|t| t.params).sum::<u64>()
    );
    assert_eq!(
        s.total_params,
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    );
    assert_eq!(s.total_bytes, 4 * s.total_params);
    assert!(s.ties.is_empty());

    let o = specc(&["summary", "--format", "json", "specs/gpt2-tiny.yaml"]);
    let s: SummaryJson = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (s.ties[0].name.as_str(), s.ties[0].target.as_str()),
        ("lm_head.weight", "transformer.wte.weight")
    );
}

#[test]
fn summary_table_lists_tensors_and_totals() {
    let o = specc(&["summary", "specs/mnist-cnn.toml"]);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout);
    insta::assert_snapshot!("summary_mnist_cnn", out);
}

#[test]
fn summary_of_a_broken_spec_exits_1_without_a_table() {
    let o = specc(&["summary", "tests/fixtures/errors/tie.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
}

#[test]
fn explain_covers_every_lint_and_code() {
    for l in specc::lint::LINTS {
        let o = specc(&["explain", l.name]);
        assert_eq!(code(&o), 0);
        assert!(String::from_utf8_lossy(&o.stdout).contains(l.explanation));
    }
    for c in specc::diag::CODES {
        let o = specc(&["explain", c.name]);
        assert_eq!(code(&o), 0);
        assert!(String::from_utf8_lossy(&o.stdout).contains(c.summary));
    }
    let o = specc(&["explain", "zero-kernel"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("symmetry") && text.contains("allow: [zero-kernel]"));
    let o = specc(&["explain", "--list"]);
    assert_eq!(code(&o), 0);
    let list = String::from_utf8_lossy(&o.stdout);
    for name in specc::lint::LINTS
        .iter()
        .map(|l| l.name)
        .chain(specc::diag::CODES.iter().map(|c| c.name))
    {
        assert!(list.contains(name), "`explain --list` names {name}");
    }
}

/// A fixture's diagnostics as a terminal user reads them (no colour, 80 columns).
fn render_fixture(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let src = specc::SourceFile::new(path, text);
    let c = specc::check(&src);
    specc::diag::render_human(
        &src,
        &c.diagnostics,
        specc::diag::HumanStyle {
            color: false,
            width: 80,
        },
    )
}

/// Golden renders of representative diagnostics, as a terminal user reads them.
#[test]
fn rendered_diagnostics_golden() {
    for fixture in [
        "keys.yaml",
        "initializers.yaml",
        "tie.yaml",
        "duplicate_tensor.yaml",
        "syntax.toml",
        "shapes.yaml",
    ] {
        let out = render_fixture(&format!("tests/fixtures/errors/{fixture}"));
        insta::assert_snapshot!(format!("render_{fixture}"), out);
    }
}

#[derive(Deserialize, Debug)]
struct InspectJson {
    metadata: std::collections::BTreeMap<String, String>,
    tensors: Vec<StatsJson>,
}

#[derive(Deserialize, Debug)]
struct StatsJson {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    mean: Option<f64>,
    std: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[test]
fn build_then_inspect_reports_metadata_and_statistics() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("mlp.safetensors");
    let o = specc(&["build", "specs/mlp.yaml", "-o", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("6 tensors, 235146 parameters"),
        "{}",
        stderr(&o)
    );
    let o = specc(&["inspect", "--format", "json", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    let j: InspectJson = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j.metadata["format"], "pt");
    assert_eq!(j.metadata["seed"], "42");
    let names: Vec<&str> = j.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "out.bias",
            "out.weight"
        ]
    );
    let w = &j.tensors[1];
    assert_eq!(
        (w.dtype.as_str(), w.shape.as_slice()),
        ("F32", &[256, 784][..])
    );
    let s = (2.0f64 / 784.0).sqrt();
    assert!((w.std.unwrap() / s - 1.0).abs() < 0.01);
    assert!(w.mean.unwrap().abs() < 0.001);
    assert!(
        w.max.unwrap() <= 2.0 * s / specc::init::TRUNC_STD_2
            && w.min.unwrap() >= -2.0 * s / specc::init::TRUNC_STD_2
    );
    let b = &j.tensors[0];
    assert_eq!(
        (b.mean, b.std, b.min, b.max),
        (Some(0.0), Some(0.0), Some(0.0), Some(0.0))
    );
    let o = specc(&["inspect", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("spec_sha256"));
}

#[test]
fn build_refuses_broken_specs_and_leaves_no_file() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.safetensors");
    std::fs::write(&out, b"previous").unwrap();
    let o = specc(&[
        "build",
        "tests/fixtures/errors/tie.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("nothing written"));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous",
        "an existing output is untouched"
    );
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    let o = specc(&["build", "specs/mlp.yaml", "-o", d.path().to_str().unwrap()]);
    assert_eq!(code(&o), 2, "a directory as output");
    let o = specc(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        "/nonexistent-dir/x.safetensors",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
}

#[test]
fn inspect_refuses_files_that_are_not_safetensors() {
    let (_d, p) = temp_spec(
        "bad.safetensors",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}",
    );
    let o = specc(&["inspect", &p]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("not a valid safetensors file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&specc(&["inspect", "no-such.safetensors"])), 2);
    assert_eq!(code(&specc(&["inspect", "specs"])), 2);
}

#[test]
fn lint_levels_from_the_command_line_and_deny_warnings() {
    let f = "tests/fixtures/lints/zero_kernel.yaml";
    let o = specc(&["check", "--format", "json", f]);
    assert_eq!(code(&o), 1, "symmetric-chain is denied by default");
    let o = specc(&["check", "--format", "json", "--allow", "symmetric-chain", f]);
    assert_eq!(code(&o), 0, "warnings alone exit 0");
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j.diagnostics.iter().all(|d| d.severity == "warning"));
    let zero = j
        .diagnostics
        .iter()
        .find(|d| d.code == "zero-kernel")
        .unwrap();
    assert_eq!((zero.line, zero.path.as_deref()), (9, Some("conv")));
    let o = specc(&["check", "--allow", "symmetric-chain", "--deny-warnings", f]);
    assert_eq!(code(&o), 1, "--deny-warnings fails on warnings");
    let o = specc(&[
        "check",
        "--allow",
        "symmetric-chain,zero-kernel,constant-kernel",
        "--deny-warnings",
        f,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = specc(&[
        "check",
        "--format",
        "json",
        "--allow",
        "symmetric-chain",
        "--deny",
        "zero-kernel",
        f,
    ]);
    assert_eq!(code(&o), 1);
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j
        .diagnostics
        .iter()
        .filter(|d| d.code == "zero-kernel")
        .all(|d| d.severity == "error"));
    // the layer's allow: wins over the command line
    let o = specc(&[
        "check",
        "--format",
        "json",
        "--deny",
        "zero-kernel",
        "tests/fixtures/clean/zero_init_allowed.yaml",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&specc(&["check", "--allow", "zero-kernal", f])), 2);
}

#[test]
fn build_stops_on_denied_lints_and_builds_with_warnings() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    let o = specc(&[
        "build",
        "tests/fixtures/lints/symmetric_chain.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(!out.exists());
    let o = specc(&[
        "build",
        "tests/fixtures/lints/degenerate.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("degenerate-init"),
        "warnings are printed"
    );
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    let o = specc(&[
        "build",
        "--deny-warnings",
        "tests/fixtures/lints/degenerate.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(!out.exists());
}

#[test]
fn notes_do_not_fail_deny_warnings() {
    let o = specc(&[
        "check",
        "--deny-warnings",
        "--format",
        "json",
        "tests/fixtures/lints/notes.yaml",
    ]);
    assert_eq!(code(&o), 0);
    let j: CheckJson = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j.diagnostics.len(), 3);
    assert!(j.diagnostics.iter().all(|d| d.severity == "note"));
}

#[test]
fn summary_shows_the_predicted_signal() {
    let o = specc(&["summary", "specs/mlp.yaml"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("predicted activation std at init"));
    // he_normal keeps relu activations at unit second moment: fan_in·(2/fan_in)·1 = 2 out of
    // fc1 (std √2), halved by the relu after it (mlp.yaml writes that relu once, as a layer)
    let row = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap()
            .trim_end()
            .to_string()
    };
    assert!(row("fc1").ends_with(" 1.41421"), "{}", row("fc1"));
    assert!(row("act").ends_with(" 1"), "{}", row("act"));
}

#[test]
fn rendered_lints_golden() {
    for fixture in [
        "zero_kernel.yaml",
        "symmetric_chain.yaml",
        "exploding.yaml",
        "notes.yaml",
    ] {
        let out = render_fixture(&format!("tests/fixtures/lints/{fixture}"));
        insta::assert_snapshot!(format!("lint_{fixture}"), out);
    }
}

/// Runs `specc build` of gpt2-tiny under a shell that runs `limit` (a ulimit, a umask) first.
fn build_limited(limit: &str, out: &std::path::Path) -> Output {
    let mut sh = Command::new("sh");
    test_env(&mut sh); // the shell passes it on to specc
    sh.arg("-c")
        .arg(format!(
            "{limit}; exec \"$0\" build specs/gpt2-tiny.yaml -o \"$1\"",
        ))
        .arg(env!("CARGO_BIN_EXE_specc"))
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn output_files_get_the_mode_of_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    let o = build_limited("umask 027", &out);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o640,
        "0666 less umask 027, not the temporary file's 0600"
    );
}

#[test]
fn a_file_size_limit_fails_cleanly_and_keeps_the_old_output() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    std::fs::write(&out, b"old").unwrap();
    // 100 blocks of 512 bytes: the 700 KB build cannot fit
    let o = build_limited("ulimit -f 100", &out);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write"));
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn unwritable_directory_is_exit_2() {
    // /proc refuses new files even to root (directory modes do not stop root).
    let o = specc(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        "/proc/specc-test.safetensors",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    assert!(!std::path::Path::new("/proc/specc-test.safetensors").exists());
}

#[test]
fn racing_builds_leave_one_whole_file() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    let spawn = |seed: &str| {
        specc_cmd()
            .args([
                "build",
                "specs/gpt2-tiny.yaml",
                "--seed",
                seed,
                "-o",
                out.to_str().unwrap(),
            ])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("1"), spawn("2"));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("a whole, valid file");
    assert_eq!(st.len(), 28);
    // And exactly one of the two builds, not a mixture.
    let alone = |seed: &str| {
        let p = d.path().join(format!("alone-{seed}.safetensors"));
        let o = specc(&[
            "build",
            "specs/gpt2-tiny.yaml",
            "--seed",
            seed,
            "-o",
            p.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        b
    };
    assert!(
        bytes == alone("1") || bytes == alone("2"),
        "the file is one whole build"
    );
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn a_signal_mid_build_leaves_no_file_and_keeps_the_old_output() {
    // A 1 GiB build: long enough to be interrupted on any machine this runs on.
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("big.yaml");
    std::fs::write(
        &spec,
        "name: big\ninput: [8192]\nlayers:\n  - {type: dense, units: 8192, use_bias: false}\n  - {type: dense, units: 8192, use_bias: false}\n  - {type: dense, units: 8192, use_bias: false}\n  - {type: dense, units: 8192, use_bias: false}\n",
    )
    .unwrap();
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let out = d.path().join("m.safetensors");
        std::fs::write(&out, b"old").unwrap();
        let child = specc_cmd()
            .args(["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .spawn()
            .unwrap();
        // Signal once the temporary file exists, so that the build is surely under way.
        let started = std::time::Instant::now();
        while !std::fs::read_dir(d.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        {
            assert!(
                started.elapsed().as_secs() < 30,
                "{name}: no temporary file"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait_with_output().unwrap().status;
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(sig),
            "{name}: the exit status is the signal's"
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"old",
            "{name}: the old output is intact"
        );
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left.len(),
            2,
            "{name}: only the spec and the old output remain: {left:?}"
        );
    }
}
