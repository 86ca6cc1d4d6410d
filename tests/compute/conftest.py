"""Executor tests: real process pools, a real local Dask cluster, the real `local` device."""

from __future__ import annotations

from support.fixtures import isolated_host_state, tiny_tflite  # noqa: F401
