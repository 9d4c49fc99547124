"""``kruisectl webhook check``: can the apiserver use the kruise webhook right now?"""

from __future__ import annotations

import sys
import time

import click

from ..errors import EXIT_FINDINGS, EXIT_TIMEOUT, KruisectlError
from ..doctor import SYSTEM_NAMESPACES, excludes_namespace, pod_webhooks
from ..findings import failing, findings_table
from . import name_options, open_install, read_install
from ..output import dump
from ..probe import run as run_probe
from ..webhookcheck import servable_verdict
from ..webhookcheck import check, explain
from .options import DURATION, POSITIVE_DURATION, kube_options, output_option

EPILOG = """\b
Examples:
  kruisectl webhook check
  kruisectl webhook check --wait 2m --interval 5s     # after an install or upgrade
  kruisectl webhook check -o json
  kruisectl webhook check --probe-namespace my-app   # prove admission where your pods live
  kruisectl webhook check --no-probe                 # read-only: skip the end-to-end probe

\b
Exit codes:
  0    the webhook is servable (no error-level finding)
  1    at least one error-level finding (--fail-on warning: warnings too)
  2    could not check: cluster unreachable, forbidden, bad kubeconfig, SidecarSet CRD missing
  124  --wait ran out before the webhook was servable


The end-to-end probe creates a SidecarSet kruisectl-probe-<id> (selecting only its own probe
label) for a few seconds, then dry-runs a pod it matches and an invalid SidecarSet: nothing
else is written.
"""

@click.group("webhook")
def webhook() -> None:
    """The kruise admission webhook."""


@webhook.command("check", epilog=EPILOG)
@kube_options
@name_options("service", "secret", "mutating", "validating")
@output_option(formats=("table", "json", "yaml"))
@click.option("--wait", "wait_for", type=DURATION, default="0s", show_default=True, metavar="DURATION",
              help="Poll until servable, up to this long.")
@click.option("--interval", type=POSITIVE_DURATION, default="5s", show_default=True, metavar="DURATION",
              help="Time between polls with --wait.")
@click.option("--fail-on", type=click.Choice(["error", "warning"]), default="error", show_default=True)
@click.option("--webhook-port", type=click.IntRange(1, 65535), default=9876, show_default=True,
              help="Port the replicas serve the webhook on (the Service's targetPort).")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="End-to-end probe: dry-run a pod (mutating) and an invalid SidecarSet (validating).")
@click.option("--probe-namespace", default="default", show_default=True, metavar="NS",
              help="Namespace the probe pod is dry-run in (the pod webhook must cover it).")
def check_command(target, output, wait_for, interval, fail_on, webhook_port, probe, probe_namespace, names):
    """Service and ready endpoints, caBundle against the Secret's CA, the serving certificate's
    names and expiry, pod-webhook exclusions and policies, and TLS + /healthz of each endpoint
    reachable from here. Known failures are translated into a cause and a fix."""
    install = open_install(target, names)
    client, names = install.client, install.names
    deadline = time.monotonic() + wait_for
    pause = interval
    while True:
        inventory = read_install(install, target)
        findings = check(inventory, webhook_port, timeout=min(2.0, target.request_timeout))
        skipping = [w["name"] for w in pod_webhooks(inventory.mutating) if excludes_namespace(w, inventory.namespace_labels(probe_namespace))]
        if probe and skipping and probe_namespace in (*SYSTEM_NAMESPACES, names.namespace):
            raise KruisectlError(f"--probe-namespace {probe_namespace}: the pod webhook ({', '.join(skipping)}) skips this "
                           "namespace by design (its namespaceSelector); probe a namespace your workloads use")
        if probe:
            findings += run_probe(client, probe_namespace, target.request_timeout, explain=explain)
        else:
            click.echo("note: end-to-end probe skipped (--no-probe): whether the apiserver really calls the webhooks "
                       "was not tested", err=True)
        bad = failing(findings, fail_on)
        if not bad or time.monotonic() + pause > deadline:
            break
        click.echo(f"waiting: {len(bad)} problem(s), first: {bad[0].message}", err=True)
        time.sleep(pause)
    missing = inventory.forbidden()
    if output in ("json", "yaml"):
        click.echo(dump({"schemaVersion": 1, "namespace": names.namespace, "findings": [f.to_dict() for f in findings],
                         "missingPermissions": missing}, output))
    else:
        click.echo(findings_table(findings))
        counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info", "ok")}
        verdict = servable_verdict(findings)
        click.echo(f"\nwebhook of {names.namespace}: {verdict} ({counts['error']} error, {counts['warning']} warning, "
                   f"{counts['info']} info, {counts['ok']} ok)")
    if missing:
        raise KruisectlError(f"forbidden: missing permissions: {'; '.join(missing)} (the checks that need them say "
                       "unknown)")
    if bad:
        sys.exit(EXIT_TIMEOUT if wait_for > 0 else EXIT_FINDINGS)


COMMANDS = [webhook]
