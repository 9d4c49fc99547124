"""The README's main job: ``make demo`` / ``make demo-down``.

Brings up the embedded local control plane: kwok nodes in three zones, bare-metal kwok nodes
without a zone label, and six *hostlet* nodes (two per zone, room for a surge-first rollout)
whose pods run for real: as containers of the manager image (``make image``) under crun or
runc when this machine can run containers, else as local processes (the demo says which).
Installs the chart with the real helm; its manager replicas land on the hostlet nodes, so the
Lease holder is a real pod on a node in a zone and the apiserver calls their webhook. Then a sample SidecarSet injects its sidecar into a new pod, and kruisectl shows
what an operator sees. Everything stays up for exploring until ``make demo-down``.
Its command line is argparse's (see ``localcluster/__main__.py``); headings are bold and notes
coloured only when stdout is a terminal.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from . import build
from .__main__ import ArgumentParser, add_command, command_parser, fail, int_range, run
from .network import available as network_unavailable_reason
from .processes import alive

DEMO_DIR = build.CACHE_DIR / "demo"
ZONES = ("zone-a", "zone-b", "zone-c")
HOSTLET_NODES = tuple(f"kruise-{i}" for i in range(6))
# Only pods that tolerate this land on the hostlet nodes: the manager's (other images have no
# local program there and would never start).
HOSTLET_TAINT = {"key": "hostlet.kruisectl.io/processes", "value": "true", "effect": "NoSchedule"}
MANAGER_VALUES = {"manager": {
    "nodeSelector": {"type": "hostlet"},
    "tolerations": [{"key": HOSTLET_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}}
SAMPLE = [
    {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "log-shipper"},
     "spec": {"selector": {"matchLabels": {"app": "shop"}},
              "containers": [{"name": "log-shipper", "image": "registry.example/log-shipper:1",
                              "podInjectPolicy": "AfterAppContainer"}]}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
]
SAMPLE_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop", "namespace": "demo", "labels": {"app": "shop"}},
              "spec": {"containers": [{"name": "shop", "image": "registry.example/shop:1"}]}}


_ANSI = {"bold": "1", "red": "31", "green": "32", "yellow": "33"}


def _say(text: str, bold: bool = False, fg: str | None = None) -> None:
    """A line of the demo; bold or coloured (ANSI) only when stdout is a terminal."""
    codes = [_ANSI[k] for k in (("bold",) if bold else ()) + ((fg,) if fg else ())]
    if codes and sys.stdout.isatty():
        text = f"\033[{';'.join(codes)}m{text}\033[0m"
    print(text, flush=True)


def _run(title: str, argv: list[str], env: dict[str, str], stdin: str | None = None) -> int:
    _say(f"\n$ {shlex.join(argv)}", bold=True)  # paste-able: quoted as a shell needs
    if title:
        _say(f"# {title}")
    return subprocess.run(argv, env=env, input=stdin, text=True).returncode


def up(nodes: int, bare_metal: int, timeout: float) -> None:
    """Start the local control plane, install the manager and show kruisectl against it."""
    build.ensure_binaries()  # build in the foreground, with its progress
    real = network_unavailable_reason() is None
    failed = 0
    archive = _manager_image() if real else None
    mode = _start_supervisor(nodes, bare_metal, timeout, archive)
    kubeconfig = DEMO_DIR / "admin.kubeconfig"
    binaries = build.cached_binaries()
    # kruisectl as a user runs it: the console script beside this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PATH=path, KRUISECTL_HELM=str(binaries["helm"]))
    kubectl = str(binaries["kubectl"])
    _run("kwok nodes in three zones, bare-metal nodes without a zone label, and hostlet nodes whose pods "
         "are real processes", [kubectl, "get", "nodes", "-L", "topology.kubernetes.io/zone", "-L", "type"], env)
    if not real:
        _say(f"\nnetwork namespaces are unavailable here ({network_unavailable_reason()}): the manager cannot "
                    "run as real processes, so it is not installed.", fg="yellow")
    else:
        if mode.get("runtime"):
            _say(f"\nThe manager replicas run as containers of {mode['image']} under {mode['runtime']} "
                        "(the OCI runtime: user 65532, read-only root, memory limit in their cgroup).", fg="green")
        else:
            _say(f"\nThe manager replicas run as plain processes: {mode.get('reason')}.", fg="yellow")
        values = DEMO_DIR / "demo-values.yaml"
        values.write_text(yaml.safe_dump(MANAGER_VALUES, sort_keys=False))
        failed = _run("install the chart with the real helm; the replicas run on the hostlet nodes, one per zone",
                      ["kruisectl", "install", "--wait", "--timeout", "180", "-f", str(values)], env)
        if failed:
            _say(f"install failed (exit {failed}); manager logs: {DEMO_DIR / 'hostlet' / 'pods'}", fg="red")
        _run("", [kubectl, "get", "pods", "-n", "kruise-system", "-o", "wide"], env)
        _run("the Lease names the leading pod", [kubectl, "get", "lease", "kruise-manager", "-n", "kruise-system"], env)
        _run("a sample SidecarSet", [kubectl, "apply", "-f", "-"], env,
             stdin=yaml.safe_dump_all(SAMPLE, sort_keys=False))
        _create_sample_pod(kubectl, env)
        _run("the pod got its sidecar from the manager's webhook",
             [kubectl, "get", "pod", "shop", "-n", "demo", "-o", "jsonpath={range .spec.containers[*]}{.name}{'\\n'}{end}"],
             env)
    _run("", ["kruisectl", "version"], env)
    _run("bare-metal nodes lack the zone label: label-zones plans a value for them (nothing is written)",
         ["kruisectl", "label-zones", "--zone", "zone-c", "node-6", "node-7"], env)
    _run("leader, replicas, zones and the webhook", ["kruisectl", "status"], env)
    _run("and doctor grades what it finds", ["kruisectl", "doctor"], env)
    _say(f"\nThe cluster stays up: export KUBECONFIG={kubeconfig}")
    _say(f"The built kubectl and helm: export PATH={Path(kubectl).parent}:{Path(binaries['helm']).parent}:$PATH")
    if real:
        _say(f"Manager logs: {DEMO_DIR / 'hostlet' / 'pods'}/kruise-system_*/manager/<restart>.log")
    _say("Stop it with `make demo-down`.")
    if failed:
        sys.exit(1)


def _create_sample_pod(kubectl: str, env: dict[str, str], timeout: float = 60) -> None:
    """The webhook's SidecarSet cache fills moments after the SidecarSet is created: retry the
    (dry-run) create until the sidecar shows, then create the pod for real."""
    manifest = json.dumps(SAMPLE_POD)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([kubectl, "create", "--dry-run=server", "-o", "json", "-f", "-"], env=env,
                                input=manifest, capture_output=True, text=True)
        if result.returncode == 0 and "log-shipper" in result.stdout:
            break
        time.sleep(1)
    _run("a pod that the SidecarSet selects", [kubectl, "create", "-f", "-"], env, stdin=manifest)


def _manager_image() -> Path | None:
    """The manager image's OCI archive (``make image``, cached), or None with the reason
    printed: then the replicas run as plain processes."""
    from . import image

    try:
        return image.build().oci_archive
    except image.ImageError as err:
        _say(f"the manager image cannot be built here ({str(err).splitlines()[0]}): "
                    "the replicas will run as plain processes", fg="yellow")
        return None


def _start_supervisor(nodes: int, bare_metal: int, timeout: float, archive: Path | None) -> dict:
    """Start ``serve`` in the background (pid in serve.pid, as ``localcluster down``
    expects) and wait until it says ready; returns what it says (how the manager runs)."""
    pid_file = DEMO_DIR / "serve.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
        _say("the demo cluster is already running")
        ready = DEMO_DIR / "ready"
        return json.loads(ready.read_text()) if ready.exists() else {}
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "failed"):
        (DEMO_DIR / stale).unlink(missing_ok=True)
    with open(DEMO_DIR / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localcluster.demo", "serve", "--nodes", str(nodes), "--bare-metal", str(bare_metal),
             *(["--image", str(archive)] if archive else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not (DEMO_DIR / "ready").exists():
        failed = DEMO_DIR / "failed"
        if process.poll() is not None or failed.exists():
            reason = failed.read_text() if failed.exists() else f"exit {process.returncode}"
            fail(f"the demo cluster did not start: {reason} (log: {DEMO_DIR / 'serve.log'})")
        if time.monotonic() > deadline:
            os.kill(process.pid, signal.SIGTERM)
            fail(f"the demo cluster was not ready after {timeout:.0f}s (log: {DEMO_DIR / 'serve.log'})")
        time.sleep(0.2)
    _say(f"demo cluster is up: {nodes} zoned + {bare_metal} bare-metal kwok nodes, "
               f"{len(HOSTLET_NODES)} hostlet nodes")
    return json.loads((DEMO_DIR / "ready").read_text())


def serve(nodes: int, bare_metal: int, images: tuple[Path, ...]) -> None:
    """Own the control plane and the hostlet until SIGTERM (started by ``up``)."""
    from .__main__ import start_default_cluster
    from .hostlet import Hostlet, create_hostlet_nodes

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = hostlet = None
    try:
        try:
            cluster = start_default_cluster(DEMO_DIR, nodes, bare_metal, ZONES)
            if cluster.net is not None:
                shutil.rmtree(DEMO_DIR / "hostlet", ignore_errors=True)  # a previous run's pods
                create_hostlet_nodes(cluster, list(HOSTLET_NODES), zones=ZONES, taints=[HOSTLET_TAINT])
                hostlet = Hostlet(cluster, list(HOSTLET_NODES), images=list(images)).start()
        except Exception as err:  # reported to `up`
            (DEMO_DIR / "failed").write_text(str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise
        mode = {"runtime": hostlet.oci.name if hostlet and hostlet.oci else None,
                "reason": hostlet.oci_unavailable if hostlet else None,
                "image": ", ".join(hostlet.oci.images.archives) if hostlet and hostlet.oci else None}
        (DEMO_DIR / "ready").write_text(json.dumps({"kubeconfig": str(cluster.kubeconfig), **mode}))
        cluster.run_until(stop)
    finally:
        if hostlet is not None:
            hostlet.stop()
        if cluster is not None:
            cluster.stop()
        (DEMO_DIR / "ready").unlink(missing_ok=True)


def down() -> None:
    """Stop the demo: the manager processes, then the control plane."""
    sys.exit(subprocess.run([sys.executable, "-m", "localcluster", "down", "--dir", str(DEMO_DIR)]).returncode)



def parser() -> ArgumentParser:
    """The command line: ``up``, ``down`` and the hidden ``serve``."""
    main_parser, commands = command_parser("python -m localcluster.demo", "Demo of kruisectl on the local control plane.")
    sub = add_command(commands, "up", up)
    sub.add_argument("--nodes", type=int_range(1, 1000), default=6, metavar="INTEGER", help="[default: %(default)s; 1<=x<=1000]")
    sub.add_argument("--bare-metal", type=int_range(0, 100), default=2, metavar="INTEGER",
                     help="[default: %(default)s; 0<=x<=100]")
    sub.add_argument("--timeout", type=float, default=1800, metavar="FLOAT",
                     help="seconds to wait for the cluster, build included [default: %(default)s]")
    sub = add_command(commands, "serve", serve, hidden=True)
    sub.add_argument("--nodes", type=int, default=6, metavar="INTEGER")
    sub.add_argument("--bare-metal", type=int, default=2, metavar="INTEGER")
    sub.add_argument("--image", dest="images", action="append", type=Path, default=[], metavar="PATH",
                     help="OCI archives present locally")
    add_command(commands, "down", down)
    return main_parser


def main(argv: list[str] | None = None) -> None:
    run(parser(), argv)


if __name__ == "__main__":
    main()
