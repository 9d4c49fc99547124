"""Shell use of the local control plane (the Makefile's cluster-up / cluster-down).

    python -m localcluster build            # build or find cached binaries
    python -m localcluster build --upstream # and the upstream kruise-manager the tests run
    python -m localcluster up [--nodes 6]   # start in the background, print KUBECONFIG
    python -m localcluster down             # stop it, leave nothing behind

``up`` starts a small supervisor process (``serve``) that owns the components; they die with
it, and ``down`` stops it. The command line is argparse's: the harness needs no click (that is
kruisectl's own command line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (usage stays behind ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"Error: {message} (see '{self.prog} --help')\n")


def int_range(low: int, high: int):
    """An argparse type: an integer in [low, high], as click's IntRange was."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in the range {low}<=x<={high}")
        return value

    return parse


def command_parser(prog: str, description: str) -> tuple[ArgumentParser, argparse._SubParsersAction]:
    """A parser of ``prog COMMAND [OPTIONS]``; subcommands added without ``help`` stay hidden."""
    parser = ArgumentParser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    return parser, commands


def add_command(commands, name: str, function, hidden: bool = False) -> ArgumentParser:
    """A subcommand that runs ``function`` with its options; its docstring is its help."""
    doc = (function.__doc__ or "").strip()
    extra = {} if hidden else {"help": doc.splitlines()[0] if doc else None}
    sub = commands.add_parser(name, description=doc, **extra)
    sub.set_defaults(function=function)
    return sub


def run(parser: ArgumentParser, argv: list[str] | None) -> None:
    """Parse ``argv`` and run its command; no command: the help on stderr, exit 2 (as before)."""
    args = vars(parser.parse_args(argv))
    function = args.pop("function", None)
    args.pop("command", None)
    if function is None:
        parser.print_help(sys.stderr)
        sys.exit(2)
    function(**args)


def fail(message: str) -> NoReturn:
    """A one-line error on stderr and exit 1, no traceback."""
    raise SystemExit(f"Error: {message}")


def build_command(upstream: bool) -> None:
    """Build (or find cached) etcd, kube-*, kubectl, kwok and helm."""
    code = build.main()
    if code == 0 and upstream:
        from . import upstream as upstream_manager

        code = upstream_manager.main()
    sys.exit(code)


def up(workdir: Path, nodes: int, bare_metal: int, zones: str, timeout: float) -> None:
    """Start the cluster in the background and print its kubeconfig path."""
    workdir = workdir.resolve()
    pid_file = workdir / "serve.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
        print(f"already running; KUBECONFIG={workdir / 'admin.kubeconfig'}")
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
            print(f"cluster is up ({nodes} zoned + {bare_metal} bare-metal kwok nodes)")
            print(f"export KUBECONFIG={kubeconfig}")
            return
        if process.poll() is not None or (workdir / "failed").exists():
            reason = (workdir / "failed").read_text() if (workdir / "failed").exists() else f"exit {process.returncode}"
            fail(f"cluster did not start: {reason} (log: {workdir / 'serve.log'})")
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    fail(f"cluster not ready after {timeout:.0f}s (log: {workdir / 'serve.log'})")


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


def down(workdir: Path) -> None:
    """Stop the cluster started by ``up``."""
    pid_file = workdir / "serve.pid"
    if not pid_file.exists():
        print("no cluster is running")
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
    print("cluster stopped")



def parser() -> ArgumentParser:
    """The command line: ``build``, ``up``, ``down`` and the hidden ``serve``."""
    main_parser, commands = command_parser(
        "python -m localcluster", "Local Kubernetes control plane for kruisectl's tests, demo and benchmarks.")
    sub = add_command(commands, "build", build_command)
    sub.add_argument("--upstream", action="store_true", help="also the upstream kruise-manager (the tests run it)")
    sub = add_command(commands, "up", up)
    sub.add_argument("--dir", dest="workdir", type=Path, default=DEFAULT_DIR, metavar="PATH", help="[default: %(default)s]")
    sub.add_argument("--nodes", type=int_range(0, 10000), default=6, metavar="INTEGER",
                     help="kwok nodes with a zone label [default: %(default)s; 0<=x<=10000]")
    sub.add_argument("--bare-metal", type=int_range(0, 1000), default=2, metavar="INTEGER",
                     help="kwok nodes without one [default: %(default)s; 0<=x<=1000]")
    sub.add_argument("--zones", default="zone-a,zone-b,zone-c", metavar="TEXT", help="[default: %(default)s]")
    sub.add_argument("--timeout", type=float, default=1800, metavar="FLOAT",
                     help="seconds to wait, build included [default: %(default)s]")
    sub = add_command(commands, "serve", serve, hidden=True)
    sub.add_argument("--dir", dest="workdir", type=Path, required=True, metavar="PATH")
    sub.add_argument("--nodes", type=int, default=6, metavar="INTEGER")
    sub.add_argument("--bare-metal", type=int, default=2, metavar="INTEGER")
    sub.add_argument("--zones", default="zone-a,zone-b,zone-c", metavar="TEXT")
    sub = add_command(commands, "down", down)
    sub.add_argument("--dir", dest="workdir", type=Path, default=DEFAULT_DIR, metavar="PATH", help="[default: %(default)s]")
    return main_parser


def main(argv: list[str] | None = None) -> None:
    run(parser(), argv)


if __name__ == "__main__":
    main()
