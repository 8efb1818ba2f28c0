"""The layout of ARCHITECTURE.md, read from the code's own imports: arrows point down, no file imports one that imports
it back, no import is hidden inside a function, and no file grows past the house's 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "metropoints"

# Each package and what it may import (besides itself): ARCHITECTURE.md's arrows. The top floor may import anything.
ARROWS: dict[str, set[str]] = {
    "core": set(),
    "accrual": {"core"},
    "marketplace": {"core"},
    "campaigns": {"marketplace", "accrual", "core"},
    "redemption": {"campaigns", "marketplace", "accrual", "core"},
    "settlement": {"redemption", "campaigns", "marketplace", "core"},
    "kiosk": {"redemption", "campaigns", "marketplace", "accrual", "core"},
    "riders_api": {"redemption", "campaigns", "marketplace", "accrual", "core"},
    "reports": {"settlement", "redemption", "campaigns", "marketplace", "accrual", "core"},
    "migrations": {"core"},
}
TOP = {"app", "demo", "cron_config"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level?) for each import of one of ours in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    # Imports guarded by `if TYPE_CHECKING:` at module level count as module-level.
    for node in tree.body:
        if isinstance(node, ast.If):
            top_level.update(id(child) for child in node.body)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c` imports the module a.b.c when there is one, else names of a.b
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            if target == "metropoints" or target.startswith("metropoints."):
                found.append((target, node.lineno, id(node) in top_level))
    return found


def room(module: str) -> str:
    """The package (room) of a dotted module name: metropoints.<room>...; the top floor's files are their own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    """Each module's imports of our modules."""
    known = set(modules())
    return {name: imports_of(path, name, known) for name, path in modules().items()}


def test_arrows_point_down():
    """No package imports one above it, and core imports no domain package (ARCHITECTURE.md's arrows)."""
    wrong = []
    for name, edges in graph().items():
        source = room(name)
        if source in TOP or source == "":
            continue
        assert source in ARROWS, f"{name}: package {source!r} is not in ARCHITECTURE.md's arrows"
        for target, line, _ in edges:
            destination = room(target)
            if destination and destination != source and destination not in ARROWS[source]:
                wrong.append(f"{name}:{line} imports {target} ({source} -> {destination})")
    assert wrong == [], "\n".join(wrong)


def test_no_import_circles_between_files():
    """No two files import each other, directly or around a longer circle."""
    edges = {name: {target for target, _, _ in found if target in modules() and target != name}
             for name, found in graph().items()}
    # A module's package __init__ runs before it: an import of a package is an import of its __init__ only.
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert circles == [], "\n".join(circles)


def test_no_imports_inside_functions():
    """Every import of our own modules is at the top of its file, where a circle would show (none hide in a
    function)."""
    hidden = [f"{name}:{line} imports {target}" for name, found in graph().items()
              for target, line, at_top in found if not at_top and ".migrations." not in name]
    assert hidden == [], "\n".join(hidden)


def test_files_stay_short():
    """No file of the package passes 400 lines (migrations aside): a longer one is two files."""
    sizes = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
             for path in sorted(PACKAGE.rglob("*.py")) if "migrations" not in path.parts}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_check_sees_a_wrong_arrow(tmp_path):
    """The arrow check is not vacuous: an import of a package above is found as one."""
    probe = tmp_path / "probe.py"
    probe.write_text("from metropoints.settlement import operations\n\ndef f():\n    import metropoints.app\n")
    found = imports_of(probe, "metropoints.accrual.probe", set(modules()))
    assert ("metropoints.settlement.operations", 1, True) in found
    assert ("metropoints.app", 4, False) in found
    assert room("metropoints.settlement.operations") not in ARROWS["accrual"]
