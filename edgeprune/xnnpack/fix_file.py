"""`edgeprune xnnpack-fix MODEL -o OUT.keras`: the file-level step around `fix.fix_model`.

All-or-nothing like every step: the output path and options are checked before the model
is loaded, and the model and its manifest are written together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.artifacts import save_keras_artifact
from edgeprune.files import check_output_path
from edgeprune.manifest import manifest_path
from edgeprune.models import load_keras_model
from edgeprune.xnnpack.fix import Rewrite, fix_model, output_change
from edgeprune.xnnpack.fix_options import FixOptions
from edgeprune.xnnpack.policy import plan_keras_model

DEFAULT_SAMPLES = FixOptions.model_fields["samples"].default


@dataclass
class FixRun:
    output: Path
    manifest: Path
    source: Path
    rewrites: list[Rewrite]
    change: dict[str, Any] | None
    inputs: str
    cluster_ready: bool
    remaining: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "manifest": str(self.manifest),
            "source": str(self.source),
            "rewrites": [r.to_dict() for r in self.rewrites],
            "output_change": self.change,
            "compared_on": self.inputs,
            "cluster_ready": self.cluster_ready,
            "remaining": self.remaining,
            "notes": self.notes,
        }


def fix_model_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: FixOptions | None = None,
    **keywords: Any,
) -> FixRun:
    """Rewrite `source` for XNNPACK's sparse path, measure how far the outputs moved, write.

    Give `options` or the `FixOptions` fields (`data`, `samples`, `seed`) as keywords.
    """
    chosen = FixOptions.from_parts(options, keywords)
    data, samples, seed = chosen.data, chosen.samples, chosen.seed
    target = check_output_path(output, (".keras",), "output model")
    source_path = Path(source)
    model = load_keras_model(source_path, custom_objects=chosen.custom_objects)
    fixed = fix_model(model)
    inputs, described = _comparison_inputs(model, data, samples, seed)
    change = output_change(model, fixed.model, inputs) if inputs is not None else None
    plan = plan_keras_model(fixed.model)
    remaining = [] if plan.formed else [p.text() for p in plan.problems]
    notes = list(fixed.notes)
    if not fixed.rewrites:
        notes.append("nothing needed rewriting: the stride-2 convs already pad symmetrically")
    run = FixRun(
        output=target,
        manifest=manifest_path(target),
        source=source_path,
        rewrites=fixed.rewrites,
        change=change,
        inputs=described,
        cluster_ready=bool(plan.formed),
        remaining=remaining,
        notes=notes,
    )
    run.manifest = save_keras_artifact(
        fixed.model,
        target,
        step="xnnpack-fix",
        options=chosen.to_dict(),
        source=source_path,
        extra={
            "rewrites": [r.to_dict() for r in fixed.rewrites],
            "output_change": change,
            "cluster_ready": run.cluster_ready,
            "remaining": remaining,
        },
    )
    return run


def _comparison_inputs(
    model: Any, data: str | None, samples: int, seed: int
) -> tuple[np.ndarray | None, str]:
    """A validation batch of `data`, or seeded uniform noise in [-1, 1] (MobileNet's range)."""
    if len(model.inputs) != 1:
        return None, "not compared (the model has several inputs)"
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        return None, f"not compared (input shape {shape} is not fixed)"
    if data is not None:
        from edgeprune.data import check_fits, load_dataset

        dataset = load_dataset(data, image_size=(shape[0], shape[1]) if len(shape) == 3 else None)
        check_fits(dataset, (None, *shape), repr(str(data)))
        return dataset.x_val[:samples].astype(
            np.float32
        ), f"{len(dataset.x_val[:samples])} samples of {dataset.name}"
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1.0, 1.0, size=(samples, *shape)).astype(np.float32)
    return noise, f"{samples} uniform random inputs in [-1, 1] (seed {seed})"
