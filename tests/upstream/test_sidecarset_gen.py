"""The differential test's generator and shrinker (sidecarset_gen), without a cluster: a seed
names its combinations, features switch content on and off, and shrinking reaches the
smallest combination a (fabricated) comparator still rejects."""

from __future__ import annotations

import json

import pytest

from tests.upstream import sidecarset_gen as gen
from tests.upstream import workloadspread_gen
from tests.upstream.sidecarset_fuzz import renamed


def _text(comb) -> str:
    return json.dumps(comb, sort_keys=True)


def test_every_combination_selects_only_its_own_pods():
    for i in range(200):
        comb = gen.combination(5, i)
        assert comb["namespace"] in {**gen.NAMESPACES, **gen.EXCLUDED_NAMESPACES}
        for pod in comb["pods"]:
            assert pod["metadata"]["labels"][gen.FUZZ_LABEL] == comb["id"]
        for sidecarset in comb["sidecarsets"]:
            selector = sidecarset["spec"]["selector"]
            assert selector == {} or selector["matchLabels"][gen.FUZZ_LABEL] == comb["id"]


def _walk(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@pytest.mark.parametrize("feature, probe", [
    ("hot_upgrade", lambda d: (d.get("upgradeStrategy") or {}).get("upgradeType") == "HotUpgrade"),
    ("native_sidecar", lambda d: d.get("restartPolicy") == "Always"),
    ("patch_metadata", lambda d: "patchPodMetadata" in d),
    ("injection_revision", lambda d: "revision" in d),
    ("paused", lambda d: d.get("paused") is True and "revision" not in d and "type" not in d),
    ("transfer_env", lambda d: "sourceContainerNameFrom" in d),
])
def test_a_feature_appears_only_when_switched_on(feature, probe):
    def seen(features):
        return sum(probe(d) for i in range(300) for d in _walk(gen.combination(9, i, features)["sidecarsets"]))
    assert seen(gen.ALL) > 0
    assert seen(gen.ALL - {feature}) == 0


def test_without_pod_conflicts_no_sidecar_or_volume_takes_a_pod_name():
    for features, clashes in ((gen.ALL - {"pod_conflicts"}, False), (gen.ALL, True)):
        seen = False
        for i in range(300):
            comb = gen.combination(19, i, features)
            pod_names = {c["name"] for p in comb["pods"] for c in p["spec"]["containers"]} | \
                {v["name"] for p in comb["pods"] for v in p["spec"].get("volumes") or []}
            side_names = {x["name"] for s in comb["sidecarsets"] for x in
                          (s["spec"].get("containers") or []) + (s["spec"].get("volumes") or [])}
            seen |= bool(pod_names & side_names)
        assert seen == clashes


def test_ci_runs_every_feature():
    assert gen.DEFERRED == frozenset() and gen.CI_FEATURES == gen.ALL


def test_without_cross_conflicts_no_two_sidecarsets_share_a_name():
    for i in range(300):
        comb = gen.combination(11, i, gen.ALL - {"cross_conflicts"})
        names = [c["name"] for s in comb["sidecarsets"]
                 for c in (s["spec"].get("containers") or []) + (s["spec"].get("initContainers") or [])]
        per_set = [{c["name"] for c in (s["spec"].get("containers") or []) + (s["spec"].get("initContainers") or [])}
                   for s in comb["sidecarsets"]]
        assert sum(len(n) for n in per_set) == len(set().union(*per_set)), comb["id"]
        volumes = [{v["name"] for v in s["spec"].get("volumes") or []} for s in comb["sidecarsets"]]
        assert sum(len(v) for v in volumes) == len(set().union(*volumes)), comb["id"]
        assert names is not None


def test_a_fair_share_is_valid_and_a_fair_share_invalid():
    from manager import sidecarset
    verdicts = [not sidecarset.validate(s) for i in range(300)
                for s in gen.combination(13, i, gen.ALL - {"cross_conflicts"})["sidecarsets"]]
    assert 0.5 < sum(verdicts) / len(verdicts) < 0.95


def test_shrinking_reaches_the_smallest_failing_combination():
    """The fabricated comparator fails when a SidecarSet has a container with a transferEnv
    naming env var TZ: what is left is one SidecarSet, one pod, one container with only that."""
    def needle(d):
        return "TZ" in (d.get("envNames") or []) or d.get("envName") == "TZ"

    def fails(comb):
        return any(needle(d) for s in comb["sidecarsets"] for d in _walk(s))

    comb = next(c for c in (gen.combination(17, i) for i in range(500))
                if fails(c) and len(c["sidecarsets"]) > 1 and len(c["pods"]) > 1
                and all(s["spec"]["selector"] for s in c["sidecarsets"]))
    small, calls = gen.shrink(comb, fails, budget=5000)
    assert fails(small)
    assert len(small["sidecarsets"]) == 1 and len(small["pods"]) == 1
    assert len(small["pods"][0]["spec"]["containers"]) == 1  # a pod keeps one container
    spec = small["sidecarsets"][0]["spec"]
    containers = spec.get("containers") or spec.get("initContainers")
    assert set(spec) <= {"selector", "containers", "initContainers"} and len(containers) == 1
    assert containers[0]["transferEnv"] in ([{"envName": "TZ"}], [{"envNames": ["TZ"]}])
    assert set(containers[0]) == {"transferEnv"}
    assert spec["selector"] == {"matchLabels": {gen.FUZZ_LABEL: comb["id"]}}
    # minimal: no single further drop still fails
    again, _ = gen.shrink(small, fails, budget=5000)
    assert _text(again) == _text(small)
    assert 0 < calls < 5000


def test_shrinking_stops_at_its_budget():
    calls = []

    def fails(comb):
        calls.append(1)
        return True

    gen.shrink(gen.combination(1, 1), fails, budget=7)
    assert len(calls) == 7


def test_a_parity_case_is_valid_python_in_the_case_namespace():
    comb = gen.combination(3, 4)
    comb["sidecarsets"][0]["spec"]["namespace"] = comb["namespace"]
    text = gen.as_parity_case(comb, {p["metadata"]["name"]: [] for p in comb["pods"]}, ["x"])
    calls = []
    eval(text.split("\n", 1)[1].strip(), {"case": lambda *a, **k: calls.append((a, k)), "true": True})
    (args, kwargs), = calls
    case_id = args[0]
    assert case_id == f"fuzz-{comb['id']}"
    assert args[1][0]["spec"]["namespace"] == f"parity-{case_id}"
    assert all(p["metadata"]["labels"]["parity"] == case_id for p in args[2])
    assert kwargs["refused"] == ["x"]


def test_renamed_moves_names_and_labels_only():
    comb = gen.combination(3, 5)
    moved = renamed(comb, comb["id"] + "-k1")
    assert [s["metadata"]["name"] for s in moved["sidecarsets"]] == \
        [s["metadata"]["name"].replace(comb["id"], comb["id"] + "-k1") for s in comb["sidecarsets"]]
    assert all(p["metadata"]["labels"][gen.FUZZ_LABEL] == comb["id"] + "-k1" for p in moved["pods"])
    assert moved["namespace"] == comb["namespace"]


@pytest.mark.parametrize("generator", [gen, workloadspread_gen], ids=["sidecarset", "workloadspread"])
def test_a_seed_and_an_index_name_one_combination(generator):
    assert _text(generator.combination(42, 7)) == _text(generator.combination(42, 7))
    assert _text(generator.combination(42, 7)) != _text(generator.combination(42, 8))
    assert _text(generator.combination(42, 7)) != _text(generator.combination(43, 7))
