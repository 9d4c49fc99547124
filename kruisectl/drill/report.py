"""The drill's report as one self-contained HTML file (``kruisectl drill run --report FILE``):
what a game day shares afterwards, readable anywhere — no JavaScript, no network, no fonts or
stylesheets from elsewhere, the charts drawn as plain inline SVG.

On top the summary (each scenario's figures against its budget, the breaches, the totals);
then per scenario, on one time axis whose zero is the disruption: every admission's latency
(failures marked, their apiserver messages listed), the Lease holder, the ready endpoints,
and each replica's share. Pure functions from the drill's results to text: the drill's own
records (``drill.Timeline``) are drawn, nothing is measured again.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape

from .load import ADMITTED, FAILED, NOT_INJECTED
from .results import ScenarioResult, Timeline

NO_FAILURES = "No admission failed."
NO_TIMELINE = "No timeline was recorded for this scenario."
NO_REQUESTS = "No admission was sent during this scenario."
VACANT = "vacant"

WIDTH, LEFT, RIGHT = 900, 78, 16
PLOT = WIDTH - LEFT - RIGHT
COLOURS = {ADMITTED: "#3a6ea5", NOT_INJECTED: "#e08a00", FAILED: "#c62828"}
HOLDER_COLOURS = ("#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#f28e2b")
DISRUPTION, RECOVERED = "#c62828", "#2e7d32"
SHARES_LEFT = 320  # room for a pod's name beside its bar
MAX_MESSAGES = 50  # distinct failure messages listed per scenario (each with its count)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:960px;padding:0 12px;
color:#1f2328;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:28px 0 6px;border-bottom:1px solid #d0d7de}
h3{font-size:1em;margin:14px 0 4px}.meta{color:#57606a;margin:0 0 12px}
table{border-collapse:collapse;font-size:.8em;margin:6px 0}
.wide{overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:3px 5px;text-align:right;vertical-align:top}
th{background:#f6f8fa}td.l,th.l{text-align:left}
.ok{color:#1a7f37;font-weight:600}.breach{color:#c62828;font-weight:600}.error{color:#9a6700;font-weight:600}
.verdict{font-size:1.1em;padding:6px 10px;border-radius:4px;background:#f6f8fa;display:inline-block}
figure{margin:8px 0 12px}figcaption{font-size:.85em;color:#57606a}
.legend{font-size:.85em;color:#1f2328;list-style:none;padding:0;margin:2px 0}
.legend li{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border:1px solid #0003}
td.msg{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em;
white-space:pre-wrap;word-break:break-word}
svg{display:block}svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#1f2328}
"""


# ---- small pieces ------------------------------------------------------------------------
def esc(value) -> str:
    """Text for HTML and for the inline SVG alike (both must stay well-formed)."""
    return escape(str(value), quote=True)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def millis(value: float | None) -> str:
    return "-" if value is None else f"{value:g}ms"


def verdict(result: ScenarioResult) -> tuple[str, str]:
    """(css class, word) of a scenario, as the table's result column."""
    if result.breaches:
        return "breach", "BREACH"
    if result.errors:
        return "error", "ERROR"
    return "ok", "ok"


def nice_step(span: float, most: int = 12) -> float:
    """A round tick interval giving at most ``most`` ticks over ``span`` seconds."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600):
        if span / step <= most:
            return step
    return span / most


def ticks(lo: float, hi: float) -> list[float]:
    step = nice_step(hi - lo)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 6) for i in range(max(0, count))]


class Axis:
    """Seconds from the disruption to x pixels (the same for every chart of a scenario)."""

    def __init__(self, start: float, end: float):
        self.start, self.end = start, max(end, start + 1e-3)

    def x(self, at: float) -> float:
        at = min(max(at, self.start), self.end)
        return round(LEFT + (at - self.start) / (self.end - self.start) * PLOT, 1)


def svg(height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>'
            + "".join(body) + "</svg>")


def time_axis(axis: Axis, top: float, bottom: float, labelled: bool = True) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + PLOT}" y2="{bottom}" stroke="#8c959f"/>']
    for tick in ticks(axis.start, axis.end):
        x = axis.x(tick)
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#eaeef2"/>')
        if labelled:
            parts.append(f'<text x="{x}" y="{bottom + 13}" text-anchor="middle">{tick:g}s</text>')
    return parts


def markers(axis: Axis, top: float, bottom: float, recovery_s: float | None, labelled: bool) -> list[str]:
    """The disruption (zero) and the recovery, as vertical lines."""
    parts = []
    for at, colour, text in ((0.0, DISRUPTION, "disruption"), (recovery_s, RECOVERED, "recovered")):
        if at is None or not axis.start <= at <= axis.end:
            continue
        x = axis.x(at)
        parts.append(f'<line class="marker-{text}" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="{colour}" '
                     f'stroke-width="1.5" stroke-dasharray="5 3"/>')
        if labelled:
            parts.append(f'<text x="{x + 3}" y="{top + 10}" fill="{colour}" style="fill:{colour}">{text}</text>')
    return parts


# ---- the charts --------------------------------------------------------------------------
def latency_chart(line: Timeline, axis: Axis, recovery_s: float | None) -> str:
    """Each admission at the moment it was sent, at the height of its latency (log scale):
    admitted as dots, without the sidecar as squares, failed as crosses."""
    top, bottom, height = 12, 212, 232
    latencies = [max(r.latency_s * 1000, 0.1) for r in line.requests] or [1.0]
    lo = 10 ** math.floor(math.log10(min(latencies)))
    hi = 10 ** math.ceil(math.log10(max(latencies)))
    hi = hi * 10 if hi <= lo else hi

    def y(ms: float) -> float:
        ms = min(max(ms, lo), hi)
        return round(bottom - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top), 1)

    parts = time_axis(axis, top, bottom)
    decade = lo
    while decade <= hi * 1.0001:
        parts.append(f'<line x1="{LEFT}" y1="{y(decade)}" x2="{LEFT + PLOT}" y2="{y(decade)}" stroke="#eaeef2"/>'
                     f'<text x="{LEFT - 5}" y="{y(decade) + 4}" text-anchor="end">{decade:g}ms</text>')
        decade *= 10
    parts.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#8c959f"/>')
    parts += markers(axis, top, bottom, recovery_s, labelled=True)
    for kind in (ADMITTED, NOT_INJECTED, FAILED):  # failures last: drawn on top
        colour = COLOURS[kind]
        for r in (r for r in line.requests if r.kind == kind):
            x, py = axis.x(r.at_s), y(r.latency_s * 1000)
            tip = f"{r.at_s:+.2f}s: {kind} in {r.latency_s * 1000:.1f}ms" + (f": {r.message}" if r.message else "")
            if kind == ADMITTED:
                parts.append(f'<circle cx="{x}" cy="{py}" r="2.2" fill="{colour}" fill-opacity="0.75"/>')
            elif kind == NOT_INJECTED:
                parts.append(f'<rect class="not-injected" x="{x - 3}" y="{py - 3}" width="6" height="6" '
                             f'fill="{colour}"><title>{esc(tip)}</title></rect>')
            else:
                parts.append(f'<path class="failed" d="M{x - 4} {py - 4}L{x + 4} {py + 4}M{x - 4} {py + 4}L{x + 4} '
                             f'{py - 4}" stroke="{colour}" stroke-width="2"><title>{esc(tip)}</title></path>')
    parts.append(f'<text x="{LEFT + 4}" y="{bottom - 4}" style="fill:#57606a">latency (log)</text>')
    return svg(height, "admissions: latency of each request over time", parts)


def holder_colours(line: Timeline) -> dict[str, str]:
    colours: dict[str, str] = {}
    for point in line.holders:
        if point.value and point.value not in colours:
            colours[point.value] = HOLDER_COLOURS[len(colours) % len(HOLDER_COLOURS)]
    return colours


def holder_chart(line: Timeline, axis: Axis, recovery_s: float | None, colours: dict[str, str], key: int = 0) -> str:
    """The Lease's holder as bands from each change to the next; a vacant Lease is hatched, and so
    is each span without a leader below the bands. ``key`` keeps the hatch's id unique in a page."""
    top, bottom, height = 6, 40, 58
    hatch = f"url(#vacant-{key})"
    parts = [f'<defs><pattern id="vacant-{key}" width="6" height="6" patternUnits="userSpaceOnUse" '
             f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
             f'<line x1="0" y1="0" x2="0" y2="6" stroke="#c62828" stroke-width="2"/></pattern></defs>']
    parts += time_axis(axis, top, bottom)
    parts.append(f'<text x="{LEFT - 5}" y="{(top + bottom) / 2 + 4}" text-anchor="end">Lease</text>')
    for i, point in enumerate(line.holders):
        until = line.holders[i + 1].at_s if i + 1 < len(line.holders) else axis.end
        if until < axis.start or point.at_s > axis.end:
            continue
        x0, x1 = axis.x(point.at_s), axis.x(until)
        fill = colours.get(point.value, hatch) if point.value else hatch
        name = point.value or VACANT
        parts.append(f'<rect class="holder" x="{x0}" y="{top}" width="{max(round(x1 - x0, 1), 0.5)}" '
                     f'height="{bottom - top}" fill="{fill}" stroke="#fff" stroke-width="0.5">'
                     f'<title>{esc(name)} from {point.at_s:+.2f}s</title></rect>')
        short = fit(short_holder(name), int((x1 - x0 - 8) / 6.5))
        if short:
            ink = "#fff" if point.value else "#1f2328"
            parts.append(f'<text x="{x0 + 4}" y="{(top + bottom) / 2 + 4}" style="fill:{ink}">{esc(short)}</text>')
    for start, end in line.vacancies:
        if end < axis.start or start > axis.end:
            continue
        x0, x1 = axis.x(start), axis.x(end)
        parts.append(f'<rect class="vacancy" x="{x0}" y="{bottom - 9}" width="{max(round(x1 - x0, 1), 1)}" height="9" '
                     f'fill="{hatch}" stroke="{DISRUPTION}" stroke-width="0.8"><title>no leader for '
                     f'{end - start:.2f}s: the old holder\'s last renewal ({start:+.2f}s) to the new holder\'s '
                     f'acquireTime ({end:+.2f}s)</title></rect>')
    parts += markers(axis, top, bottom, recovery_s, labelled=False)
    return svg(height, "Lease holder over time", parts)


def fit(text: str, room: int) -> str:
    """``text`` in ``room`` characters: its end kept (a pod's name differs there), else nothing."""
    if len(text) <= room:
        return text
    return "\u2026" + text[-(room - 1):] if room >= 6 else ""


def short_holder(identity: str) -> str:
    """A holder's identity without controller-runtime's ``_<uuid>`` suffix."""
    return identity.split("_", 1)[0] if identity else VACANT


def endpoints_chart(line: Timeline, axis: Axis, recovery_s: float | None) -> str:
    """The Service's ready endpoints as a step line; the Deployment's replicas dashed."""
    top, bottom, height = 10, 110, 130
    values = [int(p.value) for p in line.ready_endpoints]
    most = max([*values, line.desired or 0, 1])

    def y(count: float) -> float:
        return round(bottom - count / most * (bottom - top), 1)

    parts = time_axis(axis, top, bottom)
    for count in sorted({0, most, *(c for c in (line.desired,) if c)}):
        parts.append(f'<text x="{LEFT - 5}" y="{y(count) + 4}" text-anchor="end">{count}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#8c959f"/>')
    if line.desired:
        parts.append(f'<line x1="{LEFT}" y1="{y(line.desired)}" x2="{LEFT + PLOT}" y2="{y(line.desired)}" '
                     f'stroke="#8c959f" stroke-dasharray="2 3"/>')
    parts += markers(axis, top, bottom, recovery_s, labelled=False)
    if line.ready_endpoints:
        points = [p for p in line.ready_endpoints if p.at_s <= axis.end]
        d = [f"M{axis.x(points[0].at_s)} {y(points[0].value)}"]
        for point in points[1:]:
            d.append(f"H{axis.x(point.at_s)}V{y(point.value)}")
        d.append(f"H{axis.x(axis.end)}")
        parts.append(f'<path class="endpoints" d="{"".join(d)}" fill="none" stroke="#3a6ea5" stroke-width="2"/>')
    return svg(height, "ready endpoints over time", parts)


def shares_chart(result: ScenarioResult) -> str:
    """Each replica's part of the admissions it counted; the even share dotted."""
    shares = result.shares or {}
    counts = result.replica_counts or {}
    row, top = 22, 6
    height = top + row * len(shares) + 8
    left, width = SHARES_LEFT, WIDTH - SHARES_LEFT - 110
    parts = []
    for i, (name, share) in enumerate(sorted(shares.items())):
        y = top + i * row
        count = counts.get(name)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{esc(fit(name, 48))}</text>'
                     f'<rect class="share" x="{left}" y="{y + 3}" width="{round(max(share, 0) * width, 1)}" '
                     f'height="{row - 8}" fill="#3a6ea5"><title>{esc(name)}: {share:.1%}</title></rect>'
                     f'<text x="{left + round(max(share, 0) * width, 1) + 5}" y="{y + 14}">{share:.0%}'
                     + (f" ({count:g})" if count is not None else "") + "</text>")
    if shares:
        even = round(left + width / len(shares), 1)
        parts.append(f'<line x1="{even}" y1="{top}" x2="{even}" y2="{height - 6}" stroke="#57606a" '
                     f'stroke-dasharray="2 3"><title>an even share</title></line>')
        parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - 6}" stroke="#8c959f"/>')
    return svg(height, "each replica's share of the admissions", parts)


# ---- the page ----------------------------------------------------------------------------
def failure_messages(result: ScenarioResult) -> list[tuple[int, float | None, float | None, str]]:
    """(count, first, last, message) of each distinct failure message, most frequent first;
    from the timeline when recorded, else the drill's summary (counts only)."""
    if result.timeline is None:
        rows = []
        for text in result.failures:
            count, _, message = text.partition("x ")
            rows.append((int(count) if count.isdigit() else 1, None, None, message if count.isdigit() else text))
        return rows
    seen: dict[str, list] = {}
    for r in result.timeline.requests:
        if r.kind == FAILED:
            entry = seen.setdefault(r.message, [0, r.at_s, r.at_s])
            entry[0] += 1
            entry[2] = r.at_s
    return [(n, first, last, message) for message, (n, first, last) in
            sorted(seen.items(), key=lambda item: (-item[1][0], item[1][1]))]


def budget_cell(value, limit, suffix: str = "") -> str:
    shown = "-" if value is None else (f"{value:.2f}{suffix}" if suffix else f"{value:g}")
    if limit is None:
        return esc(shown)
    over = value is not None and value > limit
    return f'<span class="{"breach" if over else ""}">{esc(shown)}</span> / {limit:g}{suffix}'


def summary(results: list[ScenarioResult]) -> str:
    breached = [r for r in results if r.breaches]
    erred = [r for r in results if r.errors and not r.breaches]
    if not results:
        head = '<p class="verdict">No scenario was run.</p>'
    elif breached:
        head = (f'<p class="verdict breach">{len(breached)} of {len(results)} scenario(s) breached '
                f'their budget</p>')
    elif erred:
        head = (f'<p class="verdict error">Within budget, but {len(erred)} of {len(results)} scenario(s) could not '
                f'measure every figure</p>')
    else:
        head = f'<p class="verdict ok">All {len(results)} scenario(s) within their budgets</p>'
    rows = []
    for r in results:
        b = r.budget
        css, word = verdict(r)
        share = min(r.shares.values()) if r.shares else None
        rows.append(
            f'<tr class="scenario-row" data-scenario="{esc(r.scenario)}">'
            f'<td class="l"><a href="#scenario-{esc(r.scenario)}">'
            f'{esc(r.scenario)}</a></td><td class="l {css}">{word}</td><td class="requests">{r.requests}</td>'
            f'<td class="admitted">{r.admitted}</td>'
            f'<td class="failed">{budget_cell(r.failed, b.failed if b else None)}</td>'
            f'<td class="not-injected">{budget_cell(r.not_injected, b.not_injected if b else None)}</td>'
            f'<td>{millis(r.p50_ms)}</td><td>{millis(r.p99_ms)}</td><td>{millis(r.max_ms)}</td>'
            f'<td>{budget_cell(r.leader_gap_s, b.gap_budget(r) if b else None, "s")}</td>'
            f'<td>{seconds(r.endpoint_removal_s)}</td><td>{seconds(r.recovery_s)}</td>'
            f'<td>{"-" if r.min_ready_endpoints is None else r.min_ready_endpoints}</td>'
            f'<td>{"-" if share is None else f"{share:.0%}"}</td></tr>')
    totals = (f'<tr class="totals"><th class="l">total</th><th></th>'
              f'<th class="requests">{sum(r.requests for r in results)}</th>'
              f'<th class="admitted">{sum(r.admitted for r in results)}</th>'
              f'<th class="failed">{sum(r.failed for r in results)}</th>'
              f'<th class="not-injected">{sum(r.not_injected for r in results)}</th>' + "<th></th>" * 8 + "</tr>")
    table = ('<div class="wide"><table class="summary"><thead><tr><th class="l">scenario</th>'
             '<th class="l">result</th><th>requests</th>'
             '<th>admitted</th><th>failed / max</th><th>no sidecar / max</th><th>p50</th><th>p99</th>'
             '<th>max</th><th>leader gap / max</th><th>endpoint out</th><th>recovered</th>'
             '<th>fewest ready endpoints</th><th>min share</th></tr></thead><tbody>' + "".join(rows) + totals
             + "</tbody></table></div>")
    problems = [f'<li><span class="breach">BREACH</span> {esc(r.scenario)}: {esc(text)}</li>'
                for r in results for text in r.breaches]
    problems += [f'<li><span class="error">ERROR</span> {esc(r.scenario)}: {esc(text)}</li>'
                 for r in results for text in r.errors]
    listed = f'<ul class="breaches">{"".join(problems)}</ul>' if problems else ""
    return f'<section id="summary"><h2>Summary</h2>{head}{table}{spread_summary(results)}{listed}</section>'


def spread_summary(results: list[ScenarioResult]) -> str:
    """With WorkloadSpread pods in the load: per scenario and in total, how many were created,
    placed in no subset, and held over a subset's maxReplicas at once (none allowed)."""
    spread = [r for r in results if r.workloadspread_pods is not None]
    if not spread:
        return ""
    items = [f'<li>{esc(r.scenario)}: {r.workloadspread_pods} pods, {r.workloadspread_unplaced} in no subset, '
             f'<span class="{"breach" if r.workloadspread_violations else "ok"}">'
             f'{"-" if r.workloadspread_violations is None else r.workloadspread_violations} over maxReplicas</span>'
             + "".join(f"; {esc(d)}" for d in r.workloadspread_details) + "</li>" for r in spread]
    total = sum(r.workloadspread_violations or 0 for r in spread)
    return (f'<p class="workloadspread">WorkloadSpread pods in the load: <span class="'
            f'{"breach" if total else "ok"}">{total} over maxReplicas in total</span></p><ul>{"".join(items)}</ul>')


def scenario_section(result: ScenarioResult, key: int = 0) -> str:
    name = esc(result.scenario)
    parts = [f'<section class="scenario" id="scenario-{name}"><h2>{name}</h2>']
    facts = []
    if result.victims:
        facts.append("disrupted: " + ", ".join(esc(v) for v in result.victims))
    if result.old_leader or result.new_leader:
        facts.append(f"leader: {esc(result.old_leader or '-')} &#8594; {esc(result.new_leader or '-')}")
    if result.timeline is not None:
        at = dt.datetime.fromtimestamp(result.timeline.started_at, dt.timezone.utc)
        facts.append(f"disruption at {at:%Y-%m-%d %H:%M:%S} UTC (time zero below)")
    if facts:
        parts.append(f'<p class="meta">{"; ".join(facts)}</p>')
    line = result.timeline
    if line is None:
        parts.append(f"<p class=\"empty\">{NO_TIMELINE}</p>")
    else:
        axis = Axis(line.start_s, line.end_s)
        counts = {k: sum(r.kind == k for r in line.requests) for k in (ADMITTED, NOT_INJECTED, FAILED)}
        parts.append("<h3>Admissions</h3>")
        if not line.requests:
            parts.append(f'<p class="empty">{NO_REQUESTS}</p>')
        parts.append("<figure>" + latency_chart(line, axis, result.recovery_s) + '<ul class="legend">'
                     f'<li><span class="sw" style="background:{COLOURS[ADMITTED]}"></span>admitted '
                     f'({counts[ADMITTED]})</li>'
                     f'<li><span class="sw" style="background:{COLOURS[NOT_INJECTED]}"></span>without the sidecar '
                     f'({counts[NOT_INJECTED]})</li>'
                     f'<li><span class="sw" style="background:{COLOURS[FAILED]}"></span>failed ({counts[FAILED]})</li>'
                     f'<li><span class="sw" style="background:#fff;border:2px dashed {DISRUPTION}"></span>'
                     'disruption</li>'
                     + (f'<li><span class="sw" style="background:#fff;border:2px dashed {RECOVERED}"></span>recovered '
                        f'({seconds(result.recovery_s)})</li>' if result.recovery_s is not None else "")
                     + "</ul><figcaption>Each dry-run pod create at the moment it was sent (seconds from the "
                     "disruption), at the height of its latency.</figcaption></figure>")
        colours = holder_colours(line)
        parts.append("<h3>Lease holder</h3><figure>" + holder_chart(line, axis, result.recovery_s, colours, key)
                     + '<ul class="legend">'
                     + "".join(f'<li><span class="sw" style="background:{c}"></span>{esc(h)}</li>'
                               for h, c in colours.items())
                     + (f'<li><span class="sw" style="background:#fff;border:1px solid {DISRUPTION}"></span>{VACANT}'
                        "</li>" if any(not p.value for p in line.holders) else "")
                     + "".join(f'<li><span class="sw" style="background:#fff;border:1px dashed {DISRUPTION}"></span>'
                               f"no leader {start:+.2f}s to {end:+.2f}s ({end - start:.2f}s, from the Lease's "
                               "renewTime and acquireTime)</li>" for start, end in line.vacancies)
                     + "</ul>"
                     + ("" if line.holders else "<figcaption>No Lease record was seen.</figcaption>")
                     + "</figure>")
        parts.append("<h3>Ready endpoints</h3><figure>" + endpoints_chart(line, axis, result.recovery_s)
                     + "<figcaption>The Service's ready endpoints (step line)"
                     + (f"; dashed: the Deployment's {line.desired} replicas" if line.desired else "")
                     + f"; fewest during the scenario: "
                       f"{'-' if result.min_ready_endpoints is None else result.min_ready_endpoints}.</figcaption>"
                       "</figure>")
    parts.append("<h3>Each replica's share</h3>")
    if result.shares:
        parts.append("<figure>" + shares_chart(result) + "<figcaption>Admissions each replica counted during the "
                     "scenario (its own webhook counter); dotted: an even share.</figcaption></figure>")
    else:
        parts.append('<p class="empty">Unknown: no count of every replica (see the errors).</p>')
    parts.append("<h3>Failures</h3>")
    messages = failure_messages(result)
    if not messages:
        parts.append(f'<p class="no-failures">{NO_FAILURES}</p>')
    else:
        rows = "".join(
            f'<tr class="failure"><td>{n}</td><td>{seconds(first) if first is None else f"{first:+.2f}s"}</td>'
            f'<td>{seconds(last) if last is None else f"{last:+.2f}s"}</td><td class="msg">{esc(message)}</td></tr>'
            for n, first, last, message in messages[:MAX_MESSAGES])
        more = len(messages) - MAX_MESSAGES
        parts.append('<table class="failures"><thead><tr><th>count</th><th>first</th><th>last</th>'
                     '<th class="l">the apiserver\'s message</th></tr></thead><tbody>' + rows + "</tbody></table>"
                     + (f"<p>{more} more distinct message(s) not listed.</p>" if more > 0 else ""))
    for css, word, texts in (("breach", "BREACH", result.breaches), ("error", "ERROR", result.errors)):
        if texts:
            parts.append('<ul>' + "".join(f'<li><span class="{css}">{word}</span> {esc(t)}</li>' for t in texts)
                         + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def render(results: list[ScenarioResult], namespace: str, rate: float) -> str:
    """The whole report for the scenarios of one ``drill run``, as one HTML document."""
    started = [r.timeline.started_at for r in results if r.timeline is not None]
    when = (f"; first disruption {dt.datetime.fromtimestamp(min(started), dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
            if started else "")
    names = ", ".join(r.scenario for r in results) or "none"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>kruisectl drill: {esc(names)}</title><style>{STYLE}</style></head><body>"
            f"<h1>kruisectl drill report</h1><p class=\"meta\">Manager in namespace {esc(namespace)}; load "
            f"{rate:g} server-side dry-run pod creates/s; scenarios: {esc(names)}{when}.</p>"
            + summary(results) + "".join(scenario_section(r, i) for i, r in enumerate(results)) + "</body></html>\n")
