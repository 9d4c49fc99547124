"""Builds the local control plane's binaries from the pinned Go modules under ``tools/``.

Each module's binaries are cached under ``.cache/bin/<name>-<key>/``; the key hashes the
module's go.mod, go.sum and sources, the Go version and the link flags, so a build happens
only when a pin changes. Go's own build cache makes a rebuild after a fresh clone cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(os.environ.get("KRUISECTL_REPO_ROOT", Path(__file__).resolve().parents[1]))
TOOLS_DIR = REPO_ROOT / "tools"
CACHE_DIR = Path(os.environ.get("KRUISECTL_CACHE_DIR", REPO_ROOT / ".cache"))


@dataclass(frozen=True)
class GoModule:
    """One pinned Go module and the commands built from it."""

    name: str
    commands: dict[str, str]  # binary name -> Go package path
    version_of: str  # the required module whose version is stamped into the binaries
    ldflags_template: str = ""
    assets: tuple[str, ...] = ()  # files of the ``version_of`` module copied beside the binaries

    @property
    def directory(self) -> Path:
        return TOOLS_DIR / self.name

    def pinned_version(self, module: str | None = None) -> str:
        module = module or self.version_of
        gomod = (self.directory / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.M)
        if not match:
            raise RuntimeError(f"{self.directory}/go.mod does not require {module}")
        return match.group(1)

    def ldflags(self) -> str:
        version = self.pinned_version()
        major, minor = version.lstrip("v").split(".")[:2]
        fields = {"version": version, "major": major, "minor": minor}
        if "{kube_minor}" in self.ldflags_template:  # the Kubernetes release its client-go belongs to
            fields["kube_minor"] = self.pinned_version("k8s.io/client-go").lstrip("v").split(".")[1]
        if "{prometheus_release}" in self.ldflags_template:  # Go module v0.316.0 is Prometheus 3.16.0
            number = int(version.lstrip("v").split(".")[1])
            fields["prometheus_release"] = f"{number // 100}.{number % 100}.{version.split('.')[2]}"
        return ("-s -w " + self.ldflags_template.format(**fields)).strip()


_K8S_VERSION_FLAGS = " ".join(
    f"-X {pkg}.gitVersion={{version}} -X {pkg}.gitMajor={{major}} -X {pkg}.gitMinor={{minor}}"
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
)

MODULES = (
    GoModule(
        name="k8s",
        commands={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
            "etcd": "./etcd",
        },
        version_of="k8s.io/kubernetes",
        ldflags_template=_K8S_VERSION_FLAGS,
    ),
    GoModule(
        name="kwok",
        commands={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        version_of="sigs.k8s.io/kwok",
        # kwok has no built-in stages: these give nodes that initialise and heartbeat (with a
        # node Lease, so the node lifecycle controller keeps them Ready) and pods that become
        # Ready at once and go away when deleted.
        assets=(
            "kustomize/stage/node/fast/node-initialize.yaml",
            "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
            "kustomize/stage/pod/fast/pod-ready.yaml",
            "kustomize/stage/pod/fast/pod-complete.yaml",
            "kustomize/stage/pod/fast/pod-delete.yaml",
        ),
    ),
    GoModule(
        name="helm",
        commands={"helm": "helm.sh/helm/v3/cmd/helm"},
        version_of="helm.sh/helm/v3",
        # As helm's own Makefile: the Kubernetes version helm assumes without --kube-version is
        # the one its client-go belongs to (else v1.20, which the chart's kubeVersion refuses).
        ldflags_template="-X helm.sh/helm/v3/internal/version.version={version} " + " ".join(
            f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMinor={{kube_minor}}"
            for pkg in ("chartutil", "lint/rules")),
    ),
)

# Tools the tests use beside the control plane, built by ``python -m localcluster build`` (so
# ``make build`` and ``make test``) but not needed to start a cluster.
TOOL_MODULES = (
    GoModule(
        name="prometheus",
        commands={"promtool": "github.com/prometheus/prometheus/cmd/promtool"},  # checks and unit-tests the chart's alerts
        version_of="github.com/prometheus/prometheus",
        ldflags_template="-X github.com/prometheus/common/version.Version={prometheus_release}",
    ),
)


def _go_version() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go >= 1.26 (see README)")
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


class BuildError(RuntimeError):
    """A binary could not be built; the message says what to do."""


def cache_key(module: GoModule, go_version: str) -> str:
    digest = hashlib.sha256()
    digest.update(go_version.encode())
    digest.update(module.ldflags().encode())
    for path in sorted(module.directory.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.relative_to(module.directory).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def module_bin_dir(module: GoModule, go_version: str) -> Path:
    return CACHE_DIR / "bin" / f"{module.name}-{module.pinned_version()}-{cache_key(module, go_version)}"


PROGRESS_EVERY_S = 20.0


def _go_build(argv: list[str], cwd: Path, env: dict, what: str, started: float, log) -> tuple[int, list[str]]:
    """Run ``go build -v``, printing a progress line every ``PROGRESS_EVERY_S`` (packages
    compiled so far, time spent) instead of staying silent for minutes; (exit code, output)."""
    import threading

    lines: list[str] = []
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            process.wait(PROGRESS_EVERY_S)
        except subprocess.TimeoutExpired:
            print(f"  {what}: {len(lines)} packages compiled, {time.monotonic() - started:.0f}s so far", file=log,
                  flush=True)
    reader.join(10)
    return process.returncode, [line.rstrip("\n") for line in lines]


GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=readonly", "GOTOOLCHAIN": "local"}


def go_env() -> dict[str, str]:
    """The environment of every Go build and module command here: static binaries, the pinned
    go.sum as is, the local toolchain."""
    return dict(os.environ, **GO_ENV)


def build_staged(name: str, target: Path, builds: list[tuple[str, list[str], Path]], what: str, log=sys.stderr,
                 finish=None) -> Path:
    """Build into a staging folder beside ``target`` and rename it into place, so a cached
    folder is always complete. ``builds``: (binary name, ``go build`` arguments after ``-o``,
    working directory); ``finish(staging)`` adds what else belongs beside the binaries."""
    staging = target.with_name(target.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    print(f"building {what}...", file=log, flush=True)
    for binary, arguments, cwd in builds:
        returncode, output = _go_build(
            ["go", "build", "-v", "-trimpath", "-o", str(staging / binary), *arguments],
            cwd, go_env(), f"{name}: {binary}", started, log)
        if returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join(output[-15:])
            raise BuildError(f"go build {' '.join(arguments)} failed (exit {returncode}):\n{tail}")
    if finish is not None:
        finish(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f"built {what} in {time.monotonic() - started:.1f}s -> {target}", file=log, flush=True)
    return target


def build_module(module: GoModule, go_version: str, log=sys.stderr) -> Path:
    """Return the cached binary folder of ``module``, building it first if absent."""
    target = module_bin_dir(module, go_version)
    wanted = [target / cmd for cmd in module.commands] + [target / "assets" / Path(a).name for a in module.assets]
    if all(path.is_file() for path in wanted):
        return target

    def copy_assets(staging: Path) -> None:
        source = subprocess.run(
            ["go", "list", "-m", "-f", "{{.Dir}}", module.version_of],
            cwd=module.directory, env=go_env(), capture_output=True, text=True, check=True,
        ).stdout.strip()
        (staging / "assets").mkdir()
        for asset in module.assets:
            shutil.copyfile(Path(source) / asset, staging / "assets" / Path(asset).name)

    builds = [(binary, ["-ldflags", module.ldflags(), package], module.directory)
              for binary, package in module.commands.items()]
    return build_staged(module.name, target, builds, f"{', '.join(module.commands)} ({module.version_of} {module.pinned_version()})",
                        log, copy_assets if module.assets else None)


class UnitTierViolation(RuntimeError):
    """A test of the fast tier (``make test-unit``) asked for the control plane's binaries."""


def refuse_in_unit_tier(what: str) -> None:
    """Keep the fast tier honest: with ``KRUISECTL_TEST_TIER=unit`` nothing may build or start
    the local control plane, so a cluster test that lacks its ``cluster`` mark fails loudly
    instead of quietly slowing the tier down."""
    if os.environ.get("KRUISECTL_TEST_TIER") == "unit":
        raise UnitTierViolation(f"{what} in the unit test tier: mark the test `pytest.mark.cluster`")


def ensure_binaries(log=sys.stderr) -> dict[str, Path]:
    """Build (or find cached) every binary; return name -> path."""
    refuse_in_unit_tier("the control-plane binaries were requested")
    go_version = _go_version()
    binaries: dict[str, Path] = {}
    for module in MODULES:
        folder = build_module(module, go_version, log=log)
        binaries.update({name: folder / name for name in module.commands})
    return binaries


def cached_binaries() -> dict[str, Path] | None:
    """The cached binaries if all are built, else None (never builds)."""
    go_version = _go_version()
    binaries = {}
    for module in MODULES:
        folder = module_bin_dir(module, go_version)
        for name in module.commands:
            if not (folder / name).is_file():
                return None
            binaries[name] = folder / name
    return binaries


def ensure_tool(name: str, log=sys.stderr) -> Path:
    """The path of one of ``TOOL_MODULES``' binaries (e.g. promtool), built first if absent."""
    refuse_in_unit_tier(f"{name} was requested")
    go_version = _go_version()
    for module in TOOL_MODULES:
        if name in module.commands:
            return build_module(module, go_version, log=log) / name
    raise KeyError(name)


def main() -> int:
    started = time.monotonic()
    try:
        binaries = ensure_binaries()
        for module in TOOL_MODULES:
            binaries.update({name: ensure_tool(name) for name in module.commands})
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"binaries ready in {time.monotonic() - started:.1f}s:", file=sys.stderr)
    for name, path in sorted(binaries.items()):
        print(f"  {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
