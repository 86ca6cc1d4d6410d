"""Limits on what a YAML file may make the host build: aliases, and values echoed back.

YAML aliases share one node, so nine levels of ten `*a` each are 90 nodes in the file and
10**9 once walked as a tree (by a validator, an indexer, `json.dumps`). The composed node
graph is measured before anything walks it; a file past the budget is refused.
"""

from __future__ import annotations

from typing import Any

import yaml

from edgeprune.errors import UserError

MAX_EXPANDED_NODES = 100_000
"""Nodes a document may expand to with its aliases followed: far above any real recipe."""
MAX_ECHO_CHARS = 80


def check_alias_budget(node: yaml.Node, label: str, limit: int = MAX_EXPANDED_NODES) -> None:
    """UserError (file:line) if `node` expands to more than `limit` nodes through aliases."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in active:  # a recursive alias: the indexer names it
            return 1
        active.add(key)
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                line = current.start_mark.line + 1
                raise UserError(
                    f"{label}:{line}: its aliases (*name) expand to more than {limit:,} values; "
                    "write the repeated parts out or use fewer levels of aliases"
                )
        active.discard(key)
        sizes[key] = total
        return total

    size(node)


def echo(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """`repr(value)` for an error message, cut to `limit` characters (a value may be huge)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def load_bounded_yaml(text: str, label: str) -> Any:
    """`yaml.safe_load`, refusing an alias bomb (UserError) before it is expanded."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_alias_budget(node, label)
        return loader.construct_document(node)
    finally:
        loader.dispose()
