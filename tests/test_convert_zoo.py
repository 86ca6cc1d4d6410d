"""The converted models the convert / inspect / evaluate tests share (no tests of its own).

Built once per source version through `cached_artifact` (so xdist workers share it): the
digits demo CNN dense, the same with 80 % of its 1x1-conv and dense kernels zeroed by
magnitude (numpy, independent of edgeprune.prune) and fine-tuned a few epochs with the
zeros held, and that pruned model converted every way `convert` offers. A test module
gets it with a fixture that calls `get_zoo(cached_artifact, demo_model_path, digits)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PRUNE_FRACTION = 0.8
FINE_TUNE_EPOCHS = 5
_KEY_FILES = (
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "edgeprune" / "tflite").glob("*.py")),
    "edgeprune/demo.py",
    "edgeprune/data.py",
    "edgeprune/keras_stats.py",
    "edgeprune/manifest.py",
    "tests/test_convert_zoo.py",
)

# name -> (source, convert options); "pruned" is the numpy-pruned Keras model.
CONVERSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "dense": ("dense", {"dataset": "digits"}),
    "dense-int8": ("dense", {"quantize": "int8", "dataset": "digits"}),
    "pruned-dense": ("pruned", {"dataset": "digits", "sparse_weights": False}),
    "pruned-sparse": ("pruned", {"dataset": "digits"}),
    "pruned-float16": ("pruned", {"quantize": "float16"}),
    "pruned-dynamic": ("pruned", {"quantize": "dynamic"}),
    "pruned-int8": ("pruned", {"quantize": "int8", "dataset": "digits"}),
    "pruned-int8-io": ("pruned", {"quantize": "int8", "io": "int8", "dataset": "digits"}),
    "savedmodel": ("savedmodel", {}),
    "pruned-default-sparse": ("pruned-default", {}),
}


def _pointwise_and_dense(layer: Any) -> bool:
    kind = layer.__class__.__name__
    return kind == "Dense" or (kind == "Conv2D" and tuple(layer.kernel_size) == (1, 1))


def _issue_default(layer: Any) -> bool:
    """The layer selection the size bound was set with: conv/dense/depthwise kernels of >= 1024 values."""
    kind = layer.__class__.__name__
    return (
        kind in ("Conv2D", "Dense", "DepthwiseConv2D")
        and layer.weights[0].shape.num_elements() >= 1024
    )


def prune_kernels_by_magnitude(
    model: Any, fraction: float = PRUNE_FRACTION, select: Any = _pointwise_and_dense
) -> None:
    """Zero exactly `fraction` of each selected kernel (default: 1x1 convs and dense), smallest first."""
    for layer in model.layers:
        if not select(layer):
            continue
        weights = layer.get_weights()
        kernel = weights[0]
        order = np.argsort(np.abs(kernel), axis=None)
        flat = kernel.reshape(-1).copy()
        flat[order[: round(fraction * flat.size)]] = 0.0
        weights[0] = flat.reshape(kernel.shape)
        layer.set_weights(weights)


@dataclass
class Zoo:
    root: Path

    def path(self, name: str) -> Path:
        suffix = {"pruned": ".keras", "pruned-default": ".keras", "pruned-savedmodel": ""}.get(
            name, ".tflite"
        )
        return self.root / f"{name}{suffix}"

    def report(self, name: str) -> dict[str, Any]:
        return json.loads((self.root / "reports.json").read_text())[name]

    def manifest(self, name: str) -> dict[str, Any]:
        return json.loads(self.path(name).with_name(self.path(name).name + ".json").read_text())


def fine_tune_keeping_zeros(model: Any, dataset: Any, epochs: int = FINE_TUNE_EPOCHS) -> None:
    """A few epochs of training that re-zero the pruned weights after every batch."""
    from edgeprune import _tf
    from edgeprune.demo import compile_for_training

    keras = _tf.keras()
    masked = [
        (layer, layer.get_weights()[0] != 0)
        for layer in model.layers
        if _pointwise_and_dense(layer)
    ]

    class KeepZeros(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            for layer, mask in masked:
                layer.kernel.assign(layer.kernel.numpy() * mask)

    compile_for_training(model, learning_rate=5e-4)
    keras.utils.set_random_seed(0)
    model.fit(
        dataset.x_train,
        dataset.y_train,
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=[KeepZeros()],
    )


def build_zoo(root: Path, demo_model_path: Path, dataset: Any) -> None:
    from edgeprune import _tf
    from edgeprune.tflite import convert

    keras = _tf.keras()
    root.mkdir()
    pruned = keras.models.load_model(demo_model_path, compile=False)
    prune_kernels_by_magnitude(pruned)
    fine_tune_keeping_zeros(pruned, dataset)
    pruned.save(root / "pruned.keras")
    with _tf.quiet_native_output():
        pruned.export(str(root / "pruned-savedmodel"), verbose=False)
    default = keras.models.load_model(demo_model_path, compile=False)
    prune_kernels_by_magnitude(default, select=_issue_default)
    default.save(root / "pruned-default.keras")
    sources = {
        "dense": demo_model_path,
        "pruned": root / "pruned.keras",
        "savedmodel": root / "pruned-savedmodel",
        "pruned-default": root / "pruned-default.keras",
    }
    reports = {}
    for name, (source, options) in CONVERSIONS.items():
        reports[name] = convert(sources[source], root / f"{name}.tflite", **options).to_dict()
    (root / "reports.json").write_text(json.dumps(reports, indent=1))


def _key() -> str:
    digest = hashlib.sha256()
    for name in _KEY_FILES:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def get_zoo(cached_artifact: Any, demo_model_path: Path, dataset: Any) -> Zoo:
    """The zoo for this source version, built on first use by whichever worker comes first."""
    build = lambda path: build_zoo(path, demo_model_path, dataset)  # noqa: E731
    return Zoo(cached_artifact("tflite-zoo", _key(), build))
