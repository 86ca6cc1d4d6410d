"""`import edgeprune as ep` end to end: the demo model, real files, the real `local` device."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import fixtures

import edgeprune as ep
from device_agents.integrity import sha256_file
from edgeprune import errors as ep_errors

REPO = Path(__file__).resolve().parent.parent

isolated_host_state = fixtures.isolated_host_state  # autouse: spool and results DB in tmp_path
tiny_tflite = fixtures.tiny_tflite


@pytest.fixture(scope="module")
def model(demo_model_path: Path):
    import keras

    return keras.saving.load_model(demo_model_path)


def kernels(model) -> dict[str, np.ndarray]:
    return {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}


def test_prune_returns_a_pruned_copy_and_leaves_the_input_untouched(
    model, demo_model_path, run_cli, tmp_path
):
    before = [w.copy() for w in model.get_weights()]
    result = ep.prune(model, sparsity=0.8)

    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert result.model is not model
    assert [layer.name for layer in result.model.layers] == [layer.name for layer in model.layers]
    pruned = kernels(result.model)
    for kernel in result.report.kernels:
        zeros = float(np.mean(pruned[kernel.layer] == 0))
        assert zeros == pytest.approx(0.8, abs=0.01)
        assert float(np.mean(kernels(model)[kernel.layer] == 0)) < 0.01
    assert result.report.overall == pytest.approx(0.8, abs=0.01)

    # the same document as `edgeprune prune --json`, less the files it writes
    outcome = run_cli(
        "prune", demo_model_path, "-o", tmp_path / "p.keras", "--sparsity", "0.8", "--json"
    )
    assert outcome.code == 0, outcome.err
    cli = json.loads(outcome.out)
    mine = json.loads(json.dumps(result.to_dict()))
    assert set(mine) == set(cli)
    for key in ("mode", "options", "sparsity", "report", "accuracy", "training"):
        assert mine[key] == cli[key], key
    assert "PruneResult" in repr(result) and "80.0%" in repr(result)
    assert "<table>" in result._repr_html_()


def test_prune_from_a_path_and_errors_in_parameter_names(demo_model_path):
    result = ep.prune(demo_model_path, sparsity=0.5, scope="global")
    assert result.report.scope == "global" and result.options["mode"] == "one-shot"

    nm = ep.prune(demo_model_path, pattern="2:4")  # N:M fixes the sparsity: none needed
    assert (nm.report.sparsity, nm.report.pattern_ok) == (0.5, True)

    from edgeprune.prune.options import PruneOptions

    given = PruneOptions.create(0.6, scope="balanced", max_layer_sparsity=0.9)
    from_options = ep.prune(demo_model_path, options=given)
    assert from_options.options == {**given.selection_dict(), "mode": "one-shot"}
    assert from_options.report.overall == pytest.approx(0.6, abs=0.01)
    overridden = ep.prune(demo_model_path, 0.5, options=given, scope="global")
    assert (overridden.report.sparsity, overridden.report.scope) == (0.5, "global")
    with pytest.raises(ep.UserError) as not_options:
        ep.prune(demo_model_path, options={"sparsity": 0.5})
    assert not_options.value.params == ("options",)

    with pytest.raises(ep.UserError) as missing:
        ep.prune(demo_model_path)
    assert missing.value.params == ("sparsity",)
    assert "`sparsity` 0.8" in str(missing.value) and "--" not in str(missing.value)
    assert "--sparsity" in missing.value.in_flags()

    with pytest.raises(ep.UserError) as unknown:
        ep.prune(demo_model_path, sparsity=0.5, sparsityy=0.5)
    assert unknown.value.params == ("sparsityy",) and "known options" in str(unknown.value)

    with pytest.raises(ep.UserError) as training:
        ep.prune(demo_model_path, sparsity=0.5, epochs=2)
    assert "needs data" in str(training.value) and "epochs" in training.value.params


def test_gradual_prune_with_data(model):
    before = [w.copy() for w in model.get_weights()]
    result = ep.prune(model, sparsity=0.5, data="digits", epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert result.options["mode"] == "gradual" and result.options["data"] == "digits"
    assert result.accuracy is not None and 0.0 <= result.accuracy["top1"] <= 1.0
    assert result.report.overall == pytest.approx(0.5, abs=0.01)
    assert result.to_dict()["training"]["epochs"] == 1


def test_prune_channels_and_xnnpack_fix_leave_the_input_untouched(model):
    before = [w.copy() for w in model.get_weights()]
    slim = ep.prune_channels(model, ratio=0.5)
    fixed = ep.xnnpack_fix(model)

    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert slim.model.count_params() < model.count_params()
    assert slim.report.params_after == slim.model.count_params()
    assert slim.to_dict()["params"]["before"] == model.count_params()
    assert fixed.model is not model and fixed.cluster_ready is True
    assert fixed.to_dict()["rewrites"] == []
    assert (
        f"params: {model.count_params():,} -> " in repr(slim)
        and "<td>MACs</td>" in slim._repr_html_()
    )
    assert "sparse clusters form: yes" in repr(fixed)
    with pytest.raises(ep.UserError) as bad:
        ep.prune_channels(model, ratio=0.5, epochs=2)
    assert bad.value.params == ("epochs", "data")


def test_convert_inspect_evaluate_match_the_cli(model, demo_model_path, run_cli, tmp_path):
    from_object = ep.convert(model, tmp_path / "obj.tflite")
    from_path = ep.convert(demo_model_path, tmp_path / "path.tflite", quantize="float16")
    assert from_object.path == tmp_path / "obj.tflite" and from_object.path.is_file()
    assert from_object.sha256 == sha256_file(from_object.path) == from_object.manifest.sha256
    assert from_path.quantize == "float16" and from_path.size_bytes == from_path.path.stat().st_size
    assert "ConvertResult" in repr(from_path) and from_path.sha256 in repr(from_path)

    outcome = run_cli(
        "convert", demo_model_path, "-o", tmp_path / "cli.tflite", "--quantize", "float16", "--json"
    )
    assert outcome.code == 0, outcome.err
    assert set(json.loads(outcome.out)) == set(from_path.to_dict())

    seen = ep.inspect(from_path)  # a ConvertResult stands for its file
    outcome = run_cli("inspect", from_path.path, "--json")
    assert outcome.code == 0, outcome.err
    assert json.loads(json.dumps(seen.to_dict())) == json.loads(outcome.out)
    assert seen.format == "tflite" and seen.xnnpack is not None
    assert "InspectResult" in repr(seen) and "XNNPACK sparse path" in repr(seen)

    result = ep.evaluate(from_object, "digits", reference=model)
    outcome = run_cli("evaluate", from_object.path, "--data", "digits", "--json")
    assert result.top1 == json.loads(outcome.out)["top1"]
    assert result.report.reference.top1_agreement == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ep.UserError) as bad:
        ep.evaluate(from_object, "digits", batch_size=0)
    assert bad.value.params == ("batch_size",)

    with pytest.raises(ep.UserError) as unknown:
        ep.convert(model, tmp_path / "x.tflite", quantise="int8")
    assert unknown.value.params == ("quantise",)
    assert not (tmp_path / "x.tflite").exists()


def test_bench_on_local_goes_to_the_default_store(tiny_tflite, run_cli, tmp_path):
    from edgeprune.results.store import default_db_path

    other = tmp_path / "other.tflite"
    shutil.copy(tiny_tflite, other)
    other.write_bytes(other.read_bytes() + b"\0" * 16)  # same graph, another file and sha256
    run = ep.bench([tiny_tflite, other], runs=5, warmup=0)

    assert run.db == default_db_path() and run.db.is_file()
    assert isinstance(run.run_id, int) and run.failures == []
    assert [(r["model"], r["device"], r["status"]) for r in run.rows] == [
        (tiny_tflite.name, "local", "ok"),
        ("other.tflite", "local", "ok"),
    ]
    shown = run_cli("results", "show", "--json")  # what the CLI reads is what was stored
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["rows"] == json.loads(json.dumps(run.rows))
    assert set(run.to_dict()) == {"run_id", "db", "rows", "mlflow", "devices"}

    table = ep.compare(run)
    base, second = table.rows
    assert base["baseline"] and base["ratio"] == 1.0
    assert second["ratio"] == pytest.approx(second["p50_ms"] / base["p50_ms"])
    assert second["speedup"] == pytest.approx(base["p50_ms"] / second["p50_ms"])
    assert table.rows == ep.compare("latest").rows
    assert ep.compare(run, baseline="other.tflite").rows[1]["ratio"] == 1.0
    text = repr(table)
    assert text.splitlines()[0] == f"Comparison (run {run.run_id}, vs {tiny_tflite.name})"
    assert re.search(r"other\.tflite\s+local\s+1\s+[\d.]+ ms", text)
    with pytest.raises(ep.UserError) as bad:
        ep.compare(run, baseline="nope")
    assert bad.value.params == ("baseline",)


def test_bench_with_store_none_writes_no_results(tiny_tflite, tmp_path):
    from edgeprune.results.store import default_db_path

    run = ep.bench(tiny_tflite, devices=["local"], store=None, runs=5, threads=[1, 2])
    assert run.run_id is None and run.db is None
    assert [r["threads"] for r in run.rows] == [1, 2] and all(r["run_id"] is None for r in run.rows)
    assert not default_db_path().exists()
    # the only state left is the local device's own spool (as a board keeps its models)
    assert [p.name for p in (tmp_path / "xdg-data" / "edgeprune").iterdir()] == ["local-spool"]
    assert "kept in memory" in repr(run)
    page = run._repr_html_()
    assert "<th>p50</th>" in page and page.count("<tr>") == 3  # header + two thread counts
    assert ep.compare(run).rows[0]["ratio"] == 1.0


def test_bench_and_deploy_errors_name_parameters(tiny_tflite, tmp_path):
    from edgeprune.results.store import default_db_path

    with pytest.raises(ep.UserError) as bad:
        ep.bench(tiny_tflite, runs=0)
    assert bad.value.params == ("runs",) and "--" not in str(bad.value)
    with pytest.raises(ep.UserError) as unknown:
        ep.bench(tiny_tflite, run=5)
    assert unknown.value.params == ("run",)
    with pytest.raises(ep.UserError, match="unknown device 'pi9'"):
        ep.bench(tiny_tflite, devices="pi9")
    assert not default_db_path().exists()  # nothing ran, nothing stored

    deployed = ep.deploy(tiny_tflite)
    (device,) = deployed.to_dict()["devices"]
    assert device["device"] == "local" and device["ok"]
    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool"
    assert (spool / "models" / f"{sha256_file(tiny_tflite)}.tflite").is_file()
    again = ep.deploy([tiny_tflite], devices=ep.load_inventory().select(["local"]))
    assert again.devices[0]["files"][0]["status"] == "present"
    assert re.search(rf"local\s+{re.escape(tiny_tflite.name)}\s+already there", repr(again))


def test_recipes_load_and_check_their_options():
    recipe = ep.load_recipe(REPO / "configs" / "recipes" / "demo.yaml")
    assert recipe.name and recipe.variants
    with pytest.raises(ep.UserError) as bad:
        ep.run_recipe(recipe, acuracy_budget=1.0)
    assert bad.value.params == ("acuracy_budget",)


def test_run_recipe_builds_measures_and_recommends(demo_model_path, tmp_path):
    from edgeprune.results.store import default_db_path

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"name: tiny\nmodel: {{file: {demo_model_path}}}\ndata: digits\n"
        "pipelines:\n  dense:\n    convert: {quantize: none}\n"
        "bench: {runs: 5, warmup: 0, inputs: false}\n"
    )
    result = ep.run_recipe(recipe, devices="local", workdir=tmp_path / "work")
    assert result.recommendations == {"local": "dense-fp32"}
    assert isinstance(result.run_id, int)
    assert result.to_dict()["db"] == str(tmp_path / "work" / "results.db")  # the work dir's
    assert not default_db_path().exists()
    assert "best on local: dense-fp32" in repr(result)


def readme_script() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_script_runs_as_written(demo_model_path, tmp_path):
    script = readme_script()
    assert "ep.prune(model, sparsity=0.8)" in script and "ep.compare(run)" in script
    shutil.copy(demo_model_path, tmp_path / "model.keras")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EDGEPRUNE_RESULTS_DB": str(tmp_path / "results.db"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "InspectResult: int8.tflite (tflite)" in done.stdout
    assert "Comparison (run 1, vs base.tflite)" in done.stdout
    for name in ("base.tflite", "pruned.tflite", "int8.tflite"):
        assert re.search(rf"{re.escape(name)}\s+local\s+1\s+[\d.]+ ms", done.stdout), done.stdout
        assert (tmp_path / name).is_file() and (tmp_path / f"{name}.json").is_file()
    from edgeprune.results.store import ResultsStore

    assert len(ResultsStore(tmp_path / "results.db", create=False).measurements([1])) == 3


def test_a_failed_measurement_raises_unless_check_is_off(tiny_tflite, tmp_path):
    broken = tmp_path / "broken.tflite"
    data = bytearray(tiny_tflite.read_bytes())
    data[64:] = bytes(len(data) - 64)  # keeps the TFL3 identifier, loses the model
    broken.write_bytes(bytes(data))

    with pytest.raises(ep_errors.DeviceError, match="broken.tflite on local"):
        ep.bench([tiny_tflite, broken], runs=2, store=None)
    run = ep.bench([tiny_tflite, broken], runs=2, store=None, check=False)
    assert {r["model"]: r["status"] for r in run.rows} == {
        tiny_tflite.name: "ok",
        broken.name: "error",
    }
    assert len(run.failures) == 1 and run.failures[0].startswith("broken.tflite on local: ")
    assert "failed: broken.tflite on local" in repr(run)
    compared = {r["model"]: r for r in ep.compare(run).rows}
    assert compared[broken.name]["p50_ms"] is None and compared[broken.name]["ratio"] is None
    assert compared[tiny_tflite.name]["ratio"] == 1.0
