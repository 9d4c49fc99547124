"""A fresh namespace for a test on a control plane of its own: pods are refused until the
namespace's default ServiceAccount exists, so it is waited for."""

from __future__ import annotations

import contextlib
import uuid

from tests.conftest import wait_for


@contextlib.contextmanager
def fresh_namespace(core, prefix: str, labels: dict[str, str] | None = None):
    """A namespace named ``<prefix>-<random>`` (``core``: a kubernetes CoreV1Api), deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, **({"labels": labels} if labels else {})}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30, what=f"default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)
