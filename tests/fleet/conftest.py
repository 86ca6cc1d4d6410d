"""Fleet tests: real sshd devices (tests/support), real files, real SQLite."""

from __future__ import annotations

from support.fixtures import (  # noqa: F401
    isolated_host_state,
    large_tflite,
    sshd_fleet,
    tiny_tflite,
    tiny_tflite_b,
)
