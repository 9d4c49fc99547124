"""The drill report drawn from results: what a reader must find in it (escaped messages, every
count, a note where there is nothing to draw), well-formed SVG throughout; the drill's records
as a timeline; where --report may write. No cluster."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from kruisectl import report_file
from kruisectl.drill import report as drillreport
from kruisectl.drill import (ADMITTED, FAILED, NOT_INJECTED, Budget, Outcome, Point, Request, Sample, ScenarioResult,
                             Timeline, timeline)
from kruisectl.errors import KruisectlError

from .reportpage import SVG, fetches, summary_counts, svgs, text

UNIX = 1764850000.0  # the disruption's wall-clock time in the timelines below
HOSTILE = '<script>alert("x")</script> & \'q\''
REPLICAS = ("kruise-a", "kruise-b", "kruise-c")


def scenario(name: str, kinds: list[str], message: str = "failed calling webhook", shares=None,
             holders=(Point(-3.0, "kruise-a_1"), Point(0.1, ""), Point(0.9, "kruise-b_2")),
             recorded: bool = True) -> ScenarioResult:
    """A result as the drill makes it: requests every 0.25s from -2s, of the given kinds."""
    requests = [Request(-2 + i * 0.25, 0.004 * (1 + i % 7), kind, message if kind == FAILED else "")
                for i, kind in enumerate(kinds)]
    line = Timeline(1764850000.0, -2.1, max(3.0, -2 + len(kinds) * 0.25), requests, list(holders),
                    [Point(-2.0, 3), Point(0.2, 2), Point(2.5, 3)], desired=3) if recorded else None
    counts = shares or {n: 10.0 for n in REPLICAS}
    total = sum(counts.values())
    result = ScenarioResult(name, ["kruise-a"], requests=len(kinds), admitted=kinds.count(ADMITTED),
                            failed=kinds.count(FAILED), not_injected=kinds.count(NOT_INJECTED),
                            p50_ms=None if kinds.count(FAILED) == len(kinds) else 8.0, recovery_s=2.5,
                            replica_counts=counts, shares={n: round(v / total, 3) for n, v in counts.items()},
                            failures=[f"{kinds.count(FAILED)}x {message}"] if FAILED in kinds else [],
                            budget=Budget(failed=1, leader_gap_s=6.0), timeline=line)
    result.breaches = result.budget.breaches(result)
    return result


CASES = [
    # (case, results, present, absent)
    ("no failures", [scenario("eviction", [ADMITTED] * 20)],
     [drillreport.NO_FAILURES, "All 1 scenario(s) within their budgets", "admitted (20)", "failed (0)"],
     ["the apiserver's message"]),
    ("a message with <>&\" is escaped", [scenario("leader-crash", [ADMITTED] * 8 + [FAILED] * 2, HOSTILE)],
     ["failed (2)", HOSTILE, "BREACH leader-crash: 2 failed admissions"], [drillreport.NO_FAILURES]),
    ("all failed", [scenario("rollout", [FAILED] * 12, "no endpoints available for service")],
     ["12 -2.00s +0.75s no endpoints available for service", "failed (12)", "admitted (0)", "12 / 1"],
     [drillreport.NO_FAILURES]),
    ("an empty scenario", [scenario("replica-delete", [])],
     [drillreport.NO_REQUESTS, drillreport.NO_FAILURES, "admitted (0)"], []),
    ("no timeline: the summary's messages", [scenario("replica-crash", [ADMITTED, FAILED], recorded=False)],
     [drillreport.NO_TIMELINE, "1 - - failed calling webhook"], [drillreport.NO_FAILURES]),
    ("one replica", [scenario("eviction", [ADMITTED] * 4, shares={"kruise-only": 4.0})],
     ["kruise-only", "100% (4)"], ["kruise-c"]),
    ("several scenarios", [scenario("eviction", [ADMITTED] * 5), scenario("leader-crash", [ADMITTED, FAILED] * 3)],
     ["eviction", "leader-crash", "total"], []),
    ("no scenario", [], ["No scenario was run."], []),
]


@pytest.mark.parametrize("case, results, present, absent", CASES, ids=[c[0] for c in CASES])
def test_the_report_shows_every_scenario_and_count(case, results, present, absent):
    html = drillreport.render(results, "kruise-system", 8)
    shown = text(html)
    for expected in present:
        assert expected in shown, (case, expected)
    for unexpected in absent:
        assert unexpected not in shown, (case, unexpected)
    assert fetches(html) == []
    assert summary_counts(html) == {r.scenario: {"requests": r.requests, "admitted": r.admitted, "failed": r.failed,
                                                 "not-injected": r.not_injected} for r in results}
    drawn = svgs(html)  # every one well-formed XML
    charts = {"admissions: latency of each request over time": [], "Lease holder over time": [],
              "ready endpoints over time": [], "each replica's share of the admissions": []}
    for chart in drawn:
        charts[chart.get("aria-label")].append(chart)
    recorded = [r for r in results if r.timeline is not None]
    assert [len(c) for c in charts.values()] == [len(recorded), len(recorded), len(recorded),
                                                 sum(1 for r in results if r.shares)]
    for result, chart in zip(recorded, charts["admissions: latency of each request over time"]):
        marks = {"circle": 0, "rect": 0, "path": 0}
        for element in chart.iter():
            tag = element.tag.removeprefix(SVG)
            if tag in marks and element.get("class") in (None, "not-injected", "failed"):
                marks[tag] += 1
        assert marks == {"circle": result.admitted, "rect": result.not_injected, "path": result.failed}, case
        assert chart.find(f".//{SVG}line[@class='marker-disruption']") is not None
    for result, chart in zip([r for r in results if r.shares], charts["each replica's share of the admissions"]):
        bars = chart.findall(f".//{SVG}rect[@class='share']")
        assert len(bars) == len(result.shares)
        if len(bars) == 1:
            assert float(bars[0].get("width")) == pytest.approx(drillreport.WIDTH - drillreport.SHARES_LEFT - 110)


@pytest.mark.parametrize("died, cell", [
    (1.6, '<span class="">3.24s</span> / 4.6s'),  # the OOM killer's time to strike allowed
    (None, '<span class="breach">3.24s</span> / 3s'),  # no death seen: the flat budget
])
def test_the_gap_cell_shows_the_budget_the_scenario_was_held_to(died, cell):
    result = scenario("worker-oom-leader", [ADMITTED] * 4)
    result.leader_gap_s, result.died_s = 3.24, died
    result.budget = Budget(failed=1, leader_gap_s=3.0, gap_after_death=True)
    assert cell in drillreport.render([result], "ns", 5)


def test_lease_bands_follow_the_holders_and_escape_their_names():
    result = scenario("leader-crash", [ADMITTED] * 10, holders=(Point(-3, "a<&>_1"), Point(0.5, ""), Point(1, "b_2")))
    html = drillreport.render([result], "ns", 5)
    (bands,) = [s for s in svgs(html) if s.get("aria-label") == "Lease holder over time"]
    rects = bands.findall(f".//{SVG}rect[@class='holder']")
    assert [r.find(f"{SVG}title").text for r in rects] == ["a<&>_1 from -3.00s", "vacant from +0.50s",
                                                           "b_2 from +1.00s"]
    assert rects[1].get("fill") == "url(#vacant-0)" and rects[0].get("fill") != rects[2].get("fill")
    two = drillreport.render([result, result], "ns", 5)
    assert two.count('id="vacant-0"') == 1 and two.count('id="vacant-1"') == 1  # ids unique in a page
    assert "a&lt;&amp;&gt;_1" in html


@pytest.mark.parametrize("text_, room, expected", [("kruise-a", 20, "kruise-a"),
                                                   ("kruise-controller-abc", 8, "\u2026ler-abc"), ("kruise", 3, "")])
def test_a_holders_name_fits_its_band_by_its_end(text_, room, expected):
    assert drillreport.fit(text_, room) == expected


def test_the_timeline_keeps_changes_on_the_disruptions_clock():
    began = 100.0
    outcomes = [Outcome(99.0, 0.01, ADMITTED), Outcome(101.5, 0.2, FAILED, "refused"), Outcome(100.5, 0.02, NOT_INJECTED)]
    def at(seconds: float) -> str:  # the Lease's MicroTime, ``seconds`` from the disruption
        return dt.datetime.fromtimestamp(UNIX + seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    leases = [(98.0, {"holderIdentity": "a_1", "renewTime": at(-2.5), "acquireTime": at(-60)}),
              (99.0, {"holderIdentity": "a_1", "renewTime": at(-1.25), "acquireTime": at(-60)}),
              (100.2, {"renewTime": at(0.1)}),  # released
              (101.0, {"holderIdentity": "b_2", "renewTime": at(0.9), "acquireTime": at(0.85)}),
              (102.0, {"holderIdentity": "b_2", "renewTime": at(1.9), "acquireTime": at(0.85)}),
              (108.0, {"holderIdentity": "c_3", "renewTime": at(7.5), "acquireTime": at(7.5)})]
    samples = [Sample(at, frozenset(ips), len(ips), 3, {}, True) for at, ips in
               ((98.5, {"x", "y", "z"}), (99.5, {"x", "y", "z"}), (100.4, {"y", "z"}), (102.0, {"y", "z", "w"}))]
    line = timeline(outcomes, leases, samples, began, UNIX, 98.0, 103.0)
    assert (line.start_s, line.end_s, line.desired) == (-2.0, 3.0, 3)
    assert line.requests == [Request(-1.0, 0.01, ADMITTED), Request(0.5, 0.02, NOT_INJECTED),
                             Request(1.5, 0.2, FAILED, "refused")]
    assert line.holders == [Point(-2.0, "a_1"), Point(0.2, ""), Point(1.0, "b_2"), Point(8.0, "c_3")]
    assert line.ready_endpoints == [Point(-1.5, 3), Point(0.4, 2), Point(2.0, 3)]
    # No leader: from the release to b's acquireTime; from b's last renewal to c's (a crash).
    assert line.vacancies == [(0.1, 0.85), (1.9, 7.5)]
    result = ScenarioResult("leader-crash", [], requests=3, timeline=line)
    (bands,) = [c for c in svgs(drillreport.render([result], "ns", 1)) if c.get("aria-label") == "Lease holder over time"]
    assert [r.find(f"{SVG}title").text[:16] for r in bands.findall(f".//{SVG}rect[@class='vacancy']")] == \
        ["no leader for 0.", "no leader for 5."]


def test_the_timeline_stays_out_of_the_json():
    result = scenario("eviction", [ADMITTED] * 3)
    data = result.to_dict()
    assert "timeline" not in data and data["requests"] == 3 and data["budget"]["failed"] == 1


# ---- where the report may go ------------------------------------------------------------------
def test_report_path_checks(tmp_path: Path):
    existing = tmp_path / "old.html"
    existing.write_text("kept")
    cases = [
        (str(tmp_path), False, "is a directory"),
        ("", False, "an empty path"),
        (str(existing), False, "exists (--overwrite replaces it)"),
        (str(tmp_path / "missing" / "r.html"), False, "no directory"),
        (str(existing / "r.html"), True, "no directory"),
        ("/proc/kruisectl-report.html", False, "cannot be written"),
        (str(existing), True, None),
        (str(tmp_path / "new.html"), False, None),
    ]
    for path, overwrite, says in cases:
        if says is None:
            report_file.check(path, overwrite)
            continue
        with pytest.raises(KruisectlError, match=says.replace("(", r"\(").replace(")", r"\)")):
            report_file.check(path, overwrite)
    assert existing.read_text() == "kept" and sorted(os.listdir(tmp_path)) == ["old.html"]


def test_report_write_replaces_only_when_asked(tmp_path: Path):
    target = tmp_path / "r.html"
    report_file.write(str(target), "one", overwrite=False)
    with pytest.raises(KruisectlError, match="appeared during the run"):
        report_file.write(str(target), "two", overwrite=False)
    assert target.read_text() == "one"
    report_file.write(str(target), "three", overwrite=True)
    assert target.read_text() == "three" and os.listdir(tmp_path) == ["r.html"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
