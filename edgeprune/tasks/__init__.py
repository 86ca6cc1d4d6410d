"""Tasks: what a model's outputs mean and how they are scored and trained.

`get_task(name, ...)` builds one by name; `infer_task(...)` picks it from the data's labels
and the model's outputs when that is unambiguous, else says to give `task`.
"""

from edgeprune.tasks.base import FRACTION, TASK_NAMES, VALUE, Metric, OutputInfo, Task
from edgeprune.tasks.registry import get_task, infer_task

__all__ = [
    "FRACTION",
    "TASK_NAMES",
    "VALUE",
    "Metric",
    "OutputInfo",
    "Task",
    "get_task",
    "infer_task",
]
