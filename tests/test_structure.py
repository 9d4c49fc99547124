"""The layers stay a tree: no module imports, directly or round about, a module that imports it
back (at the top, inside a function or for type checking alike)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kubekit", "manager", "kruisectl", "localcluster")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that ``name`` imports anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n in known and n != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_cycles_finds_round_trips(graph, expected):
    assert cycles(graph) == expected


def test_the_project_has_no_import_cycles():
    found = modules()
    graph = {name: imported(name, path, set(found)) for name, path in found.items()}
    assert cycles(graph) == []


def test_only_the_command_line_imports_click():
    """The library raises its own errors (kruisectl.errors.KruisectlError) and renders text;
    flags, prompts and exits are the command line's (kruisectl/cli.py, kruisectl/commands/).
    The localcluster harness parses its own command line with argparse. bench/ is left out: it
    may use click.testing.CliRunner, which runs kruisectl's own command line."""
    found = modules()
    offenders = sorted(
        name for name, path in found.items()
        if name.split(".")[0] in ("kubekit", "manager", "kruisectl", "localcluster")
        and not (name == "kruisectl.cli" or name.startswith("kruisectl.commands"))
        and any(n == "click" or n.startswith("click.") for n in _all_imports(path)))
    assert offenders == []


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("name", sorted(n for n in modules() if not n.endswith("__main__")))
def test_every_module_imports(name: str):
    """A name moved or removed elsewhere breaks the import here, not in a cluster test later."""
    __import__("importlib").import_module(name)
