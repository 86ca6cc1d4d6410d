"""One NetAdapt proposal, as a worker runs it: cut one group, fine-tune briefly, evaluate.

`run_proposal` is a top-level function of plain data (paths, numbers) in and out, so an
executor can run the proposals of one iteration in other processes or on other hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.adapt.widths import prune_to_widths, trace_model


def load_adapt_data(spec: str, model: Any) -> Any:
    """The dataset `spec`, sized for `model`'s input, checked to fit it."""
    from edgeprune.channels.finetune import check_data_fits
    from edgeprune.data import load_dataset

    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    size = (shape[1], shape[2]) if len(shape) == 4 and None not in shape[1:3] else None
    dataset = load_dataset(spec, image_size=size)
    check_data_fits(model, dataset)
    return dataset


def save_model_atomically(model: Any, path: Path) -> None:
    """Save a Keras model under a temporary name, then rename it into place."""
    from edgeprune.models import save_keras_model

    partial = path.with_name(f".{path.stem}.part{path.suffix}")
    save_keras_model(model, partial)
    os.replace(partial, path)


def run_proposal(item: dict[str, Any]) -> dict[str, Any]:
    """Cut `item["group"]` of `item["model"]` to `item["width"]`, fine-tune, score, save.

    Returns the item's group and width with the validation top-1 and the saved model's path.
    """
    from edgeprune.channels.finetune import finetune, top1
    from edgeprune.models import load_keras_model

    model = load_keras_model(item["model"])
    dataset = load_adapt_data(item["data"], model)
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
    }
