"""The agent's two kinds of failure, each mapped to the contract's exit code."""

from __future__ import annotations


class AgentError(Exception):
    """A failure the command reports as one line `error: ...` and exit code 1."""

    exit_code = 1


class BadInput(AgentError):
    """The caller asked for something impossible (bad option, file, id): exit code 2."""

    exit_code = 2


class NotFound(AgentError):
    """Not there (yet): no such result or job. Exit code 1, like any failure."""

    exit_code = 1
