//! `from_file` (SPEC.md §8): values read from safetensors, `.npy`, sharded directories and
//! indexes, cast to the tensor's dtype; copies in the same dtype byte for byte; the source's
//! SHA-256 in the metadata; every problem at the spec's line with exit 1 and no output.

use crate::common::specc_cmd;
use std::path::Path;

/// A `.npy` (format 1.0) of little-endian values.
fn npy(path: &Path, descr: &str, shape: &[usize], fortran: bool, data: &[u8]) {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_text}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file of `(name, dtype, shape, bytes)`.
fn safetensors(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Each tensor's name, dtype, shape and bytes, sorted.
type Tensors = Vec<(String, String, Vec<usize>, Vec<u8>)>;

/// The tensors and the metadata of a built file.
fn read(path: &Path) -> (Tensors, std::collections::HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                format!("{:?}", t.dtype()),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    v.sort();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (v, meta.metadata().clone().unwrap_or_default())
}

fn build(spec: &Path, out: &Path) -> std::process::Output {
    specc_cmd()
        .args(["build", spec.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn values_are_read_cast_and_copied_bit_for_bit() {
    let d = tempfile::tempdir().unwrap();
    let emb: Vec<f32> = (0..40).map(|i| i as f32 * 0.25 - 3.0).collect();
    npy(
        &d.path().join("emb.npy"),
        "<f4",
        &[10, 4],
        false,
        &f32s(&emb),
    );
    // A Fortran-ordered [4, 10] f64 matrix: element (r, c) at c·4 + r.
    let wide: Vec<u8> = (0..40)
        .flat_map(|k| ((k % 4) as f64 * 10.0 + (k / 4) as f64).to_le_bytes())
        .collect();
    npy(&d.path().join("wide.npy"), "<f8", &[4, 10], true, &wide);
    let bf: Vec<u8> = (0..12u16)
        .flat_map(|i| (0x3f80 + i * 7).to_le_bytes())
        .collect();
    let k: Vec<f32> = (0..12).map(|i| 1.0 + 1e-7 * i as f32).collect();
    let ids: Vec<u8> = (0..6i64)
        .flat_map(|i| (i * 1_000_000_007).to_le_bytes())
        .collect();
    safetensors(
        &d.path().join("src.safetensors"),
        &[
            ("w", safetensors::Dtype::BF16, vec![3, 4], bf.clone()),
            ("k", safetensors::Dtype::F32, vec![4, 3], f32s(&k)),
            ("ids", safetensors::Dtype::I64, vec![6], ids.clone()),
        ],
    );
    let spec = d.path().join("s.yaml");
    std::fs::write(
        &spec,
        "name: ff\ninput: [4]\nlayers:\n\
  - {name: emb, type: embedding, num_embeddings: 10, embedding_dim: 4, embeddings_initializer: {name: from_file, path: emb.npy}}\n\
  - {name: wide, type: embedding, num_embeddings: 10, embedding_dim: 4, embeddings_initializer: {name: from_file, path: wide.npy, transpose: true}}\n\
  - {name: a, type: dense, units: 3, use_bias: false, dtype: bf16, kernel_initializer: {name: from_file, path: src.safetensors, tensor: w}}\n\
  - {name: half, type: dense, units: 3, in_features: 4, use_bias: false, dtype: bf16, kernel_initializer: {name: from_file, path: src.safetensors, tensor: k, transpose: true}}\n\
  - {name: ids, type: parameter, shape: [6], dtype: int64, initializer: {name: from_file, path: src.safetensors}}\n",
    )
    .unwrap();
    let out = d.path().join("out.safetensors");
    crate::common::build(&spec, &out, &[]);
    let (tensors, meta) = read(&out);
    let get = |n: &str| tensors.iter().find(|t| t.0 == n).unwrap().clone();
    assert_eq!(get("emb.weight").3, f32s(&emb), "a .npy copied as it is");
    // wide.npy is the [4, 10] matrix m[r][c] = 10r + c; transposed into [10, 4]: (c, r).
    let want: Vec<f32> = (0..40).map(|i| ((i % 4) * 10 + i / 4) as f32).collect();
    assert_eq!(
        get("wide.weight").3,
        f32s(&want),
        "f64 → f32, Fortran order, transposed"
    );
    assert_eq!(get("a.weight").3, bf, "bf16 → bf16 is a byte copy");
    // f32 → bf16 rounds to nearest-even, transposed: element (o, i) is k[i][o].
    let want: Vec<u8> = (0..12)
        .flat_map(|j| half::bf16::from_f32(k[(j % 4) * 3 + j / 4]).to_le_bytes())
        .collect();
    assert_eq!(get("half.weight").3, want);
    assert_eq!(
        get("ids").3,
        ids,
        "int64 beyond 2^53 would not survive f64: copied"
    );
    let sources: serde_json::Value = serde_json::from_str(&meta["from_file"]).unwrap();
    let sha = specc::source::hex_sha256(&std::fs::read(d.path().join("src.safetensors")).unwrap());
    assert_eq!(sources["src.safetensors"], sha.as_str());
    assert_eq!(sources.as_object().unwrap().len(), 3);
}

#[test]
fn a_sharded_directory_and_its_index_are_sources() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base");
    std::fs::create_dir(&base).unwrap();
    let spec = d.path().join("base.yaml");
    std::fs::write(&spec, "name: b\ninput: [64]\nlayers:\n  - {name: a, type: dense, units: 512}\n  - {name: b, type: dense, units: 64}\n").unwrap();
    crate::common::build(
        &spec,
        &base.join("model.safetensors"),
        &["--max-shard-size", "100KB"],
    );
    // The same spec and seed built whole: each copy must have its bytes.
    let whole = d.path().join("whole.safetensors");
    crate::common::build(&spec, &whole, &[]);
    let whole = read(&whole).0;
    for path in ["base", "base/model.safetensors.index.json"] {
        let grown = d.path().join("g.yaml");
        std::fs::write(
            &grown,
            format!("name: b\ninput: [64]\ndefaults:\n  kernel_initializer: {{name: from_file, path: {path}}}\n  bias_initializer: {{name: from_file, path: {path}}}\nlayers:\n  - {{name: a, type: dense, units: 512}}\n  - {{name: b, type: dense, units: 64}}\n"),
        )
        .unwrap();
        let out = d.path().join("g.safetensors");
        crate::common::build(&grown, &out, &[]);
        let (tensors, meta) = read(&out);
        assert_eq!(tensors, whole, "{path}");
        assert!(
            meta["from_file"].contains("base/model-00001-of-"),
            "{}",
            meta["from_file"]
        );
    }
}

#[test]
fn problems_are_reported_at_the_initializer_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    safetensors(
        &d.path().join("src.safetensors"),
        &[(
            "fc.weight",
            safetensors::Dtype::F32,
            vec![4, 8],
            f32s(&[0.5; 32]),
        )],
    );
    let cases = [
        (
            "{name: from_file, path: nowhere.safetensors}",
            "cannot open",
        ),
        (
            "{name: from_file, path: src.safetensors, tensor: fc.weigth}",
            "did you mean `fc.weight`?",
        ),
        (
            "{name: from_file, path: src.safetensors, tensor: fc.weight, transpose: true}",
            "has shape [8, 4] transposed",
        ),
        ("{name: from_file}", "needs `path`"),
        ("{name: from_file, path: s.yaml}", "not a safetensors file"),
    ];
    for (init, want) in cases {
        let spec = d.path().join("s.yaml");
        std::fs::write(
            &spec,
            format!("name: e\ninput: [8]\nlayers:\n  - {{name: fc, type: dense, units: 4, use_bias: false, kernel_initializer: {init}}}\n"),
        )
        .unwrap();
        let out = d.path().join("out.safetensors");
        let o = build(&spec, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{init}: {err}");
        assert!(err.contains(want), "{init}: {err}");
        assert!(
            err.contains("s.yaml:4:"),
            "{init}: at the layer's line: {err}"
        );
        assert!(!out.exists());
    }
    // Transposed sources get the hint, and a float source does not fill an integer tensor.
    let spec = d.path().join("t.yaml");
    std::fs::write(&spec, "name: e\ninput: [4]\nlayers:\n  - {name: fc, type: dense, units: 8, use_bias: false, kernel_initializer: {name: from_file, path: src.safetensors}}\n  - {name: p, type: parameter, shape: [4, 8], dtype: int64, initializer: {name: from_file, path: src.safetensors, tensor: fc.weight}}\n").unwrap();
    let o = build(&spec, &d.path().join("out.safetensors"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("this tensor's transpose"), "{err}");
    assert!(err.contains("drop the fractions"), "{err}");
    assert!(err.contains("from-file"), "{err}");
}

#[test]
fn a_snapshot_of_links_to_blobs_is_read_by_the_names_it_shows() {
    // A Hugging Face hub snapshot: `snapshots/<rev>/*.safetensors(.index.json)` are links to
    // extension-less files in `blobs/`. The names in the snapshot decide what each file is.
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("base.yaml");
    std::fs::write(&spec, "name: b\ninput: [64]\nlayers:\n  - {name: a, type: dense, units: 512}\n  - {name: b, type: dense, units: 64}\n").unwrap();
    let real = d.path().join("real");
    std::fs::create_dir(&real).unwrap();
    crate::common::build(
        &spec,
        &real.join("model.safetensors"),
        &["--max-shard-size", "100KB"],
    );
    let (blobs, snap) = (d.path().join("blobs"), d.path().join("snapshots/rev"));
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    for (k, e) in std::fs::read_dir(&real).unwrap().enumerate() {
        let p = e.unwrap().path();
        let blob = blobs.join(format!("{k:040x}"));
        std::fs::rename(&p, &blob).unwrap();
        std::os::unix::fs::symlink(&blob, snap.join(p.file_name().unwrap())).unwrap();
    }
    let whole = d.path().join("whole.safetensors");
    crate::common::build(&spec, &whole, &[]);
    let grown = d.path().join("g.yaml");
    let index = snap.join("model.safetensors.index.json");
    std::fs::write(
        &grown,
        format!("name: b\ninput: [64]\ndefaults:\n  kernel_initializer: {{name: from_file, path: {}}}\n  bias_initializer: {{name: from_file, path: {}}}\nlayers:\n  - {{name: a, type: dense, units: 512}}\n  - {{name: b, type: dense, units: 64}}\n", index.display(), index.display()),
    )
    .unwrap();
    let out = d.path().join("g.safetensors");
    crate::common::build(&grown, &out, &[]);
    let (tensors, meta) = read(&out);
    assert_eq!(tensors, read(&whole).0);
    // The sources are recorded by the snapshot's names, not the blobs'.
    let sources: serde_json::Value = serde_json::from_str(&meta["from_file"]).unwrap();
    let names: Vec<&String> = sources.as_object().unwrap().keys().collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("snapshots/rev/model-0000")),
        "{names:?}"
    );
}
