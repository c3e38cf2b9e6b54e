//! Replays the fuzz seeds and every input a fuzzer ever crashed on (fuzz/regressions/)
//! through the fuzz targets' code paths: a short, bounded run that CI can afford.

use std::path::Path;
use std::time::{Duration, Instant};

/// The files of `fuzz/<sub>/<dir>` (none when the folder does not exist), sorted.
fn inputs(sub: &str, dir: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(Path::new("fuzz").join(sub).join(dir)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Each input must finish within two seconds (hostile inputs included; debug build).
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
        let seeds = inputs("seeds", dir);
        assert!(!seeds.is_empty(), "no seeds for {dir}");
        for (name, bytes) in seeds.into_iter().chain(inputs("regressions", dir)) {
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
    let seeds = inputs("seeds", "inspect");
    assert!(!seeds.is_empty());
    for (name, bytes) in seeds {
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

/// Inputs a fuzzer crashed on are mostly broken files: an error is fine, a panic is not.
#[test]
fn inspect_regressions_do_not_panic() {
    for (name, bytes) in inputs("regressions", "inspect") {
        bounded(&name, || {
            let _ = specc::inspect::inspect_bytes(&bytes);
        });
    }
}
