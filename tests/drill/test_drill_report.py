"""``kruisectl drill run --report`` on the chart's real managers: the page a real drill writes
carries every scenario, the counts of the drill's own JSON, the apiserver's failure messages
(from a real total outage: every manager process killed at once) and well-formed SVG; the path is refused before
anything is disrupted; and a real browser engine (headless Chromium) lays the page out with its
charts drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kruisectl import drill
from kruisectl.drill import report as drillreport
from kruisectl.inventory import Names
from kruisectl.probe import probe_sidecarset
from localcluster import browser, faults

from ..conftest import require
from . import png
from .reportpage import SVG, fetches, read, summary_counts, svgs, text

pytestmark = pytest.mark.cluster  # the real local control plane and the chart's managers

ADMISSIONS = "admissions: latency of each request over time"


def probe_sidecarsets(env) -> list[str]:
    from kubernetes import client

    found = client.CustomObjectsApi(env.api()).list_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets")
    return [s["metadata"]["name"] for s in found["items"] if s["metadata"]["name"].startswith("kruisectl-probe-")]


@pytest.fixture(scope="module")
def reports(installed, tmp_path_factory):
    """Two real drills' pages: ``kruisectl drill run eviction --report`` (with its JSON), and a
    total outage (localcluster.faults: every manager process SIGKILLed, the hostlet restarts
    them) measured by the drill's own code and drawn by the same renderer."""
    folder = tmp_path_factory.mktemp("reports")
    installed.wait_settled()
    page = folder / "eviction.html"
    result = installed.kruisectl("drill", "run", "eviction", "--yes", "--rate", "8", "-o", "json", "--report", str(page))
    # 1: a breach, 2: a figure not measured; the page shows either like any other figure
    assert result.exit_code in (0, 1, 2) and result.stdout.startswith("{"), result.output
    report = json.loads(result.stdout)
    assert f"report: {page}" in result.stderr

    installed.wait_settled()
    names = Names(namespace=installed.namespace)
    options = drill.DrillOptions(rate=8, before_s=2, settle_s=2, timeout_s=120)
    scenario = faults.total_outage(installed.hostlet, installed.namespace, whole_pods=True)
    with probe_sidecarset(installed.client(), options.probe_namespace, 10) as probe:
        drill.wait_injecting(installed.client(), options.probe_namespace, probe.labels, 10, print)
        outage = drill.measure(installed.client(), names, scenario, options, probe.labels,
                               drill.default_budget(scenario, options, 4))
    outage_page = folder / "outage.html"
    outage_page.write_text(drillreport.render([outage], names.namespace, options.rate))
    print(json.dumps(report["scenarios"][0]), json.dumps(outage.to_dict()))
    return {"eviction": (page, report["scenarios"][0]), "total-outage": (outage_page, outage.to_dict())}


def check_page(page: Path, row: dict) -> str:
    """What every page must show of its drill: the name, its counts as the JSON has them, one mark
    per admission in its chart, well-formed SVG."""
    html = page.read_text()
    assert fetches(html) == []
    assert summary_counts(html) == {row["scenario"]: {"requests": row["requests"], "admitted": row["admitted"],
                                                      "failed": row["failed"], "not-injected": row["notInjected"]}}
    shown = text(html)
    assert row["scenario"] in shown and f'id="scenario-{row["scenario"]}"' in html
    for expected in (f"admitted ({row['admitted']})", f"failed ({row['failed']})",
                     f"without the sidecar ({row['notInjected']})"):
        assert expected in shown
    for breach in row["breaches"]:
        assert f"BREACH {row['scenario']}: {breach}" in shown
    charts = svgs(html)  # ParseError when one is not well-formed XML
    assert sorted(c.get("aria-label") for c in charts) == sorted(
        [ADMISSIONS, "Lease holder over time", "ready endpoints over time"]
        + (["each replica's share of the admissions"] if row["shares"] else []))
    (admissions,) = [c for c in charts if c.get("aria-label") == ADMISSIONS]
    assert len(admissions.findall(f".//{SVG}circle")) == row["admitted"]
    assert len(admissions.findall(f".//{SVG}path[@class='failed']")) == row["failed"]
    assert row["requests"] >= 20, row
    return shown


def test_a_real_drills_report_has_its_scenarios_counts_and_messages(reports):
    page, row = reports["eviction"]
    shown = check_page(page, row)
    if row["failed"]:
        for failure in row["failures"]:
            assert failure.split("x ", 1)[1][:200] in shown
    else:
        assert drillreport.NO_FAILURES in shown
    assert row["oldLeader"] and row["newLeader"] and row["newLeader"] != row["oldLeader"]
    html = page.read_text()
    (bands,) = [c for c in svgs(html) if c.get("aria-label") == "Lease holder over time"]
    holders = [r.find(f"{SVG}title").text for r in bands.findall(f".//{SVG}rect[@class='holder']")]
    assert any(h.startswith(row["oldLeader"]) for h in holders) and any(h.startswith(row["newLeader"]) for h in holders)
    assert set(row["shares"]) <= set(read(html).text)  # each replica named beside its bar


def test_an_outage_report_lists_the_apiservers_failure_messages(reports):
    page, row = reports["total-outage"]
    assert row["failed"] > 0, row  # no manager answered for a while: the webhook could not be called
    shown = check_page(page, row)
    assert drillreport.NO_FAILURES not in shown
    assert row["breaches"] and "BREACH" in shown
    for failure in row["failures"]:
        count, message = failure.split("x ", 1)
        assert message[:200] in shown, message
    assert "failed calling webhook" in shown  # the apiserver's own words, not a summary of them


def test_the_report_path_is_refused_before_anything_is_disrupted(installed, tmp_path):
    installed.wait_settled()  # the install is shared: whatever ran before has settled
    existing = tmp_path / "kept.html"
    existing.write_text("kept")
    before = {p.metadata.name for p in installed.ready_pods()}
    for path, says in ((existing, "exists (--overwrite replaces it)"), (tmp_path, "is a directory"),
                       (tmp_path / "no" / "r.html", "no directory")):
        result = installed.kruisectl("drill", "run", "eviction", "--yes", "--report", str(path))
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: --report {path}: {says}"), line
    assert existing.read_text() == "kept"
    assert {p.metadata.name for p in installed.ready_pods()} == before and not probe_sidecarsets(installed)


@pytest.mark.parametrize("scenario", ["eviction", "total-outage"])
def test_a_browser_lays_out_the_report_with_its_charts(request, scenario, tmp_path):
    require("browser")  # before the drills: a machine without it says so at once
    page, row = request.getfixturevalue("reports")[scenario]
    dom = browser.dump_dom(page)
    laid_out = text(dom)
    assert row["scenario"] in laid_out and "kruisectl drill report" in laid_out
    assert dom.count("<svg") == len(svgs(page.read_text()))
    assert f"admitted ({row['admitted']})" in laid_out
    assert dom.count('<path class="failed"') == row["failed"] and dom.count("<circle ") == row["admitted"]

    shot = tmp_path / f"{scenario}.png"
    browser.screenshot(page, shot, width=1000, height=1800)
    counted = png.colours(shot.read_bytes())
    total = sum(counted.values())
    white = counted[b"\xff\xff\xff"]
    assert len(counted) > 50 and white < 0.97 * total, (len(counted), white, total)  # not blank
    # The first Lease holder's band is a wide SVG rectangle: thousands of its pixels, where its
    # legend swatch alone has 121.
    first = bytes.fromhex(drillreport.HOLDER_COLOURS[0][1:])
    assert counted[first] > 2000, counted[first]
