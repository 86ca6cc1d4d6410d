"""The warning catalogue covers every code the agent can emit, each with plain words and a fix."""

from __future__ import annotations

import ast
from pathlib import Path

from edgeprune.warning_codes import CATALOGUE, explain, legend

REPO = Path(__file__).resolve().parents[1]


def emitted_codes() -> dict[str, str]:
    """code -> file:line of every `Warning_("code", ...)` / `Warning_(code="...")` in the agent."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "device_agents").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Warning_"
            ):
                continue
            candidates = list(node.args[:1]) + [k.value for k in node.keywords if k.arg == "code"]
            for arg in candidates:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_agent_code_is_in_the_catalogue() -> None:
    codes = emitted_codes()
    # the parse itself must find the codes we know the agent emits, or it proves nothing
    assert {"high_spread", "throttled", "sparse_path_unavailable"} <= set(codes)
    missing = {code: where for code, where in codes.items() if code not in CATALOGUE}
    assert not missing, f"add these to edgeprune/warning_codes.py: {missing}"


def test_every_entry_has_plain_words_and_a_fix() -> None:
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert len(entry.meaning) > 30 and len(entry.fix) > 15, code
        assert entry.line().startswith(f"{code}: ") and "Fix: " in entry.line()


def test_unknown_code_still_explained_and_legend_dedupes() -> None:
    unknown = explain("brand_new_code")
    assert unknown.code == "brand_new_code" and unknown.fix
    assert [w.code for w in legend(["throttled", "high_spread", "throttled", ""])] == [
        "throttled",
        "high_spread",
    ]
