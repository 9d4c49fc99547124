"""kruisectl as a user installs it: the wheel carries the chart as package data, found with
importlib.resources wherever the package lands, and says how to get helm when there is none.
The unit tests unpack the wheel (all an installer does with its files) and run from there,
never from the checkout; the cluster test installs a wheel pip built into a fresh virtualenv
outside the checkout and runs its ``kruisectl install --dry-run`` against the real apiserver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster.dist import copy_sources

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kruise"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would point a process at the checkout or its helm."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "KRUISECTL_HELM", "HELM_BIN", "HELM_NAMESPACE",
            "HELM_KUBECONTEXT", "KUBECONFIG")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def created_objects(diffs: str) -> list[dict]:
    """The objects a dry run would create, read back from its diffs (the ``+`` side of a diff
    from /dev/null)."""
    objects, lines, creating = [], [], False
    for line in diffs.splitlines() + ["--- end"]:
        if line.startswith("--- "):
            if creating and lines:
                objects.append(yaml.safe_load("\n".join(lines)))
            creating, lines = line == "--- /dev/null", []
        elif creating and line.startswith("+") and not line.startswith("+++ "):
            lines.append(line[1:])
    return objects


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline by the project's own build backend (PEP 517's build_wheel, as
    ``pip wheel --no-build-isolation`` calls it) from a copy of the sources."""
    work = tmp_path_factory.mktemp("wheel")
    src = copy_sources(work / "src")
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["build-backend"]
    build = "import importlib, sys; print(importlib.import_module(sys.argv[1]).build_wheel(sys.argv[2]))"
    result = subprocess.run([sys.executable, "-c", build, backend, str(work / "dist")], cwd=src, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "dist" / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def run_unpacked(site: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """This interpreter (for the dependencies) with the unpacked wheel first on its path, run
    outside the checkout."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=clean_env(PYTHONPATH=str(site), **env))


def test_the_wheel_carries_the_whole_chart(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("kruisectl/_chart/") for n in names if n.startswith("kruisectl/_chart/")}
    in_repo = {p.relative_to(CHART).as_posix() for p in CHART.rglob("*") if p.is_file()}
    assert {"Chart.yaml", "values.yaml", "templates/deployment.yaml"} <= in_repo
    assert shipped == in_repo
    assert not any(n.startswith(("charts/", "tests/", "localcluster/")) for n in names)


def test_the_installed_kruisectl_finds_its_chart_with_importlib_resources(unpacked, tmp_path):
    probe = ("import kruisectl.helm as h, json; "
             "print(json.dumps([h.__file__, h.bundled_chart(), h.CHECKOUT and str(h.CHECKOUT)]))")
    result = run_unpacked(unpacked, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    module, chart, checkout = yaml.safe_load(result.stdout)
    assert Path(module).is_relative_to(unpacked), module  # not the checkout's kruisectl
    assert Path(chart) == unpacked / "kruisectl" / "_chart" and checkout is None
    assert yaml.safe_load((Path(chart) / "Chart.yaml").read_text())["name"] == "kruise"


def test_without_helm_the_installed_kruisectl_says_how_to_get_it(unpacked, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_unpacked(unpacked, tmp_path, "-m", "kruisectl", "install", "--dry-run", PATH=str(empty))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "helm not found" in lines[0] and "--helm-binary" in lines[0], result.stderr
    assert "make build" not in lines[0]  # that is advice for a checkout, not for an installed kruisectl


def test_a_kruisectl_installed_without_the_chart_says_so_in_one_line(unpacked, tmp_path):
    """As the manager image's kruisectl (its build copies the packages, not the chart)."""
    site = tmp_path / "site"
    shutil.copytree(unpacked, site)
    shutil.rmtree(site / "kruisectl" / "_chart")
    result = run_unpacked(site, tmp_path, "-m", "kruisectl", "install", "--dry-run")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no bundled chart" in lines[0] and "--chart" in lines[0], result.stderr


@pytest.mark.cluster
def test_a_wheel_pip_built_installs_into_a_fresh_virtualenv_and_its_kruisectl_installs_the_chart(
        cluster, namespace, helm_binary, tmp_path):
    """pip builds the wheel as for ``pip install .`` (its isolated build environment comes from
    the package index, as do the dependencies of the fresh virtualenv)."""
    src = copy_sources(tmp_path / "src")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600,
                           cwd=tmp_path, env=clean_env())
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("kruisectl-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env())
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                               capture_output=True, text=True, timeout=600, cwd=tmp_path, env=clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    shutil.rmtree(src)  # nothing of the sources is left to fall back on

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import kruisectl.helm as h; print(h.bundled_chart())"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean_env())
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    result = subprocess.run([str(venv / "bin" / "kruisectl"), "install", "--dry-run", "-n", namespace,
                             "--kubeconfig", str(cluster.kubeconfig), "--helm-binary", helm_binary],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "dry run of install (nothing changed)" in result.stderr, result.stderr
    deployments = [o for o in created_objects(result.stdout) if o.get("kind") == "Deployment"]
    assert [(d["metadata"]["name"], d["metadata"]["namespace"]) for d in deployments] == \
        [("kruise-controller-manager", namespace)], result.stdout[:2000]
    assert deployments[0]["spec"]["template"]["spec"]["containers"][0]["command"] == ["kruise-manager"]
    with pytest.raises(ApiException) as missing:  # the dry run created nothing
        client.AppsV1Api(cluster.api()).read_namespaced_deployment("kruise-controller-manager", namespace)
    assert missing.value.status == 404
