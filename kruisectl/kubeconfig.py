"""KUBECONFIG with several files, merged exactly as kubectl merges them.

kubectl reads the files in order and keeps the FIRST value it finds: for
``current-context`` and for each named cluster, user and context (a later file never
overrides an entry an earlier one defined). Files that do not exist are skipped. Relative
paths inside a file (certificate-authority, client-certificate, client-key, tokenFile) are
relative to that file's directory, so they are made absolute while merging.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


class KubeconfigError(ValueError):
    """No usable kubeconfig (none of the files exists, or one is not a kubeconfig)."""


def _absolute(entry: dict, kind: str, base: Path) -> dict:
    body = dict(entry.get(kind) or {})
    for key in _PATH_KEYS[kind]:
        value = body.get(key)
        if value and not os.path.isabs(value):
            body[key] = str(base / value)
    return {**entry, kind: body}


def merge(paths: list[str]) -> tuple[dict, list[str]]:
    """(the merged kubeconfig, the files it was read from)."""
    merged: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    used = []
    for path in paths:
        if not path or not os.path.exists(path):
            continue
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            raise KubeconfigError(f"bad kubeconfig {path}: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise KubeconfigError(f"bad kubeconfig {path}: not a YAML mapping")
        used.append(path)
        base = Path(path).resolve().parent
        if data.get("current-context") and not merged.get("current-context"):
            merged["current-context"] = data["current-context"]
        for section, kind in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in data.get(section) or []:
                name = (entry or {}).get("name")
                if not name or name in seen[section]:
                    continue  # the first file that names it wins
                seen[section].add(name)
                merged[section].append(_absolute(entry, kind, base) if kind in _PATH_KEYS else entry)
    if not used:
        if len(paths) == 1:
            raise KubeconfigError(f"kubeconfig {paths[0]} does not exist")
        raise KubeconfigError(f"none of the kubeconfig files exists: {os.pathsep.join(paths)}")
    return merged, used


def split(value: str) -> list[str]:
    return [p for p in value.split(os.pathsep) if p]
