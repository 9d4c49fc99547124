"""In-process cost of the pod webhook's memo (``manager/memo.py``): the SidecarSet admission
handler on pods like ``bench/webhook_latency.py``'s, without the memo (the injection rules
alone) and through it, for distinct pods (no request alike: the memo's worst case, every pod
met once) and template pods (identical but for their names: the memo's case). No cluster and
no network, so the figures are the handler's own and steady enough to compare two versions.

    python bench/memo_overhead.py [--pods 2000] [--repeat 5] [--shapes 10]

Final line: milliseconds per pod (the best of ``--repeat`` passes) per path, and the memo's
counts over the timed passes through it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import REGISTRY  # noqa: E402

from manager import sidecarset  # noqa: E402
from manager.handlers import SidecarSetAdmission, slim_namespace, slim_sidecarset  # noqa: E402
from manager.informer import Informer  # noqa: E402
from manager.memo import Memo  # noqa: E402

NAMESPACE = "bench-with"
SHAPE_LABEL = "bench-shape"
MEMO_RESULTS = ("hit", "first", "miss", "bypass")


def sidecarsets(shapes: int) -> list[dict]:
    """The webhook bench's SidecarSets: one for the template pods, one per shape, one for the
    odd shapes; defaulted as the SidecarSet webhook stores them."""
    def one(name: str, selector: dict, container: dict, volumes: list | None = None) -> dict:
        return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
                "metadata": {"name": name, "generation": 1, "resourceVersion": "1", "uid": f"uid-{name}"},
                "spec": {"selector": selector, "containers": [container], "volumes": volumes or []}}
    found = [one("bench", {"matchLabels": {"app": "bench"}}, {"name": "side", "image": "registry.local/side:1"})]
    for shape in range(shapes):
        found.append(one(f"bench-shape-{shape}", {"matchLabels": {SHAPE_LABEL: f"s{shape}"}},
                         {"name": f"side-{shape}", "image": f"registry.local/side-{shape}:1",
                          "env": [{"name": "LEVEL", "value": "info"}],
                          "volumeMounts": [{"name": f"conf-{shape}", "mountPath": "/etc/side"}]},
                         [{"name": f"conf-{shape}", "emptyDir": {}}]))
    odd = [f"s{shape}" for shape in range(1, shapes, 2)]
    found.append(one("bench-odd", {"matchExpressions": [{"key": SHAPE_LABEL, "operator": "In", "values": odd}]},
                     {"name": "side-odd", "image": "registry.local/side-odd:1"}))
    return [slim_sidecarset(sidecarset.defaulted(s)) for s in found]


def request(name: str, labels: dict, containers: list[dict], seq: int) -> dict:
    """A CREATE review's request for a pod as the apiserver sends it (its defaults filled in)."""
    for container in containers:
        container.update({"resources": {}, "terminationMessagePath": "/dev/termination-log",
                          "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
    pod = {"metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                        "managedFields": [{"manager": "webhook-bench", "operation": "Update", "apiVersion": "v1",
                                           "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                                           "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {}}}]},
           "spec": {"containers": containers, "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst", "automountServiceAccountToken": False,
                    "serviceAccountName": "default", "serviceAccount": "default", "securityContext": {},
                    "schedulerName": "bench-none", "enableServiceLinks": True, "priority": 0,
                    "preemptionPolicy": "PreemptLowerPriority",
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 300},
                                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 300}]},
           "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    return {"uid": f"review-{seq}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name, "namespace": NAMESPACE, "operation": "CREATE",
            "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": True,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}


def distinct(seq: int, shapes: int) -> dict:
    shape = seq % shapes
    containers = [{"name": f"app-{j}", "image": f"registry.local/app-{shape}-{j}:1",
                   "env": [{"name": "SHAPE", "value": f"s{shape}"},
                           {"name": f"OPTION_{j}", "value": "v" * (8 * (shape + 1))}]}
                  for j in range(1 + shape % 3)]
    return request(f"bench-{seq}", {"app": "bench-distinct", SHAPE_LABEL: f"s{shape}", "bench-seq": str(seq)},
                   containers, seq)


def template(seq: int) -> dict:
    return request(f"bench-{seq}", {"app": "bench"}, [{"name": "app", "image": "registry.local/app:1"}], seq)


def memo_counts() -> dict[str, float]:
    counts = {r: REGISTRY.get_sample_value("kruise_manager_webhook_memo_answers_total", {"result": r}) or 0.0
              for r in MEMO_RESULTS}
    counts["probe"] = REGISTRY.get_sample_value("kruise_manager_webhook_memo_probes_total") or 0.0
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=2000, help="pods per pass")
    parser.add_argument("--repeat", type=int, default=5, help="passes per path (the best counts)")
    parser.add_argument("--shapes", type=int, default=10)
    args = parser.parse_args()
    if min(args.pods, args.repeat, args.shapes) < 1:
        print("error: every count must be at least 1", file=sys.stderr)
        return 2
    sets, namespaces = Informer(None, "/sidecarsets"), Informer(None, "/namespaces")
    for s in sidecarsets(args.shapes):
        sets.items[f"/{s['metadata']['name']}"] = s
    namespaces.items[f"/{NAMESPACE}"] = slim_namespace({"metadata": {"name": NAMESPACE}})
    admission = SidecarSetAdmission(sets, namespaces, "kruise-system")
    snapshot = sets.snapshot()
    seq = iter(range(10**9))

    def best(make, handle) -> float:
        times = []
        for _ in range(args.repeat):
            requests = [make(next(seq)) for _ in range(args.pods)]
            copies = [copy.deepcopy(r) for r in requests]  # the rules must see untouched requests
            started = time.perf_counter()
            for r in copies:
                handle(r)
            times.append((time.perf_counter() - started) / args.pods)
        return round(min(times) * 1000, 4)

    figures, memo = {}, {}
    for kind, make in (("distinct", lambda n: distinct(n, args.shapes)), ("template", template)):
        figures[f"{kind}_rules_ms"] = best(make, lambda r: admission._mutate_pod(r, snapshot))
        admission._memo = Memo(admission._mutate_pod)
        before = memo_counts()
        figures[f"{kind}_memo_ms"] = best(make, admission.mutate_pod)
        memo[kind] = {k: round(v - before[k]) for k, v in memo_counts().items()}
        figures[f"{kind}_memo_over_rules"] = round(figures[f"{kind}_memo_ms"] / figures[f"{kind}_rules_ms"], 3)
    print(json.dumps({"pods_per_pass": args.pods, "passes": args.repeat, **figures, "memo": memo}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
