"""Independent host work in parallel: a process pool here, or a dask.distributed cluster.

`open_executor(cluster)` gives an `Executor` whose `map` runs a picklable top-level function
over plain items (paths, dicts) and keeps their order; `board_slot(device)` around a
measurement makes sure no two tasks of that executor measure on one board at once.
Importing this package loads neither dask nor TensorFlow.
"""

from __future__ import annotations

from edgeprune.compute.executor import Executor, TaskLost, open_executor
from edgeprune.compute.overlap import Span, overlapping
from edgeprune.compute.slots import board_slot

__all__ = ["Executor", "Span", "TaskLost", "board_slot", "open_executor", "overlapping"]
