//! Reading an initializer as written: bare name, `{name, ...params}`, or Keras'
//! `{class_name, config}`; names normalized; parameters checked against the home
//! framework's names, defaults filled in, impossible values refused.

use super::{calculate_gain, normal_cdf, FanMode, Flatten, Init, VsDistribution, NONLINEARITIES};
use crate::diag::{self, did_you_mean, Diagnostic, Diags};
use crate::model::Layout;
use crate::source::Span;
use crate::syntax::{Entry, Node, Value};

/// An initializer as the spec chose it.
#[derive(Clone, Debug, PartialEq)]
pub struct InitSpec {
    /// Canonical name (`he_normal`, `kaiming_uniform`, `default`).
    pub name: String,
    /// The initializer, or `None` for `default` (the framework's choice for the tensor).
    pub init: Option<Init>,
    /// A per-tensor seed overriding the spec's.
    pub seed: Option<u64>,
    /// The written initializer.
    pub span: Span,
    /// The initializer as written, when its parameters read the tensor's `fan_in` or
    /// `fan_out`: computed per tensor ([`InitSpec::for_fans`]); `init` then holds a trial.
    pub deferred: Option<Node>,
}

impl InitSpec {
    /// This initializer for a tensor with `fans` (the spec's own for one without fan
    /// expressions); problems of the computed parameters go to `diags`.
    pub fn for_fans(
        &self,
        fans: crate::model::Fans,
        layout: Layout,
        diags: &mut Diags,
    ) -> Option<InitSpec> {
        let Some(node) = &self.deferred else {
            return Some(self.clone());
        };
        let mut n = node.clone();
        let scope = fan_scope(fans.fan_in, fans.fan_out);
        let vars = crate::spec::expr::Vars::new(None, &[], diags);
        crate::spec::expr::substitute(&mut n, &vars, &scope, diags);
        let mut spec = parse_initializer_now(&n, layout, diags)?;
        spec.span = self.span;
        Some(spec)
    }
}

/// `fan_in` and `fan_out` bound to values.
fn fan_scope(fan_in: u64, fan_out: u64) -> crate::spec::expr::Scope {
    use crate::spec::expr::Val;
    crate::spec::expr::Scope {
        bound: vec![
            ("fan_in".into(), Val::Int(fan_in as i128)),
            ("fan_out".into(), Val::Int(fan_out as i128)),
        ],
        deferred: Vec::new(),
    }
}

/// Every canonical initializer name with the parameters it takes (besides `seed`).
pub const INITIALIZER_NAMES: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("zeros", &[]),
    ("ones", &[]),
    ("constant", &["value", "val"]),
    ("random_normal", &["mean", "stddev"]),
    ("random_uniform", &["minval", "maxval"]),
    ("truncated_normal", &["mean", "stddev"]),
    ("variance_scaling", &["scale", "mode", "distribution"]),
    ("glorot_uniform", &[]),
    ("glorot_normal", &[]),
    ("he_uniform", &[]),
    ("he_normal", &[]),
    ("lecun_uniform", &[]),
    ("lecun_normal", &[]),
    ("orthogonal", &["gain"]),
    ("identity", &["gain"]),
    ("normal", &["mean", "std", "stddev"]),
    ("uniform", &["a", "b", "minval", "maxval"]),
    ("trunc_normal", &["mean", "std", "a", "b"]),
    ("xavier_uniform", &["gain"]),
    ("xavier_normal", &["gain"]),
    ("kaiming_uniform", &["a", "mode", "nonlinearity"]),
    ("kaiming_normal", &["a", "mode", "nonlinearity"]),
    ("eye", &[]),
    ("dirac", &["groups"]),
    ("sparse", &["sparsity", "std"]),
    ("sinusoidal", &["max_timescale", "style", "step"]),
    ("relative_position_index", &["window_size"]),
    ("from_file", &["path", "tensor", "transpose"]),
];

/// Normalizes a written name: CamelCase to snake_case, lowercase, trailing `_` and
/// `_initializer` dropped, aliases (`zero`, `one`) mapped. Unknown names come back normalized.
pub fn canonical_name(written: &str) -> String {
    let mut snake = String::new();
    let mut prev: Option<char> = None;
    for c in written.trim().chars() {
        if c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
        prev = Some(c);
    }
    let mut s = snake.trim_end_matches('_').to_string();
    if let Some(stripped) = s.strip_suffix("_initializer") {
        s = stripped.to_string();
    }
    match s.as_str() {
        "zero" => "zeros".into(),
        "one" => "ones".into(),
        _ => s,
    }
}

/// Reads an initializer value; problems go to `diags` and give `None`.
///
/// Parameters that read `fan_in` or `fan_out` are computed per tensor: here the
/// initializer is checked with trial fans (names and parameter keys), and kept as written.
pub fn parse_initializer(node: &Node, layout: Layout, diags: &mut Diags) -> Option<InitSpec> {
    use crate::spec::expr::mentions;
    if !(mentions(node, "fan_in") || mentions(node, "fan_out")) {
        return parse_initializer_now(node, layout, diags);
    }
    let mut trial = node.clone();
    let mut scratch = Diags::new();
    let vars = crate::spec::expr::Vars::new(None, &[], &mut scratch);
    crate::spec::expr::substitute(&mut trial, &vars, &fan_scope(256, 256), &mut scratch);
    let spec = parse_initializer_now(&trial, layout, &mut scratch);
    // Problems of the form show now; those of the values are the tensors' own.
    let structural = [
        diag::UNKNOWN_INITIALIZER,
        diag::UNKNOWN_PARAMETER,
        diag::WRONG_TYPE,
        diag::MISSING_KEY,
        diag::UNKNOWN_KEY,
    ];
    let mut failed = false;
    for d in scratch.into_vec() {
        if structural.contains(&d.code) {
            failed = true;
            diags.push(d);
        }
    }
    if failed {
        return None;
    }
    let mut spec = spec.unwrap_or(InitSpec {
        name: String::new(),
        init: None,
        seed: None,
        span: node.span,
        deferred: None,
    });
    spec.deferred = Some(node.clone());
    Some(spec)
}

/// [`parse_initializer`] of a node whose values are all known.
fn parse_initializer_now(node: &Node, layout: Layout, diags: &mut Diags) -> Option<InitSpec> {
    let (name, name_span, params, seed_node): (String, Span, Vec<&Entry>, Option<&Node>) =
        match &node.value {
            Value::Str(s) => (s.clone(), node.span, Vec::new(), None),
            Value::Map(entries) => {
                if let Some(cls) = entries.iter().find(|e| e.key == "class_name") {
                    // Keras' serialized form: {class_name, config, module?, registered_name?}
                    let Value::Str(s) = &cls.value.value else {
                        diags.push(wrong(&cls.value, "the initializer's class name, a string"));
                        return None;
                    };
                    let mut params = Vec::new();
                    let mut seed = None;
                    for e in entries {
                        match e.key.as_str() {
                            "class_name" | "module" | "registered_name" => {}
                            "config" => match &e.value.value {
                                Value::Map(cfg) => {
                                    for c in cfg {
                                        if c.key == "seed" {
                                            seed = Some(&c.value);
                                        } else {
                                            params.push(c);
                                        }
                                    }
                                }
                                Value::Null => {}
                                _ => {
                                    diags.push(wrong(
                                        &e.value,
                                        "a map of the initializer's parameters",
                                    ));
                                    return None;
                                }
                            },
                            _ => {
                                diags.push(unknown_key(
                                    e,
                                    &["class_name", "config", "module", "registered_name"],
                                ));
                                return None;
                            }
                        }
                    }
                    (s.clone(), cls.value.span, params, seed)
                } else if let Some(n) = entries.iter().find(|e| e.key == "name") {
                    let Value::Str(s) = &n.value.value else {
                        diags.push(wrong(&n.value, "the initializer's name, a string"));
                        return None;
                    };
                    let params = entries
                        .iter()
                        .filter(|e| e.key != "name" && e.key != "seed")
                        .collect();
                    let seed = entries.iter().find(|e| e.key == "seed").map(|e| &e.value);
                    (s.clone(), n.value.span, params, seed)
                } else {
                    diags.push(
                    Diagnostic::error(diag::MISSING_KEY, node.span, "initializer map has no `name`")
                        .label("which initializer?")
                        .help("write `{name: truncated_normal, stddev: 0.02}` or Keras' `{class_name: TruncatedNormal, config: {stddev: 0.02}}`"),
                );
                    return None;
                }
            }
            other => {
                diags.push(
                    Diagnostic::error(
                        diag::WRONG_TYPE,
                        node.span,
                        format!("an initializer is a name or a map, not {}", other.kind()),
                    )
                    .label("expected an initializer")
                    .help("write `he_normal` or `{name: normal, std: 0.02}`"),
                );
                return None;
            }
        };

    let canon = canonical_name(&name);
    let Some(&(canon_static, allowed)) = INITIALIZER_NAMES.iter().find(|(n, _)| *n == canon) else {
        let mut d = Diagnostic::error(
            diag::UNKNOWN_INITIALIZER,
            name_span,
            format!("unknown initializer `{name}`"),
        )
        .label("not an initializer specc knows");
        d = match did_you_mean(&canon, INITIALIZER_NAMES.iter().map(|(n, _)| *n)) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("see `specc explain unknown-initializer` for the list of names"),
        };
        diags.push(d);
        return None;
    };

    let before = diags.len();
    for p in &params {
        if !allowed.contains(&p.key.as_str()) {
            let mut d = Diagnostic::error(
                diag::UNKNOWN_PARAMETER,
                p.key_span,
                format!("`{canon_static}` has no parameter `{}`", p.key),
            )
            .label("unknown parameter");
            let mut choices: Vec<&str> = allowed.to_vec();
            choices.push("seed");
            d = match did_you_mean(&p.key, choices.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None if allowed.is_empty() => d.help(format!(
                    "`{canon_static}` takes no parameters except `seed`"
                )),
                None => d.help(format!(
                    "`{canon_static}` takes: {}, seed",
                    allowed.join(", ")
                )),
            };
            diags.push(d);
        }
    }
    let seed = match seed_node {
        None => None,
        Some(Node {
            value: Value::Null, ..
        }) => None,
        Some(n) => match &n.value {
            Value::Int(v) if *v >= 0 && *v <= u64::MAX as i128 => Some(*v as u64),
            _ => {
                diags.push(
                    Diagnostic::error(
                        diag::INVALID_VALUE,
                        n.span,
                        "an initializer `seed` is a whole number from 0 to 2^64-1",
                    )
                    .label("not a valid seed")
                    .help("write `seed: 1234`"),
                );
                None
            }
        },
    };
    let mut p = Params {
        entries: &params,
        diags,
    };
    let init = build(canon_static, &mut p, layout);
    if diags.len() > before {
        // A missing parameter has no place of its own: the initializer's.
        for d in diags.since(before) {
            if let Some(l) = d.primary.as_mut().filter(|l| l.span == Span::default()) {
                l.span = node.span;
                if l.text.is_empty() {
                    l.text = "this initializer".into();
                }
            }
        }
        return None;
    }
    Some(InitSpec {
        name: canon_static.to_string(),
        init,
        seed,
        span: node.span,
        deferred: None,
    })
}

struct Params<'a, 'd> {
    entries: &'a [&'a Entry],
    diags: &'d mut Diags,
}

impl Params<'_, '_> {
    fn entry(&self, keys: &[&str]) -> Option<&Entry> {
        self.entries
            .iter()
            .copied()
            .find(|e| keys.contains(&e.key.as_str()))
    }

    /// A finite number under any of `keys`, or `default`.
    fn num(&mut self, keys: &[&str], default: f64) -> f64 {
        let Some(e) = self.entry(keys) else {
            return default;
        };
        match e.value.value {
            Value::Int(i) => i as f64,
            Value::Float(f) if f.is_finite() => f,
            _ => {
                let d = Diagnostic::error(
                    diag::INVALID_PARAMETER,
                    e.value.span,
                    format!("`{}` must be a finite number", e.key),
                )
                .label(format!("{} here", e.value.value.kind()))
                .help(format!("write `{}: 0.02`", e.key));
                self.diags.push(d);
                default
            }
        }
    }

    fn span(&self, keys: &[&str]) -> Option<Span> {
        self.entry(keys).map(|e| e.value.span)
    }

    /// A word from `choices` under `key`, or `default`.
    fn word(&mut self, key: &str, choices: &[&'static str], default: &'static str) -> &'static str {
        let Some(e) = self.entry(&[key]) else {
            return default;
        };
        let Value::Str(s) = &e.value.value else {
            let d = Diagnostic::error(
                diag::INVALID_PARAMETER,
                e.value.span,
                format!("`{key}` must be one of: {}", choices.join(", ")),
            )
            .label(format!("{} here", e.value.value.kind()))
            .help(format!("write `{key}: {default}`"));
            self.diags.push(d);
            return default;
        };
        let lower = s.to_ascii_lowercase();
        if let Some(c) = choices.iter().find(|c| **c == lower) {
            return c;
        }
        let mut d = Diagnostic::error(
            diag::INVALID_PARAMETER,
            e.value.span,
            format!("`{key}` cannot be `{s}`"),
        )
        .label("not a valid choice");
        d = match did_you_mean(&lower, choices.iter().copied()) {
            Some(m) => d.help(format!(
                "did you mean `{m}`? choices: {}",
                choices.join(", ")
            )),
            None => d.help(format!("choices: {}", choices.join(", "))),
        };
        self.diags.push(d);
        default
    }

    fn invalid(&mut self, keys: &[&str], message: String, help: &str) {
        let span = self.span(keys).unwrap_or_default();
        self.diags.push(
            Diagnostic::error(diag::INVALID_PARAMETER, span, message)
                .label("impossible value")
                .help(help.to_string()),
        );
    }

    fn std(&mut self, keys: &[&str], default: f64) -> f64 {
        let s = self.num(keys, default);
        if s < 0.0 {
            self.invalid(
                keys,
                format!("standard deviation `{}` is negative", keys[0]),
                "a standard deviation is 0 or more; write the magnitude, e.g. `0.02`",
            );
        }
        s
    }

    fn uniform(&mut self, lo: &[&str], hi: &[&str], dlo: f64, dhi: f64) -> Init {
        let low = self.num(lo, dlo);
        let high = self.num(hi, dhi);
        if low > high {
            let key = if self.entry(hi).is_some() { hi } else { lo };
            self.invalid(
                key,
                format!("lower bound {low} is greater than upper bound {high}"),
                "swap the bounds so that the first is not greater than the second",
            );
        }
        Init::Uniform { low, high }
    }
}

/// The initializer canonical `name` denotes with its parameters; `None` for `default`
/// (the framework's, chosen per tensor later).
fn build(name: &str, p: &mut Params<'_, '_>, layout: Layout) -> Option<Init> {
    let vs = |scale: f64, mode: FanMode, distribution: VsDistribution| Init::VarianceScaling {
        scale,
        mode,
        distribution,
    };
    use FanMode::*;
    use VsDistribution::*;
    let init = match name {
        "default" => return None,
        "zeros" => Init::ZEROS,
        "ones" => Init::ONES,
        "constant" => Init::Constant {
            value: p.num(&["value", "val"], 0.0),
        },
        "random_normal" => Init::Normal {
            mean: p.num(&["mean"], 0.0),
            std: p.std(&["stddev"], 0.05),
        },
        "normal" => Init::Normal {
            mean: p.num(&["mean"], 0.0),
            std: p.std(&["std", "stddev"], 1.0),
        },
        "random_uniform" => p.uniform(&["minval"], &["maxval"], -0.05, 0.05),
        "uniform" => {
            if p.entry(&["minval", "maxval"]).is_some() {
                p.uniform(&["minval"], &["maxval"], -0.05, 0.05)
            } else {
                p.uniform(&["a"], &["b"], 0.0, 1.0)
            }
        }
        "truncated_normal" => {
            let mean = p.num(&["mean"], 0.0);
            let std = p.std(&["stddev"], 0.05);
            Init::TruncatedNormal {
                mean,
                std,
                low: mean - 2.0 * std,
                high: mean + 2.0 * std,
            }
        }
        "trunc_normal" => {
            let mean = p.num(&["mean"], 0.0);
            let std = p.std(&["std"], 1.0);
            let low = p.num(&["a"], -2.0);
            let high = p.num(&["b"], 2.0);
            if low >= high {
                p.invalid(
                    &["b", "a"],
                    format!("truncation range [{low}, {high}] is empty"),
                    "`a` and `b` are absolute bounds with `a` < `b`, e.g. `a: -0.04, b: 0.04`",
                );
            } else if std > 0.0 {
                let mass = normal_cdf((high - mean) / std) - normal_cdf((low - mean) / std);
                if mass.is_nan() || mass <= 1e-12 {
                    p.invalid(
                        &["a", "b", "mean"],
                        format!(
                            "truncation range [{low}, {high}] excludes all of N({mean}, {std}²) (mass {mass:.1e})"
                        ),
                        "`a` and `b` are absolute values, not multiples of `std`: write bounds around the mean, e.g. `a: -2*std`",
                    );
                }
            } else if !(low..=high).contains(&mean) {
                p.invalid(
                    &["mean"],
                    format!("with `std: 0` the mean {mean} must lie in [{low}, {high}]"),
                    "move the mean inside the bounds or give a positive `std`",
                );
            }
            Init::TruncatedNormal {
                mean,
                std,
                low,
                high,
            }
        }
        "variance_scaling" => {
            let scale = p.num(&["scale"], 1.0);
            if scale <= 0.0 {
                p.invalid(
                    &["scale"],
                    format!("`scale` must be positive, got {scale}"),
                    "write `scale: 1.0` (Keras requires scale > 0)",
                );
            }
            let mode = match p.word("mode", &["fan_in", "fan_out", "fan_avg"], "fan_in") {
                "fan_out" => FanOut,
                "fan_avg" => FanAvg,
                _ => FanIn,
            };
            let distribution = match p.word(
                "distribution",
                &[
                    "truncated_normal",
                    "untruncated_normal",
                    "normal",
                    "uniform",
                ],
                "truncated_normal",
            ) {
                "untruncated_normal" => UntruncatedNormal,
                "uniform" => Uniform,
                // Keras maps "normal" to truncated_normal (random_initializers.py).
                _ => TruncatedNormal,
            };
            vs(scale, mode, distribution)
        }
        "glorot_uniform" => vs(1.0, FanAvg, Uniform),
        "glorot_normal" => vs(1.0, FanAvg, TruncatedNormal),
        "he_uniform" => vs(2.0, FanIn, Uniform),
        "he_normal" => vs(2.0, FanIn, TruncatedNormal),
        "lecun_uniform" => vs(1.0, FanIn, Uniform),
        "lecun_normal" => vs(1.0, FanIn, TruncatedNormal),
        "xavier_uniform" | "xavier_normal" => {
            let gain = p.num(&["gain"], 1.0);
            let d = if name == "xavier_uniform" {
                Uniform
            } else {
                UntruncatedNormal
            };
            vs(gain * gain, FanAvg, d)
        }
        "kaiming_uniform" | "kaiming_normal" => {
            let a = p.num(&["a"], 0.0);
            let mode = match p.word("mode", &["fan_in", "fan_out"], "fan_in") {
                "fan_out" => FanOut,
                _ => FanIn,
            };
            let nl = p.word("nonlinearity", &NONLINEARITIES, "leaky_relu");
            let gain = calculate_gain(nl, Some(a)).unwrap_or(2f64.sqrt());
            let d = if name == "kaiming_uniform" {
                Uniform
            } else {
                UntruncatedNormal
            };
            vs(gain * gain, mode, d)
        }
        "orthogonal" => Init::Orthogonal {
            gain: p.num(&["gain"], 1.0),
            flatten: match layout {
                Layout::Pytorch => Flatten::Trailing,
                Layout::Keras => Flatten::Leading,
            },
        },
        "identity" => Init::Identity {
            gain: p.num(&["gain"], 1.0),
        },
        "eye" => Init::Identity { gain: 1.0 },
        "dirac" => {
            let g = p.num(&["groups"], 1.0);
            if g < 1.0 || g.fract() != 0.0 {
                p.invalid(
                    &["groups"],
                    format!("`groups` must be a whole number ≥ 1, got {g}"),
                    "write `groups: 1`",
                );
            }
            Init::Dirac {
                groups: g.max(1.0) as u64,
            }
        }
        "sparse" => {
            if p.entry(&["sparsity"]).is_none() {
                p.diags.push(
                    Diagnostic::error(diag::MISSING_KEY, Span::default(), "`sparse` needs `sparsity`")
                        .help("write `{name: sparse, sparsity: 0.1}` (the fraction of each column set to zero)"),
                );
            }
            let sparsity = p.num(&["sparsity"], 0.0);
            if !(0.0..1.0).contains(&sparsity) {
                p.invalid(
                    &["sparsity"],
                    format!("`sparsity` must be in [0, 1), got {sparsity}"),
                    "`sparsity` is the fraction of each column set to zero, e.g. `0.1`",
                );
            }
            Init::Sparse {
                sparsity,
                std: p.std(&["std"], 0.01),
            }
        }
        "sinusoidal" => {
            let max_timescale = p.num(&["max_timescale"], 10000.0);
            if max_timescale <= 1.0 {
                p.invalid(
                    &["max_timescale"],
                    format!("`max_timescale` must be greater than 1, got {max_timescale}"),
                    "write `max_timescale: 10000`",
                );
            }
            Init::Sinusoidal {
                max_timescale,
                interleaved: p.word("style", &["concat", "interleaved"], "concat") == "interleaved",
                paper_step: p.word("step", &["half_minus_one", "paper"], "half_minus_one")
                    == "paper",
            }
        }
        "relative_position_index" => {
            let window = match p.entry(&["window_size"]).map(|e| &e.value) {
                Some(Node {
                    value: Value::Seq(items),
                    ..
                }) if items.len() == 2 => {
                    let w: Vec<u64> = items
                        .iter()
                        .filter_map(|i| match i.value {
                            Value::Int(v) if (1..=4096).contains(&v) => Some(v as u64),
                            _ => None,
                        })
                        .collect();
                    (w.len() == 2).then(|| [w[0], w[1]])
                }
                Some(Node {
                    value: Value::Int(v),
                    ..
                }) if (1..=4096).contains(v) => Some([*v as u64, *v as u64]),
                _ => None,
            };
            match window {
                Some(window) => Init::RelativePositionIndex { window },
                None => {
                    let span = p.span(&["window_size"]).unwrap_or_default();
                    p.diags.push(
                        Diagnostic::error(
                            diag::INVALID_PARAMETER,
                            span,
                            "`relative_position_index` needs `window_size`: [height, width], each 1 to 4096",
                        )
                        .label("window size")
                        .help("write `{name: relative_position_index, window_size: [7, 7]}`"),
                    );
                    Init::ZEROS
                }
            }
        }
        "from_file" => {
            let text = |p: &mut Params<'_, '_>, key: &str| match p.entry(&[key]).map(|e| &e.value) {
                None => None,
                Some(Node {
                    value: Value::Str(s),
                    ..
                }) if !s.is_empty() => Some(s.clone()),
                Some(n) => {
                    p.diags
                        .push(wrong(n, &format!("`{key}`, a non-empty string")));
                    None
                }
            };
            let path = text(p, "path");
            if p.entry(&["path"]).is_none() {
                p.diags.push(
                    Diagnostic::error(
                        diag::MISSING_KEY,
                        Span::default(),
                        "`from_file` needs `path`",
                    )
                    .help(
                        "write `{name: from_file, path: base.safetensors}` (relative to the spec)",
                    ),
                );
            }
            let tensor = text(p, "tensor");
            let transpose = match p.entry(&["transpose"]).map(|e| &e.value) {
                None => false,
                Some(Node {
                    value: Value::Bool(b),
                    ..
                }) => *b,
                Some(n) => {
                    p.diags.push(wrong(n, "`transpose`, true or false"));
                    false
                }
            };
            Init::FromFile(Box::new(super::file::FileValues {
                path: path.unwrap_or_default(),
                tensor,
                transpose,
                bound: None,
            }))
        }
        _ => unreachable!("every name in INITIALIZER_NAMES has an arm: {name}"),
    };
    Some(init)
}

fn wrong(node: &Node, expected: &str) -> Diagnostic {
    Diagnostic::error(
        diag::WRONG_TYPE,
        node.span,
        format!("expected {expected}, found {}", node.value.kind()),
    )
    .label("wrong kind of value")
    .help(format!("write {expected}"))
}

fn unknown_key(e: &Entry, allowed: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(
        diag::UNKNOWN_KEY,
        e.key_span,
        format!("unknown key `{}`", e.key),
    )
    .label("unknown key");
    match did_you_mean(&e.key, allowed.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(format!("valid keys: {}", allowed.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn parse(text: &str) -> (Option<InitSpec>, Vec<Diagnostic>) {
        let node =
            crate::syntax::parse(&SourceFile::new("t.yaml", format!("i: {text}\n"))).unwrap();
        let Value::Map(es) = node.value else { panic!() };
        let mut diags = Diags::new();
        let r = parse_initializer(&es[0].value, Layout::Pytorch, &mut diags);
        (r, diags.into_vec())
    }

    #[test]
    fn names_normalize() {
        for (w, c) in [
            ("GlorotUniform", "glorot_uniform"),
            ("he_normal", "he_normal"),
            ("zeros_initializer", "zeros"),
            ("xavier_uniform_", "xavier_uniform"),
            ("VarianceScaling", "variance_scaling"),
            ("TruncatedNormal", "truncated_normal"),
            ("Zeros", "zeros"),
            ("zero", "zeros"),
            ("IdentityInitializer", "identity"),
            ("kaiming_normal_", "kaiming_normal"),
            ("LecunNormal", "lecun_normal"),
        ] {
            assert_eq!(canonical_name(w), c, "{w}");
        }
    }

    #[test]
    fn every_name_is_accepted_in_every_form() {
        for (name, _) in INITIALIZER_NAMES {
            // The parameters without a default.
            let (extra, cfg) = match *name {
                "sparse" => (", sparsity: 0.5", "{sparsity: 0.5}"),
                "relative_position_index" => (", window_size: [2, 3]", "{window_size: [2, 3]}"),
                "from_file" => (", path: base.safetensors", "{path: base.safetensors}"),
                _ => ("", "{}"),
            };
            let camel: String = name
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            for form in [
                if extra.is_empty() {
                    name.to_string()
                } else {
                    format!("{{name: {name}{extra}}}")
                },
                format!("{{name: {name}{extra}}}"),
                format!("{{name: {camel}{extra}}}"),
                format!("{{name: {name}_{extra}}}"),
                format!("{{name: {name}_initializer{extra}}}"),
                format!("{{class_name: {camel}, config: {cfg}}}"),
            ] {
                let (r, d) = parse(&form);
                assert!(d.is_empty(), "{form}: {d:?}");
                assert_eq!(r.unwrap().name, *name, "{form}");
            }
        }
    }

    #[test]
    fn keras_serialized_form_with_config() {
        let (r, d) = parse("{class_name: VarianceScaling, config: {scale: 2.0, mode: fan_out, distribution: uniform, seed: 7}, module: keras.initializers, registered_name: null}");
        assert!(d.is_empty(), "{d:?}");
        let r = r.unwrap();
        assert_eq!(r.seed, Some(7));
        assert_eq!(
            r.init,
            Some(Init::VarianceScaling {
                scale: 2.0,
                mode: FanMode::FanOut,
                distribution: VsDistribution::Uniform
            })
        );
    }

    #[test]
    fn torch_functions_map_to_their_formulas() {
        let (r, _) = parse("{name: kaiming_uniform, a: 2.2360679774997896}");
        let Some(Init::VarianceScaling { scale, .. }) = r.unwrap().init else {
            panic!()
        };
        assert!((scale - 1.0 / 3.0).abs() < 1e-12);
        let (r, _) = parse("{name: xavier_normal, gain: 2}");
        assert_eq!(
            r.unwrap().init,
            Some(Init::VarianceScaling {
                scale: 4.0,
                mode: FanMode::FanAvg,
                distribution: VsDistribution::UntruncatedNormal
            })
        );
        let (r, _) = parse("{name: truncated_normal, stddev: 0.02}");
        assert_eq!(
            r.unwrap().init,
            Some(Init::TruncatedNormal {
                mean: 0.0,
                std: 0.02,
                low: -0.04,
                high: 0.04
            })
        );
        let (r, _) = parse("trunc_normal");
        assert_eq!(
            r.unwrap().init,
            Some(Init::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                low: -2.0,
                high: 2.0
            })
        );
    }

    #[test]
    fn defaults_follow_the_home_framework() {
        assert_eq!(
            parse("random_normal").0.unwrap().init,
            Some(Init::Normal {
                mean: 0.0,
                std: 0.05
            })
        );
        assert_eq!(
            parse("normal").0.unwrap().init,
            Some(Init::Normal {
                mean: 0.0,
                std: 1.0
            })
        );
        assert_eq!(
            parse("uniform").0.unwrap().init,
            Some(Init::Uniform {
                low: 0.0,
                high: 1.0
            })
        );
        assert_eq!(
            parse("random_uniform").0.unwrap().init,
            Some(Init::Uniform {
                low: -0.05,
                high: 0.05
            })
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for (text, code) in [
            ("{name: normal, std: -1}", diag::INVALID_PARAMETER),
            (
                "{name: random_uniform, minval: 1, maxval: 0}",
                diag::INVALID_PARAMETER,
            ),
            ("{name: sparse, sparsity: 1.0}", diag::INVALID_PARAMETER),
            ("{name: sparse, sparsity: -0.1}", diag::INVALID_PARAMETER),
            (
                "{name: trunc_normal, std: 0.02, a: 5, b: 6}",
                diag::INVALID_PARAMETER,
            ),
            ("{name: trunc_normal, a: 1, b: 1}", diag::INVALID_PARAMETER),
            (
                "{name: kaiming_normal, mode: fan_avg}",
                diag::INVALID_PARAMETER,
            ),
            (
                "{name: kaiming_normal, nonlinearity: gelu}",
                diag::INVALID_PARAMETER,
            ),
            ("{name: normal, stdev: 1}", diag::UNKNOWN_PARAMETER),
            ("glorot_unifrom", diag::UNKNOWN_INITIALIZER),
            ("{stddev: 1}", diag::MISSING_KEY),
            ("3", diag::WRONG_TYPE),
        ] {
            let (r, d) = parse(text);
            assert!(r.is_none(), "{text}");
            assert_eq!(d[0].code, code, "{text}: {d:?}");
        }
        let (_, d) = parse("glorot_unifrom");
        assert_eq!(d[0].help.as_deref(), Some("did you mean `glorot_uniform`?"));
    }
}
