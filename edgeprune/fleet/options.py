"""The bench and deploy stages' options, defined once for the CLI, recipes and Python callers.

`BenchOptions` mirrors the agent's own `device_agents.protocol.BenchOptions` (the agent
cannot import pydantic, so it keeps its dataclass; a test checks the two agree) and turns
into it with `to_protocol()` for the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from device_agents import protocol
from edgeprune.errors import UserError
from edgeprune.options import StageOptions

if TYPE_CHECKING:
    from edgeprune.fleet.session import ConnectOptions

ThreadCount = Annotated[int, Field(ge=1, le=protocol.MAX_THREADS)]
CpuNumber = Annotated[int, Field(ge=0, lt=4096)]


class BenchOptions(StageOptions):
    """How each model is measured on a device (one job per model, every thread count)."""

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

    @model_validator(mode="after")
    def _runs_or_time(self) -> BenchOptions:
        if self.runs is None and self.min_seconds is None:
            raise ValueError("give runs or min_seconds")
        return self

    def to_protocol(self) -> protocol.BenchOptions:
        """The agent's dataclass, as a job carries it."""
        try:
            return protocol.BenchOptions(**self.model_dump()).validate("bench options")
        except protocol.ProtocolError as exc:
            raise UserError(str(exc), params=()) from None


class DeployOptions(StageOptions):
    """How the host works on the devices: how many at once, and whether to trust new keys."""

    stage = "deploy"

    concurrency: int = Field(8, ge=1, le=64, description="How many devices to work on at once.")
    accept_new_host_key: bool = Field(
        False,
        description="Trust an unknown host's key and record it in known_hosts (like "
        "StrictHostKeyChecking=accept-new). A changed key is always refused.",
    )

    def connect(self) -> ConnectOptions:
        """The `ConnectOptions` a device session opens with."""
        from edgeprune.fleet.session import ConnectOptions

        return ConnectOptions(accept_new_host_key=self.accept_new_host_key)
