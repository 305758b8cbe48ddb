"""No import cycles between tierwise modules: dependencies point one way.

The graph holds every `import` of a tierwise module, at module level or inside a
function (a deferred import is still a dependency), except under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tierwise

ROOT = Path(tierwise.__file__).parent
# Module pairs allowed to import each other: none.
KNOWN: set[frozenset[str]] = set()
Graph = dict[str, set[str]]


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("tierwise", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    """The tierwise modules an import statement names: `from p import m` counts the
    module p.m when there is one, else p."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    named = [f"{base}.{alias.name}" for alias in node.names]
    return [m if m in modules else base for m in named if m in modules or base in modules]


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
                continue
            edges.update(_imported(child, package, modules))
            pending.append(child)
    edges.discard(name)
    return edges


def import_graph() -> Graph:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_sees_deferred_imports_and_skips_type_checking_ones() -> None:
    graph = import_graph()
    assert "tierwise.drift.monitor" in graph["tierwise.experiments.monitor"]  # in a function
    assert "tierwise.gateway" not in graph["tierwise.drift.apply"]  # under TYPE_CHECKING
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_between_tierwise_modules() -> None:
    graph = import_graph()
    for source, targets in graph.items():
        graph[source] = {t for t in targets if frozenset({source, t}) not in KNOWN}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
