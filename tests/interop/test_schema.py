"""`specc schema` (SPEC.md §11): every spec of the repository validates against the JSON
Schema with a real validator (jsonschema, draft 2020-12), the specs `specc import hf`
writes too, and specs with a wrong key, type or lint name do not. The committed
schema/spec.schema.json, which the zoo's yaml-language-server modelines name, is what the
command prints."""

import json
import pathlib
import subprocess
import tomllib

import jsonschema
import pytest
import yaml

from conftest import ROOT, specc_bin


@pytest.fixture(scope="module")
def validator():
    out = subprocess.run([specc_bin(), "schema"], capture_output=True, text=True, check=True).stdout
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads((ROOT / "schema" / "spec.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def load(path):
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return yaml.safe_load(path.read_text())


SPEC_DIRS = ["specs", "tests/fixtures/clean", "tests/interop/specs", "src/import/hf"]
SPECS = sorted(str(p.relative_to(ROOT)) for d in SPEC_DIRS for p in (ROOT / d).rglob("*") if p.suffix in (".yaml", ".yml", ".toml"))


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_validates(validator, spec):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(ROOT / spec))]
    assert not errors, errors


def test_zoo_specs_name_the_schema():
    for p in (ROOT / "specs").rglob("*.yaml"):
        first = p.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), p
        target = (p.parent / first.split("=", 1)[1]).resolve()
        assert target == (ROOT / "schema" / "spec.schema.json").resolve(), p


def test_imported_specs_validate(validator, tmp_path):
    import transformers

    for cfg in [transformers.LlamaConfig(), transformers.GPT2Config(), transformers.WhisperConfig(), transformers.T5Config()]:
        path = tmp_path / "config.json"
        cfg.to_json_file(str(path))
        text = subprocess.run([specc_bin(), "import", "hf", str(path)], capture_output=True, text=True, check=True).stdout
        assert not list(validator.iter_errors(yaml.safe_load(text))), cfg.model_type


BAD = [
    ("an unknown layer type", {"name": "m", "layers": [{"type": "dense_layer", "units": 4}]}),
    ("an unknown key of a dense", {"name": "m", "layers": [{"type": "dense", "units": 4, "unitz": 3}]}),
    ("a key of another type", {"name": "m", "layers": [{"type": "dense", "units": 4, "filters": 3}]}),
    ("an unknown top-level key", {"name": "m", "layers": [], "layer": []}),
    ("no layers", {"name": "m"}),
    ("an unknown lint", {"name": "m", "layers": [{"type": "dense", "units": 4, "allow": ["zero-kernels"]}]}),
    ("an unknown layout", {"name": "m", "layout": "jax", "layers": []}),
    ("an unknown initializer parameter", {"name": "m", "layers": [{"type": "dense", "units": 4, "kernel_initializer": {"name": "normal", "sdt": 1}}]}),
    ("a layer without a type", {"name": "m", "layers": [{"units": 4}]}),
]


@pytest.mark.parametrize("spec", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_wrong_specs_do_not_validate(validator, spec):
    assert list(validator.iter_errors(spec))
