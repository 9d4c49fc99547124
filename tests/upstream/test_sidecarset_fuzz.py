"""The SidecarSet differential test with random combinations (sidecarset_gen, run by
sidecarset_fuzz): a fixed seed and 200 combinations in CI; ``make fuzz-sidecarset N=… SEED=…``
runs a longer search through the same test. Every difference fails the test, printed with the
shrunk combination as a case ready for parity_cases.py.

Environment (for the make target): FUZZ_N, FUZZ_SEED, FUZZ_FEATURES (``ci``, the default:
everything but sidecarset_gen.DEFERRED (empty: every feature); ``all``; or a comma list), FUZZ_REPORT (a file the
summary JSON is written to), FUZZ_SHRINK (calls the shrinker may spend per difference)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.upstream import sidecarset_gen as gen
from tests.upstream.sidecarset_fuzz import FuzzRunner
from tests.upstream.test_injection_parity import ours, theirs  # noqa: F401  (fixtures)

SEED = 20261204
COUNT = 200
# two control planes to start, then about a second per combination at worst
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600 + 2 * int(os.environ.get("FUZZ_N", COUNT)))]


def _features(text: str) -> frozenset[str]:
    if text == "ci":
        return gen.CI_FEATURES
    if text == "all":
        return gen.ALL
    chosen = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = chosen - gen.ALL
    if unknown:
        raise pytest.UsageError(f"FUZZ_FEATURES: unknown feature(s) {', '.join(sorted(unknown))}")
    return chosen


def test_sidecarset_fuzz(theirs, ours):  # noqa: F811
    count = int(os.environ.get("FUZZ_N", COUNT))
    seed = int(os.environ.get("FUZZ_SEED", SEED))
    features = _features(os.environ.get("FUZZ_FEATURES", "ci"))
    runner = FuzzRunner(theirs, ours, log=lambda line: print(line, file=sys.stderr, flush=True))
    try:
        runner.prepare()
        summary, differences = runner.run(seed, count, features,
                                          shrink_budget=int(os.environ.get("FUZZ_SHRINK", 60)))
    finally:
        runner.close()
    summary["excluded"] = sorted(gen.ALL - features)
    summary["injected_pods"] = runner.injected_pods
    summary["refused_sidecarsets"] = runner.refused_sidecarsets
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as out:
            json.dump({"summary": summary, "differences": [
                {"kind": found.kind, "detail": found.detail, "shrunk": small.detail, "case": case}
                for found, small, case in differences]}, out, indent=1)
    print(json.dumps(summary), file=sys.stderr)
    report = "\n\n".join(f"{found.comb['id']} ({found.kind}): {small.detail}\n{case}"
                         for found, small, case in differences)
    assert not differences, f"{len(differences)} of {count} combinations differ:\n{report}"
    # the comparison is not vacuous: pods got sidecars and SidecarSets were refused, on both sides alike
    assert runner.injected_pods >= count // 3, summary
    assert "invalid" not in features or runner.refused_sidecarsets > 0, summary
