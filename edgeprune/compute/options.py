"""`ComputeOptions`: where a run's independent host work goes (the one definition of
`--cluster`, the recipe's `compute:` section and the `cluster=` keyword).

The address check sits on the field's type (`ClusterAddress`), so a recipe section built
from these fields checks it too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from edgeprune.compute.executor import address_problem
from edgeprune.options import StageOptions


def _an_address(value: str) -> str:
    problem = address_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


ClusterAddress = Annotated[str, AfterValidator(_an_address)]


class ComputeOptions(StageOptions):
    """None: build here, one stage after another (today's behaviour)."""

    stage = "compute"

    cluster: ClusterAddress | None = Field(
        None,
        description="Build the variants' host stages on the workers of the Dask scheduler at "
        "this address (tcp://HOST:PORT; needs the cluster extra and the workdir on a filesystem "
        "every worker shares); default: here, one after another.",
    )
