"""Where edgeprune keeps its own files on this host, in one place (XDG variables respected).

Kept apart from the fleet so that the results store finds its default file without
importing SSH code.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Where edgeprune keeps its own state on this host (XDG_DATA_HOME respected)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "edgeprune"


def cache_dir() -> Path:
    """Where edgeprune keeps files it can make again (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeprune"
