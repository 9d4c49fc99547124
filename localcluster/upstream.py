"""The real upstream OpenKruise kruise-manager for the local cluster, built from the Go module
proxy's copy of its source at one pinned release.

Binary and CRDs come from the same release (a newer manager denies every pod create against
older CRDs). The module's source directory is read-only (Go's module cache); the binary is
cached under ``.cache/bin/kruise-<version>-<key>/manager``, the key hashing the version, the
module's checksum, the Go version and the build flags.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import build

MODULE = "github.com/openkruise/kruise"
VERSION = "v1.8.3"
LDFLAGS = "-s -w"


@dataclass(frozen=True)
class UpstreamBuild:
    """The built manager and the module source it came from (CRDs, kustomize install)."""

    version: str
    manager: Path
    source: Path

    @property
    def crds(self) -> Path:
        return self.source / "config" / "crd" / "bases"

    @property
    def kustomize_default(self) -> Path:
        return self.source / "config" / "default"


def download(version: str = VERSION) -> dict:
    """``go mod download -json`` of the pinned module: its read-only ``Dir`` and ``Sum``."""
    with tempfile.TemporaryDirectory(prefix="kruise-mod-") as outside_any_module:
        result = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{version}"], cwd=outside_any_module,
                                env=build.go_env(), capture_output=True, text=True)
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or not info.get("Dir"):
        reason = info.get("Error") or result.stderr.strip()[-300:] or f"exit {result.returncode}"
        raise build.BuildError(f"go mod download {MODULE}@{version}: {reason}")
    return info


def cache_key(version: str, module_sum: str, go_version: str) -> str:
    digest = hashlib.sha256()
    for part in (MODULE, version, module_sum, go_version, LDFLAGS, json.dumps(build.GO_ENV, sort_keys=True)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def build_upstream(version: str = VERSION, log=sys.stderr) -> UpstreamBuild:
    """The upstream manager binary of ``version`` (built first when not cached; about 4 minutes
    on 2 cores with progress lines, a relink from Go's build cache otherwise) and its source."""
    build.refuse_in_unit_tier("the upstream kruise-manager was requested")
    go_version = build._go_version()
    info = download(version)
    source = Path(info["Dir"])
    target = build.CACHE_DIR / "bin" / f"kruise-{version}-{cache_key(version, info.get('Sum', ''), go_version)}"
    manager = target / "manager"
    if not manager.is_file():
        build.build_staged("kruise", target, [("manager", ["-ldflags", LDFLAGS, "main.go"], source)],
                           f"upstream kruise-manager ({MODULE} {version})", log)
    return UpstreamBuild(version, manager, source)


def main() -> int:
    started = time.monotonic()
    try:
        built = build_upstream()
    except build.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"upstream kruise-manager {built.version} ready in {time.monotonic() - started:.1f}s:", file=sys.stderr)
    print(f"  manager: {built.manager}\n  source: {built.source}")
    return 0
