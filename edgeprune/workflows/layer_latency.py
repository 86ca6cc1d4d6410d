"""Each layer's share of a model's latency on a device, measured there through adapt's table.

The latency table (`adapt.table`) measures one-layer .tflite models, in the quantization
that ships, on the device, and keeps them per context (device, runtime and its version,
threads, quantization): a layer measured once, by `adapt --quantize int8` or an earlier
quant-report, is not measured again. A layer's share is its entry less the invoke overhead
every one-layer model carries, over the sum of the model's entries: the share of the time
the layers take, not of the whole model's p50 (which adds the invoke and the input and
output copies). Layers the converter fuses (BatchNormalization, a ReLU after a conv) and
free ones (reshapes) have no entry of their own: their time is in the layer before them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.fleet.inventory import Device
from edgeprune.results.store import ResultsStore

TABLE_RUNS = 100
"""Timed runs of each one-layer model (as adapt's default table runs)."""


@dataclass(frozen=True)
class ShareSettings:
    """The table's context and how long each entry is measured (`workflows.adapt.MeterSettings`)."""

    threads: int = 1
    quantize: str = "int8"
    table_runs: int = TABLE_RUNS
    runs: int = TABLE_RUNS


@dataclass
class LayerShares:
    """On one device: each layer's milliseconds (less the invoke) and share of their sum."""

    device: str
    threads: int
    quantize: str
    layer_ms: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    measured: int = 0  # table entries measured by this call (0: all came from the table)
    error: str | None = None

    def share_of(self, layers: list[str]) -> float | None:
        """The share of these layers together (an op's fused layers), None when unknown."""
        if self.error or not self.shares:
            return None
        return float(sum(self.shares.get(name, 0.0) for name in layers))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_shares(
    keras_model: Any,
    device: Device,
    store: ResultsStore,
    runtime: dict[str, Any],
    settings: ShareSettings | None = None,
    table_path: str | os.PathLike[str] | None = None,
) -> LayerShares:
    """Measure (or read from the table) every layer of `keras_model` on `device`.

    `runtime` is what the device's agent reported for an earlier measurement of this
    command (`runtime`, `runtime_version`), the rest of the table's key. A model the
    channel tracer cannot read, or a device that fails, gives a `LayerShares` with `error`
    (the report says why) rather than failing the whole command."""
    from edgeprune.adapt.signatures import layer_signatures
    from edgeprune.adapt.table import LatencyTable, default_table_path
    from edgeprune.adapt.widths import trace_model
    from edgeprune.workflows.adapt import DeviceMeter, table_context

    chosen = settings or ShareSettings()
    shares = LayerShares(device.name, chosen.threads, chosen.quantize)
    try:
        traced = trace_model(keras_model)
        signatures = layer_signatures(traced.graph, traced.keep_mask({}))
        table = LatencyTable(
            table_path or default_table_path(), table_context(device.name, runtime, chosen)
        )
        shares.measured = table.fill(
            signatures, DeviceMeter(device, store, chosen).table, chosen.quantize
        )
    except EdgepruneError as exc:
        shares.error = str(exc)
        return shares
    overhead = table.overhead_ms
    for signature in signatures:
        spent = max(table.entry(signature).median_ms - overhead, 0.0)
        shares.layer_ms[signature.path] = shares.layer_ms.get(signature.path, 0.0) + spent
    total = sum(shares.layer_ms.values())
    if total > 0:
        shares.shares = {name: ms / total for name, ms in shares.layer_ms.items()}
    return shares
