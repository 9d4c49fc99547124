"""Rendering of command results as kubectl does: ``-o table|wide|json|yaml``."""

from __future__ import annotations

import json
from typing import Any

import yaml
from tabulate import tabulate

FORMATS = ("table", "wide", "json", "yaml")
_ANSI = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36}


def colour(text: str, fg: str | None) -> str:
    """``text`` in colour for a person at a terminal; plain when piped or with NO_COLOR set."""
    import os
    import sys

    if not fg or os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\x1b[{'1;' if fg == 'red' else ''}{_ANSI[fg]}m{text}\x1b[0m"


def dump(data: Any, fmt: str) -> str:
    """Machine formats: json (indent 2) or yaml (block style, keys in given order)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    raise ValueError(f"not a machine format: {fmt}")


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """kubectl-like table: upper-case headers, no borders."""
    if not rows:
        return ""
    return tabulate(rows, headers=[h.upper() for h in headers], tablefmt="plain", disable_numparse=True)


def age(seconds: float | None) -> str:
    """Human age as kubectl prints it: 45s, 3m12s, 5h3m, 2d4h."""
    if seconds is None:
        return "<unknown>"
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec}s" if minutes < 10 else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if hours < 10 else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if days < 10 else f"{days}d"
