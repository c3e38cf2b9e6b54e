//! Spec fixtures with their expected diagnostics written on the offending line as
//! `# error: [code]`; clean fixtures (and every spec in specs/) must give nothing.

use specc::{check, SourceFile};
use std::collections::BTreeSet;
use std::path::Path;

/// `(line, severity, code)` written as `# error: [code]`, `# warning: [code]` or `# note: [code]`
/// (several per line allowed) in a fixture's comments.
fn expected_with_severity(text: &str) -> BTreeSet<(usize, String, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let Some(pos) = line.find("# ") else { continue };
        let mut severity = None;
        for word in line[pos + 2..].split_whitespace() {
            match word {
                "error:" | "warning:" | "note:" => {
                    severity = Some(word.trim_end_matches(':').to_string())
                }
                w if w.starts_with('[') && w.ends_with(']') => {
                    if let Some(s) = &severity {
                        out.insert((
                            i + 1,
                            s.clone(),
                            w.trim_matches(|c| c == '[' || c == ']').to_string(),
                        ));
                    }
                }
                _ => severity = None,
            }
        }
    }
    out
}

fn expected(text: &str) -> BTreeSet<(usize, String)> {
    expected_with_severity(text)
        .into_iter()
        .map(|(l, _, c)| (l, c))
        .collect()
}

fn actual_with_severity(src: &SourceFile) -> BTreeSet<(usize, String, String)> {
    check(src)
        .diagnostics
        .iter()
        .map(|d| {
            let line = d
                .primary
                .as_ref()
                .map_or(0, |l| src.line_col(l.span.start).0);
            let sev = format!("{:?}", d.severity).to_lowercase();
            (line, sev, d.code.to_string())
        })
        .collect()
}

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Every fixture of `dir` reports exactly the codes, with their severities, that its
/// comments expect on each line.
fn check_fixtures(dir: &str) {
    let mut failures = Vec::new();
    for path in files(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let src = SourceFile::new(&path.display().to_string(), text.clone());
        let want = expected_with_severity(&text);
        assert!(!want.is_empty(), "{} has no expectations", path.display());
        let got = actual_with_severity(&src);
        if got != want {
            failures.push(format!(
                "{}:\n  want {want:?}\n  got  {got:?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every code some fixture of `dir` expects.
fn covered(dir: &str) -> BTreeSet<String> {
    files(dir)
        .into_iter()
        .flat_map(|p| expected(&std::fs::read_to_string(p).unwrap()))
        .map(|(_, code)| code)
        .collect()
}

#[test]
fn error_fixtures_report_the_expected_codes_on_the_expected_lines() {
    check_fixtures("tests/fixtures/errors");
}

#[test]
fn lint_fixtures_report_the_expected_lints_and_severities_on_the_expected_lines() {
    check_fixtures("tests/fixtures/lints");
}

#[test]
fn every_lint_has_a_fixture() {
    let covered = covered("tests/fixtures/lints");
    for l in specc::lint::LINTS {
        assert!(covered.contains(l.name), "no fixture for lint `{}`", l.name);
    }
}

#[test]
fn every_error_code_has_a_fixture() {
    let mut covered = covered("tests/fixtures/errors");
    // not-utf8 cannot be written as a text fixture; tests/cli.rs feeds it raw bytes.
    covered.insert("not-utf8".into());
    for c in specc::diag::CODES {
        assert!(covered.contains(c.name), "no fixture for `{}`", c.name);
    }
}

/// Spec files under `dir`, its folders included.
fn specs_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for p in files(dir.to_str().unwrap()) {
        if p.is_dir() {
            out.extend(specs_under(&p));
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "toml")
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn clean_fixtures_and_example_specs_are_quiet() {
    // specs/grow/llama-grow.yaml reads the checkpoint llama-base.yaml builds: built here.
    let base = tempfile::tempdir().unwrap();
    crate::common::build(
        Path::new("specs/grow/llama-base.yaml"),
        &base.path().join("model.safetensors"),
        &[],
    );
    let set = vec![("base".to_string(), base.path().display().to_string())];
    for dir in ["tests/fixtures/clean", "specs"] {
        for path in specs_under(Path::new(dir)) {
            let src = SourceFile::load(Path::new(&path)).unwrap().unwrap();
            let options = specc::Options {
                set: if path.ends_with("grow/llama-grow.yaml") {
                    set.clone()
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let c = specc::check_with(&src, options);
            assert!(
                c.diagnostics.is_empty(),
                "{}: {:#?}",
                path.display(),
                c.diagnostics
            );
            assert!(c.model.is_some());
        }
    }
}
