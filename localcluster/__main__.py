"""Shell use of the local control plane (the Makefile's cluster-up / cluster-down).

    python -m localcluster build            # build or find cached binaries
    python -m localcluster build --upstream # and the upstream kruise-manager the tests run
    python -m localcluster up [--nodes 6]   # start in the background, print KUBECONFIG
    python -m localcluster down             # stop it, leave nothing behind

``up`` starts a small supervisor process (``serve``) that owns the components; they die with
it, and ``down`` stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from . import build
from .cluster import ClusterError, ClusterOptions, LocalCluster
from .network import available as network_unavailable_reason
from .processes import alive

DEFAULT_DIR = build.CACHE_DIR / "cluster"


def start_default_cluster(workdir: Path | None, nodes: int, bare_metal: int, zones: tuple[str, ...], log=sys.stderr) -> LocalCluster:
    """The embedded default: every component, hosts when root can make them, zoned and
    bare-metal kwok nodes."""
    options = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=network_unavailable_reason() is None)
    cluster = LocalCluster.start(options, workdir=workdir, log=log)
    try:
        cluster.create_nodes(nodes, zones=zones, bare_metal=bare_metal, with_hosts=options.network)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@click.group()
def main() -> None:
    """Local Kubernetes control plane for kruisectl's tests, demo and benchmarks."""


@main.command("build")
@click.option("--upstream", is_flag=True, help="also the upstream kruise-manager (the tests run it)")
def build_command(upstream: bool) -> None:
    """Build (or find cached) etcd, kube-*, kubectl, kwok and helm."""
    code = build.main()
    if code == 0 and upstream:
        from . import upstream as upstream_manager

        code = upstream_manager.main()
    sys.exit(code)


@main.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True)
@click.option("--nodes", type=click.IntRange(0, 10000), default=6, show_default=True, help="kwok nodes with a zone label")
@click.option("--bare-metal", type=click.IntRange(0, 1000), default=2, show_default=True, help="kwok nodes without one")
@click.option("--zones", default="zone-a,zone-b,zone-c", show_default=True)
@click.option("--timeout", type=float, default=1800, show_default=True, help="seconds to wait, build included")
def up(workdir: Path, nodes: int, bare_metal: int, zones: str, timeout: float) -> None:
    """Start the cluster in the background and print its kubeconfig path."""
    workdir = workdir.resolve()
    pid_file = workdir / "serve.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
        click.echo(f"already running; KUBECONFIG={workdir / 'admin.kubeconfig'}")
        return
    build.ensure_binaries()  # build in the foreground, with its progress
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "failed"):
        (workdir / stale).unlink(missing_ok=True)
    log = open(workdir / "serve.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "localcluster", "serve", "--dir", str(workdir), "--nodes", str(nodes),
         "--bare-metal", str(bare_metal), "--zones", zones],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (workdir / "ready").exists():
            kubeconfig = workdir / "admin.kubeconfig"
            click.echo(f"cluster is up ({nodes} zoned + {bare_metal} bare-metal kwok nodes)")
            click.echo(f"export KUBECONFIG={kubeconfig}")
            return
        if process.poll() is not None or (workdir / "failed").exists():
            reason = (workdir / "failed").read_text() if (workdir / "failed").exists() else f"exit {process.returncode}"
            raise click.ClickException(f"cluster did not start: {reason} (log: {workdir / 'serve.log'})")
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    raise click.ClickException(f"cluster not ready after {timeout:.0f}s (log: {workdir / 'serve.log'})")


@main.command(hidden=True)
@click.option("--dir", "workdir", type=click.Path(path_type=Path), required=True)
@click.option("--nodes", type=int, default=6)
@click.option("--bare-metal", type=int, default=2)
@click.option("--zones", default="zone-a,zone-b,zone-c")
def serve(workdir: Path, nodes: int, bare_metal: int, zones: str) -> None:
    """Own the components until SIGTERM (used by ``up``)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        cluster = start_default_cluster(workdir, nodes, bare_metal, tuple(z for z in zones.split(",") if z))
    except (ClusterError, build.BuildError, Exception) as err:  # noqa: BLE001 - reported to `up`
        (workdir / "failed").write_text(str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise
    (workdir / "ready").write_text(json.dumps({"kubeconfig": str(cluster.kubeconfig)}))
    try:
        cluster.run_until(stop)
    finally:
        cluster.stop()
        (workdir / "ready").unlink(missing_ok=True)


@main.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True)
def down(workdir: Path) -> None:
    """Stop the cluster started by ``up``."""
    pid_file = workdir / "serve.pid"
    if not pid_file.exists():
        click.echo("no cluster is running")
        return
    pid = int(pid_file.read_text())
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    click.echo("cluster stopped")




if __name__ == "__main__":
    main()
