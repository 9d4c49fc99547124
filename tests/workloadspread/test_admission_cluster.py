"""WorkloadSpread's pod webhook through the real apiserver, scheduler, controller-manager and
two manager replicas: a Deployment scaled 0 -> 5 -> 3 -> 5 over a WorkloadSpread with a
``maxReplicas: 2`` subset and an unlimited one; the pods' injected fields and annotation, the
creatingPods/deletingPods bookkeeping, eviction (dry-run and real), and SidecarSet injection
composed after WorkloadSpread's on the same pods. No WorkloadSpread controller runs here: the
status is the webhook's alone."""

from __future__ import annotations

import json
import re
import time

import pytest
from kubernetes import client, watch

from kubekit import kruise
from localcluster.fleet import Fleet
from manager.informer import Informer
from tests.conftest import wait_for
from tests.manager.conftest import start_cluster
from tests.namespaces import fresh_namespace

pytestmark = pytest.mark.cluster

GROUP, VERSION = "apps.kruise.io", "v1alpha1"
ZONE = kruise.ZONE_LABEL
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def local():
    cluster = start_cluster()
    cluster.create_nodes(4)  # zone-a, zone-b, zone-c, zone-a
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def fleet(local):
    fleet = Fleet(local).install(2)
    api = local.api()
    fleet.start_all("--role=webhook")  # no controller: the status below is the webhook's alone
    fleet.wait_ready(timeout=90)
    admission = client.AdmissionregistrationV1Api(api)
    # the caBundle is in place once the replicas are ready; vpod as upstream registers it
    config = admission.read_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION)
    bundle = config.webhooks[0].client_config.ca_bundle
    admission.patch_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION, [{
        "op": "add", "path": "/webhooks/-", "value": {
            "name": "vpod.kb.io", "sideEffects": "NoneOnDryRun", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"caBundle": bundle, "service": {"namespace": fleet.namespace, "name": kruise.SERVICE,
                                                             "path": kruise.VALIDATE_POD_PATH, "port": 443}},
            "rules": [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
                      {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods/eviction"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                        "values": ["kube-system", fleet.namespace]}]}}}])
    yield fleet
    fleet.stop_all()


@pytest.fixture
def ns(local):
    with fresh_namespace(client.CoreV1Api(local.api()), "ws") as name:
        yield name


def zone_term(*zones) -> dict:
    return {"matchExpressions": [{"key": ZONE, "operator": "In", "values": list(zones)}]}


def spread(name: str, target: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadSpread", "metadata": {"name": name},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "subsets": [
                         {"name": "subset-a", "requiredNodeSelectorTerm": zone_term("zone-a"), "maxReplicas": 2,
                          "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "a", "effect": "NoSchedule"}],
                          "patch": {"metadata": {"labels": {"subset": "subset-a"}}}},
                         {"name": "rest", "preferredNodeSelectorTerms": [
                             {"weight": 10, "preference": zone_term("zone-b")}]}]}}


def deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "app", "image": "registry.local/app:1"}],
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]}}}}


def pods_of(core, namespace: str, app: str) -> list:
    return [p for p in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
            if p.metadata.deletion_timestamp is None]


def matched(pod) -> dict:
    return json.loads((pod.metadata.annotations or {})[kruise.MATCHED_WORKLOADSPREAD_ANNOTATION])


def versioned(objects, namespace: str, name: str, version: str) -> dict:
    ws = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "workloadspreads", name)
    return {s["name"]: s for s in (ws.get("status") or {}).get("versionedSubsetStatuses", {}).get(version, [])}


def subset_history(objects, namespace: str, name: str, version: str, subset: str, since: str) -> list[dict]:
    """``subset``'s status in every version of the WorkloadSpread written since resourceVersion
    ``since``, in order (the apiserver replays the writes): what a write did, even when a later
    one (the controller's, or the next admission's) changed it before a test could read it."""
    history = []
    for event in watch.Watch().stream(objects.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                      "workloadspreads", field_selector=f"metadata.name={name}",
                                      resource_version=since, timeout_seconds=2):
        subsets = (event["object"].get("status") or {}).get("versionedSubsetStatuses", {}).get(version, [])
        history += [status for status in subsets if status["name"] == subset]
    return history


def recorded_deleting(objects, namespace: str, name: str, version: str, subset: str, since: str) -> set[str]:
    """Every pod name any version of the WorkloadSpread held in ``subset``'s deletingPods since
    resourceVersion ``since``: the webhook records a deleted pod there, and the controller drops
    the entry again once the pod is gone, which it may do before a test reads the status."""
    return {pod for status in subset_history(objects, namespace, name, version, subset, since)
            for pod in status.get("deletingPods") or {}}


def scale(apps, namespace: str, name: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})


def test_deployment_pods_fill_the_limited_subset_first_and_leave_it_on_delete_and_eviction(local, fleet, ns):
    api = local.api()
    core, apps, objects = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", spread("spread", "web"))
    # a SidecarSet on the same pods: upstream injects it after WorkloadSpread, into the same patch
    sidecarset = f"logger-{ns}"
    objects.create_cluster_custom_object(GROUP, VERSION, "sidecarsets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SidecarSet", "metadata": {"name": sidecarset},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "namespace": ns,
                 "containers": [{"name": "logger", "image": "registry.local/logger:1"}]}})
    try:
        probe = {"metadata": {"name": "probe", "labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}
        wait_for(lambda: [c.name for c in core.create_namespaced_pod(ns, probe, dry_run="All").spec.containers]
                 == ["logger", "app"], timeout=15, what="the SidecarSet in the managers' caches")
        apps.create_namespaced_deployment(ns, deployment("web", 0))
        scale(apps, ns, "web", 5)
        pods = wait_for(lambda: (lambda ps: ps if len(ps) == 5 else None)(pods_of(core, ns, "web")),
                        timeout=60, what="5 pods")
        version = pods[0].metadata.labels["pod-template-hash"]
        by_subset: dict[str, list] = {}
        for pod in pods:
            value = matched(pod)
            by_subset.setdefault(value["subset"], []).append(pod)
            assert value["name"] == "spread"
            assert [c.name for c in pod.spec.containers] == ["logger", "app"]  # BeforeAppContainer
            if value["subset"] == "subset-a":
                assert UUID.match(value["uid"]), value
                assert list(value) == ["name", "subset", "uid"]
                terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
                assert [[(e.key, e.operator, e.values) for e in t.match_expressions] for t in terms.node_selector_terms] \
                    == [[(ZONE, "In", ["zone-a"])]]
                assert pod.metadata.labels["subset"] == "subset-a"
                assert ("dedicated", "a") in [(t.key, t.value) for t in pod.spec.tolerations]
            else:
                assert value == {"name": "spread", "subset": "rest"}  # no write, no uid
                preferred = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
                assert [(p.weight, p.preference.match_expressions[0].values) for p in preferred] == [(10, ["zone-b"])]
                assert "subset" not in pod.metadata.labels
        assert sorted((k, len(v)) for k, v in by_subset.items()) == [("rest", 3), ("subset-a", 2)]
        status = versioned(objects, ns, "spread", version)
        assert status["subset-a"]["missingReplicas"] == 0
        assert sorted(status["subset-a"]["creatingPods"]) == sorted(matched(p)["uid"] for p in by_subset["subset-a"])
        assert status["rest"]["missingReplicas"] == -1 and not status["rest"].get("creatingPods")
        # the scheduler honours the injected affinity: subset-a's pods run in zone-a only
        nodes = {n.metadata.name: n.metadata.labels.get(ZONE) for n in core.list_node().items}
        scheduled = wait_for(lambda: (lambda ps: ps if all(p.spec.node_name for p in ps) else None)(
            [core.read_namespaced_pod(p.metadata.name, ns) for p in by_subset["subset-a"]]), timeout=60,
            what="subset-a pods scheduled")
        assert {nodes[p.spec.node_name] for p in scheduled} == {"zone-a"}

        # eviction: dry-run records nothing, a real one records the pod in deletingPods
        victim = by_subset["subset-a"][0].metadata.name
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim, "namespace": ns}}
        core.create_namespaced_pod_eviction(victim, ns, {**body, "deleteOptions": {"dryRun": ["All"]}}, dry_run="All")
        assert core.read_namespaced_pod(victim, ns).metadata.deletion_timestamp is None
        assert victim not in (versioned(objects, ns, "spread", version)["subset-a"].get("deletingPods") or {})
        assert versioned(objects, ns, "spread", version)["subset-a"]["missingReplicas"] == 0
        since = objects.get_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", "spread")["metadata"][
            "resourceVersion"]
        core.create_namespaced_pod_eviction(victim, ns, body)
        assert victim in versioned(objects, ns, "spread", version)["subset-a"]["deletingPods"]
        # the eviction's own write frees the place (read from the writes: the ReplicaSet's
        # replacement, created once the pod is terminating, may have taken it again already)
        history = subset_history(objects, ns, "spread", version, "subset-a", since)
        assert history and victim in history[0].get("deletingPods", {}), history
        assert history[0]["missingReplicas"] == 1, history
        # the ReplicaSet replaces the evicted pod: its replacement takes subset-a's free place
        replacement = wait_for(lambda: [p for p in pods_of(core, ns, "web")
                                        if p.metadata.name not in {q.metadata.name for q in pods}], timeout=60,
                               what="a replacement pod")
        assert [matched(p)["subset"] for p in replacement] == ["subset-a"]
        assert versioned(objects, ns, "spread", version)["subset-a"]["missingReplicas"] == 0

        # scale-down deletes pods: each subset-a pod deleted gives its place back
        before = {p.metadata.name: matched(p)["subset"] for p in pods_of(core, ns, "web")}
        since = objects.get_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", "spread")["metadata"][
            "resourceVersion"]
        scale(apps, ns, "web", 3)
        remaining = wait_for(lambda: (lambda ps: ps if len(ps) == 3 else None)(pods_of(core, ns, "web")),
                             timeout=60, what="3 pods")
        gone = [name for name in before if name not in {p.metadata.name for p in remaining}]
        gone_a = [name for name in gone if before[name] == "subset-a"]
        status = versioned(objects, ns, "spread", version)
        assert set(gone_a) <= recorded_deleting(objects, ns, "spread", version, "subset-a", since)
        assert status["subset-a"]["missingReplicas"] == len(gone_a)
        scale(apps, ns, "web", 5)
        grown = wait_for(lambda: (lambda ps: ps if len(ps) == 5 else None)(pods_of(core, ns, "web")),
                         timeout=60, what="5 pods again")
        assert sorted(matched(p)["subset"] for p in grown) == ["rest", "rest", "rest", "subset-a", "subset-a"]
        assert versioned(objects, ns, "spread", version)["subset-a"]["missingReplicas"] == 0
    finally:
        objects.delete_cluster_custom_object(GROUP, VERSION, "sidecarsets", sidecarset)


def test_pods_of_other_workloads_and_bare_pods_are_left_alone(local, fleet, ns):
    api = local.api()
    core, apps, objects = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", spread("spread", "web"))
    apps.create_namespaced_deployment(ns, deployment("other", 2))
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 2 else None)(pods_of(core, ns, "other")),
                    timeout=60, what="2 pods of another Deployment")
    core.create_namespaced_pod(ns, {"metadata": {"name": "bare", "labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}})
    for pod in [*pods, core.read_namespaced_pod("bare", ns)]:
        assert kruise.MATCHED_WORKLOADSPREAD_ANNOTATION not in (pod.metadata.annotations or {})
        assert pod.spec.affinity is None
    ws = objects.get_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", "spread")
    assert not (ws.get("status") or {}).get("versionedSubsetStatuses")


def test_an_absent_resource_is_reported_as_absent_not_as_unsynced(local):
    """What keeps a manager without the WorkloadSpread CRD ready: the informer's list answers
    404 (the real apiserver's answer for a resource no CRD serves)."""
    from kubekit.api import Client

    api_client = Client.from_kubeconfig(str(local.kubeconfig))
    missing = Informer(api_client, f"/apis/{GROUP}/{VERSION}/nosuchthings", name="missing").start()
    present = Informer(api_client, kruise.WORKLOADSPREADS_PATH, name="present").start()
    try:
        wait_for(missing.absent.is_set, timeout=10, what="the missing resource reported absent")
        wait_for(present.synced.is_set, timeout=10, what="WorkloadSpreads listed")
        assert not missing.synced.is_set()
        assert not present.absent.is_set()
    finally:
        missing.stop()
        present.stop()


def test_a_subset_over_its_lowered_limit_stays_full_when_its_pods_are_replaced(local, fleet, ns):
    """Beyond upstream: subset-a holds 3 pods when its maxReplicas is lowered to 2; a pod of it
    deleted frees no place there (upstream's webhook frees one on every deletion, so the
    ReplicaSet's replacement would make it 3 again, and so on while pods are replaced)."""
    api = local.api()
    core, apps, objects = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    body = spread("spread", "web")
    body["spec"]["subsets"][0]["maxReplicas"] = 3
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", body)
    time.sleep(1.0)  # the replicas' caches have it
    apps.create_namespaced_deployment(ns, deployment("web", 4))
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 4 else None)(pods_of(core, ns, "web")), timeout=60,
                    what="4 pods")
    in_a = [p.metadata.name for p in pods if matched(p)["subset"] == "subset-a"]
    assert len(in_a) == 3, [matched(p) for p in pods]
    body["spec"]["subsets"][0]["maxReplicas"] = 2
    objects.patch_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", "spread",
                                           {"spec": {"subsets": body["spec"]["subsets"]}})  # a merge patch
    time.sleep(2.0)  # the replicas' caches have the lower limit
    core.delete_namespaced_pod(in_a[0], ns)
    replacement = wait_for(lambda: [p for p in pods_of(core, ns, "web") if p.metadata.name not in
                                    {q.metadata.name for q in pods}], timeout=60, what="the ReplicaSet's replacement")
    assert [matched(p)["subset"] for p in replacement] == ["rest"]
    assert sorted(matched(p)["subset"] for p in pods_of(core, ns, "web")) == ["rest", "rest", "subset-a", "subset-a"]
    version = pods[0].metadata.labels["pod-template-hash"]
    status = versioned(objects, ns, "spread", version)["subset-a"]
    assert status["missingReplicas"] == 0 and in_a[0] in status["deletingPods"], status


def test_admissions_waiting_on_one_replica_share_one_status_write(local, fleet, ns):
    """Beyond upstream: while one admission writes a WorkloadSpread's status, the others that
    wait on the same replica are applied in turn to the status and written by one PUT, with the
    places a write per pod would have given (subset-a and subset-b 3 each, the rest unlimited).
    The first write is held (on the real client) until the other eleven wait, so the second
    write carries all of them."""
    import threading

    from manager.workloadspread import subsets
    from manager.workloadspread.admission import WorkloadSpreadAdmission, slim_workloadspread

    objects = client.CustomObjectsApi(local.api())
    body = spread("shared", "web")
    body["spec"]["subsets"] = [{"name": "subset-a", "maxReplicas": 3}, {"name": "subset-b", "maxReplicas": 3},
                               {"name": "rest"}]
    client.AppsV1Api(local.api()).create_namespaced_deployment(ns, deployment("web", 0))
    created = objects.create_namespaced_custom_object(GROUP, VERSION, ns, "workloadspreads", body)
    real = local.client("ws-shared-write", pool_size=16)
    spreads = Informer(real, kruise.WORKLOADSPREADS_PATH, transform=slim_workloadspread, name="workloadspreads").start()
    wait_for(lambda: spreads.get(f"{ns}/shared"), timeout=30, what="the informer's WorkloadSpread")
    puts, waiting = [], threading.Event()

    class HeldClient:
        """The real client; the first status PUT waits until every other admission is queued."""

        def request(self, method, path, **kwargs):
            if method == "PUT" and path.endswith("/status"):
                puts.append(path)
                if len(puts) == 1:
                    assert waiting.wait(20), "the other admissions never queued"
            return real.request(method, path, **kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    admission = WorkloadSpreadAdmission(HeldClient(), spreads)
    ws = spreads.get(f"{ns}/shared")
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": True}]
    pods = [{"metadata": {"name": f"web-{i}", "namespace": ns, "labels": {"app": "web", "pod-template-hash": "1"},
                          "ownerReferences": owner}} for i in range(12)]
    answers: dict[str, str] = {}

    def admit(pod):
        answers[pod["metadata"]["name"]] = admission.acquire(ws, pod, subsets.CREATE)[0]

    first = threading.Thread(target=admit, args=(pods[0],))
    first.start()
    wait_for(lambda: puts, timeout=20, what="the first status write")
    others = [threading.Thread(target=admit, args=(pod,)) for pod in pods[1:]]
    for thread in others:
        thread.start()
    queue = admission._queue(created["metadata"]["uid"])
    wait_for(lambda: len(queue._pending) == len(others) or None, timeout=20, what="eleven admissions queued")
    waiting.set()
    for thread in [first, *others]:
        thread.join(30)
    spreads.stop()
    assert len(answers) == 12 and len(puts) == 2, (answers, puts)
    assert answers["web-0"] == "subset-a"
    assert sorted(answers.values()) == ["rest"] * 6 + ["subset-a"] * 3 + ["subset-b"] * 3
    status = versioned(objects, ns, "shared", "1")
    for name in ("subset-a", "subset-b"):
        assert status[name]["missingReplicas"] == 0, status
        assert set(status[name].get("creatingPods") or {}) == {p for p, s in answers.items() if s == name}, status
    assert status["rest"]["missingReplicas"] == -1 and not status["rest"].get("creatingPods"), status  # unlimited
