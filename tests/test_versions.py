"""One version for the release: kruisectl's ``__version__`` is the wheel's, the chart's version and
appVersion, the plugin's and the image's tag; ``kruisectl version`` names the chart and image it
installs by default. Pure logic (files of a checkout, tampered copies of them); the artifacts
themselves are installed for real in tests/chart/test_dist.py."""

from __future__ import annotations

import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kruisectl import __version__
from kruisectl.bundle import defaults
from kruisectl.cli import cli
from localcluster import dist, image

ROOT = Path(__file__).resolve().parents[1]
VERSION_FILES = ("kruisectl/__init__.py", "charts/kruise/Chart.yaml", "charts/kruise/values.yaml", "plugin.yaml",
                 "pyproject.toml")


def test_every_version_is_kruisectls():
    assert dist.version_mismatches(ROOT) == []
    chart = yaml.safe_load((ROOT / "charts/kruise/Chart.yaml").read_text())
    assert image.project_version(ROOT) == __version__ == chart["version"] == chart["appVersion"]
    assert yaml.safe_load((ROOT / "plugin.yaml").read_text())["version"] == __version__


@pytest.fixture
def copy(tmp_path) -> Path:
    for name in VERSION_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("edit, expected", [
    (lambda r: edit_yaml(r / "charts/kruise/Chart.yaml", lambda d: d.update(version="9.9.9")),
     "charts/kruise/Chart.yaml version is '9.9.9'"),
    (lambda r: edit_yaml(r / "charts/kruise/Chart.yaml", lambda d: d.update(appVersion="0.0.1")),
     "charts/kruise/Chart.yaml appVersion is '0.0.1'"),
    (lambda r: edit_yaml(r / "plugin.yaml", lambda d: d.update(version="1.0.0")), "plugin.yaml version is '1.0.0'"),
    (lambda r: edit_yaml(r / "charts/kruise/values.yaml", lambda d: d["manager"]["image"].update(tag="latest")),
     "manager.image.tag is 'latest'"),
    (lambda r: edit_yaml(r / "charts/kruise/values.yaml", lambda d: d["manager"]["image"].update(repository="x/y")),
     "manager.image.repository is 'x/y'"),
    (lambda r: (r / "kruisectl/__init__.py").write_text('__version__ = "0.2.0"\n'), "kruisectl is '0.2.0'"),
    (lambda r: (r / "pyproject.toml").write_text((r / "pyproject.toml").read_text().replace(
        'version = { attr = "kruisectl.__version__" }', 'version = { attr = "manager.__version__" }')),
     "pyproject.toml does not take its version from kruisectl.__version__"),
])
def test_a_version_out_of_step_is_named(copy, edit, expected):
    edit(copy)
    problems = dist.version_mismatches(copy)
    assert problems and all(expected in p for p in problems[:1]), problems
    if "kruisectl is '0.2.0'" in expected:  # kruisectl moved on alone: chart and plugin lag behind
        assert len(problems) == 3
    else:
        assert len(problems) == 1


def test_what_kruisectl_installs_by_default_is_read_from_its_chart(tmp_path):
    shipped = defaults()
    assert shipped["kruisectl"] == __version__
    assert shipped["chart"]["version"] == shipped["chart"]["appVersion"] == __version__
    assert shipped["image"] == f"{image.NAME}:{__version__}"
    chart = tmp_path / "chart"
    shutil.copytree(ROOT / "charts/kruise", chart)
    edit_yaml(chart / "values.yaml", lambda d: d["manager"]["image"].update(repository="r/m", tag="7"))
    assert defaults(chart)["image"] == "r/m:7"
    assert defaults(tmp_path / "none") == {"kruisectl": __version__, "chart": None, "image": None}


def test_kruisectl_version_prints_the_chart_and_the_image():
    text = CliRunner().invoke(cli, ["version"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[1].startswith(f"chart:  kruise {__version__} (appVersion {__version__}")
    assert lines[2] == f"image:  {image.NAME}:{__version__}"
    info = json.loads(CliRunner().invoke(cli, ["version", "-o", "json"]).output)
    assert info["image"] == f"{image.NAME}:{__version__}" and info["chart"]["version"] == __version__


def test_the_plugin_tarball_is_what_helms_http_installer_takes(tmp_path):
    """plugin.yaml at the top (helm looks for it there), each folder before its files (helm's
    extractor creates no parent folders), the entry point executable, and the same bytes twice."""
    tarball = dist.plugin_tarball(tmp_path / "a")
    assert tarball.name == f"helm-kruise-{__version__}.tgz"
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == ["scripts", "plugin.yaml", "scripts/helm-kruise.sh"]
        assert yaml.safe_load(archive.extractfile("plugin.yaml"))["version"] == __version__
        script = archive.getmember("scripts/helm-kruise.sh")
        assert script.mode & stat.S_IXUSR and {m.uid for m in members} == {0}
    assert dist.plugin_tarball(tmp_path / "b").read_bytes() == tarball.read_bytes()


def test_the_wheel_and_sdist_are_of_this_version_and_carry_the_chart(tmp_path):
    wheel, sdist = dist.build_python(tmp_path / "out")
    assert (wheel.name, sdist.name) == (f"kruisectl-{__version__}-py3-none-any.whl", f"kruisectl-{__version__}.tar.gz")
    in_repo = {p.relative_to(ROOT / "charts/kruise").as_posix() for p in (ROOT / "charts/kruise").rglob("*") if p.is_file()}
    shipped = {n.removeprefix("kruisectl/_chart/") for n in zipfile.ZipFile(wheel).namelist()
               if n.startswith("kruisectl/_chart/")}
    assert shipped == in_repo
    prefix = f"kruisectl-{__version__}/kruisectl/_chart/"
    with tarfile.open(sdist) as archive:
        in_sdist = {m.name.removeprefix(prefix) for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()}
    assert in_sdist == in_repo
    assert not list((ROOT / "kruisectl").glob("*.egg-info")) and not (ROOT / "build").exists()  # checkout untouched
