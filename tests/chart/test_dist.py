"""The release as a user installs it (``make dist``'s artifacts, built here by the same code):
the wheel into a fresh virtualenv outside the checkout, the plugin tarball by ``helm plugin
install`` over loopback HTTP into an empty plugins folder, then ``helm kruise status`` against
the real apiserver; and the packaged chart runs the image ``kruisectl version`` names."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from localcluster import dist, image
from tests.plugin.test_helm_plugin import layout  # noqa: F401 - the fixture: an upstream-like install

from .conftest import KUBE_VERSION
from .test_wheel import clean_env

pytestmark = pytest.mark.cluster
VERSION = image.project_version()
PROXIES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, helm_binary) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    wheel, sdist = dist.build_python(out)
    return {"wheel": wheel, "sdist": sdist, "chart": dist.package_chart(out, helm_binary),
            "plugin": dist.plugin_tarball(out)}


@pytest.fixture(scope="module")
def venv(artifacts, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel (its dependencies from the package index)."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120, env=clean_env())
    installed = subprocess.run([str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", str(artifacts["wheel"])],
                               capture_output=True, text=True, timeout=900, cwd=where.parent, env=clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    return where


class _Gzip(http.server.SimpleHTTPRequestHandler):
    """Serves the tarball as helm's HTTP installer requires it: as application/gzip."""

    def guess_type(self, path):
        return "application/gzip"

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(artifacts):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Gzip, directory=str(artifacts["plugin"].parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{artifacts['plugin'].name}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def helm_home(venv, served, helm_binary, tmp_path_factory):
    """helm with empty data, config, cache and plugins folders and the virtualenv's bin first on
    PATH (as an activated virtualenv or pipx leaves it), the plugin installed from its URL.
    helm 3's HTTP installer writes to $HELM_DATA_HOME/plugins whatever HELM_PLUGINS says, so the
    two are the same empty folder."""
    home = tmp_path_factory.mktemp("helm")
    env = clean_env(HELM_DATA_HOME=str(home / "data"), HELM_PLUGINS=str(home / "data" / "plugins"),
                    HELM_CONFIG_HOME=str(home / "config"), HELM_CACHE_HOME=str(home / "cache"),
                    PATH=f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin")
    for name in PROXIES:
        env.pop(name, None)
    result = subprocess.run([helm_binary, "plugin", "install", served], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Installed plugin: kruise" in result.stdout
    assert f"runs {venv / 'bin' / 'kruisectl'}: kruisectl, version {VERSION}" in result.stdout, result.stdout
    (plugin_dir,) = (home / "data" / "plugins").iterdir()
    assert not (plugin_dir / "kruisectl").exists()  # nothing to fall back on but the wheel's kruisectl
    return env


def helm(helm_binary, env, *args):
    return subprocess.run([helm_binary, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(env["HELM_DATA_HOME"]).parent)


def test_the_plugin_from_its_tarball_runs_the_wheels_kruisectl_against_the_apiserver(
        helm_home, helm_binary, venv, cluster, layout):  # noqa: F811
    listed = helm(helm_binary, helm_home, "plugin", "list").stdout.splitlines()
    assert [line.split()[:2] for line in listed[1:]] == [["kruise", VERSION]]

    version = helm(helm_binary, helm_home, "kruise", "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    info = json.loads(version.stdout)
    assert info["kruisectl"] == VERSION and info["image"] == f"{image.NAME}:{VERSION}"
    assert Path(info["chart"]["path"]).is_relative_to(venv) and info["chart"]["version"] == VERSION

    status = helm(helm_binary, helm_home, "--kubeconfig", str(cluster.kubeconfig), "-n", layout["namespace"],
                  "kruise", "status", "-o", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["namespace"] == layout["namespace"] and report["leader"]["pod"] == layout["leader"]


def test_the_plugin_without_a_kruisectl_says_how_to_get_one(helm_home, helm_binary):
    env = {**helm_home, "PATH": "/usr/bin:/bin"}
    result = helm(helm_binary, env, "kruise", "status")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pip install kruisectl-{VERSION}-py3-none-any.whl" in errors[0], result.stderr


def test_the_packaged_chart_runs_the_image_kruisectl_version_names(artifacts, helm_binary, venv):
    rendered = subprocess.run([helm_binary, "template", "kruise", str(artifacts["chart"]), "--kube-version",
                               KUBE_VERSION, "--show-only", "templates/deployment.yaml"],
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    images = {line.split("image:", 1)[1].strip().strip('"') for line in rendered.stdout.splitlines()
              if line.strip().startswith("image:")}
    named = json.loads(subprocess.run([str(venv / "bin" / "kruisectl"), "version", "-o", "json"], capture_output=True,
                                      text=True, timeout=60, env=clean_env()).stdout)["image"]
    assert images == {named} == {f"{image.NAME}:{VERSION}"}
