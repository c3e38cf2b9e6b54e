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
    files(dir).into_keys().collect()
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
            assert!(
                err(&o).contains("it is the spec being built"),
                "{}",
                err(&o)
            );
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
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait_with_output().unwrap().status;
        assert_eq!(status.signal(), Some(sig), "signal {sig}: exit status");
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
