"""One NetAdapt proposal, as a worker runs it: cut one group, fine-tune briefly, evaluate.

`run_proposal` is a top-level function of plain data (paths, numbers) in and out, so an
executor can run the proposals of one iteration in other processes or on other hosts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from edgeprune.adapt.widths import prune_to_widths, trace_model
from edgeprune.channels.pipeline import load_fitting_data


def save_model_atomically(model: Any, path: Path) -> None:
    """Save a Keras model under a temporary name, then rename it into place."""
    from edgeprune.models import save_keras_model

    partial = path.with_name(f".{path.stem}.part{path.suffix}")
    save_keras_model(model, partial)
    os.replace(partial, path)


def run_proposal(item: dict[str, Any]) -> dict[str, Any]:
    """Cut `item["group"]` of `item["model"]` to `item["width"]`, fine-tune, score, save.

    Returns the item's group and width with the validation top-1, the saved model's path and
    where and when it ran (`host`: pid, started_at, finished_at; wall-clock seconds), which
    shows whether an iteration's proposals ran at once.
    """
    started = time.time()
    from edgeprune.channels.finetune import finetune, top1
    from edgeprune.models import load_keras_model

    model = load_keras_model(item["model"], custom_objects=item.get("custom_objects"))
    dataset = load_fitting_data(item["data"], model)
    traced = trace_model(model, item["criterion"])
    pruned = prune_to_widths(traced, {item["group"]: item["width"]})
    if item["epochs"] > 0:
        score = finetune(pruned, dataset, epochs=item["epochs"], **item["finetune"])["top1"]
    else:
        score = top1(pruned, dataset)
    save_model_atomically(pruned, Path(item["output"]))
    return {
        "group": item["group"],
        "width": item["width"],
        "top1": score,
        "path": item["output"],
        "host": {"pid": os.getpid(), "started_at": started, "finished_at": time.time()},
    }
