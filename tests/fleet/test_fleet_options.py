"""The bench and deploy stages' options: one definition, the agent's copy checked against it."""

from __future__ import annotations

import dataclasses

import pytest

from device_agents import protocol
from edgeprune.errors import UserError
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.options import stage_options


def test_bench_options_have_the_agents_fields_and_defaults():
    agent = {
        f.name: getattr(protocol.BenchOptions(), f.name)
        for f in dataclasses.fields(protocol.BenchOptions)
    }
    ours = BenchOptions().to_dict()
    assert list(ours) == list(agent)
    assert ours == agent
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


@pytest.mark.parametrize(
    ("values", "param", "text"),
    [
        ({"runs": 0}, "runs", "runs: Input should be greater than or equal to 1"),
        ({"threads": [1, 300]}, "threads", "threads.1: Input should be less than or equal to 256"),
        ({"runtime": "onnx"}, "runtime", "runtime: Input should be"),
        ({"delay_ms": -1.0}, "delay_ms", "delay_ms: Input should be greater than or equal to 0"),
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
    assert DeployOptions().concurrency == 8
    with pytest.raises(UserError) as caught:
        DeployOptions.create(concurrency=0)
    assert caught.value.params == ("concurrency",)
    assert caught.value.in_flags().startswith("--concurrency:")
    assert DeployOptions.create(accept_new_host_key=True).connect().accept_new_host_key is True
