"""`edgeprune-agent`: the on-device command (not yet implemented)."""

from __future__ import annotations

import sys


def main() -> None:
    print("edgeprune-agent: not yet implemented", file=sys.stderr)
    sys.exit(1)
