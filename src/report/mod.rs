//! Renders a resolved model as the `summary` table or JSON (the documented summary
//! format), an inspection as a table, `verify`'s verdict, and the HTML report ([`html`]).

pub mod html;
mod svg;

use crate::init::Dist;
use crate::{Model, TensorDecl};

/// The initializer column: the chosen name and the distribution it gives this tensor.
pub(crate) fn describe(t: &TensorDecl) -> String {
    let rule = distribution(t);
    if t.choice.written == rule {
        rule
    } else {
        format!("{} → {rule}", t.choice.written)
    }
}

/// `s` with control characters (ESC, CR, BEL, C1, ...) written as escapes, so that names
/// and metadata from a file cannot move the cursor or recolour the terminal.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` padded with spaces to `width` characters (`format!`'s width stops at 65,535).
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

pub(crate) fn shape(s: &[u64]) -> String {
    format!(
        "[{}]",
        s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    )
}

/// The distribution a tensor gets, in words (the initializer itself when structured or constant).
fn distribution(t: &TensorDecl) -> String {
    match t.init.dist(t.fans) {
        Dist::Structured | Dist::Constant(_) => t.init.to_string(),
        d => d.to_string(),
    }
}

/// Aligned columns, two spaces apart; columns from `right` on are right-aligned (numbers).
fn grid<const N: usize>(header: &[&str; N], rows: &[[String; N]], right: usize) -> String {
    let mut w = header.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(w[i] - c.chars().count());
            if i >= right {
                s += &format!("{pad}{c}  ");
            } else {
                s += &format!("{c}{pad}  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for r in rows {
        out += &line(r);
    }
    out
}

/// A mark on fans that are not the layer's meaning.
fn star(t: &TensorDecl) -> &'static str {
    match t.fans_from {
        crate::model::FansFrom::Layer => "",
        crate::model::FansFrom::Storage => "*",
        crate::model::FansFrom::Spec => "",
    }
}

/// The summary table.
pub fn table(m: &Model) -> String {
    let header = [
        "name",
        "shape",
        "dtype",
        "initializer",
        "fan_in",
        "fan_out",
        "params",
    ];
    let rows: Vec<[String; 7]> = m
        .tensors
        .iter()
        .map(|t| {
            [
                printable(&t.name),
                shape(&t.shape),
                t.dtype.name().to_string(),
                printable(&describe(t)),
                format!("{}{}", t.fans.fan_in, star(t)),
                format!("{}{}", t.fans.fan_out, star(t)),
                thousands(t.numel()),
            ]
        })
        .collect();
    let mut out = format!(
        "model `{}` (layout {}, seed {})\n\n",
        printable(&m.name),
        format!("{:?}", m.layout).to_lowercase(),
        m.seed
    );
    out += &grid(&header, &rows, 4);
    if m.tensors.iter().any(|t| !star(t).is_empty()) {
        out += "* fans of the stored shape, as the layout's framework reads them (docs/initializers.md)\n";
    }
    for t in &m.ties {
        out += &format!(
            "{} is tied to {} (stored once)\n",
            printable(&t.name),
            printable(&t.target)
        );
    }
    let signal = signal_rows(m);
    if !signal.is_empty() {
        out += "\npredicted activation std at init (unit-scale input):\n";
        let w = signal
            .iter()
            .map(|(p, _, _)| printable(p).chars().count())
            .max()
            .unwrap_or(0);
        for (path, kind, std) in &signal {
            out += &format!(
                "  {}  {kind:<20}  {}\n",
                pad(&printable(path), w),
                crate::init::num(*std)
            );
        }
    }
    out += &format!(
        "\ntotal: {} tensors, {} parameters, {} bytes ({})\n",
        m.tensors.len(),
        thousands(m.total_params()),
        thousands(m.total_bytes()),
        bytes(m.total_bytes())
    );
    out
}

/// Characters a sparkline is drawn with, from the band's floor to its ceiling.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Widest sparkline, in characters: deeper models show each column's most extreme layer.
const SPARK_WIDTH: usize = 96;

/// One line per direction of the predicted signal, a character per layer on a log scale
/// over the lint band (`▲`/`▼` where it leaves it), for `summary` on a terminal.
pub fn sparkline(m: &Model) -> String {
    use crate::lint::signal::{backward_std, forward_std, BAND};
    let (lo, hi) = (BAND.0.log10(), BAND.1.log10());
    let layer_steps: Vec<usize> = m
        .flow
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, crate::model::Step::Layer(_)))
        .map(|(i, _)| i)
        .collect();
    let mut out = String::new();
    for (what, stds) in [("forward ", forward_std(m)), ("backward", backward_std(m))] {
        let values: Vec<Option<f64>> = layer_steps
            .iter()
            .map(|&i| {
                stds[i]
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(f64::log10)
            })
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let per = values.len().div_ceil(SPARK_WIDTH).max(1);
        let mid = (lo + hi) / 2.0;
        let line: String = values
            .chunks(per)
            .map(|c| {
                // The layer of the column farthest from the band's middle.
                let v = c
                    .iter()
                    .flatten()
                    .copied()
                    .max_by(|a, b| (a - mid).abs().total_cmp(&(b - mid).abs()));
                match v {
                    None => ' ',
                    Some(v) if v > hi => '▲',
                    Some(v) if v < lo => '▼',
                    Some(v) => {
                        SPARKS[(((v - lo) / (hi - lo)) * SPARKS.len() as f64).min(7.0) as usize]
                    }
                }
            })
            .collect();
        out += &format!("{what} std {line}\n");
    }
    if !out.is_empty() {
        out = format!(
            "\npredicted signal per layer, log scale over [{}, {}] (▲ ▼ outside):\n{out}",
            BAND.0, BAND.1
        );
    }
    out
}

/// (layer path, type, predicted forward std) for every layer.
fn signal_rows(m: &Model) -> Vec<(String, &'static str, f64)> {
    let stds = crate::lint::signal::forward_std(m);
    m.flow
        .iter()
        .zip(stds)
        .filter_map(|(step, s)| match (step, s) {
            (crate::model::Step::Layer(l), Some(s)) => Some((l.path.clone(), l.kind, s)),
            _ => None,
        })
        .collect()
}

/// The summary as JSON (SPEC.md section 6): a view of the model that serializes as it is
/// written, so a 100k-layer summary is not first built as a tree of values.
pub fn json(m: &Model) -> Summary<'_> {
    Summary(m)
}

/// [`json`]'s serializable view.
pub struct Summary<'a>(&'a Model);

/// One tensor of [`Summary`].
struct TensorJson<'a>(&'a TensorDecl);

/// A tensor's initializer in [`Summary`].
struct InitJson<'a>(&'a TensorDecl);

impl serde::Serialize for InitJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let t = self.0;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("name", &t.choice.written)?;
        m.serialize_entry("source", &t.choice.source)?;
        m.serialize_entry("default_rule", &t.choice.default_rule)?;
        m.serialize_entry("rule", &t.init.to_string())?;
        m.serialize_entry("params", &t.init)?;
        m.serialize_entry("distribution", &distribution(t))?;
        m.end()
    }
}

impl serde::Serialize for TensorJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let t = self.0;
        let mut m = s.serialize_map(Some(15))?;
        m.serialize_entry("name", &t.name)?;
        m.serialize_entry("shape", &t.shape)?;
        m.serialize_entry("dtype", t.dtype.name())?;
        m.serialize_entry("initializer", &InitJson(t))?;
        m.serialize_entry("fan_in", &t.fans.fan_in)?;
        m.serialize_entry("fan_out", &t.fans.fan_out)?;
        m.serialize_entry("fans_from", &t.fans_from)?;
        m.serialize_entry("trainable", &t.trainable)?;
        m.serialize_entry("params", &t.numel())?;
        m.serialize_entry("bytes", &t.bytes())?;
        m.serialize_entry("role", &t.role)?;
        m.serialize_entry("layer", &t.layer)?;
        m.serialize_entry("seed", &t.seed)?;
        m.end()
    }
}

/// A layer's predicted scale in [`Summary`].
#[derive(serde::Serialize)]
struct LayerJson {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    predicted_std: f64,
}

impl serde::Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let m = self.0;
        let layers: Vec<LayerJson> = signal_rows(m)
            .into_iter()
            .map(|(path, kind, predicted_std)| LayerJson {
                path,
                kind,
                predicted_std,
            })
            .collect();
        let tensors: Vec<TensorJson<'_>> = m.tensors.iter().map(TensorJson).collect();
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("model", &m.name)?;
        map.serialize_entry("layout", &m.layout)?;
        map.serialize_entry("seed", &m.seed)?;
        map.serialize_entry("tensors", &tensors)?;
        map.serialize_entry("ties", &m.ties)?;
        map.serialize_entry("layers", &layers)?;
        map.serialize_entry("total_params", &m.total_params())?;
        map.serialize_entry("total_bytes", &m.total_bytes())?;
        map.end()
    }
}

/// Problems shown before "and N more".
const SHOWN_PROBLEMS: usize = 50;

/// `verify`'s verdict for people: the problems (file, tensor, what), or the match.
pub fn verdict(v: &crate::verify::Verdict, stats: bool) -> String {
    let mut out = String::new();
    for p in v.problems.iter().take(SHOWN_PROBLEMS) {
        let name = if p.tensor.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", printable(&p.tensor))
        };
        out += &format!("{:<12} {name}{}\n", p.kind, printable(&p.message));
    }
    if v.problems.len() > SHOWN_PROBLEMS {
        out += &format!("… and {} more\n", v.problems.len() - SHOWN_PROBLEMS);
    }
    for h in &v.hints {
        out += &format!("hint: {h}\n");
    }
    let what = if stats {
        let tested = v.stats.iter().filter(|s| s.test != "none").count();
        format!(
            "{tested} of {} tensors tested against their distributions",
            v.tensors
        )
    } else {
        format!("{} tensors compared byte for byte", v.tensors)
    };
    out += &if v.matched {
        format!(
            "match: {what}, in {} file{}\n",
            v.files.len(),
            if v.files.len() == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "MISMATCH: {} problem{} ({what})\n",
            v.problems.len(),
            if v.problems.len() == 1 { "" } else { "s" }
        )
    };
    out
}

/// The `inspect` table.
pub fn inspection(info: &crate::inspect::Inspection) -> String {
    let mut out = String::new();
    if !info.metadata.is_empty() {
        out += "metadata:\n";
        for (k, v) in &info.metadata {
            let v = if v.len() > 100 {
                format!("{}… ({} bytes)", &v[..v.floor_char_boundary(100)], v.len())
            } else {
                v.clone()
            };
            out += &format!("  {}: {}\n", printable(k), printable(&v));
        }
        out += "\n";
    }
    let header = ["name", "dtype", "shape", "mean", "std", "min", "max"];
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.6}"));
    let rows: Vec<[String; 7]> = info
        .tensors
        .iter()
        .map(|t| {
            [
                printable(&t.name),
                t.dtype.clone(),
                format!("{:?}", t.shape),
                f(t.mean),
                f(t.std),
                f(t.min),
                f(t.max),
            ]
        })
        .collect();
    out += &grid(&header, &rows, 3);
    let total: usize = info.tensors.iter().map(|t| t.numel).sum();
    out += &format!(
        "\n{} tensors, {} parameters\n",
        info.tensors.len(),
        thousands(total as u64)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::num;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\u{1b}[31mb\r"), "a\\u{1b}[31mb\\r");
        assert_eq!(printable("plain ü"), "plain ü");
        assert_eq!(pad("ab", 70_000).len(), 70_000);
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(num(0.5), "0.5");
    }
}
