"""SidecarSet defaulting, revision hashes and quantities as pure functions (no cluster). The
expected values were computed by upstream OpenKruise v1.8.3's own Go functions
(SetDefaultsSidecarSet, SidecarSetHash, SidecarSetHashWithoutImage, the ControllerRevision
name of its history control, resource.Quantity) on the same inputs; the whole-manager
comparison is tests/upstream/test_injection_parity.py."""

from __future__ import annotations

import json

import pytest

from kubekit import quantity
from manager import gojson
from manager.sidecarset import (HASH_ANNOTATION, HASH_WITHOUT_IMAGE_ANNOTATION, controller_revision_name, defaulted,
                                revision_hashes)


def sidecarset(name: str, **spec) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, **spec}}


GUESTBOOK = sidecarset(
    "sample",
    initContainers=[{"name": "init-myservice", "image": "busybox:1.28",
                     "command": ["sh", "-c", "echo The app is running! && sleep 360"]}],
    containers=[{"name": "guestbook-sidecar", "image": "openkruise/guestbook:sidecar", "imagePullPolicy": "Always",
                 "ports": [{"name": "sidecar-server", "containerPort": 4000}],
                 "volumeMounts": [{"name": "log-volume", "mountPath": "/var/log"}]}],
    volumes=[{"name": "log-volume", "emptyDir": {}}])

CASES = {
    "sample": GUESTBOOK,
    "plain": sidecarset("plain", containers=[{"name": "a", "image": "nginx"}]),
    "res": sidecarset("res", containers=[{"name": "a", "image": "i:1", "resources": {
        "limits": {"cpu": "0.5", "memory": "1.5Gi"},
        "requests": {"cpu": "0.0001", "memory": "128974848", "ephemeral-storage": "1e3"}}}]),
    "env": sidecarset("env", containers=[{
        "name": "a", "image": "i:1", "podInjectPolicy": "AfterAppContainer", "shareVolumePolicy": {"type": "enabled"},
        "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "Y", "value": "<&>"}],
        "transferEnv": [{"sourceContainerName": "app", "envNames": ["B", "A"]},
                        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['c']"}}, "envName": "Z"}]}]),
    "native": sidecarset("native", updateStrategy={"type": "NotUpdate"},
                         initContainers=[{"name": "n", "image": "i:1", "restartPolicy": "Always"},
                                         {"name": "m", "image": "j:2"}],
                         containers=[{"name": "a", "image": "i:1"}]),
    "initonly": sidecarset("initonly", initContainers=[{"name": "n", "image": "i:1"}]),
    "strategy": sidecarset("strategy", containers=[{"name": "a", "image": "i:1"}], namespace="ns",
                           updateStrategy={"type": "RollingUpdate", "maxUnavailable": "50%", "partition": 2},
                           injectionStrategy={"revision": {"customVersion": "v1"}}, revisionHistoryLimit=3,
                           imagePullSecrets=[{"name": "p"}], patchPodMetadata=[{"annotations": {"a": "b"}}]),
    "unicode": sidecarset("unicode", containers=[{"name": "a", "image": "i:1", "env": [
        {"name": "U", "value": "h\u00e9llo \u2028 \t \x01 \"q\" \\ /"}]}]),
}


@pytest.mark.parametrize("case, hash_, without_image, revision", [
    ("sample", "9284wd286c9x8xv4xx6f49z45x26x7z8c7w64v9z868wfx54b2d9z6wvz2294w9c",
     "d8z9d9525w4c2b44bfx24cdb8b7529825dx2wv5b94fvf8x5xwwzvv5277w2zcz4", "sample-7485789df8"),
    ("plain", "b8zf8z5d828d579zb85b8z526x24v9cb7bw7558846f6w5vxvb2z7vdz4928v826",
     "bcc92z544fzbd2784zzb9vxw7v4v5z2v7xzvvdxfxfwx7749xfdb5ffv24fdzd4z", "plain-6b55585f59"),
    ("res", "v9bw49d5zv4x548z56xvxfc9zf5ww4xz4wfz9cdc8w57bc5z744f4vxzxxc54bfv",
     "v88w774fb64zd29vf89744cxc7xdwvx6754f2b6544cz4cd644z5fff48zz8442x", "res-8574c9459"),
    ("env", "5ww998fzvx744vw2vfdfwvvv848cv9fdb46c47v44v7z577f5zcx9d2cbx9f49b9",
     "54f7fzf4d4bdfd65759cvw8xf489xw7fz8cb75d5wz9576bvz7xvwv46x84vvb47", "env-b7b5688f6"),
    ("native", "474d7cvb4w4dxc86z7cxc2vw72694f5824456wvv6vx74b7b8zf9x4dv2dc5czvw",
     "6bz82d662x67487xdb565449f468b7wcv2vdd64d6z789zvx54w54d644w44z6f9", "native-557458847f"),
    ("initonly", "x5vwx9w6vv4dv72c9w4c2f6v74fbwx545b45bbfz6z2dvf8w887xw86fvcb4cf48",
     "x5vwx9w6vv4dv72c9w4c2f6v74fbwx545b45bbfz6z2dvf8w887xw86fvcb4cf48", "initonly-85dbd6c587"),
    ("strategy", "4647xfdcwf424xbcz5dc45d6f484zc5544c9f4bd26b9xb944zd724644cvx5264",
     "27w487zzdv8cfx4968d2xcw2w767527xdd4x2fc6854zcf48fcvv548dx5x29wz4", "strategy-68b9b7bcdd"),
    ("unicode", "z9455f9vd479xv468xc8bfcb499569v54fx77x457dfzvd7v542cc4vx8w4c99zf",
     "cv724v74447x64z5dv599967wbz89w865x6bcbdwvv42bb56wvzc944842fbc42v", "unicode-868fb4cd49"),
])
def test_revision_hashes_and_names_are_upstreams(case, hash_, without_image, revision):
    stored = defaulted(CASES[case])
    annotations = stored["metadata"]["annotations"]
    assert (annotations[HASH_ANNOTATION], annotations[HASH_WITHOUT_IMAGE_ANNOTATION]) == (hash_, without_image)
    assert revision_hashes(stored["spec"]) == (hash_, without_image)
    assert controller_revision_name(stored) == revision


def test_the_sample_is_stored_as_upstreams_webhook_stores_it():
    stored = defaulted(GUESTBOOK)
    assert gojson.dumps(stored["spec"]) == (
        '{"selector":{"matchLabels":{"app":"x"}},"initContainers":[{"name":"init-myservice","image":"busybox:1.28",'
        '"command":["sh","-c","echo The app is running! \\u0026\\u0026 sleep 360"],"resources":{},'
        '"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",'
        '"imagePullPolicy":"IfNotPresent","podInjectPolicy":"AfterAppContainer",'
        '"upgradeStrategy":{"upgradeType":"ColdUpgrade"},"shareVolumePolicy":{"type":"disabled"}}],'
        '"containers":[{"name":"guestbook-sidecar","image":"openkruise/guestbook:sidecar",'
        '"ports":[{"name":"sidecar-server","containerPort":4000,"protocol":"TCP"}],"resources":{},'
        '"volumeMounts":[{"name":"log-volume","mountPath":"/var/log"}],'
        '"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",'
        '"imagePullPolicy":"Always","podInjectPolicy":"BeforeAppContainer",'
        '"upgradeStrategy":{"upgradeType":"ColdUpgrade"},"shareVolumePolicy":{"type":"disabled"}}],'
        '"volumes":[{"name":"log-volume","emptyDir":{}}],'
        '"updateStrategy":{"type":"RollingUpdate","partition":0,"maxUnavailable":1},"injectionStrategy":{},'
        '"revisionHistoryLimit":10}')
    assert defaulted(stored)["spec"] == stored["spec"]  # defaulting the stored object changes nothing


@pytest.mark.parametrize("field, want", [
    ("containers.0.resources", {"limits": {"cpu": "500m", "memory": "1536Mi"},
                                "requests": {"cpu": "1m", "ephemeral-storage": "1e3", "memory": "128974848"}}),
    ("containers.0.env.0.valueFrom.fieldRef", {"apiVersion": "v1", "fieldPath": "metadata.name"}),
    ("containers.0.transferEnv.1.sourceContainerNameFrom.fieldRef",
     {"apiVersion": "v1", "fieldPath": "metadata.labels['c']"}),
    ("containers.0.podInjectPolicy", "AfterAppContainer"),
    ("containers.0.shareVolumePolicy", {"type": "enabled"}),
])
def test_container_defaults(field, want):
    case = "res" if "resources" in field else "env"
    value = defaulted(CASES[case])["spec"]
    for part in field.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    assert value == want


def test_probe_and_volume_defaults():
    s = sidecarset("p", containers=[{
        "name": "a", "image": "i:1", "livenessProbe": {"httpGet": {"port": 8080}},
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 3}, "startupProbe": {"exec": {"command": ["t"]}},
        "lifecycle": {"preStop": {"httpGet": {"port": 1}}}}],
        volumes=[{"name": "a"}, {"name": "b", "hostPath": {"path": "/x"}}, {"name": "c", "secret": {"secretName": "s"}},
                 {"name": "f", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                 {"name": "g", "emptyDir": {"sizeLimit": "1000Mi", "medium": "Memory"}},
                 {"name": "h", "rbd": {"monitors": ["m"], "image": "i"}}])
    spec = defaulted(s)["spec"]
    container = spec["containers"][0]
    assert container["livenessProbe"] == {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
                                          "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert container["readinessProbe"]["periodSeconds"] == 3
    assert container["startupProbe"] == {"exec": {"command": ["t"]}}  # upstream leaves startup probes alone
    assert container["lifecycle"]["preStop"]["httpGet"] == {"path": "/", "port": 1, "scheme": "HTTP"}
    assert gojson.dumps(spec["volumes"]) == (
        '[{"name":"a","emptyDir":{}},{"name":"b","hostPath":{"path":"/x","type":""}},'
        '{"name":"c","secret":{"secretName":"s","defaultMode":420}},'
        '{"name":"f","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3600,"path":"t"}}],'
        '"defaultMode":420}},{"name":"g","emptyDir":{"medium":"Memory","sizeLimit":"1000Mi"}},'
        '{"name":"h","rbd":{"monitors":["m"],"image":"i","pool":"rbd","user":"admin","keyring":"/etc/ceph/keyring"}}]')


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("reg:5000/x/y", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("x@sha256:" + "a" * 64, "IfNotPresent"), ("Bad/Upper", "IfNotPresent"), ("Reg.io/lower:1", "IfNotPresent"),
    ("localhost/app", "Always"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    spec = defaulted(sidecarset("i", containers=[{"name": "a", "image": image}]))["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == policy


@pytest.mark.parametrize("text, encoded, milli", [
    ("100m", "100m", "100m"), ("0.5", "500m", "500m"), ("1000m", "1", "1"), ("1.5Gi", "1536Mi", "1536Mi"),
    ("0.5Gi", "512Mi", "512Mi"), ("1e3", "1e3", "1e3"), ("1E3", "1E3", "1E3"), ("1500k", "1500k", "1500k"),
    ("2048Ki", "2Mi", "2Mi"), ("1025Ki", "1025Ki", "1025Ki"), ("+1", "+1", "+1"), ("00", "0", "0"),
    ("0.0001", "100u", "1m"), ("0.1n", "1n", "1m"), ("128974848", "128974848", "128974848"), ("1.", "1.", "1."),
    (".5", "500m", "500m"), ("12345678901234567890", "12345678901234567890", "12345678901234567890"),
    ("1024Ei", "9223372036854775807", "9223372036854775807"), ("5e-10", "1e-9", "1e-3"), ("1000E", "1", "1"),
    ("1.0", "1", "1"), ("0.5Ki", "512", "512"), ("1536", "1536", "1536"),
])
def test_quantities_are_written_as_apimachinery_writes_them(text, encoded, milli):
    parsed = quantity.parse(text)
    assert (str(parsed), str(quantity.round_up(parsed, -3))) == (encoded, milli)


@pytest.mark.parametrize("text", ["1Ki1", "abc", "", "1e"])
def test_a_bad_quantity_is_refused(text):
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)


def test_go_encoding_rules():
    kind = ("struct", "core/v1.VolumeMount")
    assert gojson.normalize({"mountPath": "/x", "unknown": 1}, kind) == {"name": "", "mountPath": "/x"}
    container = gojson.normalize({"name": "c", "args": []}, ("struct", "apps/v1alpha1.SidecarContainer"))
    assert json.dumps(container) == '{"name": "c", "resources": {}, "upgradeStrategy": {}, "shareVolumePolicy": {}}'
    assert gojson.normalize({}, ("struct", "apps/v1alpha1.SidecarSetStatus")) == \
        {"matchedPods": 0, "updatedPods": 0, "readyPods": 0}
    assert gojson.dumps({"a": "<&>\u2028é"}) == '{"a":"\\u003c\\u0026\\u003e\\u2028é"}'
    with pytest.raises(gojson.DecodeError):
        gojson.normalize({"name": 5}, kind)
