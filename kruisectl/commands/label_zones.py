"""``kruisectl label-zones``: give bare-metal nodes the zone label the manager spreads on."""

from __future__ import annotations

import signal
import sys
import threading

import click

from .. import zones
from ..errors import EXIT_FINDINGS, KruisectlError, describe_api_error
from ..output import dump, table
from .options import complete_nodes, kube_options, output_option

EPILOG = """\b
Exactly one source of values:
  --from-label KEY          copy from another label (e.g. a rack label)
  --map FILE                YAML or CSV: node name or regex -> zone[, region]
  --hostname-pattern RE     regex with (?P<zone>...) [and (?P<region>...)]
  --zone Z NODE...          one zone for the named nodes

\b
Examples:
  kruisectl label-zones --from-label example.com/rack            # plan only
  kruisectl label-zones --from-label example.com/rack --apply
  kruisectl label-zones --hostname-pattern '^(?P<zone>dc\\d)-' -l 'role=worker' --apply
  kruisectl label-zones --map zones.yaml --include-region --dry-run=server
  kruisectl label-zones --zone zone-a bm-01 bm-02 --apply
  kruisectl label-zones --map zones.csv --overwrite --apply       # replace different values

\b
Exit codes:
  0    planned, or applied everything planned
  1    with --apply, some node was not labelled (failed, changed meanwhile, or no value)
  2    bad input or the cluster could not be reached
  130  interrupted (a re-run picks up the rest)
"""


def _source(from_label, region_from_label, map_file, hostname_pattern, zone, region, nodes):
    chosen = [flag for flag, value in (("--from-label", from_label), ("--map", map_file),
                                       ("--hostname-pattern", hostname_pattern), ("--zone", zone)) if value]
    if len(chosen) != 1:
        raise KruisectlError("give exactly one source: --from-label, --map, --hostname-pattern or --zone"
                       + (f" (got {', '.join(chosen)})" if chosen else ""))
    if nodes and not zone:
        raise KruisectlError("node names are only taken with --zone")
    if region and not zone:
        raise KruisectlError("--region goes with --zone (other sources bring their own region)")
    if region_from_label and not from_label:
        raise KruisectlError("--region-from-label goes with --from-label")
    try:
        if from_label:
            return zones.FromLabel(from_label, region_from_label)
        if map_file:
            return zones.NodeMap.load(map_file)
        if hostname_pattern:
            return zones.HostnamePattern(hostname_pattern)
        if not nodes:
            raise KruisectlError("--zone needs the names of the nodes to label")
        return zones.ExplicitZone(zone, tuple(nodes), region)
    except zones.SourceError as err:
        raise KruisectlError(str(err)) from None


def _render_plan(rows: list[zones.Row], counts: dict[str, int], source: str) -> str:
    lines = []
    if rows:
        lines.append(table(
            [[r.node, r.current_zone or "-", r.current_region or "-", r.zone or "-", r.region or "-", r.action.upper(),
              r.note or ", ".join(f"{k.split('/')[-1]} was {v}" for k, v in r.replaced.items())] for r in rows],
            ["node", "zone", "region", "proposed zone", "proposed region", "action", "note"],
        ))
    parts = [f"{n} {action}" for action, n in counts.items() if n]
    lines.append(f"\nsource: {source}; {len(rows)} node(s) in plan" + (f": {', '.join(parts)}" if parts else ""))
    return "\n".join(lines)


@click.command("label-zones", epilog=EPILOG)
@click.option("--from-label", metavar="KEY", help="Copy the zone from this node label.")
@click.option("--region-from-label", metavar="KEY", help="With --from-label: copy the region from this label.")
@click.option("--map", "map_file", metavar="FILE", help="YAML or CSV map: node name or regex -> zone[, region].")
@click.option("--hostname-pattern", metavar="REGEX", help="Regex over the hostname with (?P<zone>) [and (?P<region>)].")
@click.option("--zone", metavar="ZONE", help="Zone for the NODES given as arguments.")
@click.option("--region", metavar="REGION", help="With --zone: region for those nodes.")
@click.option("-l", "--selector", metavar="SELECTOR", help="Only nodes matching this label selector.")
@click.option("--include-region", is_flag=True, help="Also find nodes lacking topology.kubernetes.io/region, and set it "
              "(implied by --region and --region-from-label).")
@click.option("--overwrite", is_flag=True, help="Replace existing different values (and say what was replaced).")
@click.option("--apply", "do_apply", is_flag=True, help="Write the labels (without it, only the plan is shown).")
@click.option("--dry-run", type=click.Choice(["none", "server", "client"]), default="none", show_default=True,
              help="server: the apiserver validates the patches without persisting; client: plan only.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=64, show_default=True,
              help="Patches in flight at once.")
@output_option(formats=("table", "json", "yaml"))
@click.argument("nodes", nargs=-1, shell_complete=complete_nodes)
@kube_options
def label_zones(target, from_label, region_from_label, map_file, hostname_pattern, zone, region, selector,
                include_region, overwrite, do_apply, dry_run, concurrency, output, nodes):
    """Find nodes without topology.kubernetes.io/zone and label them from one source.

    Plans first (node, current zone/region, proposed, source); nothing changes without --apply.
    Never replaces a different value unless --overwrite. Each patch carries the node's
    resourceVersion: a node edited meanwhile is re-read and planned again, not clobbered.
    """
    source = _source(from_label, region_from_label, map_file, hostname_pattern, zone, region, nodes)
    include_region = include_region or bool(region or region_from_label)  # a region given is a region wanted
    client = target.client(pool_size=concurrency)
    try:
        all_nodes = zones.list_nodes(client, selector, timeout=target.request_timeout)
    except Exception as err:  # noqa: BLE001 - one line, exit 2
        raise KruisectlError(describe_api_error(err)) from None
    if zone:
        missing = sorted(set(nodes) - {n["metadata"]["name"] for n in all_nodes})
        if missing:
            raise KruisectlError(f"no such node(s){' matching the selector' if selector else ''}: {', '.join(missing)}")
        all_nodes = [n for n in all_nodes if n["metadata"]["name"] in nodes]  # only the named ones
    rows = zones.plan(all_nodes, source, include_region=include_region, overwrite=overwrite)
    counts = zones.summary(rows)
    # --dry-run=server sends the patches for the apiserver to validate, as kubectl does.
    writing = (do_apply and dry_run != "client") or dry_run == "server"

    if not writing:
        if output == "table":
            click.echo(_render_plan(rows, counts, source.description))
            if rows and counts[zones.LABEL] + counts[zones.OVERWRITE]:
                click.echo("plan only: add --apply to write these labels")
        else:
            click.echo(dump({"schemaVersion": 1, "source": source.description, "summary": counts,
                             "plan": [r.to_dict() for r in rows]}, output))
        return

    if output == "table":
        click.echo(_render_plan(rows, counts, source.description))
    outcomes = _apply_with_progress(client, rows, source, include_region, overwrite, concurrency, dry_run == "server",
                                    target.request_timeout, output == "table" and sys.stderr.isatty())
    failed = [o for o in outcomes if not o.applied]
    left_out = [r for r in rows if r.action in (zones.CONFLICT, zones.UNPLACED)]
    applied = [o for o in outcomes if o.applied]
    if output == "table":
        verb = "would label (server dry-run)" if dry_run == "server" else "labelled"
        click.echo(f"{verb} {len(applied)} node(s)")
        for o in applied:
            if o.replaced:
                click.echo(f"  {o.node}: replaced " + ", ".join(f"{k}={v}" for k, v in o.replaced.items()))
        for o in failed:
            click.echo(f"  not labelled {o.node}: {o.error}", err=True)
        for r in left_out:
            click.echo(f"  not labelled {r.node}: {zones.why_not(r)}", err=True)
        if applied and dry_run != "server":
            click.echo(f"note: {zones.KUBELET_NOTE}", err=True)
    else:
        click.echo(dump({
            "schemaVersion": 1,
            "source": source.description,
            "dryRun": dry_run == "server",
            "applied": [o.__dict__ for o in applied],
            "failed": [o.__dict__ for o in failed] + [{"node": r.node, "action": r.action, "error": zones.why_not(r)} for r in left_out],
        }, output))
    if _interrupted.is_set():
        sys.exit(130)
    if failed or left_out:
        sys.exit(EXIT_FINDINGS)


_interrupted = threading.Event()


def _apply_with_progress(client, rows, source, include_region, overwrite, concurrency, server_dry_run, timeout,
                         show_progress):
    writer = zones.NodeWriter(client, dry_run=server_dry_run, timeout=timeout)
    todo = sum(1 for r in rows if r.action in zones.CHANGING_ACTIONS)
    _interrupted.clear()
    previous = signal.signal(signal.SIGINT, lambda *_: _interrupted.set())
    try:
        # A bar for people at a terminal; scripts (not a TTY, or -o json/yaml) get only the result.
        with click.progressbar(length=todo, label="labelling", file=sys.stderr, show_pos=True,
                               hidden=not show_progress) as bar:
            return zones.apply(writer, rows, source, include_region=include_region, overwrite=overwrite,
                               concurrency=concurrency, on_done=lambda _: bar.update(1), stop=_interrupted)
    finally:
        signal.signal(signal.SIGINT, previous)


COMMANDS = [label_zones]
