"""Reused admission answers (manager.memo): a request met for the first time costs one
computation (its key remembered); the second time, the answer and a probe with other names
decide whether the key is reused; from the third on, pods that differ only in identity get the
reused answer with their own names put back. Rules that decide anything from a pod's name are
never served from the memo; a change to the watched SidecarSets (a status write too) is a new
key. Pure logic, no cluster."""

from __future__ import annotations

import base64
import json
import time

import pytest

from manager.admission import encode_patch, patched, review_body
from manager.handlers import SidecarSetAdmission, slim_namespace, slim_sidecarset
from manager.informer import Informer
from manager.memo import Memo, State


def pod_request(name: str, token_volume: str, uid: str = "u", **labels) -> dict:
    mount = {"name": token_volume, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
    return {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
            "namespace": "web", "name": name,
            "object": {"metadata": {"name": name, "namespace": "web", "labels": {"app": "web", **labels},
                                    "managedFields": [{"manager": "kubectl", "time": f"2026-01-01T00:00:{uid[-1:]}Z"}]},
                       "spec": {"containers": [{"name": "app", "image": "app:1", "volumeMounts": [mount]}],
                                "volumes": [{"name": token_volume, "projected": {"sources": []}}]}}}


class Rules:
    """Injection-like rules: copy the pod's containers and add a sidecar; count calls.
    ``copies_name`` puts the pod's name in an annotation; ``decides_on_name`` its length."""

    def __init__(self, copies_name: bool = False, decides_on_name: bool = False):
        self.copies_name, self.decides_on_name, self.calls = copies_name, decides_on_name, 0

    def __call__(self, request: dict, sidecarsets: list[dict]) -> dict:
        self.calls += 1
        pod = request["object"]
        containers = pod["spec"]["containers"] + [{"name": "side", "image": sidecarsets[0]["spec"]["image"]}]
        annotations = {"injected": "side"}
        if self.copies_name:
            annotations["for"] = pod["metadata"]["name"]
        if self.decides_on_name:
            annotations["short"] = str(len(pod["metadata"]["name"]) < 8).lower()
        return patched([{"op": "add", "path": "/spec/containers", "value": containers},
                        {"op": "add", "path": "/metadata/annotations", "value": annotations}], sidecarsets="s")


def state(token: str = "t1") -> State:
    return State(token, [{"metadata": {"name": "s"}, "spec": {"image": "side:1"}, "status": {"matchedPods": 3}}])


def wire(request: dict, response: dict) -> dict:
    answer = json.loads(review_body(request, response))["response"]
    if "patch" in answer:
        answer["patch"] = json.loads(base64.b64decode(answer["patch"]))
    return answer


def within_one_second(check) -> None:
    """Run ``check`` again if the wall-clock second turned under it (answers are per second)."""
    for _ in range(3):
        second = int(time.time())
        try:
            check()
        except AssertionError:
            if int(time.time()) == second:
                raise  # a failure within one second is a failure
            continue  # the second turned under it: a reuse may have been refused for that
        if int(time.time()) == second:
            return
    pytest.fail("the clock kept turning")


def test_pods_differing_in_identity_share_their_computation_and_get_their_own_names():
    def check():
        rules = Rules()
        memo = Memo(rules)
        requests = [pod_request(f"web-{i}", f"kube-api-access-{i}abcd", uid=f"uid-{i}") for i in range(5)]
        answers = [memo.answer(r, state()) for r in requests]
        assert rules.calls == 3  # the first pod's answer, the second's and its probe; the others reuse them
        for request, answer in zip(requests, answers):
            assert wire(request, answer) == wire(request, Rules()(request, state().value))
        volume_mounts = wire(requests[3], answers[3])["patch"][0]["value"][0]["volumeMounts"]
        assert volume_mounts[0]["name"] == "kube-api-access-3abcd"
    within_one_second(check)


@pytest.mark.parametrize("decides", [False, True], ids=["copies-the-name", "decides-on-the-name"])
def test_rules_reading_the_name_get_each_pod_its_own_answer(decides):
    def check():
        rules = Rules(copies_name=not decides, decides_on_name=decides)
        memo = Memo(rules)
        for i, name in enumerate(("web-0", "web-1", "a-much-longer-name")):
            request = pod_request(name, "kube-api-access-zzzzz", uid=f"uid-{i}")
            answer = memo.answer(request, state())
            expected = Rules(copies_name=not decides, decides_on_name=decides)(request, state().value)
            assert wire(request, answer) == wire(request, expected)
        # first pod: its answer; second: its answer and the probe; third: reused when the rules
        # only copy the name, computed when they decide on it
        assert rules.calls == (4 if decides else 3)
    within_one_second(check)


def test_a_new_state_token_is_computed_again():
    rules = Rules()
    memo = Memo(rules)
    request = pod_request("web-0", "kube-api-access-aaaaa")
    memo.answer(request, state("t1"))
    calls = rules.calls
    memo.answer(request, state("t2"))
    assert rules.calls > calls


def test_different_labels_are_different_keys():
    rules = Rules()
    memo = Memo(rules)
    memo.answer(pod_request("web-0", "kube-api-access-aaaaa"), state())
    calls = rules.calls
    memo.answer(pod_request("web-1", "kube-api-access-bbbbb", tier="front"), state())
    assert rules.calls > calls


ENCOUNTERS = {
    # rules, max_entries, steps: (pod name, state token, extra labels, outcome, computations)
    "agreeing rules: first, decided, then hits": (Rules, 1024, [
        ("web-0", "t1", {}, "first", 1), ("web-1", "t1", {}, "miss", 2), ("web-2", "t1", {}, "hit", 0),
        ("web-3", "t1", {}, "hit", 0)]),
    "a probe that disagrees keeps the key from reuse": (lambda: Rules(decides_on_name=True), 1024, [
        ("web-0", "t1", {}, "first", 1), ("web-1", "t1", {}, "miss", 2), ("web-2", "t1", {}, "miss", 1),
        ("web-3", "t1", {}, "miss", 1)]),
    "the same pod twice is probed with other names": (Rules, 1024, [
        ("web-0", "t1", {}, "first", 1), ("web-0", "t1", {}, "miss", 2), ("web-0", "t1", {}, "hit", 0),
        ("web-1", "t1", {}, "hit", 0)]),
    "a new cache version is a new key, met for the first time": (Rules, 1024, [
        ("web-0", "t1", {}, "first", 1), ("web-1", "t1", {}, "miss", 2), ("web-2", "t1", {}, "hit", 0),
        ("web-3", "t2", {}, "first", 1), ("web-4", "t2", {}, "miss", 2), ("web-5", "t2", {}, "hit", 0)]),
    "a new cache version probes a disagreeing key again": (lambda: Rules(decides_on_name=True), 1024, [
        ("web-0", "t1", {}, "first", 1), ("web-1", "t1", {}, "miss", 2), ("web-2", "t1", {}, "miss", 1),
        ("web-3", "t2", {}, "first", 1), ("web-4", "t2", {}, "miss", 2), ("web-5", "t2", {}, "miss", 1)]),
    "interleaved shapes are each decided on their second encounter": (Rules, 1024, [
        ("web-0", "t1", {"tier": "a"}, "first", 1), ("web-1", "t1", {"tier": "b"}, "first", 1),
        ("web-2", "t1", {"tier": "a"}, "miss", 2), ("web-3", "t1", {"tier": "b"}, "miss", 2),
        ("web-4", "t1", {"tier": "a"}, "hit", 0), ("web-5", "t1", {"tier": "b"}, "hit", 0)]),
    "a full table of first encounters forgets them": (Rules, 2, [
        ("web-0", "t1", {"tier": "a"}, "first", 1), ("web-1", "t1", {"tier": "b"}, "first", 1),
        ("web-2", "t1", {"tier": "c"}, "first", 1), ("web-3", "t1", {"tier": "a"}, "first", 1),
        ("web-4", "t1", {"tier": "a"}, "miss", 2), ("web-5", "t1", {"tier": "a"}, "hit", 0)]),
}


@pytest.mark.parametrize("case", ENCOUNTERS)
def test_encounters_of_a_key(case):
    """Each request's outcome and how many times the rules ran for it: once the first time a
    key is met, twice (answer and probe) the second time, none once the probe agreed."""
    make_rules, max_entries, steps = ENCOUNTERS[case]

    def check():
        rules = make_rules()
        memo = Memo(rules, max_entries=max_entries)
        for i, (name, token, labels, outcome, computations) in enumerate(steps):
            request = pod_request(name, f"kube-api-access-{name}", uid=f"uid-{i}", **labels)
            before = {"hit": memo.hits, "first": memo.firsts, "miss": memo.misses}, rules.calls, memo_counts()
            answer = memo.answer(request, state(token))
            counts = memo_counts()
            got = [k for k, v in {"hit": memo.hits, "first": memo.firsts, "miss": memo.misses}.items()
                   if v != before[0][k]]
            assert (got, rules.calls - before[1]) == ([outcome], computations), f"step {i} ({name}, {token})"
            assert counts[outcome] - before[2][outcome] == 1
            assert counts["probe"] - before[2]["probe"] == (computations - 1 if outcome == "miss" else 0)
            expected = make_rules()(request, state(token).value)
            assert wire(request, answer) == wire(request, expected), f"step {i}: not the rules' answer"
            assert len(memo._seen) <= max_entries
    within_one_second(check)


def memo_counts() -> dict[str, float]:
    from prometheus_client import REGISTRY
    counts = {result: REGISTRY.get_sample_value("kruise_manager_webhook_memo_answers_total", {"result": result}) or 0.0
              for result in ("hit", "first", "miss", "bypass")}
    counts["probe"] = REGISTRY.get_sample_value("kruise_manager_webhook_memo_probes_total") or 0.0
    return counts


def test_the_metrics_count_hits_first_encounters_misses_probes_and_bypasses():
    def check():
        memo = Memo(Rules())
        before = memo_counts()
        for i in range(4):  # one shape: a first encounter, a miss with its probe, then hits
            memo.answer(pod_request(f"web-{i}", f"kube-api-access-{i}abcd", uid=f"uid-{i}"), state())
        for i in range(2):  # each request differs (a label): first encounters, none probed
            memo.answer(pod_request("web-9", "kube-api-access-zzzzz", seq=str(i)), state())
        memo.answer({"uid": "x", "object": {"spec": {"containers": []}}}, state())  # no metadata: nothing to key
        after = memo_counts()
        assert {k: after[k] - before[k] for k in after} == {"hit": 2, "first": 3, "miss": 1, "bypass": 1, "probe": 1}
    within_one_second(check)


def test_rules_that_fail_on_the_probe_still_answer_the_request():
    def fussy(request: dict, sidecarsets: list[dict]) -> dict:
        if request["object"]["metadata"]["name"].startswith("kruise-memo-probe"):
            raise KeyError("probe")
        return Rules()(request, sidecarsets)

    def check():
        memo = Memo(fussy)
        for i in range(3):  # met once, then probed (and failing), then computed again: never reused
            request = pod_request(f"web-{i}", f"kube-api-access-{i}aaaa", uid=f"uid-{i}")
            assert wire(request, memo.answer(request, state())) == wire(request, Rules()(request, state().value))
        assert (memo.firsts, memo.misses, memo.hits) == (1, 2, 0)
    within_one_second(check)


def test_an_answer_in_wire_form_is_passed_through_unchanged():
    response = patched([{"op": "add", "path": "/x", "value": 1}])
    encoded = encode_patch(response)
    assert encode_patch(encoded) is encoded
    assert wire({"uid": "u"}, encoded) == wire({"uid": "u"}, response)


def test_sidecarset_admission_through_the_memo_answers_as_its_rules_do():
    """The real injection rules behind the memo: every pod gets exactly the answer the rules
    give it, the rules ran for the first two pods only (and the second's probe), and a status
    write to the SidecarSet (a new informer version) is a new key."""
    sidecarsets, namespaces = Informer(None, "/sidecarsets"), Informer(None, "/namespaces")
    sidecarsets.items["/logger"] = slim_sidecarset({
        "metadata": {"name": "logger", "generation": 1, "resourceVersion": "7", "uid": "x"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "containers": [{"name": "logger", "image": "logger:1", "podInjectPolicy": "BeforeAppContainer"}]},
        "status": {"matchedPods": 2}})
    namespaces.items["/web"] = slim_namespace({"metadata": {"name": "web", "labels": {"team": "a"}}})
    admission = SidecarSetAdmission(sidecarsets, namespaces, "kruise-system")

    def check():
        admission._memo = Memo(admission._mutate_pod)
        requests = [pod_request(f"web-{i}", f"kube-api-access-{i}wxyz", uid=f"uid-{i}") for i in range(4)]
        answers = [admission.mutate_pod(r) for r in requests]
        memo = admission._memo
        assert (memo.firsts, memo.misses, memo.hits) == (1, 1, 2)
        for request, answer in zip(requests, answers):
            direct = admission._mutate_pod(request, sidecarsets.snapshot())
            assert wire(request, answer) == wire(request, direct)
            containers = next(op["value"] for op in wire(request, answer)["patch"] if op["path"] == "/spec/containers")
            assert [c["name"] for c in containers] == ["logger", "app"]
            assert containers[1]["volumeMounts"][0]["name"] == request["object"]["spec"]["volumes"][0]["name"]
        with sidecarsets._lock:
            sidecarsets.items["/logger"] = {**sidecarsets.items["/logger"], "status": {"matchedPods": 3}}
            sidecarsets.version += 1
        admission.mutate_pod(pod_request("web-9", "kube-api-access-9wxyz"))
        assert (memo.firsts, memo.misses, memo.hits) == (2, 1, 2)  # a new key, met for the first time
    within_one_second(check)


@pytest.mark.parametrize("obj", ["a string, not a pod", {"metadata": "x"}, {"metadata": {}, "spec": {"volumes": 5}},
                                 {"metadata": {"name": 7}, "spec": "x"}, None])
def test_requests_of_any_shape_reach_the_rules(obj):
    seen = []
    memo = Memo(lambda request, value: seen.append(request["object"]) or {"allowed": True})
    assert memo.answer({"uid": "u", "name": "p", "object": obj}, state()) == {"allowed": True}
    assert seen[0] == obj
