"""How the recipe's stages score a model: in the recipe's task, on the validation split.

A classifier deciding by top-1 keeps today's path (top-1 with per-sample correctness, for
paired drops). Any other task or metric (regression's RMSE, segmentation's mIoU, a custom
function) is scored by the run's `Task` on the Keras and the TFLite outputs alike, and a
stage keeps every score (`scores`) and the deciding one (`score`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune import _tf
from edgeprune.tasks.base import OutputInfo, Task
from edgeprune.tasks.outputs import keras_outputs

if TYPE_CHECKING:
    from edgeprune.data import Dataset
    from edgeprune.recipes.context import StageContext
    from edgeprune.recipes.loader import Recipe


def uses_task(recipe: Recipe, data: Dataset) -> bool:
    """Whether the stages score with a Task (else: classification top-1, as before tasks)."""
    decision = recipe.decision
    if decision.task not in (None, "classification") or not decision.is_top1:
        return True
    labels = data.y_val
    return not (
        isinstance(labels, np.ndarray)
        and labels.size > 0
        and np.issubdtype(labels.dtype, np.integer)
        and data.ground_truth is None
    )


def recipe_task(ctx: StageContext, data: Dataset, outputs: list[OutputInfo]) -> Task:
    """The run's task, made once per context: named by the recipe or inferred, checked against
    the data and the outputs (one line before any work when they do not fit)."""
    if ctx.task is not None:
        return ctx.task
    from edgeprune.tasks.registry import infer_task

    decision = ctx.recipe.decision
    task: Task
    if decision.task == "custom":
        from edgeprune.tasks.custom import CustomTask

        assert decision.metric_fn is not None  # the loader requires it
        task = CustomTask(
            user_function(ctx.recipe, decision.metric_fn),
            decides=decision.metric.name,
            higher_is_better=decision.metric.higher_is_better,
            unit=decision.metric.unit,
        )
        task.check(data, outputs, "the base model")
    else:
        task = infer_task(
            data, outputs, decision.task, model_name="the base model", decode=ctx.recipe.spec.decode
        )
    task.metric(decision.metric.name)  # the loader's names, checked against the real task
    ctx.task = task
    return task


def user_function(recipe: Recipe, spec: str) -> str:
    """`FILE.py:fn` with FILE relative to the recipe's folder (`pkg.module:fn` as written)."""
    module, _, function = spec.rpartition(":")
    if module.endswith(".py"):
        return f"{recipe.resolve(module)}:{function}"
    return spec


BASE_OUTPUTS = "validation_outputs.npz"
"""The base model's outputs on the validation split, beside its .keras: what a variant's
drop is bootstrapped against (paired, on the same resampled samples)."""
RESAMPLES = 1000


def score_outputs(
    ctx: StageContext, task: Task, data: Dataset, outputs: list[Any]
) -> dict[str, Any]:
    """What a stage keeps: every score and the deciding one."""
    scores = task.score(data, [np.asarray(o) for o in outputs])
    name = ctx.recipe.decision.metric.name
    return {"scores": scores, "score": scores.get(name), "samples": len(data.x_val)}


def drop_interval(
    ctx: StageContext, task: Task, data: Dataset, outputs: list[Any]
) -> list[float] | None:
    """95 % interval of the variant's drop against the base model (budget units: points for
    fractions), by scipy's bootstrap over the validation samples, paired: both are scored by
    the task's `scorer` on the same resampled indices. None without the base's outputs or a
    scorer, or with fewer than 10 samples."""
    from scipy.stats import bootstrap

    from edgeprune.recipes.metric import drop_value

    base_file = ctx.base_dir / BASE_OUTPUTS if ctx.base_dir is not None else None
    if base_file is None or not base_file.is_file() or len(data.x_val) < 10:
        return None
    with np.load(base_file) as loaded:
        base_outputs = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    ours = task.scorer(data, [np.asarray(o) for o in outputs])
    theirs = task.scorer(data, base_outputs)
    if ours is None or theirs is None:
        return None
    metric = ctx.recipe.decision.metric

    def drop(index: np.ndarray) -> float:
        chosen = np.asarray(index, dtype=np.int64)
        return drop_value(metric, theirs(chosen)[metric.name], ours(chosen)[metric.name])

    result = bootstrap(
        (np.arange(len(data.x_val)),),
        drop,
        vectorized=False,
        n_resamples=RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    low, high = result.confidence_interval
    return [float(low), float(high)]


def keras_scores(
    ctx: StageContext, model: Any, data: Dataset, keep: Path | None = None
) -> dict[str, Any]:
    """The Keras model's scores on the validation split (its outputs saved at `keep`)."""
    task = recipe_task(ctx, data, keras_outputs(model))
    with _tf.quiet_native_output():
        predicted = model.predict(data.x_val, batch_size=256, verbose=0)
    outputs = list(predicted.values()) if isinstance(predicted, dict) else predicted
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if keep is not None:
        np.savez(keep, *[np.asarray(o) for o in outputs])
    return score_outputs(ctx, task, data, outputs)


def tflite_scores(ctx: StageContext, path: Path, data: Dataset) -> dict[str, Any]:
    """The .tflite's scores on the validation split (the real TFLite runtime), with the
    paired interval of its drop against the base model."""
    from edgeprune.tflite.predictors import TFLitePredictor

    predictor = TFLitePredictor(path, "variant")
    task = recipe_task(ctx, data, predictor.outputs)
    outputs = predictor.predict_all(data.x_val)  # in the Keras model's order
    scored = score_outputs(ctx, task, data, outputs)
    scored["drop_ci"] = drop_interval(ctx, task, data, outputs)
    return scored
