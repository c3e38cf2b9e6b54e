//! `specc report`: the page names every tensor and draws its plots; a spec with errors
//! writes nothing (exit 1); unreadable weights or a protected output exit 2, leaving
//! every file as it was.

use crate::common::specc_cmd;
use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    specc_cmd().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const SPEC: &str = "name: r\nseed: 1\nlayout: pytorch\ninput: [64]\nlayers:\n  - {name: fc0, type: dense, units: 32, activation: relu}\n  - {name: fc1, type: dense, units: 32, kernel_initializer: zeros}\n  - {name: out, type: dense, units: 4}\n";

#[test]
fn the_page_holds_the_tensors_the_plots_and_the_lints() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("r.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("r.html");
    let o = run(&["report", s(&spec), "-o", s(&out)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for t in [
        "fc0.weight",
        "fc0.bias",
        "fc1.weight",
        "fc1.bias",
        "out.weight",
        "out.bias",
    ] {
        assert!(html.contains(&format!("<h3>{t}</h3>")), "{t}");
    }
    assert_eq!(html.matches("<svg class=\"signal\"").count(), 1);
    assert_eq!(html.matches("<svg class=\"density\"").count(), 6);
    assert!(html.contains("class=\"forward\" d=\"M") && html.contains("class=\"band\""));
    // Without weights no histogram; fc0's kaiming-uniform density and fc1's zero spike.
    assert!(!html.contains("class=\"hist\""));
    assert!(html.contains("class=\"pdf\"") && html.contains("class=\"spike\""));
    // The zero kernel's lint, at its line, with the offending value marked.
    assert!(html.contains("<code>zero-kernel</code>"), "{html}");
    assert!(html.contains("r.yaml:7:"), "{html}");
    // With weights: a histogram per tensor.
    let w = dir.path().join("r.safetensors");
    assert_eq!(
        run(&["build", s(&spec), "-o", s(&w)]).status.code(),
        Some(0)
    );
    let o = run(&["report", s(&spec), "-o", s(&out), "--weights", s(&w)]);
    assert_eq!(o.status.code(), Some(0));
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("class=\"hist\"").count(), 6);
}

#[test]
fn failures_write_nothing_and_keep_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("r.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("r.html");
    std::fs::write(&out, "keep me").unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: r\ninput: [4]\nlayers:\n  - {type: dense, unit: 3}\n",
    )
    .unwrap();
    assert_eq!(
        run(&["report", s(&bad), "-o", s(&out)]).status.code(),
        Some(1)
    );
    let garbage = dir.path().join("g.safetensors");
    std::fs::write(&garbage, b"\xff\xff\xff\xff\xff\xff\xff\xffnot safetensors").unwrap();
    let o = run(&["report", s(&spec), "-o", s(&out), "--weights", s(&garbage)]);
    assert_eq!(o.status.code(), Some(2));
    // The page never replaces the spec.
    let o = run(&["report", s(&spec), "-o", s(&spec)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), SPEC);
}
