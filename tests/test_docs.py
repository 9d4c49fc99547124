"""The README stays short and true: its layout names every entry at the top of the repository,
its links lead to files that exist, and the manager's flag reference in docs/ is what the parser
says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from manager import options

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def top_level_entries() -> set[str]:
    """What git tracks at the top of the checkout (a folder as ``name/``)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    entries = set()
    for path in listed.stdout.splitlines():
        head, sep, _ = path.partition("/")
        entries.add(head + "/" if sep else head)
    return entries


def layout_names(readme: str) -> set[str]:
    """The backticked names in the first column of the README's Layout table."""
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_layout_names_every_top_level_entry():
    missing = top_level_entries() - layout_names(README.read_text())
    assert not missing, f"README's Layout does not name: {sorted(missing)}"


def test_layout_names_only_what_exists():
    stale = {name for name in layout_names(README.read_text()) if not (ROOT / name.rstrip("/")).exists()}
    assert not stale, f"README's Layout names what is not there: {sorted(stale)}"


@pytest.mark.parametrize("doc", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path):
    broken = [target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
              if "://" not in target and not (doc.parent / target).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"


def test_manager_flag_reference_matches_the_parser():
    generated = subprocess.run([__import__("sys").executable, "-m", "manager.options", "--markdown"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    assert (ROOT / "docs" / "manager-flags.md").read_text() == generated, \
        "docs/manager-flags.md is stale: python -m manager.options --markdown > docs/manager-flags.md"


@pytest.mark.parametrize("field", [f.name for f in __import__("dataclasses").fields(options.Options)])
def test_every_flag_is_in_the_table(field: str):
    assert f"`--{field.replace('_', '-')}`" in options.markdown_table()
