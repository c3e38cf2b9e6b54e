//! Issue 13 regressions: a build never destroys the spec, a device or a shard set, and
//! hostile inputs are refused fast, in bounded memory, with a clear message.

use crate::common::specc_cmd;
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    specc_cmd().args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file in `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap_or_default())
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    // Names only: reading every file while polling would let a fast build finish first.
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A spec of `n` dense 2048×2048 layers (16 MiB each, f32).
fn big_spec(dir: &Path, n: usize) -> PathBuf {
    let spec = dir.join("big.yaml");
    let mut text = "name: big\ninput: [2048]\nlayers:\n".to_string();
    for _ in 0..n {
        text += "  - {type: dense, units: 2048, use_bias: false}\n";
    }
    std::fs::write(&spec, text).unwrap();
    spec
}

fn spec_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const MLP: &str = "name: m\ninput: [8]\nlayers:\n  - {type: dense, units: 4}\n";

#[test]
fn issue13_output_that_is_the_spec_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec_in(d.path(), "s.yaml", MLP);
    std::os::unix::fs::symlink(&spec, d.path().join("link.safetensors")).unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    let spellings = [
        spec.to_str().unwrap().to_string(),
        format!("{}/./s.yaml", d.path().display()),
        format!("{}/sub/../s.yaml", d.path().display()),
        format!("{}/link.safetensors", d.path().display()),
    ];
    for out in &spellings {
        for extra in [&[][..], &["--max-shard-size", "100B"][..]] {
            let mut args = vec!["build", spec.to_str().unwrap(), "-o", out];
            args.extend_from_slice(extra);
            let o = run(&args);
            assert_eq!(code(&o), 2, "{out}: {}", err(&o));
            assert!(err(&o).contains("the spec being built"), "{}", err(&o));
            assert_eq!(std::fs::read_to_string(&spec).unwrap(), MLP, "{out}");
        }
    }
    // Relative to the working directory, too.
    let o = specc_cmd()
        .current_dir(d.path())
        .args(["build", "s.yaml", "-o", "s.yaml"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), MLP);
    assert_eq!(names(d.path()), ["link.safetensors", "s.yaml", "sub"]);
}

#[test]
fn issue13_outputs_that_are_not_regular_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec_in(d.path(), "s.yaml", MLP);
    let fifo = d.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let sock = d.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for (out, kind) in [
        (PathBuf::from("/dev/null"), "a character device"),
        (fifo.clone(), "a FIFO"),
        (sock.clone(), "a socket"),
    ] {
        let o = run(&["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(code(&o), 2, "{}: {}", out.display(), err(&o));
        assert!(err(&o).contains(kind), "{}", err(&o));
    }
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    // A symlink to a device is refused too; a dangling one as well.
    let to_null = d.path().join("null.safetensors");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    let dangling = d.path().join("dangling.safetensors");
    std::os::unix::fs::symlink(d.path().join("nowhere/x"), &dangling).unwrap();
    for out in [&to_null, &dangling] {
        let o = run(&["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(code(&o), 2, "{}", err(&o));
        assert!(std::fs::symlink_metadata(out)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert!(err(&run(&[
        "build",
        spec.to_str().unwrap(),
        "-o",
        dangling.to_str().unwrap()
    ]))
    .contains("does not exist"));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn issue13_a_symlink_to_a_file_is_followed_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec_in(d.path(), "s.yaml", MLP);
    std::fs::create_dir(d.path().join("store")).unwrap();
    let target = d.path().join("store/real.safetensors");
    std::fs::write(&target, b"old").unwrap();
    let link = d.path().join("m.safetensors");
    std::os::unix::fs::symlink("store/real.safetensors", &link).unwrap();
    let o = run(&[
        "build",
        spec.to_str().unwrap(),
        "-o",
        link.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let bytes = std::fs::read(&target).unwrap();
    safetensors::SafeTensors::deserialize(&bytes).expect("the link's target holds the build");
    assert_eq!(names(&d.path().join("store")), ["real.safetensors"]);
}

/// Builds `spec` sharded into `dir/model.safetensors` with `extra` arguments.
fn build_sharded(spec: &Path, dir: &Path, extra: &[&str]) -> Output {
    let out = dir.join("model.safetensors");
    let mut args = vec!["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn issue13_superseded_outputs_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let spec = Path::new("specs/gpt2-tiny.yaml");
    let keep = out.join("config.json");
    std::fs::write(&keep, b"{}").unwrap();
    // Plain, then sharded: the plain file would shadow the index for transformers.
    assert_eq!(code(&build_sharded(spec, &out, &[])), 0);
    let o = build_sharded(spec, &out, &["--max-shard-size", "200KB"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("removed"), "{}", err(&o));
    let listing = names(&out);
    assert!(
        !listing.contains(&"model.safetensors".to_string()),
        "{listing:?}"
    );
    assert_eq!(
        listing.iter().filter(|n| n.contains("-of-00004")).count(),
        4
    );
    // Re-sharding with another count leaves no shard of the old count.
    let o = build_sharded(spec, &out, &["--max-shard-size", "400KB"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let listing = names(&out);
    assert!(
        !listing.iter().any(|n| n.contains("-of-00004")),
        "{listing:?}"
    );
    let n = listing.iter().filter(|n| n.contains("-of-0000")).count();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let mut listed: Vec<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), n, "every shard on disk is in the index");
    // Sharded, then plain: the index and its shards go.
    assert_eq!(code(&build_sharded(spec, &out, &[])), 0);
    assert_eq!(names(&out), ["config.json", "model.safetensors"]);
    assert_eq!(std::fs::read(&keep).unwrap(), b"{}");
}

#[test]
fn issue13_parts_without_shards_say_so() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    let o = run(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        out.to_str().unwrap(),
        "--part",
        "2/2",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        err(&o).contains("part 2/2 has nothing to build"),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("part 1"), "{}", err(&o));
    assert!(!out.exists());
    let o = specc_cmd()
        .args(["build", "specs/mlp.yaml", "-o", out.to_str().unwrap()])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(err(&o).contains("nothing to build"), "{}", err(&o));
    assert!(!out.exists());
    let o = run(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        out.to_str().unwrap(),
        "--part",
        "1/2",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out.exists());
    // More parts than shards.
    let o = run(&[
        "build",
        "specs/gpt2-tiny.yaml",
        "-o",
        d.path().join("s.safetensors").to_str().unwrap(),
        "--max-shard-size",
        "200KB",
        "--part",
        "6/6",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        err(&o).contains("4 shards, all of them in other parts"),
        "{}",
        err(&o)
    );
}

/// Waits until a `.tmp` file appears in `dir`.
fn wait_for_temp(dir: &Path) {
    let started = Instant::now();
    while !names(dir).iter().any(|n| n.ends_with(".tmp")) {
        assert!(started.elapsed().as_secs() < 60, "no temporary file");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn issue13_signals_mid_sharded_rebuild_keep_the_old_set_whole() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempfile::tempdir().unwrap();
    let spec = big_spec(d.path(), 8); // 128 MiB in 8 shards of 16 MiB
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let shard = ["--max-shard-size", "17MB"];
    let o = build_sharded(&spec, &out, &[&shard[..], &["--seed", "1"]].concat());
    assert_eq!(code(&o), 0, "{}", err(&o));
    let old = files(&out);
    assert_eq!(old.len(), 9);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGXCPU,
        libc::SIGABRT,
    ] {
        let child = specc_cmd()
            .args(["build", spec.to_str().unwrap(), "-o"])
            .arg(out.join("model.safetensors"))
            .args(shard)
            .args(["--seed", "2"])
            .spawn()
            .unwrap();
        wait_for_temp(&out);
        std::thread::sleep(Duration::from_millis(5));
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait_with_output().unwrap().status;
        assert_eq!(
            status.signal(),
            Some(sig),
            "signal {sig}: exit status {status:?}"
        );
        assert!(
            files(&out) == old,
            "signal {sig}: the old set, whole, and no temporary file"
        );
    }
}

#[test]
fn issue13_racing_sharded_builds_leave_one_whole_set() {
    let d = tempfile::tempdir().unwrap();
    let spec = big_spec(d.path(), 4);
    let expected = |seed: &str| {
        let dir = d.path().join(format!("alone-{seed}"));
        std::fs::create_dir(&dir).unwrap();
        let o = build_sharded(&spec, &dir, &["--max-shard-size", "17MB", "--seed", seed]);
        assert_eq!(code(&o), 0, "{}", err(&o));
        files(&dir)
    };
    let (one, two) = (expected("1"), expected("2"));
    for round in 0..3 {
        let out = d.path().join(format!("race-{round}"));
        std::fs::create_dir(&out).unwrap();
        let spawn = |seed: &str| {
            specc_cmd()
                .args(["build", spec.to_str().unwrap(), "-o"])
                .arg(out.join("model.safetensors"))
                .args(["--max-shard-size", "17MB", "--seed", seed])
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (spawn("1"), spawn("2"));
        assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
        let got = files(&out);
        assert!(
            got == one || got == two,
            "round {round}: one whole set, not a mix"
        );
    }
}

#[test]
fn issue13_temporary_files_of_killed_builds_are_removed_by_the_next_build() {
    let d = tempfile::tempdir().unwrap();
    let spec = big_spec(d.path(), 4);
    let out = d.path().join("m.safetensors");
    let child = specc_cmd()
        .args(["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_for_temp(d.path());
    // SAFETY: SIGKILL to our own child; nothing can clean up after it.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait_with_output().unwrap();
    let temps: Vec<String> = names(d.path())
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(temps.len(), 1, "SIGKILL leaves its temporary file");
    // A live build's temporary file (locked, its pid running) is left alone.
    let live = d
        .path()
        .join(format!(".specc-{}-live.tmp", std::process::id()));
    let held = std::fs::File::create(&live).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = run(&["build", "specs/mlp.yaml", "-o", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("left by a build that died"), "{}", err(&o));
    let left: Vec<String> = names(d.path())
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(
        left,
        [live.file_name().unwrap().to_string_lossy().into_owned()]
    );
}

/// Runs `specc args` under an address-space limit of `kb` kilobytes and checks that it
/// ends within `secs` seconds (a hang or a quadratic
/// blow-up fails instead of stalling the suite). Output goes through files, so a full
/// pipe cannot block the child.
fn run_timed(args: &[&str], secs: u64, kb: u64) -> Output {
    let start = Instant::now();
    let (out, errf) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut sh = std::process::Command::new("sh");
    crate::common::test_env(&mut sh);
    let mut child = sh
        .arg("-c")
        .arg(format!("ulimit -v {kb}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_specc"))
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(errf.try_clone().unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("specc {args:?} took over {secs} s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(errf),
    }
}

/// Runs `specc args` in a shell under an address-space limit of `kb` kilobytes.
fn run_capped(args: &[&str], kb: u64) -> Output {
    let mut sh = std::process::Command::new("sh");
    crate::common::test_env(&mut sh);
    sh.arg("-c")
        .arg(format!("ulimit -v {kb}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_specc"))
        .args(args)
        .output()
        .unwrap()
}

fn json_diags(o: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["diagnostics"].as_array().unwrap().clone()
}

#[test]
fn issue13_diagnostics_past_column_65535_render() {
    let d = tempfile::tempdir().unwrap();
    let mut layers: Vec<String> = (0..3000)
        .map(|i| format!("{{\"name\": \"l{i}\", \"type\": \"dense\", \"units\": 4}}"))
        .collect();
    layers.push(
        r#"{"name": "z", "type": "dense", "units": 4, "kernel_initializer": "zeros"}"#.into(),
    );
    let text = format!(
        "{{\"name\": \"m\", \"input\": [4], \"layers\": [{}]}}",
        layers.join(", ")
    );
    let spec = spec_in(d.path(), "one-line.json", &text);
    let out = d.path().join("m.safetensors");
    let o = run(&["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let col = text.find("\"zeros\"").unwrap() + 1;
    assert!(
        err(&o).contains(&format!("one-line.json:1:{col}]")),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).lines().all(|l| l.chars().count() < 400),
        "the line is cut around the label"
    );
    // A layer name over 65,535 characters in the summary table.
    let name = "n".repeat(70_000);
    let spec = spec_in(
        d.path(),
        "long.yaml",
        &format!("name: m\ninput: [4]\nlayers:\n  - {{name: {name}, type: dense, units: 2}}\n"),
    );
    let o = run(&["summary", spec.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&name));
}

#[test]
fn issue13_models_past_the_layer_and_tensor_limits_are_refused_before_allocating() {
    let d = tempfile::tempdir().unwrap();
    let dense = "{type: dense, units: 4, in_features: 4}";
    let cases = [
        format!("name: m\nlayers:\n  - {{type: sequential, repeat: 4000000000, layers: [{dense}]}}\n"),
        format!("name: m\nlayers:\n  - {{type: sequential, repeat: 1000, layers: [{{type: sequential, repeat: 1000, layers: [{{type: sequential, repeat: 1000, layers: [{dense}]}}]}}]}}\n"),
        "name: m\ninput: [5, 4]\nlayers:\n  - {type: lstm, units: 4, num_layers: 1000000000000}\n".to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let spec = spec_in(d.path(), &format!("c{i}.yaml"), text);
        let o = run_timed(
            &["check", "--format", "json", spec.to_str().unwrap()],
            20,
            500_000,
        );
        assert_eq!(code(&o), 1, "{text}: {}", err(&o));
        let ds = json_diags(&o);
        assert!(
            ds.iter().any(|d| d["code"] == "input-limit"),
            "{text}: {ds:?}"
        );
    }
    // A 300,000-entry `allow:` on a repeated block costs its text, not text × layers.
    let allow = vec!["zero-kernel, symmetric-chain"; 150_000].join(", ");
    let spec = spec_in(d.path(), "allow.yaml", &format!(
        "name: m\ninput: [4]\nlayers:\n  - {{type: sequential, repeat: 1000, allow: [{allow}], layers: [{{type: dense, units: 4, kernel_initializer: zeros}}]}}\n"
    ));
    let o = run_capped(&["check", spec.to_str().unwrap()], 500_000);
    assert_eq!(code(&o), 0, "{}", err(&o));
}

#[test]
fn issue13_large_maps_merges_and_anchors_parse_in_linear_time() {
    let d = tempfile::tempdir().unwrap();
    let keys: String = (0..400_000).map(|i| format!("  k{i}: 1\n")).collect();
    let big = spec_in(
        d.path(),
        "keys.yaml",
        &format!("name: m\nlayers: []\nx-big:\n{keys}"),
    );
    let merge_keys: String = (0..60_000).map(|i| format!("  k{i}: 1\n")).collect();
    let merge = spec_in(
        d.path(),
        "merge.yaml",
        &format!("name: m\nlayers: []\nx-a: &a\n{merge_keys}x-b:\n  <<: *a\n  extra: 2\n"),
    );
    let mut nested = format!("[{}]", vec!["1"; 300_000].join(","));
    for k in 0..60 {
        nested = format!("&a{k} [{nested}]");
    }
    let anchors = spec_in(
        d.path(),
        "anchors.yaml",
        &format!("name: m\nlayers: []\nx-n: {nested}\nx-m: *a0\n"),
    );
    for spec in [&big, &merge, &anchors] {
        let o = run_timed(&["check", spec.to_str().unwrap()], 20, 500_000);
        assert_eq!(code(&o), 0, "{}: {}", spec.display(), err(&o));
    }
}

#[test]
fn issue13_many_errors_in_a_big_file_are_reported_fast_and_bounded() {
    let d = tempfile::tempdir().unwrap();
    let bad: String = (0..1000).map(|_| "  - {type: dense}\n").collect();
    let comment = spec_in(
        d.path(),
        "comment.yaml",
        &format!("#{}\nname: m\nlayers:\n{bad}", "x".repeat(10_000_000)),
    );
    let unknown: String = (0..40_000)
        .map(|i| format!("  - {{type: dens{}}}\n", i % 10))
        .collect();
    let unknown = spec_in(
        d.path(),
        "unknown.yaml",
        &format!("name: m\nlayers:\n{unknown}"),
    );
    let empties = spec_in(
        d.path(),
        "empties.json",
        &format!(
            "{{\"name\":\"m\",\"layers\":[{}]}}",
            vec!["{}"; 990_000].join(",")
        ),
    );
    let block: String = (0..990_000).map(|_| "- {}\n").collect();
    let block = spec_in(
        d.path(),
        "empties.yaml",
        &format!("name: m\nlayers:\n{block}"),
    );
    let name = spec_in(
        d.path(),
        "name.yaml",
        &format!(
            "name: m\ninput: [4]\nlayers:\n  - {{type: dense, units: 4, kernel_initializer: {}}}\n",
            "g".repeat(12_000_000)
        ),
    );
    for spec in [&comment, &unknown, &empties, &block, &name] {
        for format in ["human", "json"] {
            let s = spec.to_str().unwrap();
            let o = run_timed(&["check", "--format", format, s], 20, 500_000);
            assert_eq!(code(&o), 1, "{s} {format}: {}", err(&o));
            assert!(
                o.stdout.len() + o.stderr.len() < 4 << 20,
                "{s}: the report stays small"
            );
        }
    }
    let o = run(&["check", "--format", "json", unknown.to_str().unwrap()]);
    let ds = json_diags(&o);
    assert!(ds.len() <= 1001, "{}", ds.len());
    assert!(ds.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("more than 1000 problems"));
}

#[test]
fn issue13_toml_limits_and_strings_the_old_scan_misread() {
    let d = tempfile::tempdir().unwrap();
    let huge = spec_in(
        d.path(),
        "huge.toml",
        &format!(
            "name = 'm'\nlayers = []\nx-a = [{}]\n",
            vec!["1"; 8_000_000].join(",")
        ),
    );
    let o = run_capped(
        &["check", "--format", "json", huge.to_str().unwrap()],
        500_000,
    );
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert_eq!(json_diags(&o)[0]["code"], "input-limit");
    let floats = vec!["0.5"; 100].join(", ");
    let valid = spec_in(d.path(), "valid.toml", &format!(
        "name = 'm'\ninput = [4]\nx-note = '''it's a \"spec\" [[[ with ] brackets'''\nx-floats = [\n  {floats}\n]\n[[layers]]\ntype = 'dense'\nunits = 4\n"
    ));
    let o = run(&["check", valid.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
}

#[test]
fn issue13_headers_too_large_for_readers_are_refused_and_shards_carry_their_own() {
    let d = tempfile::tempdir().unwrap();
    let name = "n".repeat(1000);
    let spec = spec_in(d.path(), "wide.yaml", &format!(
        "name: m\ninput: [1]\nlayers:\n  - {{type: sequential, name: {name}, repeat: 100000, layers: [{{type: dense, units: 1, use_bias: false}}]}}\n"
    ));
    let out = d.path().join("m.safetensors");
    let o = run_timed(
        &["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()],
        60,
        2_000_000,
    );
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(err(&o).contains("--max-shard-size"), "{}", err(&o));
    assert_eq!(names(d.path()), ["wide.yaml"], "nothing written");
    // Shards: each header lists its own tensors' initializers only.
    let o = run(&[
        "build",
        "specs/gpt2-tiny.yaml",
        "-o",
        out.to_str().unwrap(),
        "--max-shard-size",
        "200KB",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    for entry in std::fs::read_dir(d.path()).unwrap() {
        let p = entry.unwrap().path();
        if !p.to_string_lossy().contains("-of-") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let inits: BTreeMap<String, String> =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()["initializers"]).unwrap();
        let mut own: Vec<String> = meta.tensors().into_keys().collect();
        own.sort();
        assert_eq!(
            inits.into_keys().collect::<Vec<_>>(),
            own,
            "{}",
            p.display()
        );
    }
}

#[test]
fn issue13_initializers_that_cannot_be_computed_are_spec_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    for (text, code_word) in [
        ("name: m\ninput: [20000]\nlayers:\n  - {type: dense, units: 20000, use_bias: false, kernel_initializer: orthogonal}\n", "input-limit"),
        ("name: m\ninput: [20000]\nlayers:\n  - {type: dense, units: 20000, use_bias: false, kernel_initializer: {name: sparse, sparsity: 0.1}}\n", "input-limit"),
        ("name: m\ninput: [4]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: {name: uniform, a: -1e300, b: 1e300}}\n", "invalid-parameter"),
        ("name: m\ndtype: f64\ninput: [4]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: {name: uniform, a: -1.7e308, b: 1.7e308}}\n", "invalid-parameter"),
        ("name: m\ndtype: f16\ninput: [4]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: {name: constant, value: 70000}}\n", "invalid-parameter"),
        ("name: m\ninput: [4]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: {name: normal, std: 1e38}}\n", "invalid-parameter"),
    ] {
        let spec = spec_in(d.path(), "s.yaml", text);
        let o = run(&["check", "--format", "json", spec.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "{text}");
        assert_eq!(json_diags(&o)[0]["code"], code_word, "{text}");
        let o = run_capped(&["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()], 500_000);
        assert_eq!(code(&o), 1, "{text}: {}", err(&o));
        assert_eq!(names(d.path()), ["s.yaml"], "{text}");
    }
}

#[test]
fn issue13_many_threads_under_a_memory_cap_build_or_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    for threads in ["200", "400"] {
        let o = run_capped(
            &[
                "build",
                "specs/gpt2-tiny.yaml",
                "-o",
                out.to_str().unwrap(),
                "--threads",
                threads,
            ],
            400_000,
        );
        assert!(
            matches!(code(&o), 0 | 2),
            "--threads {threads}: {:?} {}",
            o.status,
            err(&o)
        );
        assert!(
            names(d.path()).iter().all(|n| !n.ends_with(".tmp")),
            "no temporary file"
        );
    }
}

#[test]
fn issue13_inspect_reads_safely() {
    let d = tempfile::tempdir().unwrap();
    // Escapes in names reach neither summary nor inspect raw.
    let spec = spec_in(d.path(), "esc.yaml", "name: \"m\\e[2J\"\ninput: [4]\nlayers:\n  - {name: \"x\\e[31m\\r\", type: dense, units: 2}\n");
    let out = d.path().join("m.safetensors");
    let o = run(&["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    for args in [
        vec!["inspect", out.to_str().unwrap()],
        vec!["summary", spec.to_str().unwrap()],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert!(
            !o.stdout.contains(&0x1b) && !o.stdout.contains(&b'\r'),
            "{args:?}"
        );
    }
    // A FIFO and a device are refused at once.
    let fifo = d.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for (p, kind) in [
        (fifo.to_str().unwrap(), "FIFO"),
        ("/dev/null", "character device"),
    ] {
        let o = run_timed(&["inspect", p], 10, 500_000);
        assert_eq!(code(&o), 2, "{}", err(&o));
        assert!(err(&o).contains(kind), "{}", err(&o));
    }
    // A file cut short while it is read: an error, never SIGBUS.
    let big = big_spec(d.path(), 8);
    let file = d.path().join("big.safetensors");
    assert_eq!(
        code(&run(&[
            "build",
            big.to_str().unwrap(),
            "-o",
            file.to_str().unwrap()
        ])),
        0
    );
    let child = specc_cmd()
        .args(["inspect", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "{:?} {}",
        o.status,
        err(&o)
    );
}

#[test]
fn issue13_messages_say_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let msg = |text: &str, name: &str| {
        let spec = spec_in(d.path(), name, text);
        let o = run(&["check", "--format", "json", spec.to_str().unwrap()]);
        json_diags(&o)
            .iter()
            .map(|d| d["message"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for v in [".nan", ".inf", "1e309"] {
        let m = msg(
            &format!("name: m\ninput: [4]\nlayers:\n  - {{type: layer_norm, eps: {v}}}\n"),
            "f.yaml",
        );
        assert!(m.contains("must be a finite number, found"), "{v}: {m}");
        assert!(!m.contains("found a number"), "{v}: {m}");
    }
    let m = msg(
        "name = 'm'\nseed = 123456789012345678901234567890123456789012345\nlayers = []\n",
        "i.toml",
    );
    assert!(m.contains("integer out of range"), "{m}");
    let m = msg(
        "name = 'm'\nseed = 99999999999999999999\nlayers = []\n",
        "j.toml",
    );
    assert!(m.contains("larger than 2^64-1"), "{m}");
    // /proc has no free-space figure to blame.
    let o = run(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        "/proc/specc-test.safetensors",
    ]);
    assert_eq!(code(&o), 2);
    assert!(!err(&o).contains("space"), "{}", err(&o));
    let o = run(&[
        "build",
        "specs/mlp.yaml",
        "-o",
        "x.safetensors",
        "--max-shard-size",
        "-5GB",
    ]);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("negative"), "{}", err(&o));
    let o = specc_cmd()
        .args([
            "build",
            "specs/mlp.yaml",
            "-o",
            d.path().join("x.safetensors").to_str().unwrap(),
        ])
        .env("SLURM_ARRAY_TASK_ID", "18446744073709551615")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("SLURM_ARRAY_TASK_ID") && !err(&o).contains("0/4"),
        "{}",
        err(&o)
    );
    // CR-only line endings: one position everywhere.
    let spec = spec_in(
        d.path(),
        "cr.yaml",
        "name: m\rinput: [4]\rlayers:\r  - {type: dense, units: 4, bad: 1}\r",
    );
    let o = run(&["check", "--format", "json", spec.to_str().unwrap()]);
    let ds = json_diags(&o);
    let unknown = ds.iter().find(|d| d["code"] == "unknown-key").unwrap();
    assert_eq!(
        (unknown["line"].as_u64(), unknown["column"].as_u64()),
        (Some(4), Some(29))
    );
    let o = run(&["check", spec.to_str().unwrap()]);
    assert!(err(&o).contains("cr.yaml:4:29]"), "{}", err(&o));
    // A TOML spec on standard input is read as TOML.
    let mut child = specc_cmd()
        .args(["check", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"name = 'm'\ninput = [4]\n[[layers]]\ntype = 'dense'\nunits = 2\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
}
