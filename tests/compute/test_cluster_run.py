"""`edgeprune run --cluster ADDRESS`: the recipe's host stages built on a real local Dask
cluster's workers into the same stage cache a run here reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.signals import default_sigint

SWEEP = """
name: sweep
model: {demo: true, width: 8}
data: digits
steps:
  prune: {method: oneshot, sparsity: [0.5, 0.7]}
devices: [local]
bench: {runs: 3, warmup: 0}
"""


def run_json(run_cli, *args: object) -> tuple[int, dict, str]:
    outcome = run_cli("run", *args, "--json")
    return outcome.code, json.loads(outcome.out) if outcome.out.strip() else {}, outcome.err


@pytest.mark.slow  # the workers import TensorFlow and train the base model
def test_the_stages_built_on_the_cluster_are_the_cache_a_local_run_reads(
    run_cli, cluster, tmp_path: Path
) -> None:
    recipe = tmp_path / "sweep.yaml"
    recipe.write_text(SWEEP)
    common = ("--workdir", tmp_path / "work", "--db", tmp_path / "r.db")
    code, first, err = run_json(run_cli, recipe, *common, "--cluster", cluster.scheduler_address)
    assert code == 0, err
    assert first["stages_built"] == 5  # base, then 2 prunes at once, then their 2 converts
    assert first["measurements_made"] == 2
    assert {s for row in first["grid"].values() for s in row.values()} == {"done"}
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "work").glob("stages/*/*")}
    assert len(stamps) >= 10 and not list((tmp_path / "work").glob("stages/.tmp-*"))

    code, again, err = run_json(run_cli, recipe, *common)  # here, no cluster
    assert code == 0, err
    assert again["stages_built"] == 0 and again["measurements_made"] == 0
    assert {s for row in again["grid"].values() for s in row.values()} == {"cached"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_bad_or_unreachable_cluster_stops_the_run_before_any_work(
    run_cli, tmp_path: Path
) -> None:
    recipe = tmp_path / "sweep.yaml"
    recipe.write_text(SWEEP)
    work = tmp_path / "work"
    for address, message in (
        ("10.0.0.5:8786", "error: --cluster: is not a scheduler address; give tcp://HOST:PORT"),
        (
            "tcp://127.0.0.1:9",
            "error: cannot reach a dask scheduler at --cluster tcp://127.0.0.1:9",
        ),
    ):
        outcome = run_cli(
            "run", recipe, "--workdir", work, "--db", tmp_path / "r.db", "--cluster", address
        )
        assert outcome.code == 2, outcome.err
        assert outcome.err.strip().splitlines()[-1].startswith(message), outcome.err
        assert not work.exists()  # nothing planned, built or locked


def test_a_recipe_names_its_cluster_in_a_compute_section(tmp_path: Path) -> None:
    from edgeprune.errors import UserError
    from edgeprune.recipes import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(SWEEP + "compute: {cluster: tcp://10.0.0.5:8786}\n")
    assert load_recipe(recipe).spec.compute.cluster == "tcp://10.0.0.5:8786"
    recipe.write_text(SWEEP + "compute: {cluster: nowhere}\n")
    with pytest.raises(UserError, match=r"r\.yaml:\d+.*is not a scheduler address"):
        load_recipe(recipe)


@pytest.mark.slow
def test_ctrl_c_cancels_the_cluster_s_tasks_and_exits_130(cluster, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import distributed

    recipe = tmp_path / "sweep.yaml"
    recipe.write_text(SWEEP)
    command = [sys.executable, "-c", "from edgeprune.cli.app import main; main()", "run"]
    paths = ["--workdir", str(tmp_path / "w"), "--db", str(tmp_path / "r.db")]
    child = subprocess.Popen(
        [*command, str(recipe), *paths, "--cluster", cluster.scheduler_address],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert child.stderr is not None
    lines = []
    for line in child.stderr:  # wait until the first wave is on the workers
        lines.append(line)
        if "stage(s) on the workers" in line:
            break
    child.send_signal(signal.SIGINT)
    rest = child.stderr.read()
    assert child.wait(timeout=60) == 130, "".join(lines) + rest
    assert "Traceback" not in rest  # the CLI's Ctrl-C: exit 130, quietly
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "the cluster still holds the run's tasks"
            time.sleep(0.2)
        # Dask cannot stop a task's thread mid-stage: the worker finishes that one stage
        # for nothing. Restart the workers so later tests get both of them idle.
        client.restart(wait_for_workers=True)
