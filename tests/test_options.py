"""Every stage option is reachable the same way from the CLI, a recipe and Python.

Each stage's options class (`edgeprune.options.STAGES`) is the one definition; these tests
check that the CLI command has a flag for every field with the field's default, that the
recipe step has the key with the same default, and that the Python verb takes it. Errors
name the parameter in Python and the flag on the command line.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
import typer
from pydantic_core import PydanticUndefined

from edgeprune.errors import UserError
from edgeprune.options import STAGES, stage_options

COMMANDS = {
    "prune": "prune",
    "channels": "channels",
    "qat": "qat",
    "adapt": "adapt",
    "xnnpack_fix": "xnnpack-fix",
    "convert": "convert",
    "evaluate": "evaluate",
    "bench": "bench",
    "deploy": "deploy",
    "constraints": "run",
    "compute": "run",
    "quant_report": "quant-report",
}

RECIPE_STEPS: dict[str, tuple[str, ...]] = {
    "prune": ("prune",),
    "channels": ("channels", "finetune"),
    "qat": ("qat",),
    "adapt": ("adapt",),
    "convert": ("convert",),
    "xnnpack_fix": ("xnnpack_fix",),
}
"""The recipe steps that carry a stage's options (a stage not listed has no recipe step)."""

RECIPE_SECTIONS = {
    "bench": "bench",
    "deploy": "deploy",
    "constraints": "constraints",
    "compute": "compute",
}
"""Stages whose options are a top-level recipe section rather than a step."""

NO_RECIPE_PLACE = {
    "evaluate": "a recipe evaluates every variant on its data section by itself",
    "quant_report": "a report to read, not a step: a recipe keeps layers float with keep_float",
}
"""Stages a recipe cannot set options of, and why (the test fails for any other)."""

NOT_IN_RECIPES = {
    ("prune", "data"): "a recipe trains on its data.train",
    ("channels", "data"): "a recipe fine-tunes in a finetune step on its data.train",
    ("adapt", "data"): "a recipe's adapt step fine-tunes on its data.train",
    ("convert", "data"): "a recipe calibrates on its data section",
    ("xnnpack_fix", "data"): "a recipe compares outputs on its data section's validation samples",
    ("bench", "inputs"): "a recipe ships its validation samples (bench.inputs: true|false)",
    ("prune", "custom_objects"): "a recipe names them once, at its top level",
    ("channels", "custom_objects"): "a recipe names them once, at its top level",
    ("convert", "custom_objects"): "a recipe names them once, at its top level",
    ("xnnpack_fix", "custom_objects"): "a recipe names them once, at its top level",
    ("adapt", "custom_objects"): "a recipe names them once, at its top level",
    ("qat", "data"): "a recipe's qat step trains on its data.train",
    ("qat", "custom_objects"): "a recipe names them once, at its top level",
    **{
        (stage, name): "a recipe writes them under its step's distill: {temperature, alpha}"
        for stage in ("prune", "channels", "adapt", "qat")
        for name in ("temperature", "alpha")
    },
    **{
        (stage, name): "a recipe names its task once, at the top (task:, metric:, decode:)"
        for stage in ("prune", "channels", "adapt", "convert", "qat")
        for name in ("task", "metric", "decode")
    },
}

VERBS = {
    "prune": ("edgeprune.prune.model_file:prune_model_file", "edgeprune.prune:prune_gradually"),
    "channels": ("edgeprune.channels.pipeline:prune_channels_file",),
    "qat": ("edgeprune.quantize.pipeline:qat_file",),
    "adapt": ("edgeprune.workflows.adapt:adapt_model_file", "edgeprune.api.adapt:adapt"),
    "xnnpack_fix": ("edgeprune.xnnpack.fix_file:fix_model_file",),
    "convert": ("edgeprune.tflite.conversion:convert",),
    "evaluate": ("edgeprune.tflite.evaluation:evaluate",),
    "bench": ("edgeprune.api.fleet:bench",),
    "deploy": ("edgeprune.api.fleet:deploy",),
    "constraints": ("edgeprune.recipes.executor:run_recipe",),
    "compute": ("edgeprune.recipes.executor:run_recipe",),
    "quant_report": (
        "edgeprune.workflows.quant_report:quant_report",
        "edgeprune.api.quant:quant_report",
    ),
}

PYTHON_NAMES = {("evaluate", "data"): "dataset"}
"""Where a verb spells an option differently (it also takes a loaded dataset)."""


def _options(stage: str) -> Any:
    return stage_options(stage)


def _default(field: Any) -> Any:
    value = field.get_default(call_default_factory=True)
    return ... if value is PydanticUndefined else value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b and type(a) is type(b)


def _command(name: str) -> Any:
    from edgeprune.cli.app import app

    group = typer.main.get_command(app)
    command = group.commands.get(name)  # type: ignore[attr-defined]
    assert command is not None, f"the CLI has no command {name!r}"
    return command


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_option_is_a_flag_with_the_same_default(stage):
    options = _options(stage)
    params = {p.name: p for p in _command(COMMANDS[stage]).params}
    for name, field in options.model_fields.items():
        assert name in params, f"{COMMANDS[stage]} has no flag for {name}"
        param = params[name]
        assert isinstance(param, typer.core.TyperOption), f"{name} is not a flag"
        if _default(field) is ...:
            assert param.required, f"{name} is required in {options.__name__}, not on the CLI"
            continue
        cli_default = _cli_value(param.default, _default(field))
        assert _same(cli_default, _default(field)) or (
            param.default in ([], ()) and _default(field) in ([], ())
        ), f"--{name}: CLI default {param.default!r}, options default {_default(field)!r}"
        assert param.help == field.description, f"--{name}: help differs from the definition"


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_option_is_a_recipe_key_with_the_same_default(stage):
    from edgeprune.recipes.schema import RECIPE_ONLY, STEP_MODELS

    options = _options(stage)
    steps = RECIPE_STEPS.get(stage, ())
    if stage in RECIPE_SECTIONS:
        keys = dict(_section_model(stage).model_fields)
    elif not steps:
        assert stage not in STEP_MODELS, f"{stage} is a recipe step; list it in RECIPE_STEPS"
        assert stage in NO_RECIPE_PLACE, f"{stage} has no place in a recipe"
        return
    else:
        keys = {k: f for step in steps for k, f in STEP_MODELS[step].model_fields.items()}
    for name, field in options.model_fields.items():
        if (stage, name) in NOT_IN_RECIPES:
            if name in keys:  # the recipe uses the name for something of its own
                assert keys[name].description != field.description, f"{name} is a recipe key"
            continue
        assert name in keys, f"recipe steps {steps} have no key {name}"
        assert _same(_default(keys[name]), _default(field)), (
            f"{name}: recipe default {_default(keys[name])!r}, options default {_default(field)!r}"
        )
        assert keys[name].description == field.description
    for step in steps:
        extra = set(STEP_MODELS[step].model_fields) - set(options.model_fields)
        assert extra <= set(RECIPE_ONLY.get(step, ())), f"{step} has keys {extra} of no stage"


def _cli_value(value: Any, expected: Any) -> Any:
    """A comma-separated list flag's default ('1,4') as the list it stands for ([1, 4])."""
    if isinstance(value, str) and isinstance(expected, list):
        return [int(part) for part in value.split(",") if part.strip()]
    return value


def _section_model(stage: str) -> Any:
    from edgeprune.recipes.schema import RecipeFile

    annotation = RecipeFile.model_fields[RECIPE_SECTIONS[stage]].annotation
    assert annotation is not None
    return annotation


def _verb(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_option_is_taken_by_the_python_verb(stage, tmp_path):
    options = _options(stage)
    if stage not in VERBS:
        pytest.fail(f"no Python verb listed for {stage}")
    for spec in VERBS[stage]:
        verb = _verb(spec)
        signature = inspect.signature(verb)
        takes_keywords = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
        )
        for name, field in options.model_fields.items():
            python = PYTHON_NAMES.get((stage, name), name)
            if python in signature.parameters:
                param = signature.parameters[python]
                expected = _default(field)
                if expected is ...:
                    assert param.default is inspect.Parameter.empty, f"{spec}: {python}"
                else:
                    assert _same(param.default, expected), f"{spec}: {python} default"
            else:
                assert takes_keywords and "options" in signature.parameters, (
                    f"{spec} takes neither {python} nor options=/keywords"
                )
        if takes_keywords:  # the keywords go to the options class: an unknown one says so
            source = tmp_path / "model.keras"
            source.write_bytes(b"not read: the options are checked first")
            args = [source, tmp_path / "out.keras"] if "file" in spec or "adapt" in spec else []
            if spec.endswith(":convert"):
                args = [source, tmp_path / "out.tflite"]
            if spec.endswith(":prune_gradually"):
                args = [None, _tiny_dataset()]
            if spec.endswith((":bench", ":quant_report")):
                args = [source]
            with pytest.raises(UserError, match="unknown option 'bogus'; known options: "):
                verb(*args, bogus=1)


def _tiny_dataset() -> Any:
    import numpy as np

    from edgeprune.data import Dataset

    x, y = np.zeros((4, 2, 2, 1), np.float32), np.arange(4) % 2
    return Dataset("tiny", x, y, x, y, ["a", "b"])


PYTHON_ERRORS = [
    ("prune", {"sparsity": 0.5, "max_layer_sparsity": 2.0}, "max_layer_sparsity 2.0 must be in"),
    ("prune", {"sparsity": 0.5, "scope": "all"}, "scope 'all' is not one of"),
    ("prune", {"sparsity": 0.5, "epochs": 3}, "epochs: only for gradual pruning"),
    ("channels", {"ratio": 0.5, "threshold": 0.2}, "give ratio or threshold, not both"),
    ("channels", {"ratio": 2.0}, "ratio 2 is outside"),
    ("convert", {"quantize": "int4"}, "quantize 'int4' is not one of"),
    ("convert", {"io": "int8"}, "io int8 needs quantize int8"),
    ("xnnpack_fix", {"samples": 0}, "samples 0 must be at least 1"),
    ("evaluate", {"data": "digits", "batch_size": 0}, "batch_size must be at least 1"),
    ("constraints", {"max_latency_ms": -1.0}, "max_latency_ms: Input should be greater than 0"),
    ("constraints", {"latency_percentile": 75}, "latency_percentile: Input should be 50, 90"),
    ("constraints", {"max_model_kb": "big"}, "max_model_kb: Input should be a valid number"),
    ("compute", {"cluster": "10.0.0.5:8786"}, "cluster: is not a scheduler address; give tcp://"),
    (
        "adapt",
        {"target_speedup": 2.0, "cluster": "10.0.0.5:8786"},
        "cluster: is not a scheduler address; give tcp://",
    ),
]


@pytest.mark.parametrize(("stage", "values", "message"), PYTHON_ERRORS)
def test_python_errors_name_the_parameter(stage, values, message):
    with pytest.raises(UserError) as caught:
        stage_options(stage).create(**values)
    assert str(caught.value).startswith(message), str(caught.value)
    flags = caught.value.in_flags()
    for name in caught.value.params:
        assert "--" + name.replace("_", "-") in flags, flags
        assert f" {name} " not in f" {flags} ", flags


CLI_ERRORS = [
    (
        [
            *("prune", "{model}", "-o", "{tmp}/o.keras", "--sparsity", "0.5"),
            *("--scope", "balanced", "--max-layer-sparsity", "2"),
        ],
        "--max-layer-sparsity 2.0 must be in (0, 1]",
    ),
    (
        ["prune", "{model}", "-o", "{tmp}/o.keras", "--sparsity", "0.5", "--seed", "3"],
        "--seed: only for gradual pruning, which needs --data",
    ),
    (
        ["channels", "{model}", "-o", "{tmp}/o.keras", "--ratio", "0.5", "--threshold", "0.2"],
        "give --ratio or --threshold, not both",
    ),
    (["convert", "{model}", "-o", "{tmp}/o.tflite", "--io", "int8"], "--io int8 needs --quantize"),
    (["xnnpack-fix", "{model}", "-o", "{tmp}/o.keras", "--samples", "0"], "--samples 0 must be"),
    (["convert", "{model}", "-o", "{tmp}/o.tflite", "--calibration-samples", "0"], "at least 1"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_ERRORS)
def test_cli_errors_name_the_flag(run_cli, tmp_path, argv, message):
    model = tmp_path / "in.keras"
    model.write_bytes(b"never loaded: the options are checked first")
    outcome = run_cli(*[a.format(model=model, tmp=tmp_path) for a in argv])
    assert outcome.code == 2, outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.keras"]


MINIMAL = {
    "prune": {"sparsity": 0.5},
    "evaluate": {"data": "digits"},
    "adapt": {"target_speedup": 1.5},
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_options_read_back_from_to_dict_validate_again(stage):
    options = _options(stage)
    first = options.create(**MINIMAL.get(stage, {}))
    again = options.create(**first.to_dict())
    assert again.to_dict() == first.to_dict()


def test_constraints_per_device_take_the_same_keys_as_the_global_ones():
    from edgeprune.recipes.constraints import ConstraintOptions
    from edgeprune.recipes.schema import DeviceConstraintsSpec

    for name, field in ConstraintOptions.model_fields.items():
        entry = DeviceConstraintsSpec.model_fields[name]
        assert _same(_default(entry), _default(field)) and entry.description == field.description
    assert set(DeviceConstraintsSpec.model_fields) == set(ConstraintOptions.model_fields)
