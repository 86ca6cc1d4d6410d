"""Read a recipe's YAML and remember the line of every key and item, so errors can name it.

PyYAML's `safe_load` forgets where things were. Here the document is composed into nodes
first, then constructed, and every path (``("steps", "prune", "sparsity")``, list items by
index) is mapped to its 1-based line. Duplicate keys, which `safe_load` silently resolves
to the last one, are an error. Floats written as ``1e-3`` (YAML 1.2; a string to YAML 1.1)
are read as numbers, since that is what anyone writing a learning rate means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeprune.errors import UserError
from edgeprune.yaml_budget import MAX_ECHO_CHARS, check_alias_budget, echo

PathKey = tuple[Any, ...]
_PLAIN_KEY = re.compile(r"[\w.+-]+\Z")


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as 1e-3."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?\d+(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789"),
)


@dataclass
class LineIndex:
    """path -> line (1-based) of every mapping key and list item in one YAML file."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of `path`, or of its longest prefix that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def where(self, path: PathKey) -> str:
        """'recipe.yaml:12' (or just the file when nothing is known)."""
        line = self.line_of(path)
        return f"{self.file}:{line}" if line else self.file

    def error(self, path: PathKey, message: str, shown: PathKey | None = None) -> UserError:
        """A UserError that starts with file:line (of `path`) and the dotted path (`shown`)."""
        dotted = dotted_path(path if shown is None else shown)
        prefix = f"{self.where(path)}: {dotted}: " if dotted else f"{self.where(path)}: "
        return UserError(prefix + message)


def dotted_path(path: PathKey) -> str:
    """('steps', 'prune', 'sparsity', 1) -> 'steps.prune.sparsity[1]'."""
    text = ""
    for part in path:
        if isinstance(part, str) and len(part) > MAX_ECHO_CHARS:  # a hostile key: not whole
            text += f"[{echo(part)}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.match(str(part)):  # a name with spaces or control characters
            text += f"[{str(part)!r}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_yaml_with_lines(path: str | Path) -> tuple[Any, LineIndex]:
    """Parse `path`; return the plain data and where each part of it was written."""
    source = Path(path)
    label = str(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"recipe {label!r} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"recipe {label!r} is a directory; give a .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"recipe {label!r} cannot be read: {exc}") from None
    return parse_yaml_with_lines(text, label)


def parse_yaml_with_lines(text: str, label: str) -> tuple[Any, LineIndex]:
    """Parse YAML text (the file name is only for messages)."""
    index = LineIndex(label)
    try:
        # The reader checks the characters as soon as it is built: inside the try.
        loader = _RecipeLoader(text)
    except yaml.reader.ReaderError as exc:
        raise UserError(
            f"{label}: character {exc.character!r} (position {exc.position}) is not allowed in "
            "YAML; remove it"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, index
        check_alias_budget(node, label)
        _index_node(loader, node, (), index)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{label}:{mark.line + 1}" if mark is not None else label
        problem = exc.problem or exc.context or "syntax error"
        raise UserError(f"{line}: not valid YAML ({problem}); fix the syntax") from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"{label}: not valid YAML ({reason}); fix the syntax") from None
    finally:
        loader.dispose()
    return data, index


MAX_DEPTH = 32


def _index_node(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: PathKey,
    index: LineIndex,
    parents: tuple[int, ...] = (),
) -> None:
    if id(node) in parents or len(parents) > MAX_DEPTH:
        line = node.start_mark.line + 1
        what = (
            "refers to itself (a recursive alias)"
            if id(node) in parents
            else "is nested too deeply"
        )
        raise UserError(f"{index.file}:{line}: {dotted_path(path) or 'the recipe'} {what}")
    parents = (*parents, id(node))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # merge keys (<<) become ordinary entries
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise UserError(
                    f"{index.file}:{line}: {dotted_path(path) or 'top level'}: a key must be "
                    "a plain name, not a list or mapping"
                )
            if key in seen:
                where = dotted_path((*path, key))
                raise UserError(
                    f"{index.file}:{line}: {where}: key {echo(key)} is given twice (first at line "
                    f"{seen[key]}); keep one"
                )
            seen[key] = line
            child = (*path, key)  # a name, not `lines[(*path, key)]`: mypy reads that as 3.11-only
            index.lines[child] = line
            _index_node(loader, value_node, child, index, parents)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            child = (*path, position)
            index.lines[child] = item.start_mark.line + 1
            _index_node(loader, item, child, index, parents)
    if not path:
        index.lines.setdefault((), node.start_mark.line + 1)


__all__ = ["LineIndex", "PathKey", "dotted_path", "load_yaml_with_lines", "parse_yaml_with_lines"]
