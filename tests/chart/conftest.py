"""The real helm binary and the chart, rendered or installed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from kruisectl.helm import BUNDLED_CHART
from localcluster import build

KUBE_VERSION = "1.36.3"


@pytest.fixture(scope="session")
def helm_binary() -> str:
    return str(build.ensure_binaries(log=sys.stderr)["helm"])


def render(helm_binary: str, *sets: str, namespace: str = "kruise-system", expect_error: bool = False):
    """Rendered objects by (kind, name); with ``expect_error`` the error text instead."""
    args = [helm_binary, "template", "kruise", str(BUNDLED_CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    for pair in sets:
        args += ["--set", pair]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if expect_error:
        assert result.returncode != 0, "helm template accepted the values"
        return result.stderr
    assert result.returncode == 0, result.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}
