"""The bench and deploy stages' options: one definition, the agent's copy checked against it."""

from __future__ import annotations

import dataclasses

import pytest

from device_agents import protocol
from edgeprune.errors import UserError
from edgeprune.fleet.options import HOST_ONLY, BenchOptions, DeployOptions
from edgeprune.options import stage_options


def test_bench_options_have_the_agents_fields_and_defaults():
    agent = {
        f.name: getattr(protocol.BenchOptions(), f.name)
        for f in dataclasses.fields(protocol.BenchOptions)
    }
    ours = {k: v for k, v in BenchOptions().to_dict().items() if k not in HOST_ONLY}
    assert list(ours) == list(agent)
    assert ours == agent
    assert {"interleave"} == HOST_ONLY and not HOST_ONLY & set(agent)
    assert stage_options("bench") is BenchOptions and stage_options("deploy") is DeployOptions


def test_bench_options_turn_into_the_agents_dataclass():
    options = BenchOptions.create(threads=[1, 4], runs=None, min_seconds=0.5, cpus=[0], seed=7)
    wire = options.to_protocol()
    assert isinstance(wire, protocol.BenchOptions)
    assert (wire.threads, wire.runs, wire.min_seconds, wire.cpus, wire.seed) == (
        [1, 4],
        None,
        0.5,
        [0],
        7,
    )
    assert protocol.BenchOptions.from_dict(wire.__dict__) == wire


def test_host_only_options_stay_off_the_wire():
    wire = BenchOptions.create(interleave=False, precision="2%", max_seconds=9.0).to_protocol()
    assert not hasattr(wire, "interleave")
    assert (wire.precision, wire.max_seconds, wire.round_runs) == (0.02, 9.0, 5)


@pytest.mark.parametrize(
    ("given", "fraction"),
    [("2%", 0.02), ("2 %", 0.02), (" 0.5% ", 0.005), (0.02, 0.02), ("0.02", 0.02), (None, None)],
)
def test_precision_takes_percent_and_fractions(given, fraction):
    assert BenchOptions.create(precision=given).precision == fraction


@pytest.mark.parametrize(
    ("given", "text"),
    [
        ("2", "precision: 2 is ambiguous; write 2% or 0.02 (a fraction)"),
        (2, "precision: 2 is ambiguous; write 2% or 0.02"),
        ("50%", "precision: must be above 0 and below 50 %"),
        (0.5, "precision: must be above 0 and below 50 %"),
        ("0%", "precision: must be above 0 and below 50 %"),
        (-0.01, "precision: must be above 0 and below 50 %"),
        ("two", "precision: 'two' is not a number; write it as a percentage or a fraction"),
        (True, "precision: Input should be a valid number"),
    ],
)
def test_bad_precision_is_one_line_naming_it(given, text):
    with pytest.raises(UserError) as caught:
        BenchOptions.create(precision=given)
    assert str(caught.value).startswith(text), str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.params == ("precision",)


def test_a_recipes_bench_section_takes_precision_as_written():
    from pydantic import ValidationError

    from edgeprune.recipes.schema import BenchSpec

    assert BenchSpec.model_validate({"precision": "2%"}).precision == 0.02
    assert BenchSpec.model_validate({"precision": 0.01, "interleave": False}).interleave is False
    with pytest.raises(ValidationError, match="2 is ambiguous"):
        BenchSpec.model_validate({"precision": 2})


@pytest.mark.parametrize(
    ("values", "param", "text"),
    [
        ({"runs": 0}, "runs", "runs: Input should be greater than or equal to 1"),
        ({"threads": [1, 300]}, "threads", "threads.1: Input should be less than or equal to 256"),
        ({"runtime": "onnx"}, "runtime", "runtime: Input should be"),
        ({"delay_ms": -1.0}, "delay_ms", "delay_ms: Input should be greater than or equal to 0"),
        ({"round_runs": 0}, "round_runs", "round_runs: Input should be greater than or equal to 1"),
        ({"max_seconds": 0}, "max_seconds", "max_seconds: Input should be greater than 0"),
        ({"runs": None}, None, "give runs or min_seconds"),
    ],
)
def test_bad_bench_options_name_the_parameter(values, param, text):
    with pytest.raises(UserError) as caught:
        BenchOptions.create(**values)
    assert text in str(caught.value)
    assert caught.value.params == ((param,) if param else ())


def test_the_recipes_bench_section_is_built_from_bench_options():
    from edgeprune.recipes.schema import BenchSpec, DeploySpec

    spec = BenchSpec()
    assert {k: v for k, v in BenchOptions().to_dict().items() if k != "inputs"} == spec.model_dump(
        exclude={"inputs"}
    )
    assert spec.inputs is True
    assert DeploySpec().model_dump() == DeployOptions().to_dict()


def test_deploy_options_bounds_and_connect():
    assert DeployOptions().parallel is None  # every device at once, up to the cap
    with pytest.raises(UserError) as caught:
        DeployOptions.create(parallel=0)
    assert caught.value.params == ("parallel",)
    assert caught.value.in_flags().startswith("--parallel:")
    with pytest.warns(DeprecationWarning, match="use parallel"):
        assert DeployOptions.create(concurrency=3).parallel == 3  # the old name still works
    with pytest.raises(UserError, match="not also"):
        DeployOptions.create(concurrency=3, parallel=3)
    assert DeployOptions.create(accept_new_host_key=True).connect().accept_new_host_key is True
