"""`adapt --cluster`: one NetAdapt iteration whose proposals run on a real local Dask
cluster of 2 workers, measuring on the real `local` device; then a second `adapt` here that
reuses the table the first one measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.adapt.netadapt import plain_map
from edgeprune.compute import Span, overlapping
from edgeprune.results.store import ResultsStore
from edgeprune.workflows.adapt import TABLE_COMMAND, adapt_model_file

distributed = pytest.importorskip("distributed")

OPTIONS = {
    "data": "digits",
    "device": "local",
    "target_latency": 1e-6,  # out of reach: the one iteration allowed always runs
    "max_iterations": 1,
    "short_epochs": 1,  # host work the two workers do at once
    "long_epochs": 0,
    "table_runs": 15,
    "runs": 10,
    "granularity": 16,
    "min_filters": 16,
}


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """Two prunable groups of 32 filters at 16x16 (digits upsampled): a layer's cut saves
    tens of µs, far above a busy host's noise in the table. Untrained: only timing matters."""
    from edgeprune import _tf

    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="digits")
    x = layers.UpSampling2D(2, name="up")(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_a")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(10, name="logits")(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, outputs, name="tiny16").save(path)
    return path


@pytest.mark.slow  # the workers import TensorFlow; every job on `local` is seconds of round trips
def test_adapt_on_a_cluster_runs_proposals_at_once_and_never_two_measurements(
    cluster, tiny_model: Path, tmp_path: Path
) -> None:
    db, table = tmp_path / "results.db", tmp_path / "table.db"
    with distributed.Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)
    report = adapt_model_file(
        tiny_model,
        tmp_path / "adapted.keras",
        store=db,
        table=table,
        cluster=cluster.scheduler_address,
        **OPTIONS,
    )
    [iteration] = report.iterations
    hosts = [p["host"] for p in iteration["proposals"]]
    assert len(hosts) == 2 and len({h["pid"] for h in hosts}) == 2  # one per worker
    work = [Span("host", h["started_at"], h["finished_at"], str(h["pid"])) for h in hosts]
    assert overlapping(work), f"the proposals ran one after the other: {hosts}"

    store = ResultsStore(db)
    jobs: dict[tuple[str, float], float] = {}  # a group job's members share its start
    for m in store.measurements():
        key = (m["device"], m["started_at"])
        jobs[key] = max(jobs.get(key, 0.0), m["finished_at"])
    spans = [Span(d, start, end) for (d, start), end in jobs.items()]
    assert len(spans) >= 4  # device check, table, the kept model, the final pair
    assert all(s.end > s.start > 0 for s in spans)
    assert overlapping(spans) == [], "two measurements shared the board"
    assert report.table["table_jobs"] >= 1 and report.table["measured_now"] > 0

    table_runs = sum(1 for run in store.runs() if run["command"] == TABLE_COMMAND)
    again = adapt_model_file(
        tiny_model, tmp_path / "again.keras", store=db, table=table, map_fn=plain_map, **OPTIONS
    )
    assert again.table["table_jobs"] == 0 and again.table["measured_now"] == 0
    assert sum(1 for run in store.runs() if run["command"] == TABLE_COMMAND) == table_runs
    assert [i["widths"] for i in again.iterations] == [i["widths"] for i in report.iterations]
