"""The manager's options, each declared once: a dataclass field with its default, its
environment variable and its help. The command line is derived from them, so ``--help``
always shows what a flag means and its default, and code reads typed attributes.

Flag names and defaults are upstream OpenKruise's where upstream has the flag; booleans take
Go's ``--flag`` / ``--flag=true`` / ``--flag=false``; durations take Go's ``15s`` / ``1h30m`` /
``500ms`` or plain seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from kubekit import durations, kruise


def duration(text: str) -> float:
    """A Go-style duration flag (``kubekit.durations``), refused as argparse refuses a bad value."""
    try:
        return durations.parse(text)
    except durations.DurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


format_duration = durations.format


def boolean(text: str) -> bool:
    """Go's flag syntax for booleans: ``--flag``, ``--flag=true``, ``--flag=false``."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "t", "yes"):
        return True
    if lowered in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if text in ("0",) or (sep and port.isdigit() and int(port) < 65536):
        return text
    raise argparse.ArgumentTypeError(f"invalid address {text!r} (examples: :8080, 127.0.0.1:8000, 0 to disable)")


FEATURE_GATES = {"SidecarSetPatchPodMetadataDefaultsAllowed": ("Alpha", False)}  # the upstream gates this manager reads


def feature_gates(text: str) -> str:
    """Upstream's ``--feature-gates`` (``Name=true,Other=false``, ``AllAlpha``/``AllBeta``
    included); gates of upstream's this manager has no use for are accepted and ignored,
    so upstream's flag line carries over. Returns the text once it parses."""
    gate_values(text)
    return text


def gate_values(text: str) -> dict[str, bool]:
    """Every gate of FEATURE_GATES, on or off, after ``text`` (AllAlpha/AllBeta first, as upstream)."""
    given = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"invalid feature gate {item!r} (expected Name=true or Name=false)")
        given[name.strip()] = boolean(value)
    gates = {}
    for name, (stage, default) in FEATURE_GATES.items():
        gates[name] = given.get(name, given.get(f"All{stage}", default))
    return gates


def option(default: Any, help: str, *, env: str | None = None, parse: Callable[[str], Any] | None = None,
           choices: tuple[str, ...] | None = None, short: str | None = None, metavar: str | None = None) -> Any:
    """A dataclass field that is also a flag (``--field-name``)."""
    return field(default=default, metadata={"help": help, "env": env, "parse": parse, "choices": choices,
                                            "short": short, "metavar": metavar})


@dataclass
class Options:
    kubeconfig: str | None = option(None, "kubeconfig file (else $KUBECONFIG, else the in-cluster ServiceAccount)",
                                    metavar="PATH")
    role: str = option("all", "serve the webhook, run the controller, or both", choices=("all", "webhook", "controller"))
    enable_leader_election: bool = option(
        True, "elect one controller on a Lease (=false: this replica always leads; for a single replica)",
        parse=boolean)
    leader_election_namespace: str = option(kruise.NAMESPACE, "namespace of the election Lease (and of the "
                                            "webhook Secret and Service)", env="POD_NAMESPACE")
    leader_election_id: str = option(kruise.LEASE, "name of the election Lease")
    leader_election_lease_duration: float = option(
        15.0, "how long standbys wait, on their own clock, after the leader's last renewal before taking over",
        parse=duration)
    leader_election_renew_deadline: float = option(
        10.0, "how long the leader keeps trying to renew before it stops leading and exits", parse=duration)
    leader_election_retry_period: float = option(2.0, "interval between election attempts and renewals",
                                                 parse=duration)
    metrics_addr: str = option(":8080", "address of Prometheus /metrics; 0 disables", parse=address)
    health_probe_addr: str = option(":8000", "address of /readyz and /healthz", parse=address)
    webhook_bind_address: str = option("0.0.0.0", "address the webhook server listens on",
                                       env="WEBHOOK_BIND_ADDRESS", metavar="IP")
    webhook_port: int = option(kruise.WEBHOOK_PORT, "port of the webhook server (the Service's targetPort)",
                               env="WEBHOOK_PORT", parse=int)
    webhook_cert_dir: str = option("/tmp/kruise-webhook-certs", "where the serving certificate is written and "
                                   "read from", env="WEBHOOK_CERT_DIR", metavar="DIR")
    webhook_cert_mode: str = option("self-signed", "self-signed: the manager keeps the Secret and the caBundles; "
                                    "external: another party (e.g. cert-manager) fills them, the manager only "
                                    "reads and reports", env="WEBHOOK_CERT_MODE", choices=("self-signed", "external"))
    webhook_ca_validity: float = option(10 * 365 * 24 * 3600.0, "lifetime of a CA the manager creates",
                                        parse=duration)
    webhook_cert_validity: float = option(365 * 24 * 3600.0, "lifetime of a serving certificate", parse=duration)
    webhook_cert_renew_before: float = option(
        30 * 24 * 3600.0, "re-issue a certificate (or rotate the CA) this long before it expires", parse=duration)
    webhook_max_connections: int = option(256, "concurrent webhook connections; more wait in the backlog",
                                          parse=int)
    webhook_max_body_bytes: int = option(8 << 20, "larger admission requests get 413", parse=int)
    webhook_io_timeout: float = option(10.0, "a webhook client that stalls this long inside a request is cut off",
                                       parse=duration)
    webhook_idle_timeout: float = option(
        120.0, "an idle keep-alive connection is closed after this long; longer than the apiserver's own "
        "idle timeout (90s), so the client, not the server, closes it", parse=duration)
    webhook_max_requests_per_connection: int = option(
        1000, "close a connection (Connection: close) after this many answers, so the apiserver, which picks an "
        "endpoint when it connects, spreads its calls over every replica; 0 never. Each reconnection costs both "
        "sides a TLS handshake (at 20, a twentieth of all admissions paid one)", parse=int)
    webhook_max_connection_age: float = option(
        0.5, "close a connection after its first answer past this age, so at low rates too the apiserver "
        "re-dials often enough to spread its calls (at 20/s, the least-used of 3 replicas: 0.27-0.29 of them at "
        "0.5s, 0.25-0.27 at 1s, 0.15 at 10s); costs one TLS handshake per connection and age; 0 never",
        parse=duration)
    webhook_drain_delay: float = option(
        5.0, "after SIGTERM, keep serving new connections this long while the endpoint's removal reaches the "
        "apiserver; every answer closes its connection meanwhile", parse=duration)
    secret_name: str = option(kruise.SECRET, "Secret holding the webhook's CA and serving certificate",
                              env="SECRET_NAME")
    service_name: str = option(kruise.SERVICE, "Service in front of the webhook (the certificate names it)",
                               env="SERVICE_NAME")
    mutating_webhook_configuration: str = option(kruise.MUTATING_CONFIGURATION, "MutatingWebhookConfiguration whose "
                                                 "caBundle the manager keeps")
    validating_webhook_configuration: str = option(kruise.VALIDATING_CONFIGURATION, "ValidatingWebhookConfiguration "
                                                   "whose caBundle the manager keeps")
    supervise: bool = option(
        True, "run the manager as a worker process under a small supervisor that holds the listening sockets "
        "and restarts a crashed or hung worker at once; the new worker takes the Lease from its dead "
        "predecessor without waiting it out (=false: one process, as upstream)", parse=boolean)
    worker_restart_limit: int = option(
        3, "restarts of the worker within --worker-restart-window; the crash after that exits the container, so "
        "the kubelet's back-off and restartCount take over", parse=int)
    worker_restart_window: float = option(300.0, "the window --worker-restart-limit counts restarts in",
                                          parse=duration)
    worker_heartbeat_timeout: float = option(
        5.0, "a worker whose liveness checks have not passed for this long is killed and restarted; keep it "
        "under the liveness probe's (failureThreshold-1) x periodSeconds, so the kubelet never restarts the "
        "whole container for a hung worker; 0 never", parse=duration)
    worker_succession_delay: float = option(
        0.5, "a restarted worker takes the Lease from its dead predecessor no sooner than this after the death "
        "(after its container started, when the predecessor ran in an earlier container of the same pod): a "
        "write the predecessor sent just before it died has finished at the apiserver by then",
        parse=duration)
    socket_holder: str = option(
        "/tmp/kruise-socket-holder/holder.sock", "unix socket of the pod's socket holder (kruise-manager "
        "socket-holder, a second container sharing an emptyDir with this one): the supervisor keeps a copy of its "
        "listening sockets there, so while this whole container restarts (SIGKILL, an OOM kill) connections wait "
        "in the backlog instead of being refused; no holder there (or empty): the supervisor holds them alone and "
        "tries again (after 1 s, backing off to 8 s). Only with --supervise", metavar="PATH")
    feature_gates: str = option(
        "", "upstream's feature gates, Name=true,Other=false; this manager reads "
        "SidecarSetPatchPodMetadataDefaultsAllowed (patchPodMetadata allowed without a whitelist in the "
        "kruise-configuration ConfigMap; AllAlpha sets it too) and ignores the others", parse=feature_gates,
        metavar="GATES")
    webhook_peer_probe: bool = option(
        True, "probe the peers' webhook servers; the leader takes a peer that neither it nor another replica "
        "reaches out of the Service through the readiness gate kruise.io/webhook-reachable (on pods that "
        "declare it), without waiting for the node controller", parse=boolean)
    webhook_peer_selector: str = option(kruise.MANAGER_SELECTOR, "label selector of the replicas that "
                                        "probe each other (in the manager's namespace)", metavar="SELECTOR")
    webhook_peer_probe_interval: float = option(1.0, "interval between two probes of each peer", parse=duration)
    webhook_peer_probe_timeout: float = option(1.0, "a peer that has not answered /healthz within this is a failed "
                                               "probe", parse=duration)
    webhook_peer_failure_threshold: int = option(
        2, "failed probes in a row after which a peer is unreachable: a lost replica leaves the Service within "
        "about (threshold + 1) x interval + timeout", parse=int)
    webhook_peer_success_threshold: int = option(2, "successful probes in a row after which an unreachable peer "
                                                 "is let back in", parse=int)
    log_format: str = option("json", "json lines for collectors, text for people", env="LOG_FORMAT",
                             choices=("json", "text"))
    verbose: bool = option(False, "debug logging", short="-v")


def _default_help(value: Any, parse: Callable | None) -> str:
    if value is None:
        return ""
    if parse is duration:
        return f" (default {format_duration(value)})"
    if isinstance(value, bool):
        return f" (default {str(value).lower()})"
    return f" (default {value})"


_METAVARS = {duration: "DURATION", int: "N", address: "ADDR"}


def parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line of :class:`Options`; environment variables named by a field set its
    default (a bad value there is reported like a bad flag)."""
    environ = os.environ if environ is None else environ
    p = argparse.ArgumentParser(prog="kruise-manager",
                                description="kruise-manager: the webhook (every replica) and the leader-elected "
                                            "controller.")
    for f in dataclasses.fields(Options):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        default, parse = f.default, meta["parse"]
        env_value = environ.get(meta["env"]) if meta["env"] else None
        if env_value:
            try:
                default = parse(env_value) if parse else env_value
            except (argparse.ArgumentTypeError, ValueError):
                p.error(f"invalid ${meta['env']}: {env_value!r}")
        help_text = meta["help"] + (f" [${meta['env']}]" if meta["env"] else "") + _default_help(default, parse)
        names = [meta["short"], flag] if meta["short"] else [flag]
        if f.type in ("bool", bool) and parse is None:
            p.add_argument(*names, dest=f.name, action="store_true", default=default, help=help_text)
        elif parse is boolean:
            p.add_argument(*names, dest=f.name, type=boolean, nargs="?", const=True, default=default,
                           metavar="BOOL", help=help_text)
        else:
            p.add_argument(*names, dest=f.name, type=parse, default=default, choices=meta["choices"],
                           metavar=meta["metavar"] or _METAVARS.get(parse, None if meta["choices"] else "NAME"),
                           help=help_text)
    return p


def election_timings_problem(lease: float, renew: float, retry: float) -> str | None:
    """Why these election timings cannot work (client-go's rule), or None."""
    if lease > renew > retry > 0:
        return None
    return f"leader election needs lease duration > renew deadline > retry period > 0 (got {lease}s / {renew}s / {retry}s)"


def validate(options: Options) -> None:
    """What the parser cannot check alone, as one ValueError naming the flags."""
    problem = election_timings_problem(options.leader_election_lease_duration, options.leader_election_renew_deadline,
                                       options.leader_election_retry_period)
    if problem:
        raise ValueError(problem)
    if options.worker_restart_limit < 0:
        raise ValueError(f"--worker-restart-limit must be 0 or more (got {options.worker_restart_limit})")
    if options.webhook_peer_probe_interval <= 0:
        raise ValueError("--webhook-peer-probe-interval must be more than 0")
    if options.webhook_peer_probe_timeout <= 0:
        raise ValueError("--webhook-peer-probe-timeout must be more than 0")
    for flag in ("failure", "success"):
        if getattr(options, f"webhook_peer_{flag}_threshold") < 1:
            raise ValueError(f"--webhook-peer-{flag}-threshold must be 1 or more")


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Options:
    return Options(**vars(parser(environ).parse_args(argv)))


def markdown_table() -> str:
    """Every flag as a Markdown table (flag, environment variable, default, help): the manager's
    flag reference in docs/ is this text, so it cannot drift from the parser."""
    rows = ["| flag | env | default | |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Options):
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        names = f"`{meta['short']}`, `{flag}`" if meta["short"] else f"`{flag}`"
        default = _default_help(f.default, meta["parse"]).strip()[len("(default "):-1] if f.default is not None else ""
        choices = f" ({' / '.join(meta['choices'])})" if meta["choices"] else ""
        env = f"`{meta['env']}`" if meta["env"] else ""
        text = meta["help"].replace("|", "\\|") + choices
        rows.append(f"| {names} | {env} | {f'`{default}`' if default else ''} | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m manager.options --markdown")
    sys.stdout.write("# kruise-manager flags\n\nGenerated by `python -m manager.options --markdown` from "
                     "`manager/options.py`; `tests/test_docs.py` fails when they differ. Durations take Go's "
                     "`15s` / `1h30m` / `500ms`; booleans `--flag`, `--flag=true`, `--flag=false`.\n\n"
                     + markdown_table())
