"""Differential test: the same SidecarSets and the same pods through the real upstream
kruise-manager v1.8.3 (the ``upstream_install`` control plane) and through this project's
manager (a control plane of this module's own), compared after normalization, order included:
the SidecarSets as stored (defaulting, revision hash annotations, status) and every pod as a
server-side dry-run create returns it (containers, init containers, env, mounts, volumes, pull
secrets, annotations byte for byte but the injection time).

Where upstream's result is not determined (the order among SidecarSets of one group comes from
its cache's map iteration), upstream's pod is asked for again until it equals ours or the
attempts run out: ours must be one of upstream's results. Equal is not enough: each side must
have added to each pod the containers its case says (``inject``), so two managers that both
skip a pod fail. Each SidecarSet's verdict (created, or the HTTP status of the refusal) must be
the same on both and the one its case says (``refused``), and so must the status of each pod
both must refuse (``refused_pods``). Ours runs with the feature gates of upstream's install
(``AllAlpha=true``); a case may set upstream's ``kruise-configuration`` ConfigMap on both
(``configuration``). The cases are in parity_cases.py."""

from __future__ import annotations

import copy
import difflib
import json
import re
import time

import pytest

from kubekit.api import ApiError
from localcluster.cluster import LocalCluster
from tests.upstream.conftest import our_manager
from tests.upstream.parity_cases import CASES

pytestmark = pytest.mark.cluster

SIDECARSETS = "/apis/apps.kruise.io/v1alpha1/sidecarsets"
HASH_KEYS = ("kruise.io/sidecarset-hash", "kruise.io/sidecarset-hash-without-image")
CONFIGURATION = "kruise-configuration"
GATES = "--feature-gates=AllAlpha=true,AllBeta=true"  # upstream's install runs with these (config/manager)
UPSTREAM_ATTEMPTS = 16  # for an order upstream leaves to its cache: 2 SidecarSets miss 1 in 2**16


class Side:
    """One manager's control plane, spoken to as a user does (admin credentials, plain JSON);
    ``manager_namespace`` holds the manager's ``kruise-configuration`` ConfigMap."""

    def __init__(self, name: str, cluster: LocalCluster, manager_namespace: str = "kruise-system"):
        self.name = name
        self.client = cluster.client("parity-test")
        self.manager_namespace = manager_namespace

    def call(self, method: str, path: str, body=None, **kwargs) -> dict:
        return self.client.request(method, path, body=body, timeout=15, **kwargs)

    def namespace(self, name: str, labels: dict) -> None:
        try:
            self.call("POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
        except ApiError as err:
            if not err.conflict:
                raise
            self.call("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}},
                      content_type="application/merge-patch+json")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.call("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
                return
            except ApiError as err:
                assert err.not_found and time.monotonic() < deadline, f"{self.name}: no default ServiceAccount: {err}"
            time.sleep(0.2)

    def create(self, sidecarset: dict, refuse: bool = False) -> None:
        """Create it; with ``refuse``, the webhook must refuse it instead."""
        name = sidecarset["metadata"]["name"]
        try:
            self.call("POST", SIDECARSETS, sidecarset)
        except ApiError as err:
            if refuse and (err.status == 422 or "denied the request" in err.message):  # the schema or a webhook
                return
            pytest.fail(f"{self.name} refused SidecarSet {name}: {err}")
        if refuse:
            pytest.fail(f"{self.name} accepted SidecarSet {name}, which the case says is refused")

    def verdict(self, sidecarset: dict) -> int:
        """Create the SidecarSet: 201, or the HTTP status of the webhook's refusal."""
        try:
            self.call("POST", SIDECARSETS, sidecarset)
            return 201
        except ApiError as err:
            assert "denied the request" in err.message, f"{self.name}: {sidecarset['metadata']['name']}: {err}"
            return err.status

    def refusal(self, namespace: str, pod: dict) -> int:
        """The HTTP status of a dry-run create of ``pod`` that must be refused."""
        try:
            self.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod, dryRun="All")
        except ApiError as err:
            return err.status
        pytest.fail(f"{self.name} accepted pod {pod['metadata']['name']}")

    def configure(self, data: dict | None) -> None:
        """The manager's ``kruise-configuration`` ConfigMap with ``data``; None deletes it."""
        path = f"/api/v1/namespaces/{self.manager_namespace}/configmaps"
        try:
            self.call("DELETE", f"{path}/{CONFIGURATION}")
        except ApiError as err:
            if not err.not_found:
                raise
        if data is not None:
            self.call("POST", path, {"metadata": {"name": CONFIGURATION}, "data": data})

    def update(self, sidecarset: dict) -> bool:
        """Replace the spec, as ``kubectl replace`` of a changed manifest does; accepted or not."""
        name = sidecarset["metadata"]["name"]
        current = self.call("GET", f"{SIDECARSETS}/{name}")
        body = {**sidecarset, "metadata": {**sidecarset["metadata"],
                                           "resourceVersion": current["metadata"]["resourceVersion"]}}
        try:
            self.call("PUT", f"{SIDECARSETS}/{name}", body)
            return True
        except ApiError as err:
            assert err.status in (403, 500) and "denied the request" in err.message, \
                f"{self.name}: update of SidecarSet {name}: {err}"
            return False

    def settled(self, name: str, timeout: float = 30) -> dict:
        """The stored SidecarSet once its controller has recorded the current generation."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.call("GET", f"{SIDECARSETS}/{name}")
            status = got.get("status") or {}
            if status.get("latestRevision") and status.get("observedGeneration") == got["metadata"].get("generation"):
                return got
            assert time.monotonic() < deadline, f"{self.name}: status of {name} not written: {status}"
            time.sleep(0.2)

    def delete(self, name: str) -> None:
        try:
            self.call("DELETE", f"{SIDECARSETS}/{name}")
        except ApiError as err:
            if not err.not_found:
                raise

    def dry_run(self, namespace: str, pod: dict, revisions: dict[str, str], timeout: float = 15) -> dict:
        """The pod a dry-run create returns, once the webhook's cache has the SidecarSets' status
        (every injection it records names the current ControllerRevision)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                created = self.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod, dryRun="All")
            except ApiError as err:
                pytest.fail(f"{self.name} refused pod {pod['metadata']['name']}: {err}")
            recorded = json.loads((created["metadata"].get("annotations") or {}).get(HASH_KEYS[0]) or "{}")
            if all(recorded[n].get("controllerRevision") == r for n, r in revisions.items() if n in recorded) \
                    or time.monotonic() > deadline:
                return created
            time.sleep(0.3)


def _stamp_free(text: str) -> str:
    return re.sub(r'"updateTimestamp":"[^"]*"', '"updateTimestamp":"<now>"', text)


def normalize_pod(pod: dict) -> dict:
    """Only what the managers decide about SidecarSets: volatile metadata dropped, the injection
    time and the ServiceAccount volume's random suffix blanked, and upstream's readiness gate
    ``KruisePodReady`` left out (its install enables every alpha feature gate, and
    KruisePodReadinessGate adds that gate to every pod: not a SidecarSet feature, and not one
    this project's manager has)."""
    pod = copy.deepcopy(pod)
    gates = [g for g in pod["spec"].get("readinessGates") or [] if g.get("conditionType") != "KruisePodReady"]
    pod["spec"].pop("readinessGates", None)
    if gates:
        pod["spec"]["readinessGates"] = gates
    meta = pod["metadata"]
    for key in ("uid", "creationTimestamp", "resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    for key in HASH_KEYS:
        if key in (meta.get("annotations") or {}):
            meta["annotations"][key] = _stamp_free(meta["annotations"][key])
    return json.loads(re.sub(r"kube-api-access-[a-z0-9]{5}", "kube-api-access-<id>", json.dumps(pod)))


def injected(sent: dict, returned: dict) -> list[str]:
    """Names of the containers and init containers ``returned`` has that the pod as ``sent``
    had not (by name and image: a sidecar put in place of an app container counts)."""
    def containers(pod):
        return [c for key in ("initContainers", "containers") for c in pod["spec"].get(key) or []]

    own = {(c["name"], c.get("image")) for c in containers(sent)}
    return sorted(c["name"] for c in containers(returned) if (c["name"], c.get("image")) not in own)


def normalize_sidecarset(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"metadata": {"name": meta["name"], "labels": meta.get("labels"), "annotations": meta.get("annotations")},
            "spec": obj["spec"], "status": obj.get("status")}


def diff(theirs, ours) -> str:
    a = json.dumps(theirs, indent=1).splitlines()
    b = json.dumps(ours, indent=1).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "upstream", "ours", lineterm="", n=2))


@pytest.fixture(scope="module")
def ours():
    """This project's manager (one replica, webhook and controller) on its own control plane."""
    with our_manager(GATES) as cluster:
        yield Side("ours", cluster)


@pytest.fixture(scope="module")
def theirs(upstream_install):
    """The upstream manager of tests/upstream/conftest.py's session install."""
    return Side("upstream", upstream_install.cluster, upstream_install.namespace)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_injection_parity(case, theirs, ours):
    namespace = f"parity-{case['id']}"
    everything = [s["metadata"]["name"] for s in case["sidecarsets"]]
    names = [n for n in everything if n not in case["refused"]]
    sides = (theirs, ours)
    try:
        for side in sides:
            side.configure(case["configuration"])
            side.namespace(namespace, case["namespace_labels"])
        if case["configuration"] is not None:
            time.sleep(1.0)  # upstream reads the ConfigMap from its cache
        for sidecarset in case["sidecarsets"]:
            if case["refused"]:
                time.sleep(0.5)  # both validating webhooks' caches hold the SidecarSets created before
            verdicts = {side.name: side.verdict(copy.deepcopy(sidecarset)) for side in sides}
            name = sidecarset["metadata"]["name"]
            assert verdicts["upstream"] == verdicts["ours"], f"SidecarSet {name}: upstream, ours: {verdicts}"
            assert (verdicts["ours"] != 201) is (name in case["refused"]), f"SidecarSet {name}: {verdicts}"
        for sidecarset in case["updates"]:
            for side in sides:
                for n in names:
                    side.settled(n)
            accepted = {side.name: side.update(copy.deepcopy(sidecarset)) for side in sides}
            assert accepted["upstream"] == accepted["ours"], f"update accepted by one side only: {accepted}"
        stored = {side.name: [side.settled(n) for n in names] for side in sides}
        assert [normalize_sidecarset(s) for s in stored["upstream"]] == \
            [normalize_sidecarset(s) for s in stored["ours"]], \
            "stored SidecarSets differ:\n" + diff([normalize_sidecarset(s) for s in stored["upstream"]],
                                                   [normalize_sidecarset(s) for s in stored["ours"]])
        revisions = {s["metadata"]["name"]: s["status"]["latestRevision"] for s in stored["ours"]}
        time.sleep(1.0)  # both webhooks' caches hold the SidecarSets (a pod they skip proves nothing)
        for pod in case["refused_pods"]:
            codes = {side.name: side.refusal(namespace, copy.deepcopy(pod)) for side in sides}
            assert codes["upstream"] == codes["ours"], f"pod {pod['metadata']['name']} refused with: {codes}"
        for pod in case["pods"]:
            expected = sorted(case["inject"][pod["metadata"]["name"]])
            mine = normalize_pod(ours.dry_run(namespace, copy.deepcopy(pod), revisions))
            assert injected(pod, mine) == expected, f"ours, pod {pod['metadata']['name']}: {injected(pod, mine)}"
            seen = []
            for _ in range(UPSTREAM_ATTEMPTS):
                got = normalize_pod(theirs.dry_run(namespace, copy.deepcopy(pod), revisions))
                if got == mine:
                    assert injected(pod, got) == expected, f"upstream, pod {pod['metadata']['name']}"
                    break
                if got not in seen:
                    seen.append(got)
            else:
                pytest.fail(f"pod {pod['metadata']['name']}: ours is none of upstream's {len(seen)} result(s) in "
                            f"{UPSTREAM_ATTEMPTS} attempts; against the first:\n" + diff(seen[0], mine))
    finally:
        for side in sides:
            for name in everything:
                side.delete(name)
            if case["configuration"] is not None:
                side.configure(None)
