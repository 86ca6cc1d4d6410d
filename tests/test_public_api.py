"""The public surface of `import edgeprune`: exactly `__all__`, lazy, and light to import."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgeprune
from edgeprune.options import STAGES, StageOptions

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "paramiko")


def fresh_python(code: str) -> str:
    """Run `code` in a new interpreter on this checkout; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def option_class(name: str) -> type:
    module, attr = STAGES[edgeprune._OPTIONS[name]].split(":")
    found = getattr(edgeprune, name)
    assert found is getattr(importlib.import_module(module), attr)
    return found  # type: ignore[no-any-return]


def test_import_loads_neither_tensorflow_keras_nor_paramiko():
    loaded = json.loads(
        fresh_python("import sys, json, edgeprune; print(json.dumps(sorted(sys.modules)))")
    )
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert heavy == []
    assert "edgeprune.api" not in loaded  # the verbs load on first use
    assert "pydantic" not in loaded


def test_a_verb_loads_only_on_first_use():
    out = fresh_python(
        "import sys, edgeprune as ep; before = 'edgeprune.api.fleet' in sys.modules; "
        "ep.compare; print(before, 'edgeprune.api.fleet' in sys.modules)"
    )
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize("name", edgeprune.__all__)
def test_every_name_in_all_resolves(name: str):
    if name in edgeprune._OPTIONS:
        option_class(name)
    value = getattr(edgeprune, name)
    assert value is not None
    assert getattr(value, "__name__", name) == name


def test_dir_is_exactly_all():
    public = [name for name in dir(edgeprune) if not name.startswith("_")]
    assert sorted(public) == sorted(edgeprune.__all__)
    assert edgeprune.__all__ == sorted(edgeprune.__all__) == sorted(edgeprune._LAZY)
    assert edgeprune.__version__ in fresh_python(
        "from edgeprune.cli.app import run; run(['--version'])"
    )
    assert len(edgeprune.__all__) <= 36  # verbs, the stages' options, results, UserError


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'prune_model'"):
        edgeprune.prune_model  # noqa: B018  (the internal name is not public)


def test_options_classes_are_the_stages_registry():
    assert set(edgeprune._OPTIONS.values()) == set(STAGES)
    for name, stage in edgeprune._OPTIONS.items():
        assert STAGES[stage].split(":")[1] == name


@pytest.mark.parametrize("name", sorted(edgeprune._OPTIONS))
def test_options_classes_are_stage_options(name: str):
    cls = option_class(name)
    assert issubclass(cls, StageOptions)
    assert cls.stage == edgeprune._OPTIONS[name]


def test_the_prune_verb_survives_importing_the_prune_package():
    out = fresh_python(
        "import edgeprune, edgeprune.prune.masks\n"
        "from edgeprune.prune import prune_model\n"
        "import edgeprune.api.transforms as t\n"
        "print(edgeprune.prune is t.prune, callable(prune_model))"
    )
    assert out.split() == ["True", "True"]
    from edgeprune import prune

    assert prune is importlib.import_module("edgeprune.api.transforms").prune


def test_results_escape_every_value_in_html():
    from edgeprune.api.results import Comparison

    row = {
        "model": "<script>x</script>.tflite",
        "model_sha256": "ab",
        "baseline": True,
        "device": "a&b",
        "threads": 1,
        "xnnpack": True,
        "status": "ok",
        "p50_ms": 2.0,
        "baseline_p50_ms": 2.0,
        "ratio": 1.0,
        "speedup": 1.0,
    }
    shown = Comparison(baseline="<script>x</script>.tflite", rows=[row], run_id=3)
    page = shown._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;.tflite" in page and "a&amp;b" in page
    text = repr(shown)
    assert text.splitlines()[0] == "Comparison (run 3, vs <script>x</script>.tflite)"
    assert "2.000 ms" in text and "1.00×" in text
    assert shown.to_dict() == {"run_id": 3, "baseline": row["model"], "rows": [row]}
