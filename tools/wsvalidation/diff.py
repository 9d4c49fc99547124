"""Our WorkloadSpread validation against upstream v1.8.3's own Go code, offline: the unit
tests' cases, seeded random WorkloadSpreads and subset patches against a Deployment go
through manager.workloadspread.validation and through upstream's validating functions (built
from the Go module cache into a test binary), and the verdicts and messages are compared.

Run: .venv/bin/python tools/wsvalidation/diff.py [--seed N] [--count N]. Needs Go and the
kruise v1.8.3 module in the module cache (the lead's `make build-upstream` fetches it). Exit 1
when a verdict differs other than on this manager's refusal of non-Deployment/ReplicaSet/Job
targets; the final line is JSON figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from manager.workloadspread.validation import SUPPORTED_KINDS, _subset_errors, aggregate, validate  # noqa: E402
from tests.workloadspread import test_validation_unit as table  # noqa: E402

MODULE = "github.com/openkruise/kruise@v1.8.3"
PACKAGE = "pkg/webhook/workloadspread/validating"
FULL_CONTAINER = {"name": "side", "image": "side:1", "imagePullPolicy": "IfNotPresent",
                  "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "demo"}}, "template": {
                  "metadata": {"labels": {"app": "demo"}},
                  "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
                           "schedulerName": "default-scheduler",
                           "containers": [{**FULL_CONTAINER, "name": "main", "image": "img:1",
                                           "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                           "volumes": [{"name": "data", "emptyDir": {}}]}}}}


def table_cases() -> list[dict]:
    args = lambda test: test.pytestmark[0].args[1]  # noqa: E731 - the parametrize table
    cases = [{"ws": ws} for ws in args(table.test_valid_workloadspreads_pass)]
    cases += [{"ws": ws} for ws, _, _ in args(table.test_invalid_workloadspreads_are_refused_where_upstream_refuses)]
    cases += [{"ws": table.demo(), "others": [o for o in others if o["metadata"]["namespace"] == "default"]}
              for others, _ in args(table.test_one_workloadspread_per_workload)]
    cases += [{"ws": table.demo(targetRef={**table.DEMO["spec"]["targetRef"], **change}), "old": table.demo()}
              for change in args(table.test_the_target_cannot_change)]
    return cases


def patch_cases() -> list[dict]:
    patches = [p for p, _ in table.test_a_patch_is_checked_against_an_existing_workloads_template.pytestmark[0].args[1]]
    patches += [{"spec": {"containers": [FULL_CONTAINER]}}, {"spec": {"containers": [{**FULL_CONTAINER, "name": "main"}]}},
                {"spec": {"containers": None}}, {"spec": {"containers": []}}, {"metadata": {"labels": {"bad key": "a"}}},
                {"spec": {"hostNetwork": True}}, [1, 2], 5]
    return [{"ws": table.demo(subsets=[{"name": "a", "patch": p}]), "workload": DEPLOYMENT} for p in patches]


def random_cases(rng: random.Random, count: int) -> list[dict]:
    max_replicas = [None, None, 0, 1, 3, -1, "0%", "10%", "30%", "50%", "70%", "100%", "101%", "-5%", "5.5%", "7", "+20%"]
    operators = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Near"]
    keys = ["topology.kubernetes.io/zone", "pool", "bad key", "a/b/c", "/x", "x" * 64]
    targets = [("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("batch/v1", "Job"),
               ("extensions/v1beta1", "Deployment"), ("apps/v1", "Job"), ("batch/v1", "ReplicaSet")]
    cases = []
    for _ in range(count):
        subsets = []
        for j in range(rng.choice([0, 1, 2, 2, 3, 4])):
            s = {"name": rng.choice(["a", "b", "", "a"]) if rng.random() < 0.2 else f"s{j}"}
            if (mr := rng.choice(max_replicas)) is not None:
                s["maxReplicas"] = mr
            if rng.random() < 0.5:
                values = rng.choice([[], ["x"], ["1", "2"]])
                s["requiredNodeSelectorTerm"] = {"matchExpressions": [{
                    "key": rng.choice(keys[:2] * 3 + keys), "operator": rng.choice(operators[:2] * 3 + operators),
                    **({"values": values} if values else {})}]}
            if rng.random() < 0.2:
                s["preferredNodeSelectorTerms"] = [{"weight": rng.choice([0, 1, 50, 100, 101]), "preference": {
                    "matchExpressions": [{"key": rng.choice(keys), "operator": rng.choice(operators), "values": ["v"]}]}}]
            if rng.random() < 0.3:
                tol = {"key": rng.choice(["", "ecs", "ecs", "bad key"]), "operator": rng.choice(["", "Equal", "Exists", "Like"]),
                       "value": rng.choice(["", "", "v", "not valid"]), "effect": rng.choice(["", "NoSchedule", "NoExecute", "Evict"])}
                s["tolerations"] = [{k: v for k, v in tol.items() if v}]
            subsets.append(s)
        api_version, kind = rng.choice(targets[:3] * 4 + targets)
        spec = {"targetRef": {"apiVersion": api_version, "kind": kind, "name": "web"}, "subsets": subsets}
        if rng.random() < 0.4:
            strategy = {"type": rng.choice(["Fixed", "Adaptive", "Adaptive", "random"])}
            if rng.random() < 0.6:
                strategy["adaptive"] = {"rescheduleCriticalSeconds": rng.choice([0, 10, 147, 148, 295, 296, -1])}
            spec["scheduleStrategy"] = strategy
        case = {"ws": {"metadata": {"name": "ws", "namespace": "default"}, "spec": spec}}
        if rng.random() < 0.1:
            case["others"] = [{"metadata": {"name": "other", "namespace": "default"}, "spec": {
                "targetRef": {"apiVersion": rng.choice(["apps/v1", "batch/v1"]), "kind": kind, "name": "web"},
                "subsets": [{"name": "a"}]}}]
        if rng.random() < 0.1:
            old = copy.deepcopy(case["ws"])
            old["spec"]["targetRef"] = {**spec["targetRef"], "name": rng.choice(["web", "other"])}
            case["old"] = old
        cases.append(case)
    return cases


def ours(case: dict) -> str:
    ws = case["ws"]
    if "workload" in case:
        errors = _subset_errors(ws, ws["spec"]["subsets"], case["workload"]["spec"]["template"])
    else:
        errors = validate(ws, case.get("old"), case.get("others") or [])
    return aggregate(errors) if errors else "OK"


def upstream(cases: list[dict], work: Path) -> list[str]:
    gopath = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = Path(gopath) / MODULE
    if not source.is_dir():
        raise SystemExit(f"error: {source} not found (the upstream module is fetched by make build-upstream)")
    module = work / "kruise"
    shutil.copytree(source, module)
    subprocess.run(["chmod", "-R", "u+w", str(module)], check=True)
    shutil.copy(Path(__file__).with_name("zz_diff_test.go"), module / PACKAGE / "zz_diff_test.go")
    binary = work / "verdicts.test"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
    subprocess.run(["go", "test", "-vet=off", "-c", "-o", str(binary), f"./{PACKAGE}/"], cwd=module, env=env, check=True)
    for case in cases:
        for obj in (case["ws"], *(case.get("others") or []), *([case["old"]] if case.get("old") else [])):
            obj.setdefault("apiVersion", "apps.kruise.io/v1alpha1")
            obj.setdefault("kind", "WorkloadSpread")
    (work / "cases.json").write_text(json.dumps(cases))
    subprocess.run([str(binary), "-test.run", "TestWorkloadSpreadVerdicts"], check=True, capture_output=True,
                   env={**os.environ, "WS_CASES": str(work / "cases.json"), "WS_OUT": str(work / "out.txt")})
    return (work / "out.txt").read_text().split("\n")[:len(cases)]


def normalized(message: str) -> str:
    """Pointers Go prints as addresses, which differ from run to run."""
    message = re.sub(r"TolerationSeconds:&\d+", "TolerationSeconds:(*int64)(PTR)", message)
    message = re.sub(r"\(0x[0-9a-f]+\)", "(PTR)", message)
    return re.sub(r'spec\.targetFilter: Invalid value: (v1alpha1\.TargetFilter\{.*?ReplicasPathList:[^}]*\}|\{"selector".*?\}\]?\}\})',
                  "spec.targetFilter: Invalid value: TF", message)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=1000)
    options = parser.parse_args()
    cases = table_cases() + patch_cases() + random_cases(random.Random(options.seed), options.count)
    mine = [ours(c) for c in cases]
    with tempfile.TemporaryDirectory(prefix="wsvalidation-") as work:
        theirs = upstream(copy.deepcopy(cases), Path(work))
    verdicts, messages, refused_targets = [], 0, 0
    for case, a, b in zip(cases, mine, theirs):
        if (a == "OK") != (b == "OK"):
            if ((case["ws"]["spec"].get("targetRef") or {}).get("kind") not in SUPPORTED_KINDS and a != "OK"):
                refused_targets += 1  # this manager's refusal, by design
            else:
                verdicts.append({"ours": a, "upstream": b, "case": case["ws"]["spec"]})
        elif normalized(a) != normalized(b):
            messages += 1
            print(f"message differs:\n  ours:     {a}\n  upstream: {b}", file=sys.stderr)
    for diff in verdicts:
        print(f"VERDICT differs: {json.dumps(diff)}", file=sys.stderr)
    print(json.dumps({"cases": len(cases), "refusedByBoth": sum(a != "OK" and b != "OK" for a, b in zip(mine, theirs)),
                      "allowedByBoth": sum(a == b == "OK" for a, b in zip(mine, theirs)),
                      "verdictDiffs": len(verdicts), "messageDiffs": messages, "refusedTargetsByDesign": refused_targets,
                      "seed": options.seed}))
    return 1 if verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
