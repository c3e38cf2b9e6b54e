//! The report's two plots as inline SVG, written by hand: a log-scale line chart of the
//! predicted signal and a histogram under a density curve. Hand-written rather than a
//! plotting crate because two fixed chart types are ~250 lines, and this way every mark
//! carries a class and a hover title (what the browser test and a reader look for) and a
//! 200-tensor report stays around a megabyte.

use std::fmt::Write;

/// `s` escaped for HTML and SVG text and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A coordinate, to a tenth of a pixel.
fn c(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// A power of ten as an axis label.
fn decade(e: i32) -> String {
    match e {
        0 => "1".into(),
        1 => "10".into(),
        -1 => "0.1".into(),
        e => format!("1e{e}"),
    }
}

/// An axis value to 3 significant digits.
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if v.abs() < 1e-3 || v.abs() >= 1e5 {
        format!("{v:.2e}")
    } else if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `s` cut to `n` characters with an ellipsis.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// One layer's point of the signal chart.
pub struct SignalPoint {
    /// The layer's path.
    pub label: String,
    /// Predicted forward std after the layer.
    pub forward: Option<f64>,
    /// Predicted gradient std at the layer's input.
    pub backward: Option<f64>,
    /// Whether a signal lint fires here (the first escape of either direction).
    pub flagged: bool,
}

/// The predicted forward and backward std per layer on a log axis, `band` shaded, points
/// outside it marked and the lint's layer labelled.
pub fn signal_chart(points: &[SignalPoint], band: (f64, f64)) -> String {
    let (w, h) = (960.0, 360.0);
    let (left, right, top, bottom) = (64.0, 16.0, 16.0, 96.0);
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite() && *x > 0.0);
    let logs: Vec<f64> = points
        .iter()
        .flat_map(|p| [finite(p.forward), finite(p.backward)])
        .flatten()
        .map(f64::log10)
        .collect();
    let data_lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let data_hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = (band.0.log10() - 1.0).min(data_lo - 0.5).floor().max(-40.0) as i32;
    let hi = (band.1.log10() + 1.0).max(data_hi + 0.5).ceil().min(40.0) as i32;
    let n = points.len().max(1);
    let x = |i: usize| {
        left + (w - left - right)
            * if n == 1 {
                0.5
            } else {
                i as f64 / (n - 1) as f64
            }
    };
    let y = |v: f64| {
        let l = v.log10().clamp(lo as f64, hi as f64);
        top + (h - top - bottom) * (hi as f64 - l) / (hi - lo) as f64
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="signal" viewBox="0 0 {w} {h}" role="img" aria-label="predicted signal per layer" xmlns="http://www.w3.org/2000/svg">"#
    );
    // The band.
    let _ = write!(
        s,
        r#"<rect class="band" x="{}" y="{}" width="{}" height="{}"><title>the signal lints' band: std in [{}, {}]</title></rect>"#,
        c(left),
        c(y(band.1)),
        c(w - left - right),
        c(y(band.0) - y(band.1)),
        band.0,
        band.1
    );
    // Decades.
    let step = ((hi - lo) as usize).div_ceil(12).max(1);
    for e in (lo..=hi).step_by(step) {
        let yy = y(10f64.powi(e));
        let _ = write!(
            s,
            r#"<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
            c(left),
            c(w - right),
            c(yy),
            c(yy),
            c(left - 6.0),
            c(yy + 4.0),
            decade(e)
        );
    }
    // Layer labels, as many as fit.
    let every = n.div_ceil(48).max(1);
    for (i, p) in points.iter().enumerate() {
        if i % every == 0 || p.flagged {
            let (xx, yy) = (x(i), h - bottom + 10.0);
            let _ = write!(
                s,
                r#"<text class="{}" x="{}" y="{}" text-anchor="end" transform="rotate(-45 {} {})">{}</text>"#,
                if p.flagged { "layer flagged" } else { "layer" },
                c(xx),
                c(yy),
                c(xx),
                c(yy),
                esc(&short(&p.label, 18))
            );
        }
    }
    // The two lines, through the layers that have a value (a norm's gradient, a marker's).
    for (class, get) in [
        (
            "forward",
            (|p: &SignalPoint| p.forward) as fn(&SignalPoint) -> Option<f64>,
        ),
        ("backward", |p: &SignalPoint| p.backward),
    ] {
        let mut d = String::new();
        for (i, p) in points.iter().enumerate() {
            if let Some(v) = finite(get(p)) {
                let _ = write!(
                    d,
                    "{}{},{}",
                    if d.is_empty() { "M" } else { "L" },
                    c(x(i)),
                    c(y(v))
                );
            }
        }
        if !d.is_empty() {
            let _ = write!(s, r#"<path class="{class}" d="{d}"/>"#);
        }
        for (i, p) in points.iter().enumerate() {
            let Some(v) = finite(get(p)) else { continue };
            let out = v < band.0 || v > band.1;
            let _ = write!(
                s,
                r#"<circle class="{class}{}" cx="{}" cy="{}" r="{}"><title>{}: {class} std {}</title></circle>"#,
                if out { " escape" } else { "" },
                c(x(i)),
                c(y(v)),
                if out { 4.5 } else { 2.5 },
                esc(&p.label),
                crate::init::num(v)
            );
        }
    }
    // The lint's layer.
    for (i, p) in points.iter().enumerate().filter(|(_, p)| p.flagged) {
        let v = finite(p.forward).or(finite(p.backward)).unwrap_or(1.0);
        let _ = write!(
            s,
            r#"<line class="flag" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="flag" x="{}" y="{}">{} leaves the band</text>"#,
            c(x(i)),
            c(x(i)),
            c(top),
            c(h - bottom),
            c((x(i) + 6.0).min(w - 200.0)),
            c((y(v) - 8.0).max(top + 12.0)),
            esc(&short(&p.label, 30))
        );
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{l}" x2="{l}" y1="{t}" y2="{b}"/><line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"/>"#,
        l = c(left),
        r = c(w - right),
        t = c(top),
        b = c(h - bottom)
    );
    s.push_str("</svg>");
    s
}

/// A histogram (density-normalized counts over equal bins of `range`) under a density.
pub struct Density<'a> {
    /// The x range plotted.
    pub range: (f64, f64),
    /// Counts per bin, when the file's values were read.
    pub counts: Option<&'a [u64]>,
    /// The declared density, when the law has one.
    pub pdf: Option<&'a dyn Fn(f64) -> f64>,
    /// A point mass (a constant initializer).
    pub spike: Option<f64>,
}

/// The density chart of one tensor.
pub fn density_chart(d: &Density) -> String {
    let (w, h) = (440.0, 170.0);
    let (left, right, top, bottom) = (8.0, 8.0, 8.0, 24.0);
    let (a, b) = d.range;
    let span = (b - a).max(f64::MIN_POSITIVE);
    let x = |v: f64| left + (w - left - right) * (v - a) / span;
    let total: u64 = d.counts.map_or(0, |c| c.iter().sum());
    let bins = d.counts.map_or(0, <[u64]>::len);
    let width = span / bins.max(1) as f64;
    let hist: Vec<f64> = d
        .counts
        .unwrap_or(&[])
        .iter()
        .map(|&k| {
            if total == 0 {
                0.0
            } else {
                k as f64 / total as f64 / width
            }
        })
        .collect();
    const SAMPLES: usize = 160;
    let curve: Vec<(f64, f64)> = d.pdf.map_or(Vec::new(), |f| {
        (0..=SAMPLES)
            .map(|i| {
                let v = a + span * i as f64 / SAMPLES as f64;
                (v, f(v))
            })
            .filter(|(_, p)| p.is_finite())
            .collect()
    });
    let top_value = hist
        .iter()
        .copied()
        .chain(curve.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.08;
    let y = |p: f64| h - bottom - (h - top - bottom) * (p / top_value).min(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="density" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    if !hist.is_empty() {
        let mut p = format!("M{},{}", c(x(a)), c(y(0.0)));
        for (i, v) in hist.iter().enumerate() {
            let (x0, x1) = (x(a + width * i as f64), x(a + width * (i + 1) as f64));
            let _ = write!(p, "L{},{}L{},{}", c(x0), c(y(*v)), c(x1), c(y(*v)));
        }
        let _ = write!(p, "L{},{}Z", c(x(b)), c(y(0.0)));
        let _ = write!(
            s,
            r#"<path class="hist" d="{p}"><title>the file's values, {total} sampled</title></path>"#
        );
    }
    if !curve.is_empty() {
        let mut p = String::new();
        for (i, (v, f)) in curve.iter().enumerate() {
            let _ = write!(
                p,
                "{}{},{}",
                if i == 0 { "M" } else { "L" },
                c(x(*v)),
                c(y(*f))
            );
        }
        let _ = write!(
            s,
            r#"<path class="pdf" d="{p}"><title>declared density</title></path>"#
        );
    }
    if let Some(v) = d.spike {
        let _ = write!(
            s,
            r#"<line class="spike" x1="{}" x2="{}" y1="{}" y2="{}"><title>every value {}</title></line>"#,
            c(x(v)),
            c(x(v)),
            c(y(0.0)),
            c(top),
            crate::init::num(v)
        );
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{}" x2="{}" y1="{b}" y2="{b}"/>"#,
        c(left),
        c(w - right),
        b = c(h - bottom)
    );
    for k in 0..=4 {
        let v = a + span * k as f64 / 4.0;
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r#"<text class="tick" x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
            c(x(v)),
            c(h - 6.0),
            tick(v)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\u{1b}b"), "a\\u{1b}b");
        assert_eq!(short("model.layers.0.self_attn", 10), "…self_attn");
        assert_eq!(tick(0.00816497), "0.00816");
        assert_eq!(tick(-0.04), "-0.04");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(tick(2.0e-5), "2.00e-5");
    }

    #[test]
    fn escapes_are_marked_and_the_line_passes_unknown_layers() {
        let p = |label: &str, f: Option<f64>, flagged| SignalPoint {
            label: label.into(),
            forward: f,
            backward: Some(1.0),
            flagged,
        };
        let s = signal_chart(
            &[
                p("a", Some(1.0), false),
                p("b", None, false),
                p("c", Some(1e5), true),
            ],
            (1e-3, 1e3),
        );
        assert_eq!(s.matches("class=\"forward escape\"").count(), 1);
        assert!(s.contains("c leaves the band"));
        // One piece, from a to c, past b.
        let d = s.split("class=\"forward\" d=\"").nth(1).unwrap();
        let d = d.split('"').next().unwrap();
        assert_eq!(
            (d.matches('M').count(), d.matches('L').count()),
            (1, 1),
            "{d}"
        );
        // The axis reaches past 1e5.
        assert!(s.contains(">1e6<"), "{s}");
    }
}
