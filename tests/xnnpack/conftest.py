"""Converted sparse-path test graphs, built once per source version and shared by workers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def _key(*extra: str) -> str:
    digest = hashlib.sha256((HERE / "models.py").read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def calibration_npz(path: Path, shape: tuple[int, ...], count: int = 16) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(count, *shape)).astype(np.float32)
    np.savez(path, x=x, y=np.zeros(count, dtype=np.int64))
    return path


@pytest.fixture(scope="session")
def tiny_tflite(cached_artifact, tmp_path_factory):
    """tiny_tflite(variant, fraction=0.9, sparse=True, quantize="none") -> converted Path."""
    from xnnpack.models import prune_pointwise, tiny

    def get(
        variant: str = "base", fraction: float = 0.9, sparse: bool = True, quantize: str = "none"
    ) -> Path:
        def build(path: Path) -> None:
            from edgeprune.tflite import convert

            model = tiny(variant)
            prune_pointwise(model, fraction)
            options: dict[str, Any] = {"sparse_weights": sparse, "quantize": quantize}
            if quantize == "int8":
                folder = tmp_path_factory.mktemp("calibration")
                options["dataset"] = calibration_npz(folder / "x.npz", (32, 32, 3))
                options["calibration_samples"] = 8
            convert(model, path, **options)
            path.with_name(path.name + ".json").unlink()  # the cache keeps the model only

        name = f"xnn-{variant}-{fraction}-{'sparse' if sparse else 'dense'}-{quantize}.tflite"
        return cached_artifact(name, _key(name), build)

    return get
