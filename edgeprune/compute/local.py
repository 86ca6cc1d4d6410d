"""`LocalExecutor`: tasks on this host's cores, in a process pool started with `spawn`.

Spawned workers start clean (no copy of a parent that imported TensorFlow, whose threads
do not survive a fork). They ignore SIGINT: Ctrl-C reaches the parent, which cancels what
has not started, stops the workers and re-raises. Board slots are file locks in one
directory chosen by the parent, so every worker agrees on them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from edgeprune.compute.engine import Engine, call_in_engine
from edgeprune.compute.executor import TaskLost, task_labels
from edgeprune.compute.slots import default_lock_dir

T = TypeVar("T")
R = TypeVar("R")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor:
    """A pool of `workers` processes (default: this host's cores), started on first use."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.engine = Engine("local", str(default_lock_dir()))
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers})"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_sigint,
            )
        return self._pool

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[R]:
        names = task_labels(items, labels)
        if not items:
            return []
        pool = self._started()
        futures: list[Future[Any]] = [
            pool.submit(call_in_engine, self.engine, fn, item) for item in items
        ]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C: nothing more starts, the running tasks stop
            self._stop(futures)
            raise
        failed = [(n, f) for n, f in zip(names, futures, strict=True) if _failed(f)]
        if failed:
            for future in futures:
                future.cancel()
            lost = [n for n, f in failed if isinstance(f.exception(), BrokenProcessPool)]
            if lost:
                self._stop(futures)
                raise TaskLost(
                    f"a worker process died (killed, out of memory or a crash) while running "
                    f"{', '.join(lost[:3])}{' …' if len(lost) > 3 else ''}; see the task's log, "
                    "or run with fewer workers"
                )
            _, first = failed[0]
            raise first.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def _stop(self, futures: list[Future[Any]]) -> None:
        for future in futures:
            future.cancel()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def require_shared_dir(self, folder: Path) -> None:
        """Workers on this host see its files: nothing to check."""

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _failed(future: Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None
