"""``kruisectl doctor``: every failure mode of the HA design, with severity and remediation."""

from __future__ import annotations

import sys

import click

from .. import history
from ..doctor import diagnose
from ..errors import EXIT_FINDINGS, KruisectlError
from ..findings import failing, findings_table, grade
from . import name_options, open_install, read_install
from ..output import dump
from .options import POSITIVE_DURATION, kube_options, output_option

EPILOG = """\b
Examples:
  kruisectl doctor                         # kruise-system, upstream names
  kruisectl doctor --fail-on warning       # CI gate: warnings fail too
  kruisectl doctor -o json | jq '.findings[] | select(.level=="error")'
  kruisectl doctor --since 1h              # and what happened: restarts, leader changes, webhook errors

\b
Exit codes:
  0  no error-level finding (with --fail-on warning: no warning either)
  1  at least one such finding
  2  could not check: cluster unreachable, forbidden, bad kubeconfig
"""

@click.command("doctor", epilog=EPILOG)
@kube_options
@name_options("lease", "deployment", "service", "secret", "mutating", "validating")
@output_option(formats=("table", "wide", "json", "yaml"))
@click.option("--fail-on", type=click.Choice(["error", "warning"]), default="error", show_default=True,
              help="Lowest level that makes the exit code 1.")
@click.option("--since", "since", type=POSITIVE_DURATION, default=None, metavar="DURATION",
              help="Also show what happened in this window (e.g. 1h): containers' restarts, leader changes (the "
                   "Lease and its Events), webhook errors the replicas counted (their metrics, via the pod proxy).")
def doctor(target, output, fail_on, names, since):
    """Check the kruise-manager against every failure mode of its high-availability design:
    leader, ready replicas, node/zone spread, zone labels, spread policy, surge capacity, host
    network, webhook namespace exclusions and failure policy, PDB, certificate, zone loss, and
    whether alerts (a PrometheusRule and a ServiceMonitor) watch it. With --since, what happened
    lately too."""
    install = open_install(target, names)
    client, names = install.client, install.names
    inventory = read_install(install, target, extended=True)
    findings = diagnose(inventory)
    past = None
    if since is not None:
        past = history.collect(client, inventory, since, target.request_timeout)
        findings += history.findings(past, names.namespace)
    score, letter = grade(findings)
    if output in ("json", "yaml"):
        data = {"schemaVersion": 1, "namespace": names.namespace, "score": score, "grade": letter,
                "findings": [f.to_dict() for f in findings],
                "readErrors": inventory.errors, "missingPermissions": inventory.forbidden()}
        if past is not None:
            data["history"] = past.to_dict()
        click.echo(dump(data, output))
    else:
        click.echo(findings_table(findings, wide=output == "wide"))
        if past is not None:
            click.echo(f"\nsince {past.since}:")
            click.echo(history.timeline(past))
        counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info", "ok")}
        click.echo(f"\nkruise-manager in {names.namespace}: score {score}/100, grade {letter} "
                   f"({counts['error']} error, {counts['warning']} warning, {counts['info']} info, {counts['ok']} ok)")
        for read, reason in inventory.errors.items():
            if inventory.statuses.get(read) != 403:  # refused reads: summed up below
                click.echo(f"warning: could not read {read}: {reason}", err=True)
    missing = inventory.forbidden()
    if missing:
        raise KruisectlError(f"forbidden: missing permissions: {'; '.join(missing)} (the checks that need them say "
                       "unknown)")
    if failing(findings, fail_on):
        sys.exit(EXIT_FINDINGS)


COMMANDS = [doctor]
