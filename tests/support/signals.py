"""Children that a test interrupts start with Ctrl-C as a terminal gives it.

A process started with SIGINT ignored passes that on through exec, and Python then never
raises KeyboardInterrupt in it: a pytest worker that inherited or was left with SIGINT
ignored made the Ctrl-C tests hang or finish normally (seen in CI). Resetting it in the
child, before exec, tests our handling and not the runner's.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn`: SIGINT back to its default action and unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
