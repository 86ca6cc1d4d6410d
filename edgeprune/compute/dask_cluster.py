"""`DaskExecutor`: tasks on the workers of a dask.distributed cluster.

Why Dask and not Ray: see docs/architecture.md ("Parallel work"). A task that raises comes
back as its own exception; a task whose worker died (Dask retries it on another worker up
to `distributed.scheduler.allowed-failures` times) becomes `TaskLost` naming the task.
Workers only share files with this host through a shared filesystem at the same path:
`require_shared_dir` checks that before any work.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edgeprune.compute.engine import Engine, call_in_engine
from edgeprune.compute.executor import TaskLost, task_labels
from edgeprune.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "install edgeprune[cluster] (pip install 'edgeprune[cluster]')"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UserError(
            f"cluster needs dask.distributed, which is not installed; {INSTALL_HINT}",
            params=("cluster",),
        ) from None
    return distributed


class DaskExecutor:
    """Submits to an existing scheduler; `close` disconnects (the cluster keeps running)."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address
        self.engine = Engine("dask")

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    @classmethod
    def connect(cls, address: str, *, timeout: float) -> DaskExecutor:
        """Connect and wait (up to `timeout` s) for at least one worker, else a UserError."""
        distributed = _distributed()
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(
                f"cannot reach a dask scheduler at cluster {address} within {timeout:g} s "
                f"({_first_line(exc)}); start one with `dask scheduler` and give the address "
                "it prints",
                params=("cluster",),
            ) from None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            client.close()
            raise UserError(
                f"the dask scheduler at cluster {address} has no workers; start some with "
                f"`dask worker {address}`",
                params=("cluster",),
            ) from None
        return cls(client, address)

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[R]:
        distributed = _distributed()
        names = task_labels(items, labels)
        if not items:
            return []
        batch = uuid.uuid4().hex[:8]
        keys = [f"{_KEY_UNSAFE.sub('_', n)[:60]}-{batch}-{i}" for i, n in enumerate(names)]
        futures = self.client.map(
            functools.partial(call_in_engine, self.engine, fn), list(items), key=keys, pure=False
        )
        label_of = dict(zip(keys, names, strict=True))
        try:
            for future in distributed.as_completed(futures, loop=self.client.loop):
                if future.status == "error":
                    self.client.cancel([other for other in futures if other is not future])
                    error = future.exception()
                    if isinstance(error, distributed.KilledWorker):
                        raise TaskLost(
                            f"{label_of[future.key]}: the worker running it died (killed, out "
                            "of memory or a crash), also on the retries; see that worker's log"
                        ) from None
                    future.result()  # re-raises the task's own exception, with its traceback
            return [future.result() for future in futures]
        except BaseException:  # Ctrl-C or a lost scheduler: cancel whatever is left
            with contextlib.suppress(Exception):  # the connection itself may be gone
                self.client.cancel(futures)
            raise

    def require_shared_dir(self, folder: Path) -> None:
        """Every worker must see `folder` (the same files, at the same path), else a
        UserError: a marker with a random token is written here and read back there."""
        folder = Path(folder).resolve()
        token = secrets.token_hex(8)
        marker = folder / f".edgeprune-shared-{token}"
        marker.write_text(token, encoding="utf-8")
        try:
            seen = self.client.run(_read_marker, str(marker))
        finally:
            marker.unlink(missing_ok=True)
        blind = sorted(worker for worker, text in seen.items() if text != token)
        if blind:
            raise UserError(
                f"{len(blind)} worker(s) of cluster {self.address} cannot see the workdir "
                f"{folder} (first: {blind[0]}); a remote cluster needs the workdir on a shared "
                "filesystem mounted at the same path on every worker",
                params=("cluster",),
            )

    def close(self) -> None:
        self.client.close()


def _read_marker(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
