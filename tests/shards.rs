//! Sharded output in the Hugging Face layout, and builds split into parts.

use crate::common::specc_cmd;
use std::path::Path;

fn specc(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = specc_cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn build_in(dir: &Path, extra: &[&str], env: &[(&str, &str)]) {
    let out = dir.join("model.safetensors");
    let mut args = vec![
        "build",
        "specs/gpt2-tiny.yaml",
        "-o",
        out.to_str().unwrap(),
        "--max-shard-size",
        "200KB",
    ];
    args.extend_from_slice(extra);
    let o = specc(&args, env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn shards_and_index_follow_the_hugging_face_layout() {
    let d = tempfile::tempdir().unwrap();
    build_in(d.path(), &[], &[]);
    let f = files(d.path());
    let names: Vec<&str> = f.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "model-00001-of-00004.safetensors",
            "model-00002-of-00004.safetensors",
            "model-00003-of-00004.safetensors",
            "model-00004-of-00004.safetensors",
            "model.safetensors.index.json"
        ]
    );
    let index: serde_json::Value =
        serde_json::from_slice(&f["model.safetensors.index.json"]).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    let mut total = 0u64;
    for (name, bytes) in &f {
        if !name.ends_with(".safetensors") {
            continue;
        }
        let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
        for (t, v) in st.tensors() {
            assert_eq!(map[&t], name.as_str(), "{t} is listed in its shard");
            total += v.data().len() as u64;
        }
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    }
    assert_eq!(index["metadata"]["total_size"], total);
    assert_eq!(map.len(), 28);
    assert!(
        !map.contains_key("lm_head.weight"),
        "tied weights are not stored"
    );
}

#[test]
fn parts_together_write_exactly_what_one_build_writes() {
    let (one, split, env) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    build_in(one.path(), &[], &[]);
    for p in ["1/3", "2/3", "3/3"] {
        build_in(split.path(), &["--part", p], &[]);
    }
    assert_eq!(files(one.path()), files(split.path()));
    // the same from the job engines' variables
    for i in ["4", "5"] {
        build_in(
            env.path(),
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", i),
                ("SLURM_ARRAY_TASK_MIN", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
        );
    }
    assert_eq!(files(one.path()), files(env.path()));
    let k8s = tempfile::tempdir().unwrap();
    for i in ["0", "1", "2", "3"] {
        build_in(
            k8s.path(),
            &[],
            &[("JOB_COMPLETION_INDEX", i), ("SPECC_PART_COUNT", "4")],
        );
    }
    assert_eq!(files(one.path()), files(k8s.path()));
}

#[test]
fn bad_parts_and_sizes_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.safetensors");
    let o = out.to_str().unwrap();
    for args in [
        vec!["build", "specs/mlp.yaml", "-o", o, "--part", "0/2"],
        vec!["build", "specs/mlp.yaml", "-o", o, "--part", "3/2"],
        vec![
            "build",
            "specs/mlp.yaml",
            "-o",
            o,
            "--max-shard-size",
            "2XB",
        ],
        vec!["build", "specs/mlp.yaml", "-o", o, "--max-shard-size", "0"],
    ] {
        assert_eq!(specc(&args, &[]).status.code(), Some(2), "{args:?}");
    }
    let r = specc(
        &["build", "specs/mlp.yaml", "-o", o],
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert_eq!(
        r.status.code(),
        Some(2),
        "a Kubernetes index without a count"
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("SPECC_PART_COUNT"));
    assert!(!out.exists());
}

#[test]
#[cfg(feature = "candle")]
fn one_shard_is_a_plain_file_and_candle_reads_shards() {
    // specs/mlp.yaml built with `--max-shard-size size` into a directory of its own.
    let sharded = |size: &str| {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("model.safetensors");
        let args = [
            "build",
            "specs/mlp.yaml",
            "-o",
            out.to_str().unwrap(),
            "--max-shard-size",
            size,
        ];
        let o = specc(&args, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        d
    };
    let d = sharded("5GB");
    assert_eq!(files(d.path()).len(), 1, "no index for a single shard");

    let s = sharded("300KB");
    let shards: Vec<std::path::PathBuf> = std::fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    assert!(shards.len() >= 2);
    // SAFETY: the files are ours and not modified while mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &shards,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
    }
    .unwrap();
    for (name, shape) in [
        ("fc1.weight", (256, 784)),
        ("fc2.weight", (128, 256)),
        ("out.weight", (10, 128)),
    ] {
        assert_eq!(vb.get(shape, name).unwrap().dims(), &[shape.0, shape.1]);
    }
}
