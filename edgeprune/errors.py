"""The one exception family a user ever sees.

Library code raises `UserError` (or a subclass) for anything the user can fix: a missing
file, a bad option, data that does not fit. The message names parameters as a Python
caller spells them (`max_layer_sparsity`) and lists them in `params`; the CLI prints the
message with each of those names turned into its flag (`--max-layer-sparsity`), on one line
on stderr with exit code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


class EdgepruneError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str = "", *, params: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.params: tuple[str, ...] = tuple(params)

    def in_flags(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with every parameter in `params` spelled as its CLI flag.

        `flags` maps a parameter to its flag where the two differ (`output` -> `-o`);
        otherwise `max_layer_sparsity` becomes `--max-layer-sparsity`. Where the name is
        also an ordinary word of the message ("calibration data"), the message writes the
        name in backticks (`` `data` ``) and only those are turned into flags.
        """
        text = str(self)
        for param in sorted(set(self.params), key=len, reverse=True):
            flag = (flags or {}).get(param) or "--" + param.replace("_", "-")
            quoted = f"`{param}`"
            if quoted in text:  # the message marks where the name is a name, not a word
                text = text.replace(quoted, flag)
            else:
                text = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, text)
        return text


class UserError(EdgepruneError):
    """A mistake in the user's input: one line that names the culprit and the fix."""

    exit_code = 2


class NotAModelError(UserError):
    """A file exists but is not a model this tool can read."""


class DeviceError(EdgepruneError):
    """A device failed (unreachable, refused, out of disk); others may still succeed."""

    exit_code = 3
