"""The host stages of a recipe built on an executor (`run --cluster`), wave by wave.

Wave i holds every distinct stage that sits at position i of some variant and is not yet
cached (shared stages once), so each wave's parents are finished before it starts; the
stages of one wave run at once on the executor's workers. Each worker builds into the
run's own stage cache (the workers must share the workdir, which is checked first), and
hands back the record or the one-line reason it failed. What is built is marked on the
in-process builder (`_HostStages`), whose ordinary pass then finds every stage cached or
failed and fills the grid and the progress as a sequential run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgeprune.compute import Executor
from edgeprune.recipes.cache import StageCache, StageRecord
from edgeprune.recipes.loader import Recipe
from edgeprune.recipes.plan import Plan, PlannedStage


class Builder(Protocol):
    """What of `executor._HostStages` a wave needs (kept apart so the modules do not cycle)."""

    plan: Plan
    ctx: Any  # its StageContext: the strategy's name
    failed_keys: dict[tuple[str, str], str]
    built: int
    built_keys: set[tuple[str, str]]


Tell = Callable[[str, int, int], None]
"""tell(what, wave, waves): one line of progress per wave."""


_ONE_BUILD_PER_PROCESS = threading.Lock()
"""Keras' global state (`clear_session`) is per process: a worker with several threads
builds one stage at a time."""


@dataclass(frozen=True)
class StageTask:
    """Plain data for one worker: which stage, from which parent, in which work dir."""

    recipe: Recipe
    strategy: str
    workdir: str
    kind: str
    key: str
    options: dict[str, Any]
    parent: str | None
    input_shape: tuple[Any, ...] | None


@dataclass(frozen=True)
class StageDone:
    record: dict[str, Any] | None
    error: str | None = None  # one line
    detail: str = ""  # the worker's traceback, for errors.log


def build_task(task: StageTask) -> StageDone:
    """On a worker: build one stage into the shared cache (top level: picklable)."""
    from edgeprune.recipes.context import StageContext
    from edgeprune.recipes.stage_build import build_stage, one_line

    ctx = StageContext(task.recipe, task.strategy, input_shape=task.input_shape)
    cache = StageCache(Path(task.workdir))
    parent = Path(task.parent) if task.parent else None
    try:
        with _ONE_BUILD_PER_PROCESS:
            record = build_stage(ctx, cache, task.kind, task.key, task.options, parent)
    except Exception as exc:
        if task.kind == "base":  # every variant needs it: the run stops, as in-process
            raise
        return StageDone(None, one_line(exc), traceback.format_exc())
    return StageDone(dataclasses.asdict(record))


def build_on(executor: Executor, builder: Builder, tell: Tell) -> None:
    """Build every missing stage of `builder.plan` on `executor`; failures are recorded
    on the builder by (kind, key), so its own pass marks those variants failed."""
    plan = builder.plan
    executor.require_shared_dir(plan.workdir)
    recipe = dataclasses.replace(plan.recipe, path=plan.recipe.path.resolve())
    workdir = str(plan.workdir.resolve())
    input_shape: tuple[Any, ...] | None = None
    depth = max((len(v.stages) for v in plan.variants), default=0)
    for position in range(depth):
        wave: dict[tuple[str, str], tuple[list[PlannedStage], Path | None, list[str]]] = {}
        for variant in plan.variants:
            if position >= len(variant.stages):
                continue
            chain = variant.stages[: position + 1]
            if any((s.kind, s.key) in builder.failed_keys for s in chain):
                continue
            *before, stage = chain
            if stage.record is not None or any(s.record is None for s in before):
                continue
            parent = _output(plan, before[-1]) if before else None
            stages, _, names = wave.setdefault((stage.kind, stage.key), ([], parent, []))
            stages.append(stage)
            names.append(variant.name)
        if not wave:
            continue
        if input_shape is None and plan.variants and plan.variants[0].stages[0].record:
            shape = plan.variants[0].stages[0].record.metrics.get("input_shape")
            input_shape = tuple(shape) if shape else None
        tasks, labels = [], []
        for (kind, key), (stages, parent, names) in wave.items():
            tasks.append(
                StageTask(
                    recipe,
                    builder.ctx.strategy_name,
                    workdir,
                    kind,
                    key,
                    stages[0].options,
                    str(parent) if parent else None,
                    input_shape,
                )
            )
            labels.append(f"{names[0]} × {kind}")
        tell(f"building {len(tasks)} stage(s) on the workers", position + 1, depth)
        results = executor.map(build_task, tasks, labels=labels)
        for ((kind, key), (stages, _, names)), done in zip(wave.items(), results, strict=True):
            if done.record is None:
                message = done.error or "failed"
                builder.failed_keys[(kind, key)] = message
                _log_failure(plan.workdir, names[0], kind, done.detail)
                continue
            record = StageRecord(**done.record)
            for stage in stages:
                stage.record = record
            builder.built += 1
            builder.built_keys.add((kind, key))


def _output(plan: Plan, stage: PlannedStage) -> Path:
    from edgeprune.recipes.stage_build import output_name

    assert stage.record is not None
    return stage.record.output(plan.cache, output_name(stage.kind))


def _log_failure(workdir: Path, variant: str, kind: str, detail: str) -> None:
    with open(workdir / "errors.log", "a", encoding="utf-8") as handle:
        handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {variant} × {kind} (worker)\n")
        handle.write(detail)


@contextlib.contextmanager
def cluster_executor(cluster: str | None) -> Iterator[Executor | None]:
    """The executor for `cluster` (None: none, build in-process), connected before any work
    and closed afterwards, Ctrl-C included."""
    if cluster is None:
        yield None
        return
    from edgeprune.compute import open_executor

    executor = open_executor(cluster)
    try:
        yield executor
    finally:
        executor.close()
