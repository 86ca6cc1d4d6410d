"""The one exception family a user ever sees.

Library code raises `UserError` (or a subclass) for anything the user can fix: a missing
file, a bad option, data that does not fit. The CLI turns it into one line on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgepruneError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UserError(EdgepruneError):
    """A mistake in the user's input: one line that names the culprit and the fix."""

    exit_code = 2


class NotAModelError(UserError):
    """A file exists but is not a model this tool can read."""


class DeviceError(EdgepruneError):
    """A device failed (unreachable, refused, out of disk); others may still succeed."""

    exit_code = 3
