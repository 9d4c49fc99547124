"""The layers stay a tree: no module imports, directly or round about, a module that imports it
back (at the top, inside a function or for type checking alike); only the command line imports
click; and no block of code is written twice in two modules."""

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


# ---- no block of code repeated across modules ------------------------------------------------
BLOCK_LINES = 6  # consecutive meaningful lines that, found in two modules, are one block too many
_TRIVIAL = {")", "]", "}", "):", "else:", "try:", "finally:", "return", "pass", "continue", "break"}


def meaningful_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the lines that carry code: no blank lines, comments,
    imports, docstring quotes or lone brackets and keywords."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if (not stripped or stripped.startswith(("#", "import ", "from ", '"""', "'''")) or stripped in _TRIVIAL):
            continue
        found.append((number, stripped))
    return found


def repeated_blocks(texts: dict[str, str], size: int = BLOCK_LINES) -> list[list[tuple[str, int]]]:
    """Each run of ``size`` meaningful lines found in more than one module: [(module, first line), ...]."""
    where: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for name, text in texts.items():
        lines = meaningful_lines(text)
        for start in range(len(lines) - size + 1):
            block = tuple(t for _n, t in lines[start:start + size])
            where.setdefault(block, []).append((name, lines[start][0]))
    return [sorted(places) for places in where.values() if len({m for m, _l in places}) > 1]


@pytest.mark.parametrize("texts, expected", [
    ({"a": "x = 1\ny = 2\nz = 3\n", "b": "x = 1\ny = 2\nz = 3\n"}, [[("a", 1), ("b", 1)]]),
    ({"a": "x = 1\n# note\ny = 2\n\nz = 3\n", "b": "import os\nx = 1\ny = 2\n)\nz = 3\n"}, [[("a", 1), ("b", 2)]]),
    ({"a": "x = 1\ny = 2\nz = 3\nx = 1\ny = 2\nz = 3\n", "b": "q = 0\n"}, []),  # within one module: not this test's
    ({"a": "x = 1\ny = 2\nz = 3\n", "b": "x = 1\ny = 2\nw = 3\n"}, []),
])
def test_repeated_blocks_are_found_across_modules(texts, expected):
    assert repeated_blocks(texts, size=3) == expected


def test_no_block_of_code_is_repeated_across_modules():
    """What two modules both need lives in one of them (or a third), imported by the other."""
    texts = {name: path.read_text() for name, path in modules().items() if name != "manager.gotypes"}
    assert repeated_blocks(texts) == []
