"""The import graph of clp_alpm, computed from the source: layers point down, no cycles.

Every import counts, the ones inside functions too; only imports under `if TYPE_CHECKING:`
are left out (they never run). See docs/ARCHITECTURE.md for the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.kits.paths import REPO

PACKAGE = REPO / "clp_alpm"

# Higher imports lower, never the other way; packages of one rank do not import each other.
RANKS = {"cli": 4, "ops": 3, "store": 2, "system": 2, "formats": 1}
TOP_RANK = 0


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        found = set()
        for alias in node.names:
            submodule = f"{node.module}.{alias.name}"
            found.add(submodule if submodule in known else node.module)
        return {name for name in found if name in known}
    return set()


def imports_of(tree: ast.AST, known: set[str]) -> set[str]:
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        found |= _imported(node, known)
        pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {
        name: imports_of(ast.parse(path.read_text(encoding="utf-8")), known) - {name}
        for name, path in files.items()
    }


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANKS:
        return parts[1], RANKS[parts[1]]
    return "top", TOP_RANK


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None."""
    done: set[str] = set()
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        on_path = {start}
        while stack:
            node, children = stack[-1]
            if not children:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            child = children.pop()
            if child in on_path:
                return path[path.index(child) :] + [child]
            if child not in done:
                stack.append((child, sorted(graph[child])))
                path.append(child)
                on_path.add(child)
    return None


GRAPH = import_graph()


def test_the_graph_sees_the_package():
    assert "clp_alpm.cli.main" in GRAPH and "clp_alpm.ops.session" in GRAPH
    assert "clp_alpm.ops.session" in GRAPH["clp_alpm.ops.startup"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    package, rank = layer_of(module)
    upward = []
    for target in sorted(GRAPH[module]):
        target_package, target_rank = layer_of(target)
        if target_rank > rank or (target_rank == rank and target_package != package):
            upward.append(f"{target} ({target_package})")
    assert not upward, f"{module} ({package}) imports up or sideways: {', '.join(upward)}"


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_what_they_look_for():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import clp_alpm.cli.main\n"
        "def f():\n    from clp_alpm.ops import session\n"
    )
    known = {"clp_alpm.cli.main", "clp_alpm.ops.session", "clp_alpm.ops"}
    assert imports_of(tree, known) == {"clp_alpm.ops.session"}


def test_every_init_is_empty():
    for init in PACKAGE.rglob("__init__.py"):
        text = init.read_text(encoding="utf-8").strip()
        assert init == PACKAGE / "__init__.py" or not text, f"{init} is not empty"


def _test_imports(tree: ast.AST) -> list[str]:
    """The modules a file imports, its function-local imports included."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _uses_sys_path(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in ast.walk(tree)
    )


def test_the_tests_are_a_package_that_imports_only_kits():
    """Shared test code lives in tests/kits; no test module imports another, none edits
    sys.path, and every directory of tests/ is a package."""
    tests = REPO / "tests"
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _test_imports(tree):
            leaf = name.rsplit(".", 1)[-1]
            bare_kit = (tests / "kits" / f"{name.split('.')[0]}.py").exists()
            if leaf.startswith("test_") or leaf == "conftest" or bare_kit:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
        if _uses_sys_path(tree):
            offenders.append(f"{path.relative_to(REPO)} uses sys.path")
    for directory in [tests, *(p for p in tests.rglob("*") if p.is_dir())]:
        if directory.name != "__pycache__" and not (directory / "__init__.py").exists():
            offenders.append(f"{directory.relative_to(REPO)} is not a package")
    assert offenders == []
