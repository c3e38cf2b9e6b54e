//! Determinism (SPEC.md section 5): same spec, same bytes; thread count, other layers and
//! chunking do not change a tensor; the seed does; bf16 is f32 rounded.

use crate::common::build;
use std::path::Path;

/// name -> (dtype, shape, bytes), read with the safetensors crate.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SPEC: &str = "name: det\nseed: 7\ninput: [64]\nlayers:\n  - {name: a, type: dense, units: 300, kernel_initializer: he_normal}\n  - {name: b, type: dense, units: 200, kernel_initializer: {name: trunc_normal, std: 0.02}}\n  - {name: c, type: dense, units: 10, kernel_initializer: orthogonal, bias_initializer: {name: uniform, a: -1, b: 1}}\n";

#[test]
fn same_spec_twice_gives_identical_files() {
    let d = tempfile::tempdir().unwrap();
    let spec = write(d.path(), "m.yaml", SPEC);
    build(&spec, &d.path().join("1.safetensors"), &[]);
    build(&spec, &d.path().join("2.safetensors"), &[]);
    assert_eq!(
        std::fs::read(d.path().join("1.safetensors")).unwrap(),
        std::fs::read(d.path().join("2.safetensors")).unwrap()
    );
}

#[test]
fn thread_count_does_not_change_the_bytes() {
    let d = tempfile::tempdir().unwrap();
    // Several 1 MiB pieces per tensor (a: 6 MiB), a tensor computed whole (b, orthogonal),
    // and half-precision tensors whose sizes are not multiples of a piece or of 4 bytes.
    let spec = write(
        d.path(),
        "m.yaml",
        "name: big\ninput: [1536]\nlayers:\n  - {name: a, type: dense, units: 1024}\n  - {name: b, type: dense, units: 300, kernel_initializer: orthogonal}\n  - {name: c, type: dense, units: 333, dtype: bf16, bias_initializer: {name: uniform, a: -1, b: 1}}\n  - {name: e, type: dense, units: 77, dtype: f16, kernel_initializer: trunc_normal}\n",
    );
    let runs: [(&str, &[&str]); 5] = [
        ("1", &["--threads", "1"]),
        ("2", &["--threads", "2"]),
        ("3", &["--threads", "3"]),
        ("7", &["--threads", "7"]),
        ("sync", &["--fsync"]),
    ];
    for (name, args) in runs {
        build(&spec, &d.path().join(format!("{name}.safetensors")), args);
    }
    let one = std::fs::read(d.path().join("1.safetensors")).unwrap();
    for (name, _) in &runs[1..] {
        let other = std::fs::read(d.path().join(format!("{name}.safetensors"))).unwrap();
        assert!(one == other, "{name} differs from one thread");
    }
    // And the file holds what the in-process generator gives for each tensor, in f64 too
    // (written straight from the sampler, as f32 is).
    let text = std::fs::read_to_string(&spec).unwrap();
    build(
        &spec,
        &d.path().join("f64.safetensors"),
        &["--dtype", "f64"],
    );
    for (file, dtype) in [("1", None), ("f64", Some(specc::DType::F64))] {
        let options = specc::Options {
            dtype,
            ..Default::default()
        };
        let m = specc::check_with(&specc::SourceFile::new("m.yaml", text.clone()), options)
            .model
            .unwrap();
        let stored = tensors(&d.path().join(format!("{file}.safetensors")));
        for t in &m.tensors {
            let want = specc::build::tensor_bytes(t, m.layout);
            assert_eq!(stored[&t.name].2, want, "{file}: {}", t.name);
        }
    }
}

#[test]
fn inserting_a_layer_leaves_other_tensors_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let spec = write(d.path(), "m.yaml", SPEC);
    let more = SPEC.replace(
        "  - {name: c,",
        "  - {name: extra, type: dense, units: 200, in_features: 200}\n  - {name: c,",
    );
    let spec2 = write(d.path(), "m2.yaml", &more);
    build(&spec, &d.path().join("1.safetensors"), &[]);
    build(&spec2, &d.path().join("2.safetensors"), &[]);
    let (a, b) = (
        tensors(&d.path().join("1.safetensors")),
        tensors(&d.path().join("2.safetensors")),
    );
    assert_eq!(b.len(), a.len() + 2);
    for (name, t) in &a {
        assert_eq!(
            Some(t),
            b.get(name),
            "{name} changed when a layer was inserted"
        );
    }
}

#[test]
fn seed_changes_the_values_and_the_metadata() {
    let d = tempfile::tempdir().unwrap();
    let spec = write(d.path(), "m.yaml", SPEC);
    build(&spec, &d.path().join("1.safetensors"), &[]);
    build(&spec, &d.path().join("2.safetensors"), &["--seed", "8"]);
    let (a, b) = (
        tensors(&d.path().join("1.safetensors")),
        tensors(&d.path().join("2.safetensors")),
    );
    for name in ["a.weight", "b.weight", "c.weight", "c.bias", "a.bias"] {
        assert_ne!(a[name].2, b[name].2, "{name}");
    }
    // the spec says seed 7: building it with --seed 7 is the same file
    build(&spec, &d.path().join("3.safetensors"), &["--seed", "7"]);
    assert_eq!(
        std::fs::read(d.path().join("1.safetensors")).unwrap(),
        std::fs::read(d.path().join("3.safetensors")).unwrap()
    );
    let bytes = std::fs::read(d.path().join("2.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["seed"], "8");
}

#[test]
fn bf16_output_is_the_f32_output_rounded() {
    let d = tempfile::tempdir().unwrap();
    let spec = write(d.path(), "m.yaml", SPEC);
    build(&spec, &d.path().join("f32.safetensors"), &[]);
    build(
        &spec,
        &d.path().join("bf16.safetensors"),
        &["--dtype", "bf16"],
    );
    build(
        &spec,
        &d.path().join("f16.safetensors"),
        &["--dtype", "f16"],
    );
    let (a, b, h) = (
        tensors(&d.path().join("f32.safetensors")),
        tensors(&d.path().join("bf16.safetensors")),
        tensors(&d.path().join("f16.safetensors")),
    );
    for (name, (dtype, shape, data)) in &a {
        assert_eq!(dtype, "F32");
        assert_eq!((&b[name].0, &b[name].1), (&"BF16".to_string(), shape));
        let f: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want_bf: Vec<u8> = f
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        let want_h: Vec<u8> = f
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        assert_eq!(b[name].2, want_bf, "{name}");
        assert_eq!(h[name].2, want_h, "{name}");
    }
}

#[test]
fn chunked_generation_equals_whole_generation() {
    let text = SPEC.replace("units: 300", "units: 3000");
    let m = crate::common::model("m.yaml", &text);
    for t in &m.tensors {
        let whole = specc::build::tensor_bytes(t, m.layout);
        let g = specc::build::Generator::new(t, m.layout);
        let mut parts = Vec::new();
        let n = t.numel();
        let mut start = 0;
        for step in [1u64, 7, 1000, 65_537].iter().cycle() {
            if start >= n {
                break;
            }
            let k = (*step).min(n - start);
            g.bytes(start, k as usize, &mut parts);
            start += k;
        }
        assert_eq!(whole, parts, "{}", t.name);
    }
}
