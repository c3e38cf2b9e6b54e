//! `specc schema`: the JSON Schema (draft 2020-12) of the spec format, for editors
//! (yaml-language-server) and validators.
//!
//! Built from the registries, not written by hand: the layer types and their keys (each
//! type's keys are the ones its reader asks for, found by reading its registry example in
//! both layouts), the initializer names and their parameters, the lints. Values may be
//! `${...}` expressions anywhere, so a field's schema offers its words for completion but
//! accepts any expression string.

use crate::init::INITIALIZER_NAMES;
use crate::layers::LAYERS;
use crate::model::{DType, Layout};
use serde_json::{json, Map, Value};

/// An expression, accepted wherever a value is.
fn expression() -> Value {
    json!({"type": "string", "pattern": "\\$\\{"})
}

/// One of `words`, or an expression (editors complete the words).
fn words(words: &[&str], description: &str) -> Value {
    json!({"description": description, "anyOf": [{"enum": words}, expression()]})
}

fn initializer() -> Value {
    let names: Vec<&str> = INITIALIZER_NAMES.iter().map(|(n, _)| *n).collect();
    let mut params = Map::new();
    for (_, ps) in INITIALIZER_NAMES {
        for p in *ps {
            params.insert((*p).to_string(), json!({}));
        }
    }
    // Any case and spelling (`GlorotUniform`, `xavier_uniform_`) normalizes to a name.
    params.insert(
        "name".into(),
        json!({"type": "string", "examples": names, "description": "the initializer (Keras and PyTorch words, any case)"}),
    );
    params.insert(
        "seed".into(),
        json!({"description": "a seed of this tensor's own"}),
    );
    json!({
        "description": "an initializer: a name, `{name, ...parameters}`, or Keras' `{class_name, config}`",
        "anyOf": [
            // Any case and spelling (`GlorotUniform`, `he_normal_`) normalizes to a name.
            {"type": "string", "examples": names},
            {"type": "object", "required": ["name"], "properties": params, "additionalProperties": false},
            {"type": "object", "required": ["class_name"], "properties": {
                "class_name": {"type": "string"}, "config": {"type": ["object", "null"]},
                "module": {}, "registered_name": {}}, "additionalProperties": false}
        ]
    })
}

/// The keys each layer type accepts, in either layout, from its registry example.
fn layer_type_keys(example: &str) -> Vec<&'static str> {
    let src = crate::SourceFile::new("example", example.to_string());
    let node = crate::syntax::parse(&src).expect("registry examples parse");
    let mut keys = crate::spec::layer_keys(&node, Layout::Pytorch);
    keys.extend(crate::spec::layer_keys(&node, Layout::Keras));
    keys.sort();
    keys.dedup();
    keys
}

fn layer() -> Value {
    let types: Vec<&str> = LAYERS.iter().map(|t| t.name).collect();
    let mut cases = Vec::new();
    for row in LAYERS {
        let mut props = Map::new();
        for k in layer_type_keys(row.example) {
            let v = match k {
                "type" => json!({"const": row.name}),
                "layers" => json!({"$ref": "#/$defs/layers"}),
                "name" => {
                    json!({"type": ["string", "integer"], "description": "the layer's path segment"})
                }
                "when" => {
                    json!({"anyOf": [{"type": "boolean"}, expression()], "description": "false leaves the layer out"})
                }
                "allow" => json!({"description": "lints silenced on this layer", "anyOf": [
                    {"type": "array", "items": {"$ref": "#/$defs/lint"}}, {"$ref": "#/$defs/lint"}]}),
                "dtype" => words(&DType::PARAMETER_NAMES, "the layer's element type"),
                k if k.ends_with("initializer") => json!({"$ref": "#/$defs/initializer"}),
                _ => json!({}),
            };
            props.insert(k.to_string(), v);
        }
        cases.push(json!({
            "if": {"properties": {"type": {"const": row.name}}, "required": ["type"]},
            "then": {"description": row.summary, "properties": props, "additionalProperties": false}
        }));
    }
    json!({
        "type": "object",
        "required": ["type"],
        "properties": {"type": words(&types, "the layer type (docs/format.md)")},
        "allOf": cases
    })
}

/// The JSON Schema of a spec.
pub fn schema() -> Value {
    let lints: Vec<&str> = crate::lint::LINTS.iter().map(|l| l.name).collect();
    let mut defaults = Map::new();
    for k in crate::spec::default_keys() {
        defaults.insert(k.to_string(), json!({"$ref": "#/$defs/initializer"}));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/specc/specc/schema/spec-format-1.json",
        "title": "specc model spec",
        "description": "A model's layers and how each tensor starts (specc format 1, docs/format.md)",
        "type": "object",
        "required": ["name", "layers"],
        "properties": {
            "name": {"type": "string", "description": "the model's name"},
            "seed": {"anyOf": [{"type": "integer", "minimum": 0}, expression()], "description": "seed of every tensor's values"},
            "specc_format": {"enum": [1, 2, 3], "description": "the generator format (docs/determinism.md): 3, the current one; 2 to reproduce the last release's orthogonal for f32, bf16 and f16 tensors, 1 the first wave's f64 normals and orthogonal, bit for bit"},
            "dtype": words(&DType::SPEC_NAMES, "element type of every floating-point tensor"),
            "layout": words(&["pytorch", "keras"], "tensor names and storage order"),
            "input": {"anyOf": [{"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, expression()]}}, expression()],
                       "description": "one example's shape, batch excluded"},
            "vars": {"type": "object", "description": "values `${...}` expressions read; `--set NAME=VALUE` overrides one",
                     "additionalProperties": {"type": ["number", "string", "boolean", "null"]}},
            "defaults": {"type": "object", "properties": defaults, "additionalProperties": false,
                         "description": "an initializer per role for every layer that names none"},
            "lints": {"type": "object", "propertyNames": {"$ref": "#/$defs/lint"},
                      "additionalProperties": {"enum": ["allow", "warn", "deny"]}},
            "layers": {"$ref": "#/$defs/layers"}
        },
        "patternProperties": {"^x-": {"description": "ignored: a place for YAML anchors"}},
        "additionalProperties": false,
        "$defs": {
            "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}},
            "layer": layer(),
            "initializer": initializer(),
            "lint": {"enum": lints}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_is_current() {
        // schema/spec.schema.json is what editors read (the zoo's modelines name it).
        let committed = include_str!("../schema/spec.schema.json");
        let now = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
        assert!(
            committed == now,
            "schema/spec.schema.json is stale: run `specc schema > schema/spec.schema.json`"
        );
    }

    #[test]
    fn every_layer_type_has_its_keys() {
        for row in LAYERS {
            let keys = layer_type_keys(row.example);
            assert!(
                keys.contains(&"type") && keys.contains(&"name"),
                "{}: {keys:?}",
                row.name
            );
            for role in row.roles {
                assert!(keys.contains(role), "{}: {role}", row.name);
            }
        }
        let dense = layer_type_keys(LAYERS[0].example);
        for k in [
            "units",
            "use_bias",
            "activation",
            "tie",
            "weight_norm",
            "when",
            "allow",
        ] {
            assert!(dense.contains(&k), "dense lacks {k}: {dense:?}");
        }
    }
}
