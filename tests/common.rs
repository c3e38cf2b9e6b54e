//! Helpers shared by the integration tests.

use specc::{check, Model, SourceFile};

/// Resolves spec text (YAML unless `name` ends in .toml), panicking with the diagnostics on error.
pub fn model(name: &str, text: &str) -> Model {
    let c = check(&SourceFile::new(name, text.to_string()));
    match c.model {
        Some(m) => m,
        None => panic!("{name}: {:#?}", c.diagnostics),
    }
}

/// `(name, shape)` of every tensor, in order.
pub fn names_shapes(m: &Model) -> Vec<(String, Vec<u64>)> {
    m.tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect()
}

/// Builds the expected list from `(name, shape)` literals.
pub fn expect(items: &[(&str, &[u64])]) -> Vec<(String, Vec<u64>)> {
    items
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

/// The `specc` binary as a command, in a [`test_env`].
pub fn specc_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_specc"));
    test_env(&mut c);
    c
}

/// No colour, and none of a job engine's part variables: inside a Slurm array or an
/// Indexed Job a build would otherwise build only its part.
pub fn test_env(c: &mut std::process::Command) {
    c.env("NO_COLOR", "1");
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "JOB_COMPLETION_INDEX",
        "SPECC_PART_COUNT",
    ] {
        c.env_remove(k);
    }
}

/// `specc build SPEC -o OUT EXTRA...`, asserting that it succeeds.
pub fn build(spec: &std::path::Path, out: &std::path::Path, extra: &[&str]) {
    let o = specc_cmd()
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
