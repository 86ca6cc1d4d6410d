"""Bad input, tried systematically (hypothesis): every reader either parses or says no clearly.

Readers: the job and result JSON (device_agents.protocol), the agent's job-file runner, the
inventory loader, the manifest reader, the host's results store (a parsed result must be
storable) and the agent's command line. "Clearly" means the library's own error type with a
one-line message; never another exception, never a hang (each example runs under a time
limit). Inputs are random text and bytes, random JSON/YAML, and, most useful, valid
documents with one or more fields replaced, removed or added.

Each test runs `quick` (default suite) or `deep` (10x the examples, `make test-faults`),
and records how many examples it tried.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents.protocol import (
    BenchOptions,
    Job,
    LatencySummary,
    Measurement,
    ProtocolError,
    Result,
    Warning_,
)
from edgeprune.errors import UserError

from .harness import time_limit

REPO = Path(__file__).resolve().parents[2]

TIERS = [
    pytest.param(150, id="quick"),
    pytest.param(1500, id="deep", marks=pytest.mark.faults),
]
PER_EXAMPLE_S = 10.0  # generous: two busy cores; a real hang never ends

# ----------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# what the JSON module can give us from hostile text: NaN, 1e999, deep nesting, odd unicode
odd_texts = st.sampled_from(
    [
        "",
        "{",
        "[]",
        "null",
        '{"schema": NaN}',
        '{"schema": 1e999}',
        '{"schema": 1, "id": "\\ud800"}',
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        '{"schema": true}',
        '{"schema": 1.0}',
        "\ufeff{}",
    ]
)


def extreme(value: Any) -> st.SearchStrategy[Any]:
    """A nasty value of the same JSON type: the edges a type check alone lets through."""
    if isinstance(value, bool):
        return st.sampled_from([0, 1, "true", None])
    if isinstance(value, int):
        return st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
    if isinstance(value, float):
        return st.sampled_from([0.0, -0.0, -1.0, 1e308, -1e308, 5e-324, 1e-300, 2.0**63])
    if isinstance(value, str):
        return st.sampled_from(
            ["", "x" * 5000, "../../etc/passwd", "a\nb", "\x00", "\ud800", "é" * 3, "$(id)"]
        )
    if isinstance(value, list):
        return st.sampled_from([[], value * 200, [None], [value]])
    if isinstance(value, dict):
        return st.sampled_from([{}, {"": None}, {"\ud800": 1}])
    return json_values


def mutated(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with 1-4 changes: a value replaced by anything or by an extreme of its own type
    (at any depth), a key removed, or a key added."""

    def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
        found = [prefix] if prefix else []
        if isinstance(obj, dict):
            for key, value in obj.items():
                found += paths(value, (*prefix, key))
        elif isinstance(obj, list):
            for index, value in enumerate(obj):
                found += paths(value, (*prefix, index))
        return found

    all_paths = paths(valid)

    @st.composite
    def build(draw) -> dict[str, Any]:
        doc = copy.deepcopy(valid)
        for _ in range(draw(st.integers(1, 4))):
            path = draw(st.sampled_from(all_paths))
            parent = doc
            try:
                for step in path[:-1]:
                    parent = parent[step]
                action = draw(st.sampled_from(["extreme", "replace", "remove", "add"]))
                if action == "extreme":
                    parent[path[-1]] = draw(extreme(parent[path[-1]]))
                elif action == "replace" or not isinstance(parent, dict):
                    parent[path[-1]] = draw(json_values)
                elif action == "remove":
                    parent.pop(path[-1], None)
                else:
                    parent[draw(st.text(max_size=10))] = draw(json_values)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the way there
        return doc

    return build()


def documents(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Everything a reader of `valid`-like JSON may be handed."""
    return (
        mutated(valid).map(json.dumps)
        | mutated(valid)
        | st.text(max_size=200)
        | st.binary(max_size=200)
        | json_values.map(json.dumps)
        | odd_texts
    )


def yaml_files(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Everything a YAML file reader (inventory, recipe) may be handed."""
    texts = mutated(valid).map(lambda d: yaml.safe_dump(d, sort_keys=False))
    return texts | mutated(valid) | st.text(max_size=200) | st.binary(max_size=100)


def write_input(path, value: Any) -> None:
    """Put one example from `yaml_files` on disk as a file a user could have written."""
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        path.write_text(value if isinstance(value, str) else yaml.safe_dump(value))


def run_property(strategy, check, examples: int) -> int:
    """Run `check` on `examples` inputs from `strategy` (each under a time limit); how many ran."""
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value):
        nonlocal count
        count += 1
        with time_limit(PER_EXAMPLE_S):
            check(value)

    prop()
    return count


def one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)


# ----------------------------------------------------------------------------- valid seeds


def valid_job() -> dict[str, Any]:
    options = BenchOptions(threads=[1, 4], runs=20, cpus=[0, 1], inputs="a" * 64 + ".npz")
    return Job(id="j-1", model_sha256="b" * 64, options=options, label="lbl").to_dict()


def valid_result() -> dict[str, Any]:
    latencies = [1.0, 1.5, 2.0]
    measurement = Measurement(
        threads=1,
        xnnpack=True,
        latencies_ms=latencies,
        summary=LatencySummary.of(latencies),
        init_ms=1.0,
        first_invoke_ms=2.0,
        peak_rss_kb=40_000,
        outputs={"top1": [1, 2], "digest": "ab"},
        cpu_affinity=[0, 1],
    )
    result = Result(
        job_id="j-1",
        model_sha256="c" * 64,
        status="ok",
        runtime={"name": "ai_edge_litert", "version": "2.0"},
        sparse_path={"capable": True},
        options=BenchOptions(threads=[1]),
        measurements=[measurement],
        device={"board_model": "Raspberry Pi 5", "cores": 4},
        warnings=[Warning_("high_spread", "noisy")],
        started_at=1.0,
        finished_at=2.0,
    )
    return result.to_dict()


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("examples", TIERS)
def test_job_json(examples, figures):
    def check(value: Any) -> None:
        try:
            job = Job.from_json(value)
        except ProtocolError as exc:
            one_line(exc)
            return
        assert Job.from_json(job.to_json()) == job  # what parses is valid and round-trips
        assert job.model == f"models/{job.model_sha256}.tflite"  # never a path elsewhere

    count = run_property(documents(valid_job()), check, examples)
    figures("bad input", hypothesis_examples=count)


@pytest.mark.parametrize("examples", TIERS)
def test_result_json_and_storing_it(examples, tmp_path, figures):
    """A result the host accepts from a device must also go into the results store."""
    from edgeprune.results import ModelInfo, ResultsStore

    store = ResultsStore(tmp_path / "r.db")
    run_id = store.begin_run("fuzz")

    def check(value: Any) -> None:
        try:
            result = Result.from_json(value)
        except ProtocolError as exc:
            one_line(exc)
            return
        assert Result.from_json(result.to_json()) == result
        try:
            store.add_result(run_id, "dev", result, ModelInfo("m.tflite", result.model_sha256))
        except UserError as exc:
            one_line(exc)

    count = run_property(documents(valid_result()), check, examples)
    figures("bad input", hypothesis_examples=count)


@pytest.mark.parametrize("examples", TIERS)
def test_bench_options(examples, figures):
    def check(value: Any) -> None:
        try:
            options = BenchOptions.from_dict(value)
        except ProtocolError as exc:
            one_line(exc)
            return
        assert all(isinstance(t, int) and 1 <= t <= 256 for t in options.threads)
        assert math.isfinite(options.timeout_s) and options.timeout_s > 0

    strategy = mutated(BenchOptions(cpus=[0]).__dict__) | json_values
    count = run_property(strategy, check, examples)
    figures("bad input", hypothesis_examples=count)


@pytest.mark.parametrize("examples", TIERS)
def test_the_agent_turns_any_job_file_into_one_result(examples, tmp_path, figures):
    """What the daemon does with a claimed job file: always a writable Result, never a raise."""
    from device_agents.job_runner import result_for_job_text
    from device_agents.spool import Spool

    spool = Spool(str(tmp_path / "spool")).ensure()  # no models: a valid job is model_missing

    def check(value: Any) -> None:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            text = json.dumps(text)
        result = result_for_job_text(spool, "j-1", text, None)
        assert result.job_id == "j-1" and result.status == "error"
        assert result.error_kind in ("bad_job", "model_missing"), result.error
        one_line(ProtocolError(result.error))
        Result.from_json(result.to_json())

    count = run_property(documents(valid_job()), check, examples)
    figures("bad input", hypothesis_examples=count)


@pytest.mark.parametrize("examples", TIERS)
def test_manifest_reader(examples, tmp_path, figures):
    from edgeprune.manifest import parse_manifest, read_manifest

    valid = {
        "schema": 1,
        "file": "m.tflite",
        "format": "tflite",
        "sha256": "d" * 64,
        "size_bytes": 10,
        "gzip_bytes": 8,
        "step": "convert",
        "options": {"quantize": "int8"},
        "sparsity": {"overall": 0.5, "layers": {"a": 0.5}},
        "accuracy": {"top1": 0.9},
        "tools": {"edgeprune": "0.1"},
        "created_at": "2026-01-01T00:00:00Z",
    }
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")

    def check(value: Any) -> None:
        raw = value if isinstance(value, (bytes, str)) else json.dumps(value)
        try:
            manifest = parse_manifest(raw, "m.tflite.json")
        except UserError as exc:
            one_line(exc)
            assert "m.tflite.json" in str(exc)
        else:
            assert isinstance(manifest.size_bytes, int)
        # the same bytes beside a model, read the way deploy and bench read them
        (tmp_path / "m.tflite.json").write_bytes(raw.encode() if isinstance(raw, str) else raw)
        try:
            read_manifest(model)
        except UserError as exc:
            one_line(exc)

    count = run_property(documents(valid), check, examples)
    figures("bad input", hypothesis_examples=count)


@pytest.mark.parametrize("examples", TIERS)
def test_inventory_loader(examples, tmp_path, figures):
    from edgeprune.fleet.inventory import load_inventory

    valid = {
        "known_hosts": "kh",
        "defaults": {"user": "pi", "python": "/usr/bin/python3", "tags": ["lab"]},
        "devices": [
            {"name": "pi4", "host": "10.0.0.4", "kind": "raspberry_pi", "identity_file": "id"},
            {"name": "nano", "host": "nano", "port": 2222, "tags": ["jetson"], "retries": 1},
        ],
    }
    path = tmp_path / "devices.yaml"

    def check(value: Any) -> None:
        write_input(path, value)
        try:
            inventory = load_inventory(path)
        except UserError as exc:
            one_line(exc)
            assert str(path) in str(exc) or "ssh config" in str(exc), str(exc)
            return
        assert "local" in inventory.devices
        for device in inventory.devices.values():
            assert 1 <= device.port <= 65535 and device.retries >= 0
        try:
            inventory.select(all_=True)
            inventory.select(tags=["lab"])
        except UserError as exc:
            one_line(exc)

    count = run_property(yaml_files(valid), check, examples)
    figures("bad input", hypothesis_examples=count)


AGENT_OPTIONS = [
    "--timeout", "--sha256", "--id", "--threads", "--runs", "--warmup", "--min-seconds",
    "--cpus", "--delay-ms", "--inputs", "--seed", "--runtime", "--kind", "--label",
]  # fmt: skip
AGENT_VALUES = [
    "../../etc/passwd", "a" * 64, "j-1", "-1", "0", "1,2", "0-3", "0-99999999999", "3-1",
    "1,,2", "nan", "inf", "-inf", "1e309", "; rm -rf ~", "$(touch PWNED)", "`id`",
    "\x1b[31m", "x" * 300, "incoming/x", "/etc/passwd", "", " ",
]  # fmt: skip


@pytest.mark.parametrize("examples", TIERS)
def test_agent_command_line(examples, tmp_path, monkeypatch, figures):
    """Random argv to `edgeprune-agent`: exit 0/1/2, one `error:` line, nothing outside the spool."""
    from device_agents.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spool = tmp_path / "spool"

    values = st.sampled_from(AGENT_VALUES) | st.text(max_size=20)
    pairs = st.tuples(st.sampled_from(AGENT_OPTIONS), values).map(list)
    words = st.lists(pairs | values.map(lambda v: [v]) | st.just(["--json"]), max_size=5)
    argvs = st.tuples(
        st.sampled_from(["status", "result", "ack", "has", "wait", "admit", "submit"]),
        words.map(lambda groups: [word for group in groups for word in group]),
    )

    def check(value: Any) -> None:
        command, rest = value
        argv = [command, *rest, "--spool", str(spool)]
        if command == "wait":
            argv += ["--timeout", "0"]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run(argv)
        assert code in (0, 1, 2), (argv, code, err.getvalue())
        errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
        if code != 0:
            assert len(errors) == 1 and "Traceback" not in err.getvalue(), (argv, err.getvalue())
        if "--json" in argv:
            json.loads(out.getvalue())  # exactly one JSON document, error or not

    count = run_property(argvs, check, examples)
    stray = sorted(p.name for p in tmp_path.iterdir()) if tmp_path.exists() else []
    assert set(stray) <= {"spool", "home"}, stray  # nothing made or run outside the spool
    figures("bad input", hypothesis_examples=count)


def test_agent_command_line_every_option_with_every_bad_value(tmp_path, monkeypatch, figures):
    """The exhaustive grid of the vocabulary above: command x option x value, plus --json."""
    from device_agents.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spool = str(tmp_path / "spool")
    tried = 0
    for command in ("submit", "wait", "has", "admit", "result"):
        for option in AGENT_OPTIONS:
            for value in AGENT_VALUES:
                argv = [command, "a" * 64, option, value, "--spool", spool, "--json"]
                if command == "wait" and option != "--timeout":
                    argv += ["--timeout", "0"]
                out, err = io.StringIO(), io.StringIO()
                with time_limit(PER_EXAMPLE_S), redirect_stdout(out), redirect_stderr(err):
                    code = run(argv)
                tried += 1
                assert code in (0, 1, 2), (argv, code, err.getvalue())
                if code:
                    lines = err.getvalue().splitlines()
                    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:], argv
                json.loads(out.getvalue())
    assert set(p.name for p in tmp_path.iterdir()) <= {"spool", "home"}
    figures("bad input", grid_inputs=tried)


@pytest.mark.parametrize("examples", TIERS)
def test_recipe_loader(examples, tmp_path, figures):
    """Any YAML (mutated real recipes, text, bytes) -> a Recipe or one UserError naming the file."""
    from edgeprune.recipes.loader import load_recipe

    valid = yaml.safe_load((REPO / "configs" / "recipes" / "demo.yaml").read_text())
    valid["pipelines"]["pruned"]["prune"]["sparsity"] = [0.5, 0.8]
    path = tmp_path / "recipe.yaml"

    def check(value: Any) -> None:
        write_input(path, value)
        try:
            recipe = load_recipe(path)
        except UserError as exc:
            one_line(exc)
            assert str(path) in str(exc), str(exc)
            return
        assert recipe.variants, "a loaded recipe has at least one variant"
        assert len({v.name for v in recipe.variants}) == len(recipe.variants)
        for variant in recipe.variants:
            assert recipe.variant(variant.name) is variant

    count = run_property(yaml_files(valid), check, examples)
    figures("bad input", hypothesis_examples=count)


def test_agent_output_to_a_reader_that_left_is_no_traceback(tmp_path):
    """A dropped SSH link (or `| head`) closes the agent's stdout before it prints."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "device_agents", "status", "--spool", tmp_path, "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr
