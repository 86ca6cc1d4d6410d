"""Keys for tests/.cache artifacts: a model is rebuilt when the code that builds it changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def source_key(*relative: str) -> str:
    """16 hex digits of the sha256 over these repository files' bytes."""
    digest = hashlib.sha256()
    for name in relative:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]
