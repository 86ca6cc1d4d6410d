"""The bench and deploy stages' options, defined once for the CLI, recipes and Python callers.

`BenchOptions` mirrors the agent's own `device_agents.protocol.BenchOptions` (the agent
cannot import pydantic, so it keeps its dataclass; a test checks the two agree) and turns
into it with `to_protocol()` for the wire. Fields in `HOST_ONLY` steer the host (how jobs
are submitted) and never go on the wire.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from device_agents import protocol
from edgeprune.errors import UserError
from edgeprune.fleet.fanout import DEFAULT_PARALLEL_CAP, MAX_PARALLEL
from edgeprune.options import StageOptions

if TYPE_CHECKING:
    from edgeprune.fleet.session import ConnectOptions

ThreadCount = Annotated[int, Field(ge=1, le=protocol.MAX_THREADS)]
CpuNumber = Annotated[int, Field(ge=0, lt=4096)]

HOST_ONLY = frozenset({"interleave"})
"""BenchOptions fields the host acts on itself: not in the agent's dataclass, not on the wire."""

MAX_PRECISION = 0.5


def precision_value(value: Any) -> Any:
    """`precision` as a fraction from "2%", "2 %", 0.02 or "0.02"; refuses the ambiguous 2.

    A bare number of 1 or more could mean percent or a fraction gone wrong, so it is refused
    with both spellings rather than guessed. Runs before the type check, so the CLI (a
    string), a recipe (YAML: a string or a number) and Python all take the same spellings.
    """
    if value is None or isinstance(value, bool):
        return value
    hint = "write it as a percentage or a fraction, e.g. 2% or 0.02"
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number; {hint}") from None
        if percent:
            number /= 100
    elif isinstance(value, int | float):
        number, percent = float(value), False
    else:
        return value  # the type check says what is wrong
    if not percent and 1 <= number < 100 * MAX_PRECISION:
        raise ValueError(
            f"{number:g} is ambiguous; write {number:g}% or {number / 100:g} (a fraction)"
        )
    if not 0 < number < MAX_PRECISION:
        raise ValueError(f"must be above 0 and below 50 %; {hint}")
    return number


Precision = Annotated[float | None, BeforeValidator(precision_value)]


class BenchOptions(StageOptions):
    """How each model is measured on a device (every thread count; several models on one
    device interleaved in one group job unless `interleave` is off)."""

    stage = "bench"

    threads: list[ThreadCount] = Field(
        default_factory=lambda: [1],
        min_length=1,
        max_length=protocol.MAX_THREAD_COUNTS,
        description="Thread counts, e.g. 1,4.",
    )
    runs: int | None = Field(50, ge=1, le=1_000_000, description="Timed runs per thread count.")
    min_seconds: float | None = Field(
        None, gt=0, le=86400, description="Keep timing until this many seconds have passed."
    )
    warmup: int = Field(5, ge=0, le=100_000, description="Untimed runs first.")
    xnnpack: bool = Field(True, description="Use the XNNPACK delegate.")
    cpus: list[CpuNumber] | None = Field(
        None, min_length=1, max_length=4096, description="Pin to these CPUs, e.g. 0,1."
    )
    delay_ms: float = Field(0.0, ge=0, le=60_000, description="Pause between timed runs (ms).")
    inputs: str | None = Field(
        None,
        pattern=protocol.INPUTS_NAME_PATTERN.pattern.replace(r"\Z", "$"),
        description=".npz (x[, y]) or .npy to run instead of random data; y gives accuracy. "
        "(In a job: the file's name once admitted on the device, <sha256>.npz.)",
    )
    timeout_s: float = Field(600.0, gt=0, le=7 * 86400, description="Seconds allowed per job.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the random inputs.")
    runtime: Literal["ai_edge_litert", "tflite_runtime", "tensorflow"] | None = Field(
        None, description="Force this TFLite runtime on the device (default: the best one there)."
    )
    round_runs: int = Field(
        5,
        ge=1,
        le=100_000,
        description="Timed runs of each model per round when models are measured interleaved.",
    )
    precision: Precision = Field(
        None,
        description="Keep measuring until the 95 % interval of every median is within this "
        "(e.g. 2%), or max_seconds has passed.",
    )
    max_seconds: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="Cap on measuring per thread count with precision (default 60 s).",
    )
    rounds_per_process: int = Field(
        2,
        ge=1,
        le=100_000,
        description="In rounds: a fresh process per model every this many rounds, so one "
        "process's memory layout cannot pass for a speed difference.",
    )
    interleave: bool = Field(
        True,
        description="Measure several models on one device in alternating rounds of one job "
        "(drift hits all alike); off: one job per model, back to back.",
    )

    @model_validator(mode="after")
    def _runs_or_time(self) -> BenchOptions:
        if self.runs is None and self.min_seconds is None:
            raise ValueError("give runs or min_seconds")
        return self

    def to_protocol(self) -> protocol.BenchOptions:
        """The agent's dataclass, as a job carries it."""
        try:
            wire = self.model_dump(exclude=set(HOST_ONLY))
            return protocol.BenchOptions(**wire).validate("bench options")
        except protocol.ProtocolError as exc:
            raise UserError(str(exc), params=()) from None


class DeployOptions(StageOptions):
    """How the host works on the devices: how many at once, and whether to trust new keys."""

    stage = "deploy"

    parallel: int | None = Field(
        None,
        ge=1,
        le=MAX_PARALLEL,
        validation_alias=AliasChoices("parallel", "concurrency"),
        description=f"How many devices to work on at once (default: all of them, at most "
        f"{DEFAULT_PARALLEL_CAP}).",
    )
    accept_new_host_key: bool = Field(
        False,
        description="Trust an unknown host's key and record it in known_hosts (like "
        "StrictHostKeyChecking=accept-new). A changed key is always refused.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, values: Any) -> Any:
        if isinstance(values, dict) and "concurrency" in values:
            if "parallel" in values:
                raise ValueError("give parallel, not also its old name concurrency")
            warnings.warn(
                "deploy option concurrency is deprecated; use parallel", DeprecationWarning, 3
            )
        return values

    def connect(self) -> ConnectOptions:
        """The `ConnectOptions` a device session opens with."""
        from edgeprune.fleet.session import ConnectOptions

        return ConnectOptions(accept_new_host_key=self.accept_new_host_key)
