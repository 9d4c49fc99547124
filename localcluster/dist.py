"""``make dist``: the release, every artifact of one version (``kruisectl.__version__``) in dist/.

- ``kruisectl-<v>-py3-none-any.whl`` and ``kruisectl-<v>.tar.gz``: kruisectl (and the manager
  and kubekit it ships with), the chart inside as package data; built offline by the project's
  build backend from a copy of the sources, so the checkout stays clean.
- ``kruise-<v>.tgz``: the chart, packaged by ``helm package``.
- ``helm-kruise-<v>.tgz``: the helm plugin, ``plugin.yaml`` at its top as helm's HTTP
  installer wants it; it runs the kruisectl the wheel installed (scripts/helm-kruise.sh).
- ``kruise-manager-<v>.{oci,docker}.tar``: the image, tagged ``kruisectl/kruise-manager:<v>``
  (``make image``, a prerequisite of ``make dist``; reused when its inputs did not change).
- ``SHA256SUMS`` of all of them.

Before anything is built the versions are checked: the chart's version and appVersion, the
plugin's version and the values' image tag (empty: the appVersion) must be kruisectl's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import yaml

from .build import REPO_ROOT
from .image import DIST_DIR, NAME, project_version

# What a wheel and an sdist are built from.
SOURCES = ("pyproject.toml", "README.md", "kruisectl", "manager", "kubekit", "charts")
CHART = Path("charts") / "kruise"
PLUGIN_FILES = ("plugin.yaml", "scripts/helm-kruise.sh")


class DistError(RuntimeError):
    """An artifact cannot be made; the message says why."""


def version_mismatches(root: Path = REPO_ROOT) -> list[str]:
    """Every place whose version is not kruisectl's, one line each (empty: they agree)."""
    version = project_version(root)
    chart = yaml.safe_load((root / CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((root / CHART / "values.yaml").read_text())
    plugin = yaml.safe_load((root / "plugin.yaml").read_text())
    found = [(f"{CHART}/Chart.yaml version", str(chart.get("version"))),
             (f"{CHART}/Chart.yaml appVersion", str(chart.get("appVersion"))),
             ("plugin.yaml version", str(plugin.get("version")))]
    tag = values["manager"]["image"].get("tag")
    if tag:
        found.append((f"{CHART}/values.yaml manager.image.tag", str(tag)))
    problems = [f"{where} is {got!r}, kruisectl is {version!r}" for where, got in found if got != version]
    repository = values["manager"]["image"].get("repository")
    if repository != NAME:
        problems.append(f"{CHART}/values.yaml manager.image.repository is {repository!r}, the image is {NAME!r}")
    dynamic = tomllib.loads((root / "pyproject.toml").read_text())
    if dynamic.get("tool", {}).get("setuptools", {}).get("dynamic", {}).get("version") != {"attr": "kruisectl.__version__"}:
        problems.append("pyproject.toml does not take its version from kruisectl.__version__")
    return problems


def copy_sources(target: Path, root: Path = REPO_ROOT) -> Path:
    """The sources a wheel is built from, copied (the build writes build/ and *.egg-info)."""
    target.mkdir(parents=True)
    for name in SOURCES:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


def build_python(out: Path, root: Path = REPO_ROOT) -> tuple[Path, Path]:
    """(wheel, sdist), built offline by the build backend (PEP 517) in this interpreter."""
    out.mkdir(parents=True, exist_ok=True)
    backend = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["build-backend"]
    # sys.argv is read first: the backend rewrites it while it builds.
    script = ("import importlib, sys; name, out = sys.argv[1:3]; b = importlib.import_module(name); "
              "built = [b.build_wheel(out), b.build_sdist(out)]; print('built:', *built)")
    with tempfile.TemporaryDirectory(prefix="kruisectl-dist-") as work:
        src = copy_sources(Path(work) / "src", root)
        result = subprocess.run([sys.executable, "-c", script, backend, str(out)], cwd=src, capture_output=True,
                                text=True, timeout=300)
    if result.returncode != 0:
        raise DistError(f"the build backend failed: {result.stderr.strip().splitlines()[-1:]}")
    wheel, sdist = [line for line in result.stdout.splitlines() if line.startswith("built: ")][-1].split()[1:]
    return out / wheel, out / sdist


def package_chart(out: Path, helm: str, root: Path = REPO_ROOT) -> Path:
    """``helm package`` of the chart (its Chart.yaml carries the version, checked beforehand)."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([helm, "package", str(root / CHART), "--destination", str(out)], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise DistError(f"helm package failed: {result.stderr.strip()}")
    packaged = out / f"kruise-{project_version(root)}.tgz"
    if not packaged.is_file():
        raise DistError(f"helm package wrote {result.stdout.strip()!r}, not {packaged.name}")
    return packaged


def plugin_tarball(out: Path, root: Path = REPO_ROOT) -> Path:
    """The plugin as ``helm plugin install https://…/helm-kruise-<v>.tgz`` takes it: plugin.yaml at
    the top, every folder before its files (helm's extractor creates no parents), reproducible
    (no owners, the plugin.yaml's time)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"helm-kruise-{project_version(root)}.tgz"
    mtime = int((root / "plugin.yaml").stat().st_mtime)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folders = sorted({str(Path(name).parent) for name in PLUGIN_FILES} - {"."})
        for name in [*folders, *PLUGIN_FILES]:
            info = archive.gettarinfo(str(root / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            if info.isdir():
                archive.addfile(info)
            else:
                with (root / name).open("rb") as handle:
                    archive.addfile(info, handle)
    with target.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime) as gz:
        gz.write(buffer.getvalue())
    return target


def checksums(paths: list[Path], out: Path) -> Path:
    lines = [f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n" for path in sorted(paths)]
    target = out / "SHA256SUMS"
    target.write_text("".join(lines))
    return target


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .build import ensure_binaries

    parser = argparse.ArgumentParser(prog="python -m localcluster.dist", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    args = parser.parse_args(argv)
    version = project_version()
    try:
        problems = version_mismatches()
        if problems:
            raise DistError("versions disagree: " + "; ".join(problems))
        images = [args.dist / f"kruise-manager-{version}.{kind}.tar" for kind in ("oci", "docker")]
        missing = [path.name for path in images if not path.is_file()]
        if missing:
            raise DistError(f"no image {', '.join(missing)} in {args.dist}: run `make image` (make dist does)")
        wheel, sdist = build_python(args.dist)
        chart = package_chart(args.dist, str(ensure_binaries(log=sys.stderr)["helm"]))
        plugin = plugin_tarball(args.dist)
    except (DistError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    artifacts = [wheel, sdist, chart, plugin, *images]
    sums = checksums(artifacts, args.dist)
    print(f"kruisectl {version}: image {NAME}:{version}")
    for path in [*artifacts, sums]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
