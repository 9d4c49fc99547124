"""make image's result: built from a clean clone, what skopeo inspect says about it, and the
docker-archive that docker load, kind load image-archive and ctr images import read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from localcluster import image

pytestmark = pytest.mark.image  # builds with mmdebstrap, umoci, skopeo (root)


def test_the_image_builds_from_a_clean_clone(tmp_path, manager_image):
    """Only tracked files go in: a clone builds the project's layer anew (the Debian bases and
    the wheelhouse come from the shared cache) and passes every check."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(image.REPO_ROOT), str(clone)], check=True)
    env = dict(os.environ, KRUISECTL_CACHE_DIR=str(image.CACHE_DIR))
    env.pop("KRUISECTL_REPO_ROOT", None)
    result = subprocess.run([sys.executable, "-m", "localcluster.image", "--fresh", "--dist", str(tmp_path / "dist")],
                            cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    archive = tmp_path / "dist" / f"kruise-manager-{image.project_version(clone)}.oci.tar"
    config = image.inspect(archive)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == head  # a clean clone is not dirty
    assert image.problems(config, image.layer_members(archive), image.project_version(clone)) == []
    print(result.stdout)


def test_skopeo_inspect_shows_the_entrypoint_user_and_labels(manager_image):
    config = image.inspect(manager_image.oci_archive)["config"]
    assert config["Entrypoint"] == ["kruise-manager"]
    assert config["User"] == "65532:65532"
    assert set(config["ExposedPorts"]) == {"9876/tcp", "8000/tcp", "8080/tcp"}
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == image.project_version()
    assert labels["org.opencontainers.image.revision"] == image.revision()
    assert labels["org.opencontainers.image.source"] == image.source_url()
    sizes = image.size(manager_image.oci_archive)
    print(f"image size: {sizes['compressed'] / 1e6:.1f} MB compressed")


def test_no_compiler_package_manager_or_cache_is_in_the_image(manager_image):
    layers = image.layer_members(manager_image.oci_archive)
    assert image.problems(image.inspect(manager_image.oci_archive), layers, manager_image.version) == []
    everything = {path for layer in layers for path in layer}
    assert "usr/bin/python3" in everything and "usr/local/bin/kruise-manager" in everything
    assert not any(path.startswith(("usr/lib/python3/dist-packages/pip", "usr/bin/apt")) for path in everything)


def test_the_docker_archive_is_tagged_with_the_charts_image(manager_image):
    """docker load / kind load image-archive / ctr images import take the name from RepoTags;
    the chart's default image is kruisectl/kruise-manager:<appVersion>."""
    with tarfile.open(manager_image.docker_archive) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [f"docker.io/{image.NAME}:{manager_image.version}"]
    assert len(manifest[0]["Layers"]) == 2
    docker_config = image.inspect(manager_image.docker_archive)
    assert docker_config["rootfs"] == image.inspect(manager_image.oci_archive)["rootfs"]  # the same layers
