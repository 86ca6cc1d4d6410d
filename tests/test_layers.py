"""The package's layers, checked from the source: lower parts never import higher ones.

Every module of edgeprune/ and device_agents/ is parsed with `ast` (imports at module level
and inside functions alike, relative ones resolved). A module belongs to a part
(edgeprune/<part>/... or edgeprune/<module>.py) and a part to a layer. The test fails,
naming file:line and both parts, on an import from a lower layer into a higher one, on a
cycle between parts of one layer, on a cycle between modules of `cli/`, on any import of
edgeprune from device_agents (the agent ships alone to boards), and on a part no layer
holds (a new package must be placed here first).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Violations allowed for now, as (importer module, imported module): none. An entry that no
# longer happens fails the test too, so the set only ever shrinks.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "core",
        frozenset(
            {
                "errors",
                "_tf",
                "files",
                "options",
                "artifacts",
                "manifest",
                "data",
                "models",
                "layer_kinds",
                "keras_stats",
                "qat_layers",
                "demo",
                "paths",
                "html",
                "yaml_budget",
                "stats",
                "progress",
                "warning_codes",
                "text",
                "tasks",
                "user_code",
                "coco",
                "__init__",
            }
        ),
    ),
    ("formats", frozenset({"tflite"})),
    ("transforms", frozenset({"prune", "channels", "xnnpack", "adapt", "quantize"})),
    ("compute", frozenset({"compute"})),
    ("fleet", frozenset({"fleet"})),
    ("results", frozenset({"results"})),
    ("workflows", frozenset({"workflows", "recipes"})),
    ("api", frozenset({"api"})),
    ("cli", frozenset({"cli"})),
)
LAYER_OF = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}
LAYER_NAME = {part: name for name, parts in LAYERS for part in parts}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (the deepest module the statement names)
    file: Path
    line: int
    in_lazy_getattr: bool = False  # inside the package's `__getattr__` (the lazy public API)


@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    where: str  # file:line
    why: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.importer, self.imported)

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted name -> file of every module under `root`'s `packages`."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def collect_imports(root: Path, packages: tuple[str, ...]) -> list[Import]:
    """Every import statement of every module, resolved to the module it names."""
    modules = module_names(root, packages)
    found: list[Import] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        lazy_lines = _lazy_getattr_lines(tree) if name == packages[0] else set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, name, is_package, modules):
                found.append(
                    Import(
                        name,
                        target,
                        path.relative_to(root),
                        node.lineno,
                        node.lineno in lazy_lines,
                    )
                )
    return found


def _lazy_getattr_lines(tree: ast.Module) -> set[int]:
    """Lines of the package's `__getattr__` and its `if TYPE_CHECKING:` block (never run)."""
    lines: set[int] = set()
    for node in tree.body:
        lazy = isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        typing_only = (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        )
        if lazy or typing_only:
            lines.update(n.lineno for n in ast.walk(node) if hasattr(n, "lineno"))
    return lines


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    # `from pkg import sub` names the module pkg.sub when there is one
    return [
        f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
        for alias in node.names
    ]


def part_of(module: str) -> str:
    """edgeprune.<part>.x -> part; edgeprune.<module> -> module; edgeprune -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def check_layers(root: Path) -> list[Violation]:
    """Every layering rule broken under `root` (a checkout, or a fake tree in a test)."""
    packages = ("edgeprune", "device_agents")
    violations: list[Violation] = []
    placed: set[str] = set()
    for module, path in module_names(root, packages[:1]).items():
        part = part_of(module)
        if part not in LAYER_OF and part not in placed:
            placed.add(part)
            violations.append(
                Violation(
                    module,
                    module,
                    f"{path.relative_to(root)}:1",
                    f"part {part!r} is in no layer: add it to LAYERS in tests/test_layers.py",
                )
            )
    same_layer: dict[tuple[str, str], list[Import]] = {}
    cli_edges: dict[tuple[str, str], list[Import]] = {}
    for imp in collect_imports(root, packages):
        where = f"{imp.file}:{imp.line}"
        if imp.importer.split(".")[0] == "device_agents":
            if imp.imported.split(".")[0] == "edgeprune":
                violations.append(
                    Violation(
                        imp.importer,
                        imp.imported,
                        where,
                        f"device_agents imports {imp.imported}: the agent ships alone to "
                        "boards and may import nothing from edgeprune",
                    )
                )
            continue
        if imp.imported.split(".")[0] != "edgeprune":
            continue
        src, dst = part_of(imp.importer), part_of(imp.imported)
        if src not in LAYER_OF or dst not in LAYER_OF:
            continue  # reported above, once per part
        if imp.in_lazy_getattr and src == "__init__" and dst == "api":
            continue  # the package's lazy public API is the top, whatever its file's place
        if src != dst and LAYER_OF[src] < LAYER_OF[dst]:
            violations.append(
                Violation(
                    imp.importer,
                    imp.imported,
                    where,
                    f"{src} ({LAYER_NAME[src]}) imports {dst} ({LAYER_NAME[dst]}): a lower "
                    "layer may not import a higher one",
                )
            )
        elif src != dst and LAYER_OF[src] == LAYER_OF[dst]:
            same_layer.setdefault((src, dst), []).append(imp)
        if src == dst == "cli" and imp.importer != imp.imported:
            cli_edges.setdefault((imp.importer, imp.imported), []).append(imp)
    for (src, dst), found in same_layer.items():
        if (src, dst) in _cycle_edges(set(same_layer)):
            violations += [
                Violation(
                    i.importer,
                    i.imported,
                    f"{i.file}:{i.line}",
                    f"{src} imports {dst} and {dst} reaches {src} back: parts of one layer "
                    "may depend one way only",
                )
                for i in found
            ]
    for (src, dst), found in cli_edges.items():
        if (src, dst) in _cycle_edges(set(cli_edges)):
            violations += [
                Violation(
                    i.importer,
                    i.imported,
                    f"{i.file}:{i.line}",
                    f"{src} imports {dst} and {dst} reaches {src} back: cli modules may not "
                    "import each other in a circle",
                )
                for i in found
            ]
    return violations


def _cycle_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges that lie on some cycle: both ends in one strongly connected component."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    reach = {node: _reachable(graph, node) for node in graph}
    return {(a, b) for a, b in edges if a in reach[b]}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_breaks_the_layers() -> None:
    violations = check_layers(REPO)
    new = [v for v in violations if v.key not in KNOWN_VIOLATIONS]
    assert not new, "layering broken:\n" + "\n".join(str(v) for v in new)
    stale = KNOWN_VIOLATIONS - {v.key for v in violations}
    assert not stale, f"fixed, so remove them from KNOWN_VIOLATIONS: {sorted(stale)}"


def test_the_checker_catches_planted_violations(tmp_path: Path) -> None:
    files = {
        "edgeprune/__init__.py": (
            "def __getattr__(name):\n    from edgeprune.api.verbs import prune_model\n"
            "    return prune_model\n"
        ),
        "edgeprune/errors.py": "",
        "edgeprune/api/__init__.py": "",
        "edgeprune/api/verbs.py": "from edgeprune.cli import app\n",  # upward: api -> cli
        "edgeprune/tflite/__init__.py": "",
        "edgeprune/tflite/reader.py": (
            "from edgeprune.errors import UserError\n"  # downward: fine
            "def f():\n    from ..xnnpack import verdicts\n"  # upward, in a function
        ),
        "edgeprune/prune/__init__.py": "",
        "edgeprune/prune/masks.py": "import edgeprune.xnnpack.verdicts\n",
        "edgeprune/xnnpack/__init__.py": "",
        "edgeprune/xnnpack/verdicts.py": "def g():\n    from ..prune import masks\n",
        "edgeprune/cli/__init__.py": "",
        "edgeprune/cli/app.py": "from . import bench\nfrom edgeprune.tflite import reader\n",
        "edgeprune/cli/bench.py": "from edgeprune.cli import app\n",
        "edgeprune/gadgets/__init__.py": "",
        "edgeprune/gadgets/wheel.py": "import json\n",  # placed nowhere, imports nothing of ours
        "device_agents/__init__.py": "",
        "device_agents/bench.py": "from . import tools\nimport edgeprune.errors\n",
        "device_agents/tools.py": "",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    violations = check_layers(tmp_path)
    assert {v.key for v in violations} == {
        ("edgeprune.api.verbs", "edgeprune.cli.app"),
        ("edgeprune.tflite.reader", "edgeprune.xnnpack.verdicts"),
        ("edgeprune.prune.masks", "edgeprune.xnnpack.verdicts"),
        ("edgeprune.xnnpack.verdicts", "edgeprune.prune.masks"),
        ("edgeprune.cli.app", "edgeprune.cli.bench"),
        ("edgeprune.cli.bench", "edgeprune.cli.app"),
        ("edgeprune.gadgets", "edgeprune.gadgets"),  # its first module names the part
        ("device_agents.bench", "edgeprune.errors"),
    }
    messages = "\n".join(str(v) for v in violations)
    assert "edgeprune/tflite/reader.py:3: tflite (formats) imports xnnpack (transforms): a " in (
        messages
    )
    assert "edgeprune/gadgets/__init__.py:1: part 'gadgets' is in no layer" in messages
