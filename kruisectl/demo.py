"""The README's main job: ``make demo`` / ``make demo-down``.

Brings up the embedded local control plane (zoned and bare-metal kwok nodes), then runs
kruisectl against it, showing what an operator sees. The cluster stays up for exploring until
``make demo-down``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from .localcluster import build

DEMO_DIR = build.CACHE_DIR / "demo"


def _run(title: str, argv: list[str], env: dict[str, str]) -> int:
    click.secho(f"\n$ {' '.join(argv)}", bold=True)
    if title:
        click.echo(f"# {title}")
    return subprocess.run(argv, env=env).returncode


@click.group()
def main() -> None:
    """Demo of kruisectl on the local control plane."""


@main.command()
@click.option("--nodes", type=click.IntRange(1, 1000), default=6, show_default=True)
@click.option("--bare-metal", type=click.IntRange(0, 100), default=2, show_default=True)
def up(nodes: int, bare_metal: int) -> None:
    """Start the local control plane and show kruisectl against it."""
    python = sys.executable
    started = subprocess.run(
        [python, "-m", "kruisectl.localcluster", "up", "--dir", str(DEMO_DIR), "--nodes", str(nodes),
         "--bare-metal", str(bare_metal)],
    )
    if started.returncode != 0:
        sys.exit(started.returncode)
    kubeconfig = DEMO_DIR / "admin.kubeconfig"
    # kruisectl as a user runs it: the console script beside this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PATH=path)
    kubectl = str(build.cached_binaries()["kubectl"])
    _run("the nodes: three zones, and bare-metal nodes without a zone label",
         [kubectl, "get", "nodes", "-L", "topology.kubernetes.io/zone"], env)
    _run("", ["kruisectl", "version"], env)
    _run("", ["kruisectl", "--help"], env)
    _run("bare-metal nodes lack the zone label: label-zones plans a value for them (nothing is written)",
         ["kruisectl", "label-zones", "--zone", "zone-c", "node-6", "node-7"], env)
    _run("no kruise-manager is installed in this cluster yet, so status reports that (exit 1)",
         ["kruisectl", "status"], env)
    _run("and doctor grades what it finds", ["kruisectl", "doctor"], env)
    click.echo(f"\nThe cluster stays up: export KUBECONFIG={kubeconfig}; stop it with `make demo-down`.")


@main.command()
def down() -> None:
    """Stop the demo's control plane."""
    sys.exit(subprocess.run([sys.executable, "-m", "kruisectl.localcluster", "down", "--dir", str(DEMO_DIR)]).returncode)


if __name__ == "__main__":
    main()
