//! `specc import hf CONFIG.json` (SPEC.md §11): a spec for a Hugging Face config, no
//! network. Each family is a template spec (`hf/<model_type>.yaml`) whose `vars` are the
//! config keys it reads, with the defaults of transformers' config class; importing
//! replaces those defaults with the config's values. The result is an ordinary spec:
//! `--set` shrinks it, `check` explains it.

use std::fmt;

/// A family `specc import hf` knows.
pub struct Family {
    /// The config's `model_type`.
    pub model_type: &'static str,
    /// The template spec.
    pub template: &'static str,
}

macro_rules! families {
    ($($t:literal),* $(,)?) => {
        /// Every family, by `model_type`; a new one is its template plus a row here.
        pub const FAMILIES: &[Family] = &[$(Family {
            model_type: $t,
            template: include_str!(concat!("hf/", $t, ".yaml")),
        }),*];
    };
}

families![
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "phi3",
    "mixtral",
    "gpt2",
    "gpt_neox",
    "bert",
    "roberta",
    "t5",
    "vit",
    "clip_vision_model",
    "whisper",
];

/// Why a config cannot be imported.
#[derive(Debug, PartialEq)]
pub enum Error {
    /// Not a JSON object.
    NotJson(String),
    /// No `model_type` string.
    NoModelType,
    /// A `model_type` no template covers.
    UnknownModelType(String),
    /// A config value of a type the template's variable cannot take.
    BadValue {
        /// The config key.
        key: String,
        /// What it holds.
        found: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotJson(e) => write!(f, "the config is not a JSON object: {e}"),
            Error::NoModelType => write!(
                f,
                "the config has no `model_type` (a transformers config.json names its family there)"
            ),
            Error::UnknownModelType(t) => {
                let known: Vec<&str> = FAMILIES.iter().map(|f| f.model_type).collect();
                write!(
                    f,
                    "specc does not know model_type `{t}`; it knows: {}",
                    known.join(", ")
                )?;
                if let Some(s) = crate::diag::did_you_mean(t, known.iter().copied()) {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                Ok(())
            }
            Error::BadValue { key, found } => write!(
                f,
                "config key `{key}` holds {found}; specc reads a number, a string, true/false or null there"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// What an import made.
#[derive(Debug)]
pub struct Imported {
    /// The spec's text.
    pub text: String,
    /// The family.
    pub model_type: String,
    /// Template variables the config set, in template order.
    pub from_config: Vec<String>,
}

/// One `  key: value` line of a template's `vars:` block.
struct VarLine {
    line: usize,
    key: String,
}

/// The variable lines of a template: the block-style `vars:` map at the top level, one
/// variable per line (the templates are written so).
fn var_lines(template: &str) -> Vec<VarLine> {
    let lines: Vec<&str> = template.lines().collect();
    let Some(start) = lines.iter().position(|l| *l == "vars:") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let Some(rest) = l.strip_prefix("  ") else {
            if l.trim().is_empty() {
                continue;
            }
            break;
        };
        if rest.starts_with(' ') || rest.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = rest.split_once(':') {
            out.push(VarLine {
                line: i,
                key: key.trim().to_string(),
            });
        }
    }
    out
}

/// A config value as YAML: numbers as written (a float keeps a fraction or an exponent, so
/// it reads back as the same f64), strings quoted.
fn yaml_value(key: &str, v: &serde_json::Value) -> Result<String, Error> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        J::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let s = format!("{x:?}");
            if s.contains(['.', 'e', 'E']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        J::String(s) => serde_json::to_string(s).expect("a string serializes"),
        J::Array(_) => {
            return Err(Error::BadValue {
                key: key.into(),
                found: "a list".into(),
            })
        }
        J::Object(_) => {
            return Err(Error::BadValue {
                key: key.into(),
                found: "a map".into(),
            })
        }
    })
}

/// The spec for the config `text` (read from `source`, named in the spec's header), from
/// the family's template or from `template` (a user's own, for any `model_type`).
pub fn hf(text: &str, source: &str, template: Option<&str>) -> Result<Imported, Error> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::NotJson(e.to_string()))?;
    let Some(obj) = config.as_object() else {
        return Err(Error::NotJson("it is not a map".into()));
    };
    let model_type = obj
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or(Error::NoModelType)?;
    let template = match template {
        Some(t) => t,
        None => {
            FAMILIES
                .iter()
                .find(|f| f.model_type == model_type)
                .ok_or_else(|| Error::UnknownModelType(model_type.to_string()))?
                .template
        }
    };
    // `architecture` is the class the config names first (`architectures`), when it does.
    let architecture = obj
        .get("architectures")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .cloned();
    let mut lines: Vec<String> = template.lines().map(str::to_string).collect();
    let mut from_config = Vec::new();
    // transformers writes `num_labels` as the map `id2label`; its size is the count.
    let labels = obj
        .get("id2label")
        .and_then(|m| m.as_object())
        .map(|m| serde_json::Value::from(m.len()));
    for v in var_lines(template) {
        let value = match v.key.as_str() {
            "architecture" => architecture.as_ref(),
            "num_labels" => obj.get("num_labels").or(labels.as_ref()),
            k => obj.get(k),
        };
        let Some(value) = value else { continue };
        lines[v.line] = format!("  {}: {}   # config", v.key, yaml_value(&v.key, value)?);
        from_config.push(v.key);
    }
    let header = format!(
        "# Imported by `specc import hf` from {source} (model_type {model_type}): the vars marked\n\
         # `config` come from it, the others are transformers' defaults. `--set NAME=VALUE`\n\
         # changes any of them (`--set num_hidden_layers=2` for a tiny fixture).\n"
    );
    let mut text = header;
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(Imported {
        text,
        model_type: model_type.to_string(),
        from_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_a_clean_spec() {
        for f in FAMILIES {
            let src = crate::SourceFile::new(f.model_type, f.template.to_string());
            let checked = crate::check(&src);
            let errors: Vec<_> = checked
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", f.model_type);
            assert!(
                !var_lines(f.template).is_empty(),
                "{} has vars",
                f.model_type
            );
        }
    }

    #[test]
    fn config_values_replace_the_defaults() {
        let cfg = r#"{"model_type": "llama", "architectures": ["LlamaModel"], "hidden_size": 64,
            "num_attention_heads": 4, "rms_norm_eps": 1e-05, "pad_token_id": null, "hidden_act": "silu"}"#;
        let i = hf(cfg, "config.json", None).unwrap();
        assert!(i.text.contains("  hidden_size: 64   # config"));
        assert!(i.text.contains("  rms_norm_eps: 1e-5   # config"));
        assert!(i.text.contains("  architecture: \"LlamaModel\"   # config"));
        assert!(
            i.text.contains("  intermediate_size: 11008\n"),
            "a default stays"
        );
        assert!(i.from_config.contains(&"pad_token_id".to_string()));
        let vit = r#"{"model_type": "vit", "id2label": {"0": "a", "1": "b", "2": "c"}}"#;
        let i = hf(vit, "config.json", None).unwrap();
        assert!(i.text.contains("  num_labels: 3   # config"), "{}", i.text);
    }

    #[test]
    fn unknown_families_and_bad_configs_say_why() {
        let e = hf(r#"{"model_type": "lama"}"#, "c", None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("llama") && msg.contains("did you mean"),
            "{msg}"
        );
        assert_eq!(
            hf("[1]", "c", None).unwrap_err(),
            Error::NotJson("it is not a map".into())
        );
        assert_eq!(hf("{}", "c", None).unwrap_err(), Error::NoModelType);
        assert!(matches!(
            hf(r#"{"model_type": "llama", "hidden_size": [1]}"#, "c", None),
            Err(Error::BadValue { .. })
        ));
    }
}
