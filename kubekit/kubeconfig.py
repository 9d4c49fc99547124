"""Where a client's credentials come from, loaded one way for kruisectl and the manager:
``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config`` (or, in a pod with neither, the
in-cluster ServiceAccount), with ``--context`` choosing among the merged contexts.

KUBECONFIG with several files is merged exactly as kubectl merges them.

kubectl reads the files in order and keeps the FIRST value it finds: for
``current-context`` and for each named cluster, user and context (a later file never
overrides an entry an earlier one defined). Files that do not exist are skipped. Relative
paths inside a file (certificate-authority, client-certificate, client-key, tokenFile) are
relative to that file's directory, so they are made absolute while merging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


class KubeconfigError(ValueError):
    """No usable kubeconfig (none of the files exists, or one is not a kubeconfig); the
    message is one line."""


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


@dataclass
class Loaded:
    """A kubernetes client ``Configuration`` and whose credentials it carries."""

    configuration: object
    context: str | None
    user: str | None


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def load(kubeconfig: str | None = None, context: str | None = None) -> Loaded:
    """The configuration ``kubeconfig`` (a path or a ``:``-list; else ``$KUBECONFIG``) and
    ``context`` (else the current one) give; in a pod with neither, the in-cluster
    ServiceAccount's. KubeconfigError (one line) when that is impossible."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    configuration = client.Configuration()
    try:
        if not path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
            return Loaded(configuration, "(in-cluster)", "(service account)")
        merged, _ = merge(split(path) if path else [os.path.expanduser("~/.kube/config")])
        used = context or merged.get("current-context")
        entry = next((c for c in merged["contexts"] if c.get("name") == used), None)
        user = ((entry or {}).get("context") or {}).get("user")
        config.load_kube_config_from_dict(merged, context=context, client_configuration=configuration,
                                          persist_config=False)
    except KubeconfigError:
        raise
    except ConfigException as err:
        raise KubeconfigError(f"bad kubeconfig: {_first_line(err)}") from None
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
        raise KubeconfigError(f"bad kubeconfig {path or '~/.kube/config'}: {err}") from None
    except Exception as err:  # noqa: BLE001 - yaml errors and the like
        raise KubeconfigError(f"bad kubeconfig {path or '~/.kube/config'}: {_first_line(err)}") from None
    return Loaded(configuration, used, user)
