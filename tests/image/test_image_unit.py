"""The image's recipe and checks as pure logic: what make image and the Dockerfile must agree
on, the lock, and what :func:`localcluster.image.problems` finds (no build here)."""

from __future__ import annotations

import re
import tomllib

import pytest

from localcluster import image

DOCKERFILE = (image.REPO_ROOT / "Dockerfile").read_text()
GOOD = {"config": {"Entrypoint": ["kruise-manager"], "User": "65532:65532",
                   "Labels": {"org.opencontainers.image.version": "0.1.0",
                              "org.opencontainers.image.source": "file:///src",
                              "org.opencontainers.image.revision": "abc"}}}


def _dockerfile_instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1].strip() for line in joined.splitlines() if line.startswith(name + " ")]


def test_dockerfile_runs_make_images_install_steps_in_its_build_stage():
    runs = _dockerfile_instructions("RUN")
    for step in image.INSTALL_STEPS:
        assert step in runs


def test_dockerfile_declares_the_same_user_entrypoint_ports_env_and_labels():
    assert _dockerfile_instructions("USER") == [image.USER]
    assert _dockerfile_instructions("ENTRYPOINT") == ['["' + '", "'.join(image.ENTRYPOINT) + '"]']
    assert _dockerfile_instructions("EXPOSE") == [" ".join(p.split("/")[0] for p in image.PORTS)]
    env = " ".join(_dockerfile_instructions("ENV"))
    for value in image.ENV[1:]:  # PATH is the base's
        assert value in env
    for key, value in image.PIP_ENV.items():
        assert f"{key}={value}" in env
    labelled = set(re.findall(r"(org\.opencontainers\.image\.[a-z]+)=", " ".join(_dockerfile_instructions("LABEL"))))
    assert labelled == set(image.labels("v", "r", "s", "c"))
    assert image.NONROOT_PASSWD in DOCKERFILE and image.NONROOT_GROUP in DOCKERFILE


def test_dockerfile_copies_what_make_image_builds_from():
    copied = {part for line in _dockerfile_instructions("COPY") if not line.startswith("--from")
              for part in line.split()[:-1]}
    assert copied == set(image.SOURCES) | {image.LOCK}
    assert f"VERSION={image.project_version()}" in _dockerfile_instructions("ARG")


def test_lock_pins_every_dependency_with_hashes():
    lock = (image.REPO_ROOT / image.LOCK).read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M))
    requirements = tomllib.loads((image.REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    for requirement in requirements:
        assert normal(re.split(r"[<>=!~ \[]", requirement)[0]) in {normal(n) for n in pinned}, requirement
    blocks = re.split(r"^(?=[A-Za-z0-9_.-]+==)", lock, flags=re.M)[1:]
    assert len(blocks) == len(pinned)
    assert all("--hash=sha256:" in block for block in blocks)


def test_sources_are_the_packages_without_bytecode():
    files = image.source_files()
    assert image.LOCK in {f.as_posix() for f in files}
    assert any(f.parts[0] == "manager" for f in files)
    assert not any("__pycache__" in f.parts or f.suffix == ".pyc" for f in files)
    assert not any(f.parts[0] in ("tests", "localcluster", "charts") for f in files)


def test_wheels_are_chosen_for_bookworms_glibc():
    platforms = image.manylinux_platforms()
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms


def test_a_good_image_has_no_problems():
    assert image.problems(GOOD, [["usr/bin/python3.11", "etc/passwd"], ["usr/local/bin/kruise-manager"]], "0.1.0") == []


@pytest.mark.parametrize("change, path, expected", [
    ({"Entrypoint": ["python3"]}, None, "entrypoint"),
    ({"User": "0"}, None, "user"),
    ({"Labels": {}}, None, "org.opencontainers.image.version"),
    ({}, "usr/local/lib/python3.11/dist-packages/pip/__init__.py", "must not be in the image"),
    ({}, "usr/local/bin/pip3", "must not be in the image"),
    ({}, "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "must not be in the image"),
    ({}, "var/cache/apt/archives/python3_3.11.deb", "must not be in the image"),
    ({}, "root/.cache/pip/http/x", "must not be in the image"),
    ({}, "usr/bin/gcc-12", "must not be in the image"),
    ({}, "tmp/leftover", "must not be in the image"),
])
def test_problems_are_found(change, path, expected):
    config = {"config": {**GOOD["config"], **change}}
    found = image.problems(config, [["usr/bin/python3"], [path] if path else []], "0.1.0")
    assert any(expected in problem for problem in found), found
