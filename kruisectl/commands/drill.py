"""``kruisectl drill plan|run``: a game day for the kruise-manager in one command."""

from __future__ import annotations

import sys

import click

from .. import drill as lib
from .. import report_file
from ..drill import report as drillreport
from .. import inventory as inv
from ..errors import EXIT_CANNOT_CHECK, EXIT_FINDINGS, KruisectlError
from ..output import dump, table
from . import explicit, name_options
from .options import Duration, kube_options, output_option

SCENARIO_NAMES = (*lib.SCENARIOS, *lib.WORKER_SCENARIOS)

EPILOG = """\b
Examples:
  kruisectl drill plan                              # what each scenario does, and its budget
  kruisectl drill run eviction                      # prints the plan; nothing happens without --yes
  kruisectl drill run leader-crash rollout --yes    # disrupt, measure, restore
  kruisectl drill run --all --yes -o json           # every scenario; the report as JSON
  kruisectl drill run --all --yes --report day.html # and a page to share: charts per scenario
  kruisectl drill run worker-crash-leader --yes     # SIGKILL the leader's worker (needs pods/exec)
  kruisectl drill run rollout --yes --workloadspread-share 0.25  # a quarter real WorkloadSpread pods

\b
What it touches: one SidecarSet kruisectl-probe-<id> (selecting only its own label, only in
--probe-namespace; deleted at the end, on error and on Ctrl-C), server-side dry-run pod
creates (nothing is stored), and the manager's own pods and Deployment. The worker-*
scenarios signal the manager's worker process inside its container (its supervisor restarts
it): that takes an exec into the pod, i.e. create and get on pods/exec in the manager's
namespace; without them they are refused (named) or left out (--all). The OOM kill of a
worker is not offered here: it would run a memory hog in your container. With
--workloadspread-share also a Job and a WorkloadSpread kruisectl-drill-spread-<id> in
--probe-namespace and real pods of that Job (never scheduled; each deleted seconds later, the
rest after each scenario, everything at the end): it needs create/list/delete on pods and jobs
and create/delete on workloadspreads there.

\b
Exit codes:
  0    every scenario within its budget
  1    a scenario breached its budget (failed or sidecar-less admissions, leader gap, recovery)
  2    could not run: refused (fewer than 2 ready replicas, a doctor error; --force), forbidden,
       unreachable, bad input; or could not measure a figure (a replica's metrics could not be
       read: its share is unknown, so none is reported); the report says which (1 comes first)
  130  interrupted (Ctrl-C); the probe SidecarSet is deleted first
"""


def drill_options(func):
    func = click.option("--probe-namespace", default=lib.DrillOptions.probe_namespace, show_default=True, metavar="NS",
                        help="Namespace of the dry-run pods (the pod webhook must intercept it).")(func)
    func = click.option("--rate", type=click.FloatRange(0.5, 500), default=20.0, show_default=True,
                        help="Dry-run pod creates per second during each scenario.")(func)
    func = click.option("--crash-budget", type=click.IntRange(0), default=lib.DrillOptions.crash_budget,
                        show_default=True,
                        help="Failed admissions a crash may cost (the requests in flight on the victim) where the drill cannot "
                        "tell when it struck; where it sent the signal itself, the admissions in flight then.")(func)
    func = click.option("--leader-gap-budget", type=click.FloatRange(0), default=None, metavar="SECONDS",
                        help="Longest vacancy of the Lease allowed [default: lease duration + 2s on a crash, "
                             "1s on eviction and rollout, 3s on a worker's crash (+ 6.5s to tell "
                             "its hang)].")(func)
    func = click.option("--workloadspread-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                        metavar="FRACTION",
                        help="Of the creates, this share real pods (not dry runs) of a temporary Job that a "
                             "temporary WorkloadSpread kruisectl-drill-spread-<id> spreads over 3 subsets of "
                             "maxReplicas 2: each scenario also checks that no subset ever holds more "
                             "(workloadspreadViolations, budget 0). Needs the WorkloadSpread webhook and "
                             "Kubernetes >= 1.32 (Job managedBy).")(func)
    return func


def _options(probe_namespace, rate, crash_budget, leader_gap_budget, workloadspread_share=0.0,
             timeout=300.0) -> lib.DrillOptions:
    return lib.DrillOptions(probe_namespace=probe_namespace, rate=rate, crash_budget=crash_budget,
                            leader_gap_budget_s=leader_gap_budget, timeout_s=timeout,
                            workloadspread_share=workloadspread_share)


def _scenarios(names: tuple[str, ...], all_: bool) -> list[lib.Scenario]:
    every = {**lib.SCENARIOS, **lib.WORKER_SCENARIOS}
    if all_:
        return list(every.values())
    if not names:
        raise KruisectlError(f"name at least one scenario ({', '.join(SCENARIO_NAMES)}) or pass --all")
    return [every[n] for n in names]


def _allowed(api, names, scenarios: list[lib.Scenario], all_: bool, timeout: float) -> list[lib.Scenario]:
    """The scenarios this user has the rights for: a named one without them is refused in one
    line; --all leaves it out and says so."""
    missing = lib.missing_rights(api, names, scenarios, timeout)
    if not missing:
        return scenarios
    if not all_:
        raise KruisectlError("refusing to drill: " + "; ".join(missing) + " (to signal the manager's worker inside its "
                       "container)")
    lacking = {m.split(" ", 1)[0] for m in missing}
    click.echo(f"left out: {', '.join(sorted(lacking))} (need create and get on pods/exec in {names.namespace})",
               err=True)
    return [s for s in scenarios if s.name not in lacking]


def _plan_table(rows: list[dict]) -> str:
    return table([[r["scenario"], r["budget"]["failed"], r["budget"]["notInjected"],
                   "-" if r["budget"]["leaderGapS"] is None else f"{r['budget']['leaderGapS']:g}s",
                   r["does"] + (f" [needs {', '.join(r['needs'])}]" if r.get("needs") else "")]
                  for r in rows], ["scenario", "max failed", "max no-sidecar", "max leader gap", "what it does"])


@click.group("drill")
def drill() -> None:
    """Disrupt the manager on purpose under a steady load of admissions and measure what the
    HA design promises: pods keep being admitted, with their sidecars."""


@drill.command("plan", epilog=EPILOG)
@click.argument("scenario", nargs=-1, type=click.Choice(SCENARIO_NAMES))
@kube_options
@drill_options
@output_option(formats=("table", "json", "yaml"))
def plan_command(scenario, target, probe_namespace, rate, crash_budget, leader_gap_budget, workloadspread_share,
                 output):
    """Print what each SCENARIO (default: all) would do and what it may cost. Reads only the
    Lease (for its duration); changes nothing."""
    options = _options(probe_namespace, rate, crash_budget, leader_gap_budget, workloadspread_share)
    names = inv.Names(namespace=target.namespace)
    duration = lib.lease_duration(target.client(), names, target.request_timeout)
    rows = lib.plan(names, _scenarios(scenario, not scenario), options, duration)
    _print_plan(rows, options, names, output)


def _print_plan(rows, options, names, output) -> None:
    if output in ("json", "yaml"):
        click.echo(dump({"schemaVersion": 1, "namespace": names.namespace, "probeNamespace": options.probe_namespace,
                         "rate": options.rate, "scenarios": rows}, output))
        return
    click.echo(_plan_table(rows))
    click.echo(f"\nLoad: {options.rate:g} server-side dry-run pod creates/s in {options.probe_namespace}, for pods a "
               f"temporary SidecarSet kruisectl-probe-<id> selects. Manager: {names.namespace}/{names.deployment}.")
    if options.workloadspread_share > 0:
        click.echo(f"Of them {options.workloadspread_share:.0%} real pods (never scheduled, deleted again) of a Job "
                   "that a temporary WorkloadSpread spreads over subsets of maxReplicas 2; none may hold more.")


@drill.command("run", epilog=EPILOG)
@click.argument("scenario", nargs=-1, type=click.Choice(SCENARIO_NAMES))
@click.option("--all", "all_", is_flag=True, help="Run every scenario.")
@click.option("--yes", is_flag=True, help="Really disrupt the manager (without it: print the plan and exit).")
@click.option("--force", is_flag=True, help="Run even when doctor reports an error.")
@click.option("--timeout", type=Duration(allow_zero=False, minimum=10), default="5m", show_default=True,
              metavar="DURATION",
              help="Per scenario: how long to wait for the manager to recover.")
@click.option("--report", "report_path", metavar="FILE", default=None,
              help="Also write the results as one self-contained HTML page (inline SVG charts, no JavaScript, "
                   "nothing fetched): the summary, then per scenario the admissions, Lease holder, ready endpoints "
                   "and shares over time. Checked before the drill starts.")
@click.option("--overwrite", is_flag=True, help="Replace the --report FILE when it exists.")
@kube_options
@name_options("lease", "deployment", "service", "mutating")
@drill_options
@output_option(formats=("table", "json", "yaml"))
def run_command(scenario, all_, yes, force, timeout, report_path, overwrite, target, names, probe_namespace, rate,
                crash_budget, leader_gap_budget, workloadspread_share, output):
    """Run scenarios against the manager, one after another, each under load,
    and report per scenario: requests, failed, admitted without sidecar, p99, leader gap, time
    until the victim left the endpoints, time back to the full ready count, each replica's
    share of the traffic."""
    options = _options(probe_namespace, rate, crash_budget, leader_gap_budget, workloadspread_share, timeout)
    given = names
    names = inv.Names(namespace=target.namespace, **names)
    scenarios = _scenarios(scenario, all_)
    if report_path is not None:
        report_file.check(report_path, overwrite)
    api = target.client(pool_size=64)
    duration = lib.lease_duration(api, names, target.request_timeout)
    if not yes:
        _print_plan(lib.plan(names, scenarios, options, duration), options, names, output)
        click.echo("\nNothing was done: add --yes to run it.", err=True)
        return
    scenarios = _allowed(api, names, scenarios, all_, target.request_timeout)
    try:
        reasons = lib.preflight(api, names, target.request_timeout, force, explicit(given))
    except lib.DrillRefused as err:
        raise KruisectlError(str(err)) from None
    if reasons:
        raise KruisectlError("refusing to drill: " + "; ".join(reasons) + (" (--force overrides doctor errors)"
                                                                     if any(r.startswith("doctor") for r in reasons)
                                                                     else ""))
    options.webhook_timeout_s = lib.webhook_timeout(api, names, target.request_timeout)
    try:
        results = lib.run(api, names, scenarios, options, on_progress=lambda text: click.echo(text, err=True))
    except lib.DrillRefused as err:
        raise KruisectlError(str(err)) from None
    report = {"schemaVersion": 1, "namespace": names.namespace, "rate": options.rate,
              "scenarios": [r.to_dict() for r in results]}
    if options.workloadspread_share > 0:
        report["workloadspreadShare"] = options.workloadspread_share
        report["workloadspreadViolations"] = sum(r.workloadspread_violations or 0 for r in results)
    if output in ("json", "yaml"):
        click.echo(dump(report, output))
    else:
        click.echo(_result_table(results))
        for r in results:
            for failure in r.failures:
                click.echo(f"{r.scenario}: {failure}")
            for detail in r.workloadspread_details:
                click.echo(f"{r.scenario}: WorkloadSpread: {detail}")
            for breach in r.breaches:
                click.echo(f"{r.scenario}: BREACH: {breach}")
            for error in r.errors:
                click.echo(f"{r.scenario}: ERROR: {error}")
    if report_path is not None:
        report_file.write(report_path, drillreport.render(results, names.namespace, options.rate), overwrite)
        click.echo(f"report: {report_path}", err=True)
    if any(r.breaches for r in results):
        sys.exit(EXIT_FINDINGS)
    if any(r.errors for r in results):
        sys.exit(EXIT_CANNOT_CHECK)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _result_table(results: list[lib.ScenarioResult]) -> str:
    rows = []
    for r in results:
        share = min(r.shares.values()) if r.shares else None
        rows.append([r.scenario, r.requests, r.failed, r.not_injected, "-" if r.p99_ms is None else f"{r.p99_ms:g}ms",
                     _seconds(r.leader_gap_s), _seconds(r.endpoint_removal_s), _seconds(r.recovery_s),
                     "-" if share is None else f"{share:.0%}",
                     "BREACH" if r.breaches else "ERROR" if r.errors else "ok"])
    headers = ["scenario", "requests", "failed", "no sidecar", "p99", "leader gap", "endpoint out", "recovered",
               "min share", "result"]
    if any(r.workloadspread_pods is not None for r in results):  # the WorkloadSpread's figures before the verdict
        for row, r in zip(rows, results):
            row[-1:-1] = ["-" if r.workloadspread_pods is None else r.workloadspread_pods,
                          "-" if r.workloadspread_violations is None else r.workloadspread_violations]
        headers[-1:-1] = ["spread pods", "over maxReplicas"]
    return table(rows, headers)


COMMANDS = [drill]
