"""The Dockerfile, for users with a container daemon, builds the image make image builds: built
here with buildah (vfs storage, chroot isolation: no daemon) from make image's own Debian bases
and wheelhouse, offline, and compared with make image's result."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from localcluster import image
from tests.conftest import require

pytestmark = pytest.mark.image


def _files_under(archive, prefix: str) -> set[str]:
    return {path for layer in image.layer_members(archive, directories=False) for path in layer
            if path.startswith(prefix)}


@pytest.fixture(scope="module")
def dockerfile_image(tmp_path_factory, manager_image):
    require("image")  # buildah among them
    work = tmp_path_factory.mktemp("dockerfile")
    context = work / "context"
    image.stage_sources(context)
    shutil.copy(image.REPO_ROOT / "Dockerfile", context / "Dockerfile")
    log = work / "build.log"
    bases = work / "bases"  # buildah names an oci: image after its path, which may not hold ".cache"
    bases.symlink_to(image.base_layout(log))
    wheels = image.wheelhouse(log)
    storage = ["--storage-driver", "vfs", "--root", str(work / "storage"), "--runroot", str(work / "run")]
    args = {"BASE": f"oci:{bases}:runtime-base", "BUILD_BASE": f"oci:{bases}:build-base", "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "/wheels", "VERSION": manager_image.version, "REVISION": manager_image.revision,
            "SOURCE": image.source_url(), "CREATED": "unknown", "SOURCE_DATE_EPOCH": str(image.source_date_epoch())}
    argv = ["buildah", *storage, "bud", "--isolation", "chroot", "--volume", f"{wheels}:/wheels:ro",
            "--tag", "localhost/kruise-manager-dockerfile:test", "--layers=false"]
    argv += [f"--build-arg={key}={value}" for key, value in args.items()]
    archive = work / "dockerfile.oci.tar"
    try:
        result = subprocess.run([*argv, str(context)], capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        subprocess.run(["buildah", *storage, "push", "--quiet", "localhost/kruise-manager-dockerfile:test",
                        f"oci-archive:{archive}:{image.NAME}:{manager_image.version}"], check=True, timeout=600)
    finally:
        subprocess.run(["buildah", *storage, "rmi", "--all", "--force"], capture_output=True, timeout=300)
        shutil.rmtree(work / "storage", ignore_errors=True)
    print(f"Dockerfile built with buildah: {image.size(archive)['compressed'] / 1e6:.1f} MB compressed", file=sys.stderr)
    return archive


def test_the_dockerfile_builds_the_same_config(dockerfile_image, manager_image):
    built, ours = image.inspect(dockerfile_image)["config"], image.inspect(manager_image.oci_archive)["config"]
    for key in ("User", "Entrypoint", "Env", "WorkingDir", "ExposedPorts"):
        assert built.get(key) == ours.get(key), key
    oci = lambda labels: {k: v for k, v in labels.items()  # noqa: E731 (buildah adds its own)
                          if k.startswith("org.opencontainers.image.") and k != "org.opencontainers.image.created"}
    assert oci(built["Labels"]) == oci(ours["Labels"]) and len(oci(ours["Labels"])) == 6
    assert image.problems(image.inspect(dockerfile_image), image.layer_members(dockerfile_image),
                          manager_image.version) == []


def test_the_dockerfile_installs_the_same_files(dockerfile_image, manager_image):
    built, ours = _files_under(dockerfile_image, "usr/local/"), _files_under(manager_image.oci_archive, "usr/local/")
    assert "usr/local/bin/kruise-manager" in ours
    assert built == ours, (sorted(built - ours)[:20], sorted(ours - built)[:20])
