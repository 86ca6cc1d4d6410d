"""The `Executor` interface and `open_executor`, which picks one from `cluster`.

`None` gives a `LocalExecutor` (a spawn-context process pool on this host's cores, so a
parent that imported TensorFlow is never forked); `tcp://host:port` gives a `DaskExecutor`
on that dask.distributed scheduler. A malformed or unreachable address fails here, before
any work, naming `cluster`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from edgeprune.errors import EdgepruneError, UserError
from edgeprune.options import address_problem

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONNECT_TIMEOUT_S = 5.0


class TaskLost(EdgepruneError):
    """A task did not finish because the process running it died (killed, out of memory,
    a crash in native code); the message names the task."""


class Executor(Protocol):
    """Runs independent tasks; see `open_executor`."""

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[R]:
        """`fn` over `items`, results in the items' order. The first error a task raises is
        re-raised as it is, after the tasks not yet started are cancelled; `labels` (one per
        item, e.g. the variant's name) name a task in errors (default: its index)."""
        ...

    def require_shared_dir(self, folder: Path) -> None:
        """UserError unless every worker sees `folder`'s files at the same path (tasks
        that read and write the workdir need it)."""
        ...

    def close(self) -> None:
        """Stop the workers this executor started (a cluster's own workers keep running)."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


def check_address(cluster: str) -> str:
    """`cluster` as a scheduler address, or a UserError saying what it should look like."""
    problem = address_problem(cluster)
    if problem is not None:
        raise UserError(f"cluster {cluster!r} {problem}", params=("cluster",))
    return cluster.strip()


def open_executor(
    cluster: str | None = None,
    *,
    workers: int | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> Executor:
    """A `LocalExecutor` with `workers` processes (default: this host's cores) when
    `cluster` is None, else a `DaskExecutor` connected to the scheduler at `cluster`."""
    if workers is not None and workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}", params=("workers",))
    if cluster is None:
        from edgeprune.compute.local import LocalExecutor

        return LocalExecutor(workers)
    address = check_address(cluster)
    from edgeprune.compute.dask_cluster import DaskExecutor

    return DaskExecutor.connect(address, timeout=connect_timeout)


def task_labels(items: Sequence[object], labels: Sequence[str] | None) -> list[str]:
    """One name per task, for errors."""
    if labels is None:
        return [f"task {index}" for index in range(len(items))]
    if len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} items")
    return [str(label) for label in labels]
