//! The `specc` binary end to end.

use std::process::Command;

fn specc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_specc"))
}

#[test]
fn check_accepts_the_example_specs() {
    let out = specc().args(["check", "specs/mlp.yaml"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
