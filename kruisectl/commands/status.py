"""``kruisectl status``: who leads, which replicas serve, how they spread, and the webhook."""

from __future__ import annotations

import sys
import threading
import time

import click

from kubekit import kruise

from .. import inventory as inv
from .. import status as report_of
from ..errors import EXIT_FINDINGS, KruisectlError
from . import name_options, open_install, read_install
from ..output import age, dump, table
from .options import kube_options, output_option

EPILOG = """\b
Examples:
  kruisectl status                          # kruise-system, upstream names
  kruisectl status -n kruise -o wide        # more columns (pod IP, phase)
  kruisectl status -o json | jq .leader     # stable JSON for scripts and alerts
  helm kruise status                        # as a helm plugin

\b
Exit codes:
  0  a fresh leader and at least one ready replica
  1  no fresh leader (Lease STALE or missing) or no ready replica
  2  could not check: cluster unreachable, forbidden, bad kubeconfig
"""


def _render(report: dict, wide: bool) -> str:
    lines = []
    leader = report["leader"]
    if leader.get("unknown"):
        lines.append(f"Leader:   unknown ({leader['unknown']})")
    elif not leader["exists"]:
        lines.append(f"Leader:   none (Lease {report['namespace']}/{leader['lease']} not found)")
    else:
        state = "STALE (no active leader)" if leader["stale"] else "active"
        where = " / ".join(x for x in (leader["pod"], leader["node"], leader["zone"] or (leader["node"] and "no zone")) if x)
        lines.append(f"Leader:   {leader['holder'] or '<none>'} [{state}]")
        if where:
            how = " (holder named by its node: host network)" if leader.get("holderFoundBy") == "node" else ""
            lines.append(f"          pod/node/zone: {where}{how}")
        missing_holder = report_of.leader_not_found(report)
        if missing_holder:
            lines.append(f"          warning: {missing_holder}")
        lines.append(f"          acquired {age(leader['acquiredAgoSeconds'])} ago, renewed "
                     f"{age(leader['renewedAgoSeconds'])} ago, lease {leader['leaseDurationSeconds']}s, "
                     f"{leader['transitions'] or 0} transition(s)")
    deployment = report["deployment"]
    if deployment:
        lines.append(f"Deploy:   {deployment['name']}: {deployment['ready']}/{deployment['desired']} ready, "
                     f"{deployment['updated']} updated, {deployment['available']} available")
    else:
        lines.append("Deploy:   not found")
    headers = ["pod", "node", "zone", "ready", "restarts", "age", "host network", "leader"]
    rows = []
    for r in report["replicas"]:
        ready = "yes" if r["ready"] else ("NO (peers cannot reach it)" if r.get("webhookReachable") == "False" else "NO")
        row = [r["pod"], r["node"] or "<pending>", r["zone"] or report_of.NO_ZONE, ready,
               str(r["restarts"]), age(r["ageSeconds"]), "yes" if r["hostNetwork"] else "no", "*" if r["leader"] else ""]
        if wide:
            row += [r["podIP"] or "", r["phase"] or ""]
        rows.append(row)
    if rows:
        lines.append("")
        lines.append(table(rows, headers + (["ip", "phase"] if wide else [])))
    zones = report["zones"]
    spread = ", ".join(f"{z}={n}" for z, n in zones["replicasPerZone"].items()) or "no scheduled replica"
    skew = "" if zones["skew"] is None else f" (skew {zones['skew']})"
    lines.append("")
    lines.append(f"Zones:    {spread}{skew}")
    if zones.get("unknown"):
        lines.append(f"          zones of some nodes unknown ({zones['unknown']})")
    if zones["replicasOnNodesWithoutZone"]:
        lines.append(f"          on nodes without {kruise.ZONE_LABEL}: {', '.join(zones['replicasOnNodesWithoutZone'])}"
                     " (see `kruisectl label-zones`)")
    webhook = report["webhook"]
    cert = "cert unknown" if webhook["certExpiresInDays"] is None else f"cert expires in {webhook['certExpiresInDays']:g}d"
    service = webhook["service"] or "service NOT FOUND"
    lines.append(f"Webhook:  {service}: {len(webhook['readyEndpoints'])} ready endpoint(s) / {webhook['readyReplicas']} "
                 f"ready replica(s), caBundle {webhook['caBundle']}, {cert}")
    spreads = report.get("workloadSpreads") or {}
    if spreads.get("unknown"):
        lines.append(f"Spread:   WorkloadSpreads unknown ({spreads['unknown']})")
    for found in spreads.get("missingPods") or []:
        missing = ", ".join(f"{subset} {n}" for subset, n in found["missingReplicas"].items())
        lines.append(f"Spread:   WorkloadSpread {found['workloadSpread']}: pods missing per its status ({missing})")
    for read, reason in report["readErrors"].items():
        if not reason.startswith("forbidden"):  # refused reads are summed up as missing permissions
            lines.append(f"warning: could not read {read}: {reason}")
    return "\n".join(lines)


@click.command("status", epilog=EPILOG)
@kube_options
@name_options("lease", "deployment", "service", "secret", "mutating", "validating")
@output_option()
@click.option("-w", "--watch", is_flag=True, help="Redraw whenever the pods, Lease or Deployment change "
              "(a watch, not polling) until interrupted.")
def status(target, output, names, watch):
    """Leader (holder -> pod -> node -> zone, STALE when not renewed), replicas, zone spread and
    webhook summary of the kruise-manager."""
    install = open_install(target, names)
    problems, missing = _show(install, target, output, clear=False)
    if watch:
        _watch(install, target, output)
        return
    if missing:
        raise KruisectlError(f"forbidden: missing permissions: {'; '.join(missing)} (what needs them is shown as unknown)")
    if problems:
        sys.exit(EXIT_FINDINGS)


def _fingerprint(report: dict) -> str:
    """The report without what changes on every renewal (the Lease's times, ages): a frame
    printed when this changes is news."""
    import json

    leader = {k: v for k, v in report["leader"].items() if k not in ("acquiredAgoSeconds", "renewedAgoSeconds")}
    replicas = [{k: v for k, v in r.items() if k != "ageSeconds"} for r in report["replicas"]]
    webhook = {k: v for k, v in report["webhook"].items() if k != "certExpiresInDays"}
    return json.dumps({**report, "leader": leader, "replicas": replicas, "webhook": webhook}, sort_keys=True,
                      default=str)


def _show(install, target, output, clear: bool, last: list | None = None) -> tuple[list[str], list[str]]:
    inventory = read_install(install, target)
    report = report_of.build(inventory)
    problems = report_of.problems(report)
    if last is not None and not sys.stdout.isatty():
        # Piped or logged: a frame only when something besides the renew time changed, stamped.
        fingerprint = _fingerprint(report)
        if last and last[0] == fingerprint:
            return problems, report["missingPermissions"]
        last[:] = [fingerprint]
        click.echo(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
    if output in ("json", "yaml"):
        click.echo(dump({"schemaVersion": 1, **report, "problems": problems}, output))
    else:
        if clear and sys.stdout.isatty():
            click.clear()
        click.echo(_render(report, output == "wide"))
        if output == "wide":
            click.echo(f"\nkubeconfig context: {target.context_used or '-'}, user: {target.user_used or '-'}")
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
    return problems, report["missingPermissions"]


def _watch(install, target, output) -> None:
    """Redraw on every change the watches report (at most twice a second) until Ctrl-C."""
    changed, stop = threading.Event(), threading.Event()
    inv.watch_changes(install.client, install.names, changed, stop)
    try:
        last: list = []
        while True:
            changed.wait()
            time.sleep(0.5)  # fold a burst of events into one redraw
            changed.clear()
            if sys.stdout.isatty():
                click.echo("")
            _show(install, target, output, clear=True, last=last)
    finally:
        stop.set()  # Ctrl-C ends the watch: exit 130, as every command


COMMANDS = [status]
