"""What each host stage does: make the base model, prune, remove channels, fine-tune, convert.

Every stage reads its parent's file and writes its own (a `.keras` or a `.tflite` with
its manifest) into a fresh directory, returning the numbers the report needs. Anything
that trains or creates weights runs under the run's `tf.distribute` strategy, so a user
with several GPUs passes `--strategy mirrored` and the same recipe uses them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.artifacts import save_keras_artifact
from edgeprune.data import Dataset, check_fits
from edgeprune.progress import keras_callbacks
from edgeprune.recipes.context import StageContext
from edgeprune.recipes.loader import Recipe

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"


# ------------------------------------------------------------------ the stages


def run_base(ctx: StageContext, out: Path) -> dict[str, Any]:
    """Build (demo / application) or load (file) the model, train it if asked, save it."""
    from edgeprune.models import load_keras_model

    spec = ctx.recipe.spec.model
    metrics: dict[str, Any] = {}
    with ctx.scope():
        if spec.demo:
            from edgeprune.demo import build_demo_model

            data = ctx.data.training()
            model = build_demo_model(
                data.sample_shape, data.num_classes, width=spec.width or 32, seed=spec.seed
            )
        elif spec.application:
            model = _application(ctx.recipe)
        else:
            assert spec.file is not None
            model = load_keras_model(
                ctx.recipe.resolve(spec.file), custom_objects=ctx.recipe.custom_objects()
            )
        ctx.input_shape = tuple(model.input_shape)
        if spec.train is not None:
            data = ctx.data.training(ctx.input_shape)
            metrics["train"] = _fit(model, data, spec.train.model_dump())
            metrics["strategy"] = ctx.strategy_info()
        if ctx.recipe.spec.data is not None:
            data = ctx.data.training(ctx.input_shape)
            metrics.update(_quality(ctx, model, data, paired=True, keep=out))
        metrics["params"] = int(model.count_params())
        metrics["input_shape"] = list(model.input_shape)
        _save(model, out, "base", ctx, {"model": spec.model_dump()}, metrics)
    return metrics


def _application(recipe: Recipe) -> Any:
    keras = _tf.keras()
    spec = recipe.spec.model
    builder = getattr(keras.applications, str(spec.application), None)
    if builder is None or not callable(builder):
        raise recipe.lines.error(
            ("model", "application"),
            f"keras.applications has no model {spec.application!r}; e.g. MobileNetV2, ResNet50",
        )
    weights = spec.weights
    if weights not in (None, "imagenet"):
        weights = str(recipe.resolve(weights))
    kwargs: dict[str, Any] = {"weights": weights, "input_shape": tuple(spec.input_shape or ())}
    if spec.classes is not None:
        kwargs["classes"] = spec.classes
    try:
        with _tf.quiet_native_output():
            return builder(**kwargs, **spec.options)
    except Exception as exc:  # bad options, no weights file, no network for 'imagenet'...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise recipe.lines.error(
            ("model", "application"), f"{spec.application} cannot be built: {first}"
        ) from None


def _fit(model: Any, data: Dataset, options: dict[str, Any]) -> dict[str, Any]:
    from edgeprune.prune.training import check_classes, classification_loss, output_kind

    keras = _tf.keras()
    check_fits(data, tuple(model.input_shape))
    kind = output_kind(model, data.x_val)
    check_classes(model, data, kind)
    model.compile(
        optimizer=keras.optimizers.Adam(options["learning_rate"]),
        loss=classification_loss(kind),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(options["seed"])
    with _tf.quiet_native_output():
        history = model.fit(
            data.x_train,
            data.y_train,
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            shuffle=True,
            verbose=0,
            callbacks=keras_callbacks("train"),
        )
    return {"epochs": options["epochs"], "loss": float(history.history["loss"][-1])}


def _accuracy(model: Any, data: Dataset) -> dict[str, Any]:
    """Top-1 with the per-sample correctness (the baseline of paired accuracy drops)."""
    from edgeprune.prune.training import output_kind, predict_labels
    from edgeprune.recipes.correctness import pack

    with _tf.quiet_native_output():
        labels = predict_labels(model, data.x_val, output_kind(model, data.x_val))
    correct = np.asarray(labels).reshape(-1) == np.asarray(data.y_val).reshape(-1)
    return {
        "top1": float(correct.mean()) if correct.size else 0.0,
        "samples": int(correct.size),
        "classes": int(data.num_classes),
        "correct": pack(correct),
    }


def _quality(
    ctx: StageContext, model: Any, data: Dataset, paired: bool = False, keep: Path | None = None
) -> dict[str, Any]:
    """The model's scores in the recipe's task ({"top1": ...} for a classifier deciding by
    top-1, with the per-sample correctness when `paired`); `keep`: the base stage's directory,
    where it keeps its outputs for the variants' paired intervals."""
    from edgeprune.recipes.scoring import BASE_OUTPUTS, keras_scores, uses_task

    if uses_task(ctx.recipe, data):
        return keras_scores(ctx, model, data, keep / BASE_OUTPUTS if keep is not None else None)
    if paired:
        return _accuracy(model, data)
    return {"top1": _top1(model, data)}


def _top1(model: Any, data: Dataset) -> float:
    from edgeprune.prune.training import output_kind, top1_accuracy

    with _tf.quiet_native_output():
        labels = data.y_val
        assert isinstance(labels, np.ndarray)  # class ids: `scoring.uses_task` said so
        return top1_accuracy(model, data.x_val, labels, output_kind(model, data.x_val))


def run_prune(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """Magnitude pruning, gradual (fine-tunes while pruning) or one-shot."""
    from edgeprune.models import load_keras_model
    from edgeprune.prune import PruneOptions, prune_gradually, prune_with_options
    from edgeprune.prune.options import SELECTION

    metrics: dict[str, Any] = {}
    with ctx.scope():
        model = load_keras_model(source, custom_objects=ctx.recipe.custom_objects())
        if options["method"] == "gradual":
            data = ctx.data.training(ctx.input_shape)
            given = {k: v for k, v in options.items() if k != "method"}
            given["tensorboard"] = log_dir(ctx, given.get("tensorboard"), out)
            chosen = PruneOptions.create(**given, **_task_options(ctx), data=data.name)
            with _tf.quiet_native_output():
                result = prune_gradually(model, data, options=chosen, evaluate=False)
            report = result.report
            metrics.update(_quality(ctx, model, data))
            metrics["strategy"] = ctx.strategy_info()
            if result.distillation is not None:
                metrics["distillation"] = result.distillation.to_dict()
        else:
            chosen = PruneOptions.create(**{k: options[k] for k in SELECTION})
            report = prune_with_options(model, chosen)
            if ctx.recipe.spec.data is not None:
                metrics.update(_quality(ctx, model, ctx.data.training(ctx.input_shape)))
        metrics["sparsity"] = report.overall
        metrics["pruned_kernels"] = len(report.kernels)
        _save(model, out, "prune", ctx, options, metrics, source, report.manifest_sparsity())
    return metrics


def _task_options(ctx: StageContext) -> dict[str, Any]:
    """The recipe's top-level task as the training stages' TaskFields (named once, at the top)."""
    from edgeprune.recipes.scoring import user_function

    decision = ctx.recipe.decision
    values: dict[str, Any] = {}
    if decision.task is not None:
        values["task"] = decision.task
    if decision.task == "custom" and decision.metric_fn is not None:
        values["metric"] = user_function(ctx.recipe, decision.metric_fn)
    if ctx.recipe.spec.decode is not None:
        values["decode"] = ctx.recipe.spec.decode
    return values


def run_xnnpack_fix(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """Rewrite asymmetric stride-2 padding (what `edgeprune xnnpack-fix` does) and say how far
    the outputs moved, so a later `prune` with policy xnnpack finds sparse clusters."""
    from edgeprune.models import load_keras_model
    from edgeprune.xnnpack.fix import fix_model, output_change
    from edgeprune.xnnpack.policy import plan_keras_model

    with ctx.scope():
        model = load_keras_model(source, custom_objects=ctx.recipe.custom_objects())
        fixed = fix_model(model)
        metrics: dict[str, Any] = {"rewrites": len(fixed.rewrites)}
        data = ctx.data.training(ctx.input_shape) if ctx.recipe.spec.data is not None else None
        if data is not None:
            inputs = np.asarray(data.x_val[: options["samples"]], dtype=np.float32)
        else:
            shape = (options["samples"], *tuple(model.input_shape)[1:])
            rng = np.random.default_rng(options["seed"])
            inputs = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        change = output_change(model, fixed.model, inputs)
        metrics["max_abs_change"] = change["max_abs"]
        metrics["top1_agreement"] = change["top1_agreement"]
        metrics["sparse_clusters_form"] = bool(plan_keras_model(fixed.model).formed)
        if data is not None:
            metrics.update(_quality(ctx, fixed.model, data))
        extra = {"rewrites": [r.to_dict() for r in fixed.rewrites], "notes": fixed.notes}
        _save(fixed.model, out, "xnnpack_fix", ctx, options, metrics, source, extra=extra)
    return metrics


def run_channels(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """Remove whole filters (a smaller dense model); accuracy recovers in a finetune step."""
    from edgeprune.channels import prune_channels
    from edgeprune.channels.options import ChannelOptions
    from edgeprune.models import load_keras_model

    with ctx.scope():
        model = load_keras_model(source, custom_objects=ctx.recipe.custom_objects())
        with _tf.quiet_native_output():
            pruned, report = prune_channels(model, options=ChannelOptions.create(**options))
        metrics: dict[str, Any] = {
            "params_before": report.params_before,
            "params_after": report.params_after,
            "macs_before": report.macs_before,
            "macs_after": report.macs_after,
            "removed_fraction": report.removed_fraction,
        }
        if ctx.recipe.spec.data is not None:
            metrics.update(_quality(ctx, pruned, ctx.data.training(ctx.input_shape)))
        extra = {"channels": report.to_dict()}
        _save(pruned, out, "channels", ctx, options, metrics, source, extra=extra)
    return metrics


def run_finetune(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """Train on data.train; weights that are exactly zero stay zero (sparsity survives)."""
    from edgeprune.channels.finetune import finetune
    from edgeprune.models import load_keras_model
    from edgeprune.prune.constraint import strip_pruning

    with ctx.scope():
        model = load_keras_model(source, custom_objects=ctx.recipe.custom_objects())
        data = ctx.data.training(ctx.input_shape)
        teacher = _teacher(ctx, model) if options.get("distill") else None
        kept = _keep_zeros(model)
        try:
            result = finetune(
                model,
                data,
                **{**options, "tensorboard": log_dir(ctx, options.get("tensorboard"), out)},
                source=source,
                task=getattr(ctx, "task", None),  # the recipe's task once it is known
                teacher=teacher,
            )
        finally:
            strip_pruning(model)
        metrics = {
            **result["metrics"],
            "loss": result["loss"],
            "masked_kernels": kept,
            "strategy": ctx.strategy_info(),
        }
        if result.get("distillation"):
            metrics["distillation"] = result["distillation"]
        _save(model, out, "finetune", ctx, options, metrics, source)
    return metrics


def _teacher(ctx: StageContext, model: Any) -> Any:
    """A finetune step's teacher: the recipe's base model (before the pipeline pruned it),
    else, when its outputs differ, the step's input as it is before training."""
    from edgeprune.models import load_keras_model

    base = ctx.base_dir / MODEL_FILE if ctx.base_dir is not None else None
    if base is None or not base.is_file():
        return None
    teacher = load_keras_model(base, custom_objects=ctx.recipe.custom_objects())
    same = [tuple(t.shape) for t in teacher.outputs] == [tuple(t.shape) for t in model.outputs]
    return teacher if same else None


def run_qat(ctx: StageContext, source: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Quantization-aware fine-tune on data.train; zeros stay zero (`preserve_sparsity`)."""
    from edgeprune.models import load_keras_model
    from edgeprune.quantize.options import QatOptions
    from edgeprune.quantize.pipeline import qat_model

    with ctx.scope():
        model = load_keras_model(source, custom_objects=ctx.recipe.custom_objects())
        data = ctx.data.training(ctx.input_shape)
        qat, report = qat_model(model, data, options=QatOptions.create(**options), source=source)
        accuracy = report.accuracy or {}
        metrics = {
            **accuracy.get("metrics", {}),
            "loss": (report.training or {}).get("loss"),
            "kernel_sparsity": report.sparsity["overall"],
            "sparsity_kept": report.sparsity["kept"],
        }
        extra = {"qat": {"plan": report.plan, "training": report.training}}
        _save(qat, out, "qat", ctx, options, metrics, source, report.sparsity, extra)
    return metrics


def log_dir(ctx: StageContext, given: str | None, out: Path) -> str | None:
    """A stage's TensorBoard logs: `tensorboard:` (relative to the recipe file) / the stage's
    own name, so the variants of a sweep never write into one run."""
    if not given:
        return None
    return str(ctx.recipe.resolve(given) / out.stem)


def _keep_zeros(model: Any) -> int:
    """Mask every prunable kernel that holds exact zeros, so training cannot revive them."""
    from edgeprune.prune.constraint import install_masks, mask_variables
    from edgeprune.prune.policy import prunable_kernels

    targets = [t for t in prunable_kernels(model) if np.any(np.asarray(t.variable) == 0)]
    if not targets:
        return 0
    masks = mask_variables(targets)
    for target, mask in zip(targets, masks, strict=True):
        mask.assign((np.asarray(target.variable) != 0).astype(np.asarray(mask).dtype))
    install_masks(targets, masks)
    return len(targets)


def run_convert(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """The .tflite (+ manifest); with data, its top-1 on the validation samples."""
    from edgeprune.tflite import convert

    sparse = options["sparse_weights"]
    dataset = ctx.data.for_convert(ctx.input_shape) if ctx.recipe.spec.data is not None else None
    report = convert(
        str(source),
        out / TFLITE_FILE,
        quantize=options["quantize"],
        sparse_weights=None if sparse in (None, "auto") else bool(sparse),
        dataset=dataset,
        io=options["io"],
        calibration_samples=options["calibration_samples"],
        keep_float=options.get("keep_float") or None,
        custom_objects=ctx.recipe.custom_objects(),
    )
    _tf.keras().backend.clear_session()
    from device_agents.integrity import sha256_file
    from edgeprune.recipes.scoring import tflite_scores, uses_task

    accuracy = report.accuracy or {}
    correct = None
    scored: dict[str, Any] = {}
    if dataset is not None and uses_task(ctx.recipe, dataset):
        scored = tflite_scores(ctx, out / TFLITE_FILE, dataset)
        accuracy = {"samples": scored["samples"]}
    elif dataset is not None and accuracy.get("top1") is not None:
        correct = _tflite_correct(out / TFLITE_FILE, dataset)
    return {
        **scored,
        "sha256": sha256_file(out / TFLITE_FILE),
        "size_bytes": report.size_bytes,
        "gzip_bytes": report.gzip_bytes,
        "quantize": report.quantize,
        "sparse_weights": report.sparse_weights,
        "sparsity": report.source_sparsity,
        "densify_ops": report.densify_ops,
        "top1": accuracy.get("top1"),
        "samples": accuracy.get("samples"),
        "correct": correct,
        "notes": report.notes,
    }


def _tflite_correct(path: Path, data: Dataset) -> dict[str, Any] | None:
    """Which validation samples the .tflite gets right (packed), for paired accuracy drops."""
    from edgeprune.recipes.correctness import correct_labels, pack
    from edgeprune.tflite.predictors import TFLitePredictor

    outputs = np.asarray(TFLitePredictor(path, "variant").predict(data.x_val))
    if outputs.ndim != 2 or outputs.shape[1] < data.num_classes:
        return None
    return pack(correct_labels(outputs, data.y_val))


def _save(
    model: Any,
    out: Path,
    step: str,
    ctx: StageContext,
    options: dict[str, Any],
    metrics: dict[str, Any],
    source: Path | None = None,
    sparsity: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    accuracy = None
    if metrics.get("top1") is not None:
        accuracy = {"top1": metrics["top1"], "split": "validation", "framework": "keras"}
    save_keras_artifact(
        model,
        out / MODEL_FILE,
        step=step,
        options=options,
        source=source,
        sparsity=sparsity,
        accuracy=accuracy,
        recipe={"name": ctx.recipe.name, "path": str(ctx.recipe.path)},
        extra=extra,
    )


def run_adapt(
    ctx: StageContext, source: Path, out: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """NetAdapt to a latency target on the step's device, fine-tuning on data.train."""
    from edgeprune.workflows.adapt import adapt_model_file

    spec = ctx.recipe.spec.data
    assert spec is not None  # sweep refuses an adapt step without data
    report = adapt_model_file(
        source,
        out / MODEL_FILE,
        data=ctx.recipe.dataset_spec(spec.train),
        custom_objects=ctx.recipe.custom_objects(),
        **options,
    )
    return {
        "top1": report.accuracy["top1_after"],
        "latency_ms": report.final["median_ms"],
        "target_ms": report.target["latency_ms"],
        "target_met": report.target_met,
        "widths": {g["name"]: g["after"] for g in report.groups},
    }


STAGE_RUNNERS = {
    "xnnpack_fix": run_xnnpack_fix,
    "prune": run_prune,
    "channels": run_channels,
    "finetune": run_finetune,
    "qat": run_qat,
    "convert": run_convert,
    "adapt": run_adapt,
}
