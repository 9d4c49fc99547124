"""``kruisectl install | upgrade | uninstall``: the manager's Helm chart through the real helm,
with the high-availability choices as flags."""

from __future__ import annotations

import sys

import click

from kubekit import kruise

from .. import dryrun, helm, rollout
from ..errors import EXIT_FINDINGS, EXIT_TIMEOUT, KruisectlError, describe_api_error
from .options import POSITIVE_DURATION, kube_options

INSTALL_EPILOG = """\b
Examples:
  kruisectl install                                   # 3 replicas, zone spread, host network
  kruisectl install --strict-zone-spread --wait       # DoNotSchedule; wait until rolled out
  kruisectl install --max-surge 1 --dry-run           # the diff, validated by the apiserver
  kruisectl upgrade --replicas 5 --wait
  kruisectl uninstall

\b
Exit codes:
  0    done
  1    the rollout failed (progress deadline)
  2    helm missing, cluster unreachable or invalid values (one line from helm)
  124  --wait ran out
"""


def common_options(func):
    options = [
        click.option("--release", default=helm.RELEASE, show_default=True, help="Helm release name."),
        click.option("--chart", default=None, show_default="the chart kruisectl ships (charts/kruise)",
                     help="Chart path or reference."),
        click.option("--helm-binary", default=None, metavar="PATH", help="helm to run (env KRUISECTL_HELM)."),
        click.option("--dry-run", is_flag=True, help="Show what would change as a diff against the cluster, every object "
                     "validated by the apiserver (server-side dry run); change nothing."),
        click.option("--wait/--no-wait", default=False, show_default=True, help="Wait until the manager is rolled out."),
        click.option("--timeout", type=POSITIVE_DURATION, default="5m", show_default=True, metavar="DURATION",
                     help="How long --wait waits."),
        click.option("--replicas", type=click.IntRange(min=1), default=None, help="Manager replicas (chart: 3)."),
        click.option("--strict-zone-spread/--loose-zone-spread", default=None,
                     help="whenUnsatisfiable DoNotSchedule / ScheduleAnyway (chart: ScheduleAnyway)."),
        click.option("--max-surge", default=None, metavar="N|N%", help="Rollout maxSurge (chart: 100%)."),
        click.option("--max-unavailable", default=None, metavar="N|N%", help="Rollout maxUnavailable (chart: 0)."),
        click.option("--host-network/--no-host-network", default=None, help="Run the manager on the host network (chart: on)."),
        click.option("--failure-policy", type=click.Choice(["Fail", "Ignore"]), default=None,
                     help="Webhooks' failurePolicy (chart: Fail)."),
        click.option("-f", "--values", "values_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Values file (repeatable)."),
        click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help="A chart value (repeatable)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _chart_args(chart, values_files, set_values, **ha) -> list[str]:
    for value, name in ((ha.get("max_surge"), "--max-surge"), (ha.get("max_unavailable"), "--max-unavailable")):
        if value is not None and not (value.isdigit() or (value.endswith("%") and value[:-1].isdigit())):
            raise KruisectlError(f"{name} {value!r}: expected a number of pods (1) or a percentage (50%)")
    args = [chart]
    for path in values_files:
        args += ["--values", path]
    for pair in [*helm.ha_values(**ha), *set_values]:
        if "=" not in pair:
            raise KruisectlError(f"--set {pair!r}: expected KEY=VALUE")
        args += ["--set", pair]
    return args


def _wait_rolled_out(target, timeout: float, namespace: str) -> None:
    """Progress lines until the manager Deployment in ``namespace`` has rolled out (kubectl's
    semantics)."""
    client = target.client()

    def not_yet(err) -> rollout.RolloutStatus:  # not created yet, or a blip: keep waiting
        return rollout.RolloutStatus(f"waiting for deployment {kruise.DEPLOYMENT}: {describe_api_error(err)}",
                                     False, False)

    try:
        state = rollout.wait_rolled_out(
            lambda: rollout.read_deployment(client, namespace, kruise.DEPLOYMENT, target.request_timeout),
            timeout, lambda s: click.echo(s.message, err=True), while_unreadable=not_yet)
    except TimeoutError:
        click.echo(f"error: timed out after {timeout:g}s waiting for the manager to roll out", err=True)
        sys.exit(EXIT_TIMEOUT)
    if state.failed:
        sys.exit(EXIT_FINDINGS)


def _dry_run(target, helm_run, binary: str, args: list[str], chart: str) -> None:
    """helm's server dry run, then every object through a server-side dry-run apply: the diff
    of what would change; exit 2 when the apiserver would refuse something."""
    manifest = dryrun.release_manifest(helm_run, binary, args)
    crds = helm_run(binary, ["show", "crds", chart]).stdout if args[0] == "install" else ""
    changes = dryrun.plan(target.client(), manifest, target.namespace, target.request_timeout, crds)
    for change in changes:
        if change.action in ("create", "update"):
            click.echo(change.diff)
    invalid = [c for c in changes if c.action == "invalid"]
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "unchanged", "invalid")}
    click.echo(f"dry run of {args[0]} (nothing changed): " + ", ".join(f"{n} {a}" for a, n in counts.items() if n),
               err=True)
    if invalid:
        raise KruisectlError("the apiserver would refuse: " + "; ".join(f"{c.ref}: {c.error}" for c in invalid))


def _apply(verb: str, target, release, chart, helm_binary, dry_run, wait, timeout, values_files, set_values, **ha):
    chart = chart or helm.bundled_chart()
    binary = helm.find_helm(helm_binary)
    chart_args = _chart_args(chart, values_files, set_values, **ha)
    connection = helm.connection_args(target)
    if dry_run:
        base = ["install", release, *chart_args, *connection, "--create-namespace"] if verb == "install" else \
            ["upgrade", release, *chart_args, *connection, "--reset-then-reuse-values"]
        _dry_run(target, helm.run, binary, base, chart)
        return
    if verb == "install":
        args = ["install", release, *chart_args, *connection, "--create-namespace"]
    else:
        args = ["upgrade", release, *chart_args, *connection, "--reset-then-reuse-values"]
    click.echo(f"{'installing' if verb == 'install' else 'upgrading'} release {release} in {target.namespace} "
               f"with {binary}...", err=True)
    result = helm.run(binary, args)
    click.echo(result.stdout.strip())
    if wait:
        # The chart may put the manager elsewhere than the release (installation.namespace):
        # wait where the release's own manifest says its Deployment is.
        manifest = helm.run(binary, ["get", "manifest", release, *connection]).stdout
        _wait_rolled_out(target, timeout, helm.manager_namespace(manifest, kruise.DEPLOYMENT, target.namespace))


@click.command("install", epilog=INSTALL_EPILOG)
@kube_options
@common_options
def install(target, **options):
    """Install the kruise-manager chart (helm install --create-namespace)."""
    _apply("install", target, **options)


@click.command("upgrade", epilog=INSTALL_EPILOG)
@kube_options
@common_options
def upgrade(target, **options):
    """Upgrade the release: chart defaults refreshed, your earlier values kept, these flags applied.
    The webhook Secret and caBundles are kept (kruise#374)."""
    _apply("upgrade", target, **options)


@click.command("uninstall")
@kube_options
@click.option("--release", default=helm.RELEASE, show_default=True, help="Helm release name.")
@click.option("--helm-binary", default=None, metavar="PATH", help="helm to run (env KRUISECTL_HELM).")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the resources are gone.")
@click.option("--timeout", type=POSITIVE_DURATION, default="5m", show_default=True, metavar="DURATION")
def uninstall(target, release, helm_binary, dry_run, wait, timeout):
    """Remove the release. Helm keeps CRDs (SidecarSets would go with them): delete
    sidecarsets.apps.kruise.io yourself if you mean it.

    \b
    Examples:
      kruisectl uninstall
      kruisectl uninstall --dry-run
    """
    binary = helm.find_helm(helm_binary)
    if dry_run:
        manifest = helm.run(binary, ["get", "manifest", release, *helm.connection_args(target)]).stdout
        for obj in dryrun.manifests(manifest):
            ns = obj["metadata"].get("namespace")
            click.echo(f"would delete {obj['kind']}/{obj['metadata']['name']}" + (f" -n {ns}" if ns else ""))
        click.echo(f"dry run: release {release} not uninstalled; kept in any case: CustomResourceDefinition "
                   "sidecarsets.apps.kruise.io (helm never deletes CRDs)", err=True)
        return
    args = ["uninstall", release, *helm.connection_args(target)]
    if wait:
        args += ["--wait", "--timeout", f"{int(timeout)}s"]
    result = helm.run(binary, args)
    click.echo(result.stdout.strip())
    click.echo("kept: CustomResourceDefinition sidecarsets.apps.kruise.io (helm never deletes CRDs)", err=True)


COMMANDS = [install, upgrade, uninstall]
