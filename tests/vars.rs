//! Variables and expressions (SPEC.md §10): an expression gives the bytes of its value
//! written out; `--set` changes a family's sizes; the repeat index and the fans are in
//! scope where they should be.

use crate::common::{model, specc_cmd};

/// Every tensor's name, shape and bytes.
fn contents(m: &specc::Model) -> Vec<(String, Vec<u64>, Vec<u8>)> {
    m.tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                specc::build::tensor_bytes(t, m.layout),
            )
        })
        .collect()
}

#[test]
fn an_expression_gives_the_bytes_of_its_literal() {
    let expr = model(
        "e.yaml",
        "name: e\nvars: {d: 48, n: 3, std: 0.02, act: gelu}\ninput: [\"${d}\"]\nlayers:\n  - name: h\n    type: sequential\n    repeat: ${n}\n    index: layer_id\n    layers:\n      - {name: fc, type: dense, units: \"${d * 2}\", activation: \"${act}\", kernel_initializer: {name: normal, std: \"${std / sqrt(2 * (layer_id + 1))}\"}}\n      - {name: out, type: dense, units: \"${d}\", kernel_initializer: {name: normal, std: \"${sqrt(2 / (5 * fan_in))}\"}}\n",
    );
    let std = |k: f64| 0.02 / (2.0 * (k + 1.0)).sqrt();
    let small = (2.0f64 / (5.0 * 96.0)).sqrt();
    // The literal twin: the same three copies written out.
    let mut text = String::from(
        "name: e\ninput: [48]\nlayers:\n  - name: h\n    type: sequential\n    layers:\n",
    );
    for k in 0..3 {
        text += &format!(
            "      - name: \"{k}\"\n        type: sequential\n        layers:\n          - {{name: fc, type: dense, units: 96, activation: gelu, kernel_initializer: {{name: normal, std: {:?}}}}}\n          - {{name: out, type: dense, units: 48, kernel_initializer: {{name: normal, std: {small:?}}}}}\n",
            std(k as f64)
        );
    }
    let literal = model("l.yaml", &text);
    assert_eq!(contents(&expr), contents(&literal));
}

#[test]
fn set_shrinks_a_family_and_names_unknown_variables() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("f.yaml");
    std::fs::write(
        &spec,
        "name: f\nvars: {d_model: 256, n_layers: 4}\ninput: [\"${d_model}\"]\nlayers:\n  - name: layers\n    type: sequential\n    repeat: ${n_layers}\n    layers: [{type: dense, units: \"${d_model}\"}]\n",
    )
    .unwrap();
    let summary = |extra: &[&str]| {
        let o = specc_cmd()
            .args(["summary", "--format", "json", spec.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, _) = summary(&["--set", "n_layers=2", "--set", "d_model=64"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 4);
    assert_eq!(v["total_params"], 2 * (64 * 64 + 64));
    let (code, _, err) = summary(&["--set", "n_layer=2"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("did you mean `n_layers`?"), "{err}");
    let o = specc_cmd()
        .args(["check", spec.to_str().unwrap(), "--set", "oops"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a malformed --set is a usage error"
    );
}

#[test]
fn templates_and_copy_names_make_path_segments() {
    let m = model(
        "t.yaml",
        "name: t\nvars: {n: 2, prefix: enc}\ninput: [4]\nlayers:\n  - name: layers\n    type: sequential\n    repeat: ${n}\n    copy_name: encoder_layer_${i}\n    layers:\n      - {name: \"${prefix}_fc${i + 1}\", type: dense, units: 4, use_bias: false}\n  - {name: \"head_${n * 3}\", type: dense, units: 2, use_bias: false}\n",
    );
    let names: Vec<&str> = m.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.encoder_layer_0.enc_fc1.weight",
            "layers.encoder_layer_1.enc_fc2.weight",
            "head_6.weight"
        ]
    );
}
