//! `specc report` (SPEC.md §11): one self-contained HTML page, no network: the model's
//! tensors, the predicted forward and backward signal per layer against the lint band, each
//! tensor's declared density (over the histogram of a checkpoint's values, with weights),
//! and the lints at their spec lines. Histograms read a bounded sample of each tensor
//! (2^20 values in spread runs, as `verify --stats` does), so a 7B checkpoint costs a few
//! hundred megabytes of reads and tens of megabytes of memory.

use super::svg::{self, esc, Density, SignalPoint};
use crate::init::{normal_cdf, Dist};
use crate::inspect::{InspectError, Reader};
use crate::model::Step;
use crate::verify::{self, VerifyError};
use crate::{Diagnostic, Model, Severity, SourceFile, TensorDecl};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Bins of each histogram.
const BINS: usize = 60;

/// Tensors whose distribution is shown open (the largest); the rest are collapsed.
const OPEN: usize = 8;

/// A checkpoint's sampled values of one tensor over the plotted range.
struct Hist {
    range: (f64, f64),
    counts: Vec<u64>,
    below: u64,
    above: u64,
    n: u64,
    mean: f64,
    std: f64,
}

/// The x range a declared law is drawn over (`None`: no density to draw).
fn declared_range(d: Dist) -> Option<(f64, f64)> {
    let pad = |a: f64, b: f64| {
        let p = (b - a) * 0.08;
        (a - p, b + p)
    };
    match d {
        Dist::Normal { mean, std } if std > 0.0 => Some((mean - 4.0 * std, mean + 4.0 * std)),
        Dist::Uniform { low, high } if high > low => Some(pad(low, high)),
        Dist::TruncatedNormal {
            mean,
            std,
            low,
            high,
        } if std > 0.0 => Some(pad(low.max(mean - 4.0 * std), high.min(mean + 4.0 * std))),
        Dist::Constant(v) => {
            let r = (v.abs() * 0.5).max(0.5);
            Some((v - r, v + r))
        }
        _ => None,
    }
}

/// The declared density at `x` (`None` for constants and structured laws).
fn pdf(d: Dist) -> Option<impl Fn(f64) -> f64> {
    let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    match d {
        Dist::Normal { std, .. } | Dist::TruncatedNormal { std, .. } if std <= 0.0 => None,
        Dist::Uniform { low, high } if high <= low => None,
        Dist::Normal { .. } | Dist::Uniform { .. } | Dist::TruncatedNormal { .. } => {
            Some(move |x: f64| match d {
                Dist::Normal { mean, std } => phi((x - mean) / std) / std,
                Dist::Uniform { low, high } if (low..high).contains(&x) => 1.0 / (high - low),
                Dist::TruncatedNormal {
                    mean,
                    std,
                    low,
                    high,
                } if (low..=high).contains(&x) => {
                    let mass = normal_cdf((high - mean) / std) - normal_cdf((low - mean) / std);
                    phi((x - mean) / std) / std / mass
                }
                _ => 0.0,
            })
        }
        _ => None,
    }
}

/// The sampled histogram of `t`'s values in `reader`.
fn histogram(
    t: &TensorDecl,
    e: &crate::inspect::Entry,
    reader: &Reader,
) -> Result<Hist, InspectError> {
    let mut values = Vec::new();
    verify::scan(e, reader, verify::sample_ranges(t.numel()), |_, v| {
        if v.is_finite() {
            values.push(v);
        }
    })?;
    let n = values.len() as u64;
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
    let range = declared_range(t.init.dist(t.fans)).unwrap_or_else(|| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo < hi {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 0.5, lo + 0.5)
        } else {
            (-1.0, 1.0)
        }
    });
    let mut counts = vec![0u64; BINS];
    let (mut below, mut above) = (0, 0);
    let width = (range.1 - range.0) / BINS as f64;
    for v in values {
        if v < range.0 {
            below += 1;
        } else if v > range.1 {
            above += 1;
        } else {
            counts[(((v - range.0) / width) as usize).min(BINS - 1)] += 1;
        }
    }
    Ok(Hist {
        range,
        counts,
        below,
        above,
        n,
        mean,
        std: var.sqrt(),
    })
}

/// Histograms of every tensor a checkpoint holds (by the spec's name, or a tie's other
/// name), read in parallel.
fn histograms(model: &Model, path: &Path) -> Result<Vec<Option<Hist>>, VerifyError> {
    // A shard the index lists but that is absent: its tensors have no histogram.
    let opened = verify::open_all(path)?;
    let mut found: BTreeMap<&str, (&Reader, &crate::inspect::Entry)> = BTreeMap::new();
    for (_, r) in &opened.files {
        for e in &r.entries {
            found.insert(&e.name, (r, e));
        }
    }
    for tie in &model.ties {
        if !found.contains_key(tie.target.as_str()) {
            if let Some(&x) = found.get(tie.name.as_str()) {
                found.insert(&tie.target, x);
            }
        }
    }
    model
        .tensors
        .par_iter()
        .map(|t| {
            let Some(&(r, e)) = found.get(t.name.as_str()) else {
                return Ok(None);
            };
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            if e.shape != shape {
                return Ok(None);
            }
            histogram(t, e, r)
                .map(Some)
                .map_err(|err| VerifyError::Read(path.into(), err))
        })
        .collect()
}

const STYLE: &str = r#"
:root { --fg: #1d232b; --muted: #5b6675; --line: #d5dae1; --band: #e3f3e6; --fwd: #1f6fd1; --bwd: #d9731a; --bad: #c81e3a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.facts { color: var(--muted); } code, pre, td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
svg .band { fill: var(--band); } svg .grid { stroke: #eef0f3; } svg .axis { stroke: #9aa3ae; }
svg path.forward { fill: none; stroke: var(--fwd); stroke-width: 2; } svg path.backward { fill: none; stroke: var(--bwd); stroke-width: 2; stroke-dasharray: 6 3; }
svg circle.forward { fill: var(--fwd); } svg circle.backward { fill: var(--bwd); } svg circle.escape { fill: var(--bad); stroke: white; stroke-width: 1; }
svg line.flag { stroke: var(--bad); stroke-dasharray: 3 3; } svg text.flag, svg text.layer.flagged { fill: var(--bad); font-weight: 600; }
svg path.hist { fill: #b9c7d8; stroke: #8ea3bd; stroke-width: 0.5; } svg path.pdf { fill: none; stroke: var(--bad); stroke-width: 1.8; }
svg line.spike { stroke: var(--bad); stroke-width: 2.5; }
.legend span { margin-right: 18px; } .sw { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin-right: 6px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eef0f3; vertical-align: top; }
th { font-weight: 600; background: #f6f7f9; position: sticky; top: 0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.lint { border-left: 4px solid var(--bwd); padding: 6px 12px; margin: 10px 0; background: #fbfbfc; }
.lint.error { border-color: var(--bad); } .lint.note { border-color: #8a94a3; }
.lint pre { margin: 6px 0 0; background: #f3f4f6; padding: 6px 8px; overflow-x: auto; }
.lint mark { background: #ffe1a8; } .sev { font-weight: 600; text-transform: uppercase; font-size: 11px; margin-right: 6px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px 20px; }
.tensor { break-inside: avoid; } .tensor h3 { font-size: 13px; margin: 4px 0; font-family: ui-monospace, Menlo, monospace; word-break: break-all; }
.tensor p { margin: 0; color: var(--muted); font-size: 12px; }
details > summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
@media print { body { max-width: none; padding: 0; } th { position: static; } .lint, .tensor { break-inside: avoid; } }
"#;

/// Opens every collapsed section before printing, so that paper gets all of it, and the one
/// holding a tensor the table links to.
const SCRIPT: &str = "window.addEventListener('beforeprint',()=>document.querySelectorAll('details').forEach(d=>d.open=true));\
function reveal(){const t=location.hash&&document.getElementById(location.hash.slice(1));const d=t&&t.closest('details');if(d){d.open=true;t.scrollIntoView();}}\
window.addEventListener('hashchange',reveal);window.addEventListener('DOMContentLoaded',reveal);";

/// The signal chart's points: one per layer the prediction reaches.
fn signal_points(model: &Model) -> Vec<SignalPoint> {
    let forward = crate::lint::signal::forward_std(model);
    let backward = crate::lint::signal::backward_std(model);
    let escapes = crate::lint::signal::check(model);
    model
        .flow
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::Layer(l) => Some(SignalPoint {
                label: l.path.clone(),
                forward: forward[i],
                backward: backward[i],
                flagged: escapes.iter().any(|e| e.step == i),
            }),
            _ => None,
        })
        .filter(|p| p.forward.is_some() || p.backward.is_some())
        .collect()
}

/// One diagnostic with the spec lines around it, the offending text marked.
fn lint(src: &SourceFile, d: &Diagnostic) -> String {
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let mut s = format!(
        r#"<div class="lint {sev}"><span class="sev">{sev}</span><code>{}</code> {}"#,
        esc(d.code),
        esc(&d.message)
    );
    if let Some(p) = &d.path {
        let _ = write!(
            s,
            r#" <span class="facts">(layer <code>{}</code>)</span>"#,
            esc(p)
        );
    }
    if let Some(l) = &d.primary {
        let (line, col) = src.line_col(l.span.start);
        let _ = write!(
            s,
            r#"<div class="facts">{}:{line}:{col}</div><pre>"#,
            esc(&src.name)
        );
        let text = &src.text;
        let start = l.span.start.min(text.len());
        let end = l.span.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let end = end.min(line_end);
        let before: Vec<&str> = text[..line_start].lines().rev().take(2).collect();
        for (k, b) in before.iter().rev().enumerate() {
            let _ = writeln!(s, "{:>4} | {}", line + k - before.len(), esc(b));
        }
        let _ = write!(
            s,
            "{line:>4} | {}<mark>{}</mark>{}",
            esc(&text[line_start..start]),
            esc(&text[start..end]),
            esc(&text[end..line_end])
        );
        if !l.text.is_empty() {
            let _ = write!(s, "   ← {}", esc(&l.text));
        }
        if let Some(next) = text[line_end..].lines().nth(1) {
            let _ = write!(s, "\n{:>4} | {}", line + 1, esc(next));
        }
        s.push_str("</pre>");
    }
    if let Some(h) = &d.help {
        let _ = write!(s, r#"<div class="facts">help: {}</div>"#, esc(h));
    }
    s.push_str("</div>");
    s
}

/// One tensor's distribution panel.
fn tensor_panel(k: usize, t: &TensorDecl, hist: Option<&Hist>) -> String {
    let dist = t.init.dist(t.fans);
    let mut s = format!(
        r#"<div class="tensor" id="t{k}"><h3>{}</h3><p>{} {} · {}</p>"#,
        esc(&t.name),
        esc(&super::shape(&t.shape)),
        t.dtype.name(),
        esc(&super::describe(t))
    );
    let f = pdf(dist);
    let range = hist.map(|h| h.range).or_else(|| declared_range(dist));
    match range {
        Some(range) => {
            let pdf_ref = f.as_ref().map(|f| f as &dyn Fn(f64) -> f64);
            s += &svg::density_chart(&Density {
                range,
                counts: hist.map(|h| h.counts.as_slice()),
                pdf: pdf_ref,
                spike: match dist {
                    Dist::Constant(v) => Some(v),
                    _ => None,
                },
            });
        }
        None => s += r#"<p>structured: no one-dimensional density</p>"#,
    }
    if let Some(h) = hist {
        let declared = match dist {
            Dist::Normal { std, .. } => format!(", declared {}", crate::init::num(std)),
            Dist::Uniform { low, high } => {
                format!(
                    ", declared {}",
                    crate::init::num((high - low) / 12f64.sqrt())
                )
            }
            _ => String::new(),
        };
        let _ = write!(
            s,
            "<p>file: {} values sampled, mean {}, std {}{declared}",
            h.n,
            crate::init::num(h.mean),
            crate::init::num(h.std)
        );
        if h.below + h.above > 0 {
            let _ = write!(
                s,
                "; {} below and {} above the plotted range",
                h.below, h.above
            );
        }
        s.push_str("</p>");
    }
    s.push_str("</div>");
    s
}

/// The whole page for `model` (checked from `src`, with `diagnostics`), with histograms of
/// the checkpoint at `weights` when given.
pub fn render(
    src: &SourceFile,
    diagnostics: &[Diagnostic],
    model: &Model,
    weights: Option<&Path>,
) -> Result<String, VerifyError> {
    let hists = match weights {
        Some(p) => histograms(model, p)?,
        None => Vec::new(),
    };
    let mut s = String::with_capacity(1 << 20);
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · specc report</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>"#,
        esc(&model.name)
    );
    let layers = model
        .flow
        .iter()
        .filter(|s| matches!(s, Step::Layer(_)))
        .count();
    let _ = write!(
        s,
        r#"<h1>{}</h1><div class="facts">{} · layout {} · seed {} · {} layers · {} tensors · {} parameters · {}</div>"#,
        esc(&model.name),
        esc(&src.name),
        format!("{:?}", model.layout).to_lowercase(),
        model.seed,
        layers,
        model.tensors.len(),
        super::thousands(model.total_params()),
        super::bytes(model.total_bytes())
    );
    if let Some(w) = weights {
        let _ = write!(
            s,
            r#"<div class="facts">weights: {}</div>"#,
            esc(&w.display().to_string())
        );
    }

    // The signal.
    let points = signal_points(model);
    let band = crate::lint::signal::BAND;
    s += "<h2>Predicted signal</h2>";
    let _ = write!(
        s,
        r#"<p class="legend"><span><i class="sw" style="background:var(--fwd)"></i>forward: std of each layer's output, from a unit-variance input</span><span><i class="sw" style="background:var(--bwd)"></i>backward: std of the gradient at each layer's input, from a unit gradient at the output</span><span><i class="sw" style="background:var(--band);height:10px"></i>the band [{}, {}] the signal lints hold it to</span></p>"#,
        band.0, band.1
    );
    if points.is_empty() {
        s += "<p>No layer the prediction reaches.</p>";
    } else {
        s += &svg::signal_chart(&points, band);
        let escaped: Vec<&SignalPoint> = points.iter().filter(|p| p.flagged).collect();
        if escaped.is_empty() {
            s += r#"<p class="facts">Both stay in the band at every layer.</p>"#;
        } else {
            for p in escaped {
                let _ = write!(
                    s,
                    r#"<p class="facts">The signal leaves the band at <code>{}</code> (forward {}, backward {}): see the lints below.</p>"#,
                    esc(&p.label),
                    p.forward.map_or("-".into(), crate::init::num),
                    p.backward.map_or("-".into(), crate::init::num)
                );
            }
        }
    }

    // The lints.
    let _ = write!(s, "<h2>Lints ({})</h2>", diagnostics.len());
    if diagnostics.is_empty() {
        s += "<p>None: the spec is quiet.</p>";
    }
    for d in diagnostics {
        s += &lint(src, d);
    }

    // The distributions, the largest open.
    let mut order: Vec<usize> = (0..model.tensors.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(model.tensors[k].numel()));
    let what = if weights.is_some() {
        "the declared density (line) over the histogram of the file's values"
    } else {
        "the declared density"
    };
    let _ = write!(s, "<h2>Distributions</h2><p class=\"facts\">Per tensor, {what}; the {OPEN} largest here, the rest below.</p><div class=\"grid2\">");
    for (i, &k) in order.iter().enumerate() {
        if i == OPEN {
            let _ = write!(
                s,
                "</div><details><summary>{} more tensors</summary><div class=\"grid2\">",
                order.len() - OPEN
            );
        }
        s += &tensor_panel(k, &model.tensors[k], hists.get(k).and_then(Option::as_ref));
    }
    s += "</div>";
    if order.len() > OPEN {
        s += "</details>";
    }
    // The tensors.
    s += "<h2>Tensors</h2><table><thead><tr><th>name</th><th>shape</th><th>dtype</th><th>initializer</th><th>fan_in</th><th>fan_out</th><th>params</th>";
    if weights.is_some() {
        s += "<th>file std</th>";
    }
    s += "</tr></thead><tbody>";
    for (k, t) in model.tensors.iter().enumerate() {
        let _ = write!(
            s,
            r##"<tr><td class="mono"><a href="#t{k}">{}</a></td><td class="mono">{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td>"##,
            esc(&t.name),
            esc(&super::shape(&t.shape)),
            t.dtype.name(),
            esc(&super::describe(t)),
            t.fans.fan_in,
            t.fans.fan_out,
            super::thousands(t.numel())
        );
        if weights.is_some() {
            let h = hists.get(k).and_then(Option::as_ref);
            let _ = write!(
                s,
                r#"<td class="num">{}</td>"#,
                h.map_or("absent".into(), |h| crate::init::num(h.std))
            );
        }
        s += "</tr>";
    }
    s += "</tbody></table>";

    let _ = write!(
        s,
        r#"<p class="facts" style="margin-top:24px">specc {} · spec sha256 {}</p></body></html>"#,
        env!("CARGO_PKG_VERSION"),
        &src.sha256
    );
    s.push('\n');
    Ok(s)
}
