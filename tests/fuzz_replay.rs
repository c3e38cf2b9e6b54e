//! Replays the fuzz seeds and every input a fuzzer ever crashed on (fuzz/regressions/)
//! through the fuzz targets' code paths: a short, bounded run that CI can afford.

use std::path::Path;
use std::time::{Duration, Instant};

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["fuzz/seeds", "fuzz/regressions"] {
        let d = Path::new(sub).join(dir);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Each input must finish well under a second (hostile inputs included).
fn bounded(name: &str, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{name} took {:?}",
        t.elapsed()
    );
}

#[test]
fn spec_targets_replay() {
    for (dir, ext) in [("check_yaml", "yaml"), ("check_toml", "toml")] {
        let all = inputs(dir);
        assert!(!all.is_empty(), "no seeds for {dir}");
        for (name, bytes) in all {
            bounded(&name, || {
                let src = match specc::SourceFile::from_bytes(&format!("fuzz.{ext}"), bytes) {
                    Ok(s) => s,
                    Err((s, _)) => s,
                };
                let _ = specc::check(&src);
            });
        }
    }
}

#[test]
fn inspect_target_replays_and_mutations_do_not_panic() {
    let all = inputs("inspect");
    assert!(!all.is_empty());
    for (name, bytes) in all {
        bounded(&name, || {
            assert!(
                specc::inspect::inspect_bytes(&bytes).is_ok(),
                "{name} is a valid seed"
            );
            // Every truncation, and a few corrupted header lengths, must be an error, not a panic.
            for cut in 0..bytes.len() {
                assert!(specc::inspect::inspect_bytes(&bytes[..cut]).is_err());
            }
            for n in [0u64, 1, 7, u32::MAX as u64, 100_000_001, u64::MAX] {
                let mut b = bytes.clone();
                b[..8].copy_from_slice(&n.to_le_bytes());
                let _ = specc::inspect::inspect_bytes(&b);
            }
        });
    }
}
