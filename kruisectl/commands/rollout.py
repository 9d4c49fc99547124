"""``kruisectl rollout tune|status|restart``: the manager Deployment's rollout."""

from __future__ import annotations

import sys

import click

from kubekit import kruise

from .. import rollout
from ..installation import KRUISECTL_CHART, MANIFESTS, detect
from ..release import RELEASE_NAME
from ..errors import EXIT_FINDINGS, EXIT_TIMEOUT, KruisectlError, describe_api_error
from ..output import dump
from .options import DURATION, kube_options, output_option

deployment_option = click.option("--deployment", default=kruise.DEPLOYMENT, show_default=True, metavar="NAME",
                                 help="The manager Deployment.")


@click.group("rollout")
def rollout_group() -> None:
    """Tune, watch and restart the kruise-manager Deployment's rollout.

    \b
    Examples:
      kruisectl rollout tune --max-surge 1              # fit a small cluster
      kruisectl rollout tune --when-unsatisfiable DoNotSchedule --dry-run
      kruisectl rollout tune --max-surge 50% --via-helm # values for the next helm upgrade
      kruisectl rollout status --watch --timeout 5m
      kruisectl rollout restart
    """


def _read(target, name: str):
    client = target.client()
    try:
        return client, rollout.read_deployment(client, target.namespace, name, target.request_timeout)
    except Exception as err:  # noqa: BLE001 - one line, exit 2
        raise KruisectlError(f"deployment {target.namespace}/{name}: {describe_api_error(err)}") from None


def _cluster_state(client, target) -> tuple[list[dict], list[dict]]:
    try:
        return rollout.cluster_state(client, target.request_timeout)
    except Exception as err:  # noqa: BLE001
        raise KruisectlError(f"reading nodes and pods for the capacity check: {describe_api_error(err)}") from None


def _render_tune(plan: rollout.TunePlan) -> str:
    lines = [f"deployment {plan.namespace}/{plan.name} ({plan.current.replicas} replicas)"]
    if plan.changes:
        lines += [f"  {field}: {old} -> {new}" for field, old, new in plan.changes]
    else:
        lines.append("  no change: the strategy already has these values")
    surge, unavailable = plan.effective_after
    lines.append(f"effective: up to {plan.current.replicas + surge} pods during a rollout (surge {surge}), "
                 f"at least {plan.current.replicas - unavailable} available (unavailable {unavailable})")
    if plan.fit is not None:
        fit = plan.fit
        lines.append(f"capacity: {fit.fits} of {fit.wanted} surge pods can be scheduled now")
        lines += [f"  {reason}" for reason in fit.reasons]
    return "\n".join(lines)


def _chart_upgrade(current: dict, namespace: str, name: str, plan: rollout.TunePlan) -> str:
    """The upgrade of the release that installed ``current`` which keeps the tuned strategy;
    a KruisectlError when no chart has values for it (manifests, or upstream's chart)."""
    installed = detect(current, namespace, name)
    if installed.kind == MANIFESTS:
        raise KruisectlError(f"--via-helm: deployment {namespace}/{name} was not installed by helm (no "
                       f"{RELEASE_NAME} annotation): tune it without --via-helm")
    if installed.kind != KRUISECTL_CHART:
        raise KruisectlError(f"--via-helm: release {installed.release.namespace}/{installed.release.name} is upstream's "
                       "chart, which has no values for the rollout strategy (its template sets it): tune the "
                       "Deployment without --via-helm (the next helm upgrade undoes it)")
    return installed.upgrade(rollout.helm_set_pairs(plan))


@rollout_group.command("tune")
@click.option("--max-surge", metavar="N|N%", help="Pods above the desired count during a rollout.")
@click.option("--max-unavailable", metavar="N|N%", help="Pods below the desired count during a rollout.")
@click.option("--when-unsatisfiable", type=click.Choice(rollout.WHEN_UNSATISFIABLE),
              help="The zone spread constraint's policy (DoNotSchedule needs zone labels on the nodes).")
@click.option("--force", is_flag=True, help="Apply even when the surge pods cannot all be scheduled now.")
@click.option("--dry-run", is_flag=True, help="Show the change (and the capacity check) without applying it.")
@click.option("--via-helm", is_flag=True, help="Print the chart values (and the upgrade of the release that "
              "installed the Deployment) instead of patching it; this project's chart only.")
@deployment_option
@output_option(formats=("table", "json", "yaml"))
@kube_options
def tune(target, max_surge, max_unavailable, when_unsatisfiable, force, dry_run, via_helm, deployment, output):
    """Set maxSurge / maxUnavailable and the zone spread's whenUnsatisfiable.

    Validates as Kubernetes does (not both 0, maxUnavailable at most 100%; percentages of
    maxSurge round up, of maxUnavailable round down) and shows the effective numbers. Before
    changing anything it checks that the next rollout's surge pods can be scheduled now
    (allocatable minus requests, taints, node selectors, host-network ports, DoNotSchedule
    spread); if not, it refuses and names the largest maxSurge that fits, unless --force.

    \b
    Exit codes:
      0    applied (or nothing to do)
      1    refused by the capacity check
      2    bad input or the cluster could not be read/changed

    \b
    Examples:
      kruisectl rollout tune --max-surge 1 --max-unavailable 0
      kruisectl rollout tune --max-surge 100% --dry-run -o yaml
      kruisectl rollout tune --max-surge 2 --via-helm > strategy-values.yaml
    """
    if max_surge is None and max_unavailable is None and when_unsatisfiable is None:
        raise KruisectlError("nothing to change: give --max-surge, --max-unavailable or --when-unsatisfiable")
    client, current = _read(target, deployment)
    try:
        plan = rollout.plan_tune(current, max_surge=rollout.int_or_percent(max_surge),
                                 max_unavailable=rollout.int_or_percent(max_unavailable),
                                 when_unsatisfiable=when_unsatisfiable)
    except ValueError as err:
        raise KruisectlError(str(err)) from None
    upgrade = _chart_upgrade(current, target.namespace, deployment, plan) if via_helm else None
    nodes, pods = _cluster_state(client, target)
    fit = rollout.check_capacity(current, plan, nodes, pods)

    if via_helm:
        values = rollout.helm_values(plan)
        if output == "table":
            click.echo(dump(values, "yaml").rstrip())
            click.echo(f"# or: {upgrade}", err=True)
        else:
            click.echo(dump(values, output))
        if not fit.ok:
            click.echo(f"warning: only {fit.fits} of {fit.wanted} surge pods can be scheduled now; "
                       f"the largest maxSurge that fits is {fit.recommended_max_surge}", err=True)
        return

    refused = not fit.ok and not force and bool(plan.changes)
    applied = False
    if plan.changes and dry_run:
        from kubekit.api import ApiError

        try:  # the apiserver validates the change as the real run would send it; nothing is stored
            rollout.apply_tune(client, target.namespace, deployment, plan, target.request_timeout, dry_run=True)
        except ApiError as err:
            raise KruisectlError(f"the apiserver would refuse this change: {describe_api_error(err)}") from None
    if plan.changes and not dry_run and not refused:
        from kubekit.api import ApiError

        try:
            rollout.apply_tune(client, target.namespace, deployment, plan, target.request_timeout)
        except ApiError as err:
            # A failed `test` op is a bare 422: tell it apart by re-reading the resourceVersion.
            if err.status == 422 and _read(target, deployment)[1]["metadata"]["resourceVersion"] != \
                    current["metadata"]["resourceVersion"]:
                raise KruisectlError(f"deployment {target.namespace}/{deployment} changed while planning; run again") from None
            raise KruisectlError(describe_api_error(err)) from None
        applied = True

    if output == "table":
        click.echo(_render_tune(plan))
    else:
        click.echo(dump({"schemaVersion": 1, **plan.to_dict(), "applied": applied, "refused": refused}, output))
    if refused:
        click.echo(f"error: refusing: only {fit.fits} of {fit.wanted} surge pods can be scheduled now; "
                   f"use --max-surge {fit.recommended_max_surge} (largest that fits) or --force", err=True)
        if fit.recommended_max_surge == 0 and str(plan.proposed.max_unavailable) in ("0", "0%"):
            click.echo("hint: with no room for any surge pod, allow --max-unavailable 1 and --max-surge 0", err=True)
        sys.exit(EXIT_FINDINGS)
    if output == "table":
        if dry_run and plan.changes:
            click.echo("dry run: nothing changed")
        elif applied:
            click.echo(f"deployment.apps/{deployment} tuned")
        if not fit.ok and applied:
            click.echo(f"warning: applied with --force although only {fit.fits} of {fit.wanted} surge pods fit",
                       err=True)


@rollout_group.command("status")
@click.option("-w", "--watch", is_flag=True, help="Keep reporting until the rollout finishes or fails.")
@click.option("--timeout", type=DURATION, default="0", metavar="DURATION",
              help="With --watch: give up after this long (0: no limit).")
@deployment_option
@output_option(formats=("table", "json", "yaml"))
@kube_options
def status(target, watch, timeout, deployment, output):
    """Rollout progress with kubectl's semantics.

    The new spec must be observed (observedGeneration), all replicas updated, old replicas gone
    and the updated ones available; a Progressing condition with ProgressDeadlineExceeded fails.

    \b
    Exit codes:
      0    rolled out
      1    still in progress (without --watch) or progress deadline exceeded
      2    cannot read the Deployment
      124  --timeout ran out

    \b
    Examples:
      kruisectl rollout status
      kruisectl rollout status --watch --timeout 300
    """
    client = target.client()

    def read() -> dict:
        try:
            return rollout.read_deployment(client, target.namespace, deployment, target.request_timeout)
        except Exception as err:  # noqa: BLE001 - one line, exit 2
            raise KruisectlError(f"deployment {target.namespace}/{deployment}: {describe_api_error(err)}") from None

    def show(state: rollout.RolloutStatus) -> None:
        if output == "table":
            click.echo(state.message)
        elif not watch or state.done or state.failed:
            click.echo(dump({"schemaVersion": 1, "deployment": f"{target.namespace}/{deployment}", **state.to_dict()},
                            output))

    if not watch:
        state = rollout.rollout_status(read())
        show(state)
        if not state.done:
            sys.exit(EXIT_FINDINGS)
        return
    try:
        state = rollout.wait_rolled_out(read, timeout or None, show)
    except TimeoutError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_TIMEOUT)
    if state.failed:
        sys.exit(EXIT_FINDINGS)


@rollout_group.command("restart")
@deployment_option
@kube_options
def restart(target, deployment):
    """Restart the manager's pods through a rolling update, as kubectl rollout restart does.

    \b
    Examples:
      kruisectl rollout restart && kruisectl rollout status --watch
    """
    try:
        rollout.restart(target.client(), target.namespace, deployment, target.request_timeout)
    except Exception as err:  # noqa: BLE001
        raise KruisectlError(f"deployment {target.namespace}/{deployment}: {describe_api_error(err)}") from None
    click.echo(f"deployment.apps/{deployment} restarted")


COMMANDS = [rollout_group]
