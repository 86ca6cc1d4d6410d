"""`ComputeOptions`: where a run's independent host work goes (the recipe's `compute:`
section, `run --cluster` and the `cluster=` keyword).

`--cluster` itself (its type, `ClusterAddress`, which checks the address, and its help) is
defined once in `edgeprune.options`, so `adapt` takes the same option from a lower layer.
"""

from __future__ import annotations

from edgeprune.options import ClusterAddress, StageOptions, cluster_field

__all__ = ["ClusterAddress", "ComputeOptions"]


class ComputeOptions(StageOptions):
    """None: build here, one stage after another (today's behaviour)."""

    stage = "compute"

    cluster: ClusterAddress | None = cluster_field()
