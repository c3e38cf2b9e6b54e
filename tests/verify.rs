//! `specc verify`: an untouched build matches (exit 0); a flipped byte, a missing shard,
//! an unexpected or reshaped tensor, another format number and another recipe do not
//! (exit 1, naming the tensor and element); what cannot be checked exits 2.

use crate::common::specc_cmd;
use specc::inspect::Reader;
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    specc_cmd().args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `verify --format json`'s verdict, and its exit code.
fn verdict(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let o = run(&all);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (code(&o), v)
}

/// A spec of dense layers of these widths (the first is the input), `dtype`, one init.
fn spec(dir: &Path, file: &str, widths: &[u64], dtype: &str, init: &str) -> PathBuf {
    let mut s = format!(
        "name: v\nseed: 7\ndtype: {dtype}\nlayout: pytorch\ninput: [{}]\nlayers:\n",
        widths[0]
    );
    for (i, w) in widths[1..].iter().enumerate() {
        s += &format!(
            "  - {{name: fc{i}, type: dense, units: {w}, kernel_initializer: {init}, bias_initializer: {{name: constant, value: 0.1}}}}\n"
        );
    }
    let p = dir.join(file);
    std::fs::write(&p, s).unwrap();
    p
}

fn build(spec: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", text(&o));
}

/// Flips the lowest bit of element `el` of `tensor`'s first byte.
fn flip(file: &Path, tensor: &str, el: u64) {
    let r = Reader::open(file).unwrap();
    let e = r.entries.iter().find(|e| e.name == tensor).unwrap();
    let at = (e.offset + el * (e.dtype.bitsize() / 8) as u64) as usize;
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 1;
    std::fs::write(file, bytes).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_untouched_build_matches_and_a_flipped_byte_is_found_at_its_element() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in ["f32", "bf16", "f16", "f64"] {
        let sp = spec(dir.path(), "a.yaml", &[300, 500, 7], dtype, "he_normal");
        let out = dir.path().join(format!("a-{dtype}.safetensors"));
        build(&sp, &out, &[]);
        let (c, v) = verdict(&[s(&sp), s(&out)]);
        assert_eq!(c, 0, "{dtype}: {v}");
        assert_eq!(v["matched"], true);
        assert_eq!(v["problems"].as_array().unwrap().len(), 0);
        // Element 123,457 is row 411, column 157 of the 500×300 weight (torch's [out, in]).
        flip(&out, "fc0.weight", 123_457);
        let (c, v) = verdict(&[s(&sp), s(&out), "--threads", "2"]);
        assert_eq!(c, 1, "{dtype}: {v}");
        let p = &v["problems"].as_array().unwrap();
        assert_eq!(p.len(), 1, "{v}");
        assert_eq!(p[0]["tensor"], "fc0.weight");
        assert_eq!(p[0]["kind"], "bytes");
        assert_eq!(p[0]["element"], 123_457);
        assert!(
            p[0]["message"].as_str().unwrap().contains("[411, 157]"),
            "{v}"
        );
        // The human verdict names it too, and the thread count does not change it.
        let o = run(&["verify", s(&sp), s(&out), "--threads", "1"]);
        assert_eq!(code(&o), 1);
        let t = text(&o);
        assert!(
            t.contains("`fc0.weight`: element 123457 ([411, 157])"),
            "{t}"
        );
        assert!(t.contains("MISMATCH: 1 problem"), "{t}");
    }
}

#[test]
fn a_shard_set_matches_and_a_missing_shard_names_its_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(
        dir.path(),
        "a.yaml",
        &[256, 512, 512, 512, 10],
        "f32",
        "glorot_uniform",
    );
    let out = dir.path().join("model.safetensors");
    build(&sp, &out, &["--max-shard-size", "1MB"]);
    let index = dir.path().join("model.safetensors.index.json");
    // The directory, and the index itself.
    for path in [dir.path(), index.as_path()] {
        let (c, v) = verdict(&[s(&sp), s(path)]);
        assert_eq!(c, 0, "{v}");
        assert!(v["files"].as_array().unwrap().len() >= 3, "{v}");
    }
    let shard = dir.path().join("model-00002-of-00005.safetensors");
    let inside: Vec<String> = Reader::open(&shard)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    std::fs::remove_file(&shard).unwrap();
    let (c, v) = verdict(&[s(&sp), s(dir.path())]);
    assert_eq!(c, 1, "{v}");
    let missing: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["kind"], "missing", "{v}");
            assert!(p["message"].as_str().unwrap().contains("00002-of-00005"));
            p["tensor"].as_str().unwrap()
        })
        .collect();
    assert_eq!(missing, inside);
    // The shards still there were compared.
    assert!(v["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn names_shapes_and_dtypes_must_be_the_specs() {
    let dir = tempfile::tempdir().unwrap();
    let two = spec(dir.path(), "two.yaml", &[64, 32, 8], "f32", "he_normal");
    let three = spec(
        dir.path(),
        "three.yaml",
        &[64, 32, 8, 4],
        "f32",
        "he_normal",
    );
    let wide = spec(dir.path(), "wide.yaml", &[64, 33, 8], "f32", "he_normal");
    let out = dir.path().join("three.safetensors");
    build(&three, &out, &[]);
    let kinds = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["kind"].as_str().unwrap().into(),
                    p["tensor"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let pair = |k: &str, t: &str| (k.to_string(), t.to_string());
    let (c, v) = verdict(&[s(&two), s(&out)]);
    assert_eq!(c, 1);
    assert_eq!(
        kinds(&v),
        [
            pair("unexpected", "fc2.bias"),
            pair("unexpected", "fc2.weight")
        ]
    );
    let small = dir.path().join("two.safetensors");
    build(&two, &small, &[]);
    let (c, v) = verdict(&[s(&three), s(&small)]);
    assert_eq!(c, 1);
    assert_eq!(
        kinds(&v),
        [pair("missing", "fc2.weight"), pair("missing", "fc2.bias")]
    );
    let (c, v) = verdict(&[s(&wide), s(&small)]);
    assert_eq!(c, 1);
    let k = kinds(&v);
    assert!(
        k.contains(&pair("shape", "fc0.weight")) && k.contains(&pair("shape", "fc1.weight")),
        "{v}"
    );
    let (c, v) = verdict(&[s(&two), s(&small), "--dtype", "bf16"]);
    assert_eq!(c, 1);
    assert!(
        kinds(&v).iter().all(|(k, _)| k == "dtype") && kinds(&v).len() == 4,
        "{v}"
    );
}

#[test]
fn another_seed_is_hinted_and_another_format_number_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(dir.path(), "a.yaml", &[64, 32], "f32", "he_normal");
    let out = dir.path().join("a.safetensors");
    build(&sp, &out, &["--seed", "99"]);
    let o = run(&["verify", s(&sp), s(&out)]);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("try `--seed 99`"), "{}", text(&o));
    assert_eq!(code(&run(&["verify", s(&sp), s(&out), "--seed", "99"])), 0);
    // The same bytes, claiming format 9: not compared byte for byte, and said so.
    let bytes = std::fs::read(&out).unwrap();
    let at = bytes
        .windows(18)
        .position(|w| w == b"\"specc_format\":\"3\"")
        .unwrap();
    let mut other = bytes.clone();
    other[at + 16] = b'9';
    let nine = dir.path().join("nine.safetensors");
    std::fs::write(&nine, other).unwrap();
    let (c, v) = verdict(&[s(&sp), s(&nine), "--seed", "99"]);
    assert_eq!(c, 1, "{v}");
    assert_eq!(v["problems"][0]["kind"], "format");
    assert!(v["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("format 9"));
    // Its distributions can still be tested.
    assert_eq!(code(&run(&["verify", s(&sp), s(&nine), "--stats"])), 0);
}

#[test]
fn a_format_1_build_is_regenerated_in_format_1() {
    // f64 normals and orthogonal differ between formats 1 and 2; everything else is equal.
    let dir = tempfile::tempdir().unwrap();
    let spec_text = |format: &str| {
        format!("name: f\nseed: 3\n{format}dtype: f64\ninput: [40]\nlayers:\n  - {{name: a, type: dense, units: 30, kernel_initializer: orthogonal}}\n  - {{name: b, type: dense, units: 20, kernel_initializer: {{name: normal, std: 0.1}}}}\n")
    };
    let one = dir.path().join("one.yaml");
    let now = dir.path().join("now.yaml");
    std::fs::write(&one, spec_text("specc_format: 1\n")).unwrap();
    std::fs::write(&now, spec_text("")).unwrap();
    let (f1, f2) = (
        dir.path().join("1.safetensors"),
        dir.path().join("2.safetensors"),
    );
    build(&one, &f1, &[]);
    build(&now, &f2, &[]);
    assert_ne!(std::fs::read(&f1).unwrap(), std::fs::read(&f2).unwrap());
    let meta = |p: &Path| {
        Reader::open(p)
            .unwrap()
            .metadata
            .get("specc_format")
            .cloned()
    };
    assert_eq!(
        (meta(&f1).as_deref(), meta(&f2).as_deref()),
        (Some("1"), Some("3"))
    );
    // Each file matches the spec in its own format, whichever the spec asks for.
    for spec in [&one, &now] {
        for file in [&f1, &f2] {
            let (c, v) = verdict(&[s(spec), s(file)]);
            assert_eq!(c, 0, "{} {}: {v}", spec.display(), file.display());
        }
    }
    // A flipped byte in the format-1 file is still found.
    flip(&f1, "a.weight", 7);
    let (c, v) = verdict(&[s(&now), s(&f1)]);
    assert_eq!(
        (c, v["problems"][0]["element"].as_u64()),
        (1, Some(7)),
        "{v}"
    );
    // A format this specc does not know is an error at the spec's line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, spec_text("specc_format: 7\n")).unwrap();
    let o = run(&["check", s(&bad)]);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("specc_format 7"), "{}", text(&o));
}

#[test]
fn a_format_2_orthogonal_in_f32_is_regenerated_in_format_2() {
    // Format 3 forms an f32 tensor's orthogonal matrix in f32, format 2 in f64: other
    // bytes, and each file matches the spec in its own format.
    let dir = tempfile::tempdir().unwrap();
    let spec_text = |format: &str| {
        format!("name: f\nseed: 3\n{format}input: [300]\nlayers:\n  - {{name: a, type: dense, units: 200, kernel_initializer: orthogonal}}\n")
    };
    let two = dir.path().join("two.yaml");
    let now = dir.path().join("now.yaml");
    std::fs::write(&two, spec_text("specc_format: 2\n")).unwrap();
    std::fs::write(&now, spec_text("")).unwrap();
    let (f2, f3) = (
        dir.path().join("2.safetensors"),
        dir.path().join("3.safetensors"),
    );
    build(&two, &f2, &[]);
    build(&now, &f3, &[]);
    let f32s = |file: &Path| {
        let r = Reader::open(file).unwrap();
        let e = r.entries.iter().find(|e| e.name == "a.weight").unwrap();
        let bytes = std::fs::read(file).unwrap();
        bytes[e.offset as usize..][..e.len as usize]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect::<Vec<f32>>()
    };
    let (a2, a3) = (f32s(&f2), f32s(&f3));
    assert_ne!(a2, a3);
    // The same matrix to f32's precision: f32 arithmetic changes the last bits only.
    let worst = a2
        .iter()
        .zip(&a3)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");
    for spec in [&two, &now] {
        for file in [&f2, &f3] {
            let (c, v) = verdict(&[s(spec), s(file)]);
            assert_eq!(c, 0, "{} {}: {v}", spec.display(), file.display());
        }
    }
}

#[test]
fn a_directory_without_one_checkpoint_is_exit_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(dir.path(), "a.yaml", &[8, 4], "f32", "he_normal");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = run(&["verify", s(&sp), s(&out)]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("holds no safetensors file or index"),
        "{}",
        text(&o)
    );
    build(&sp, &out.join("a.safetensors"), &[]);
    assert_eq!(code(&run(&["verify", s(&sp), s(&out)])), 0);
    std::fs::copy(out.join("a.safetensors"), out.join("b.safetensors")).unwrap();
    let o = run(&["verify", s(&sp), s(&out)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("name the one to read"), "{}", text(&o));
}

#[test]
fn stats_accept_the_recipe_and_refuse_another() {
    let dir = tempfile::tempdir().unwrap();
    let he = spec(dir.path(), "he.yaml", &[512, 512, 256], "bf16", "he_normal");
    let glorot = spec(
        dir.path(),
        "g.yaml",
        &[512, 512, 256],
        "bf16",
        "glorot_uniform",
    );
    let out = dir.path().join("he.safetensors");
    // Another seed: the bytes differ, the distribution does not.
    build(&he, &out, &["--seed", "5"]);
    let (c, v) = verdict(&[s(&he), s(&out), "--stats"]);
    assert_eq!(c, 0, "{v}");
    let tests: Vec<&str> = v["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["ks", "constant", "ks", "constant"]);
    assert!(v["stats"][0]["p"].as_f64().unwrap() > 1e-6);
    let (c, v) = verdict(&[s(&glorot), s(&out), "--stats", "--threads", "1"]);
    assert_eq!(c, 1, "{v}");
    let bad: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tensor"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["fc0.weight", "fc1.weight"]);
    assert_eq!(v["problems"][0]["kind"], "distribution");
}

#[test]
fn stats_test_the_structure_of_orthogonal_and_sparse() {
    let dir = tempfile::tempdir().unwrap();
    for (init, test) in [
        ("orthogonal", "orthogonal"),
        ("{name: sparse, sparsity: 0.3}", "sparse"),
    ] {
        for dtype in ["f32", "bf16"] {
            let sp = spec(dir.path(), "s.yaml", &[300, 200, 500], dtype, init);
            let out = dir.path().join("s.safetensors");
            build(&sp, &out, &["--seed", "11"]);
            let (c, v) = verdict(&[s(&sp), s(&out), "--stats"]);
            assert_eq!(c, 0, "{init} {dtype}: {v}");
            assert_eq!(v["stats"][0]["test"], test);
            assert_eq!(v["stats"][2]["test"], test);
            // The same file read as another recipe's.
            let he = spec(dir.path(), "he.yaml", &[300, 200, 500], dtype, "he_normal");
            let (c, v) = verdict(&[s(&he), s(&out), "--stats"]);
            assert_eq!(c, 1, "{init} {dtype}: {v}");
        }
    }
}

#[test]
fn what_cannot_be_checked_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(dir.path(), "a.yaml", &[8, 4], "f32", "he_normal");
    let out = dir.path().join("a.safetensors");
    build(&sp, &out, &[]);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: v\ninput: [8]\nlayers:\n  - {type: dense, unitz: 4}\n",
    )
    .unwrap();
    let o = run(&["verify", s(&bad), s(&out)]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("unitz"), "{}", text(&o));
    let garbage = dir.path().join("g.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    for path in [
        garbage,
        dir.path().join("absent.safetensors"),
        dir.path().join("empty"),
    ] {
        if path.ends_with("empty") {
            std::fs::create_dir(&path).unwrap();
        }
        let o = run(&["verify", s(&sp), s(&path)]);
        assert_eq!(code(&o), 2, "{}: {}", path.display(), text(&o));
        assert!(text(&o).contains("error:"), "{}", text(&o));
    }
}
