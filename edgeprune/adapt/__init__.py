"""Platform-aware pruning: NetAdapt over a latency table measured on the device.

The pieces below the fleet: options, layer signatures, the SQLite lookup table, the loop and
its on-disk iterations. `edgeprune.workflows.adapt` wires them to a device and a store.
"""

from edgeprune.adapt.options import AdaptOptions

__all__ = ["AdaptOptions"]
