"""The package's layers point one way.

Reads every module of ``airflow_mbt`` with ``ast`` and collects its imports of other
``airflow_mbt`` modules, including imports inside functions (only ``if TYPE_CHECKING:`` blocks
are left out: they never run). A *unit* is a sub-package (``runtime``, ``steps``, …) or a
top-level module (``manifest``, ``errors``, …). Asserts:

- no cycle between units (not even through function-level imports);
- authoring (``project``, ``pipeline``) never imports execution (``runtime``, ``steps``,
  ``operators``, ``dag_factory``, ``manifests``), and ``project`` never imports ``pipeline``;
- the bottom modules (``constants``, ``errors``, ``step_specs``) import nothing above them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import airflow_mbt

PACKAGE = Path(airflow_mbt.__file__).resolve().parent
AUTHORING = {"project", "pipeline"}
EXECUTION = {"runtime", "steps", "operators", "dag_factory", "manifests"}
BOTTOM = {"constants": set(), "errors": {"constants"}, "step_specs": {"constants"}}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "airflow_mbt":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def unit_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "scaffold" in path.relative_to(PACKAGE).parts[:1] and "files" in path.parts:
            continue  # project template files, not package code
        modules[_module_name(path)] = path
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        src = _unit(module)
        for target in _imports(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"):
            dst = _unit(target)
            if dst and src and dst != src and dst != "__init__" and (target in modules or dst in {
                    _unit(m) for m in modules}):
                edges[src].add(dst)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            strong(v)
    return out


def test_the_graph_reader_sees_function_level_imports():
    tree = ast.parse("def f():\n    from airflow_mbt.runtime import executor\n")
    assert "airflow_mbt.runtime.executor" in _imports(tree, "airflow_mbt.x", False)
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import airflow_mbt.steps\n")
    assert "airflow_mbt.steps" not in _imports(guarded, "airflow_mbt.x", False)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_cycle_between_units():
    edges = unit_graph()
    cycles = _cycles(edges)
    detail = {u: sorted(edges[u] & set(c)) for c in cycles for u in c}
    assert cycles == [], f"import cycles between units: {cycles}; edges inside them: {detail}"


def test_authoring_never_imports_execution():
    edges = unit_graph()
    bad = {u: sorted(edges.get(u, set()) & EXECUTION) for u in AUTHORING if edges.get(u, set()) & EXECUTION}
    assert bad == {}
    assert "pipeline" not in edges.get("project", set()), "project/ must not import pipeline/"


def test_bottom_modules_import_nothing_above_them():
    edges = unit_graph()
    for unit, allowed in BOTTOM.items():
        assert edges.get(unit, set()) <= allowed, (unit, sorted(edges.get(unit, set()) - allowed))
