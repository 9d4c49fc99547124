"""The OCI runtime's pure parts: image references, argv and user from image and pod, the
capability sets and the runtime spec (the containers themselves run in tests/image)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.hostlet import HostletError
from localcluster.hostlet.oci import capabilities, container_argv, container_user, normalize_reference, runtime_spec

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n"
IMAGE = {"config": {"Entrypoint": ["kruise-manager"], "Cmd": ["--role=all"], "User": "65532:65532"}}


@pytest.mark.parametrize("reference, normal", [
    ("kruisectl/kruise-manager:0.1.0", "docker.io/kruisectl/kruise-manager:0.1.0"),
    ("docker.io/kruisectl/kruise-manager:0.1.0", "docker.io/kruisectl/kruise-manager:0.1.0"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("registry.local:5000/a/b", "registry.local:5000/a/b:latest"),
    ("localhost/x:1", "localhost/x:1"),
    ("a/b@sha256:00", "docker.io/a/b@sha256:00"),
])
def test_references_are_normalized_as_a_runtime_does(reference, normal):
    assert normalize_reference(reference) == normal


def test_argv_follows_the_kubelets_rule():
    env = {"ROLE": "webhook"}
    assert container_argv(IMAGE, {}, env) == ["kruise-manager", "--role=all"]
    assert container_argv(IMAGE, {"args": ["--role=$(ROLE)"]}, env) == ["kruise-manager", "--role=webhook"]
    assert container_argv(IMAGE, {"command": ["kruise-manager"]}, env) == ["kruise-manager"]  # the cmd goes
    assert container_argv(IMAGE, {"command": ["sh"], "args": ["-c", "$$HOME"]}, env) == ["sh", "-c", "$HOME"]


def test_user_comes_from_the_image_unless_the_pod_says_otherwise():
    assert container_user("65532:65532", {}, {}, PASSWD) == (65532, 65532, "/nonexistent")
    assert container_user("nonroot", {}, {}, PASSWD) == (65532, 65532, "/nonexistent")
    pod = {"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 2000}}}
    assert container_user("65532:65532", pod, {}, PASSWD) == (1000, 2000, "/")
    assert container_user("65532", pod, {"securityContext": {"runAsUser": 0}}, PASSWD) == (0, 2000, "/root")


def test_run_as_non_root_refuses_root():
    with pytest.raises(HostletError, match="runAsNonRoot"):
        container_user("", {"spec": {"securityContext": {"runAsNonRoot": True}}}, {}, PASSWD)
    with pytest.raises(HostletError, match="unable to find user"):
        container_user("nobody-here", {}, {}, PASSWD)


def test_capabilities_drop_all_leaves_none_and_non_root_has_none_effective():
    dropped = capabilities({"securityContext": {"capabilities": {"drop": ["ALL"]}}}, 65532)
    assert dropped["bounding"] == [] and dropped["effective"] == []
    root = capabilities({"securityContext": {"capabilities": {"drop": ["NET_RAW"], "add": ["NET_ADMIN"]}}}, 0)
    assert "CAP_NET_RAW" not in root["bounding"] and "CAP_NET_ADMIN" in root["effective"]
    assert capabilities({}, 65532)["effective"] == [] and "CAP_KILL" in capabilities({}, 65532)["bounding"]


def test_runtime_spec_carries_user_root_network_mounts_and_memory_limit():
    spec = runtime_spec(argv=["kruise-manager"], env={"A": "1"}, cwd="/", uid=65532, gid=65532,
                        rootfs=Path("/images/rootfs"), readonly=True, hostname="node-1", netns="/var/run/netns/kc1-10",
                        binds=[("/pods/p/volumes/certs", "/tmp/certs", False), ("/pods/p/sa", "/var/run/sa", True)],
                        cgroups_path="/parent/c1", memory_limit=512 << 20, no_new_privileges=True,
                        caps=capabilities({}, 65532))
    assert spec["process"]["user"]["uid"] == 65532 and spec["process"]["env"] == ["A=1"]
    assert spec["root"] == {"path": "/images/rootfs", "readonly": True}
    assert {"type": "network", "path": "/var/run/netns/kc1-10"} in spec["linux"]["namespaces"]
    assert spec["linux"]["resources"]["memory"] == {"limit": 512 << 20, "swap": 512 << 20}
    binds = {m["destination"]: m["options"] for m in spec["mounts"] if m["type"] == "bind"}
    assert "rw" in binds["/tmp/certs"] and "ro" in binds["/var/run/sa"]
    assert spec["process"]["noNewPrivileges"] is True and spec["hostname"] == "node-1"
    unlimited = runtime_spec(argv=["x"], env={}, cwd="", uid=0, gid=0, rootfs=Path("/r"), readonly=False, hostname="h",
                             netns=None, binds=[], cgroups_path="/p/c", memory_limit=None, no_new_privileges=False,
                             caps=capabilities({}, 0))
    assert "memory" not in unlimited["linux"]["resources"] and {"type": "network"} in unlimited["linux"]["namespaces"]


def _archive(path: Path, *names: str) -> Path:
    import io
    import json
    import tarfile

    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{i:064x}", "size": 1,
         "annotations": {"org.opencontainers.image.ref.name": name}} for i, name in enumerate(names)]}
    data = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_local_images_are_found_by_their_reference(tmp_path):
    from localcluster.hostlet.oci import LocalImages

    images = LocalImages([_archive(tmp_path / "a.oci.tar", "kruisectl/kruise-manager:0.1.0", "latest")], tmp_path)
    assert images.has("kruisectl/kruise-manager:0.1.0") and images.has("docker.io/kruisectl/kruise-manager:0.1.0")
    assert not images.has("kruisectl/kruise-manager:0.2.0") and not images.has(None)
    assert list(images.archives) == ["docker.io/kruisectl/kruise-manager:0.1.0"]  # a bare tag names nothing


def test_without_a_local_image_there_is_no_oci_runtime_and_the_reason_says_so(tmp_path):
    from localcluster.hostlet.oci import LocalImages, OciRuntime

    runtime, reason = OciRuntime.detect(LocalImages([], tmp_path))
    assert runtime is None and ("no image is present locally" in reason or "root" in reason)
