"""Executor tests: real process pools, a real local Dask cluster, the real `local` device."""

from __future__ import annotations

import pytest
from support.fixtures import isolated_host_state, tiny_tflite  # noqa: F401


@pytest.fixture(scope="session")
def cluster():
    """A real local Dask cluster of 2 worker processes, one per test session (they are slow
    to start and import TensorFlow on first use)."""
    distributed = pytest.importorskip("distributed")
    import dask

    # a task whose worker dies fails at once instead of being retried on the other worker
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as started,
    ):
        yield started
