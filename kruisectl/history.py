"""What happened to the manager lately (``doctor --since``): its containers' restarts, changes
of leader, and the webhook errors its replicas counted. The other checks say what is; these
say what was, from what the cluster still remembers:

- restarts: each container's restartCount and lastState.terminated (only the last one has a
  time), and replicas created within the window (a replaced pod starts at 0 restarts);
- leader changes: the Lease's leaseTransitions and acquireTime, and the "became leader" Events
  recorded on the Lease (kept an hour by default: older changes show only as a count);
- webhook errors: each replica's own counters, read through the pod proxy. Counters start
  with the process: a replica that started before the window counts from its start, and the
  view says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from .findings import Finding
from .inventory import Inventory
from .status import pod_ready

FLAPPING_CHANGES = 3  # leader changes in the window that make a warning


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Happening:
    at: str  # RFC 3339, UTC
    what: str  # restart | replica-created | leader | webhook-errors
    subject: str
    detail: str


@dataclass
class History:
    since: str
    now: str
    window_s: float
    happenings: list[Happening] = field(default_factory=list)
    restarts: list[dict] = field(default_factory=list)  # every container with restarts, in the window or not
    leader: dict = field(default_factory=dict)
    webhook: dict[str, dict] = field(default_factory=dict)  # pod -> counts, or its read error
    errors: dict[str, str] = field(default_factory=dict)  # read -> reason

    def to_dict(self) -> dict:
        return asdict(self)


# ---- restarts ----------------------------------------------------------------------------

def restarts(pods: list[dict], since: dt.datetime) -> tuple[list[dict], list[Happening]]:
    containers, happenings = [], []
    for pod in pods:
        name = pod["metadata"]["name"]
        created = _time(pod["metadata"].get("creationTimestamp"))
        if created and created >= since:
            happenings.append(Happening(_stamp(created), "replica-created", name,
                                        f"on {pod['spec'].get('nodeName') or '(not scheduled)'}"))
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            count = int(status.get("restartCount") or 0)
            last = (status.get("lastState") or {}).get("terminated") or {}
            waiting = ((status.get("state") or {}).get("waiting") or {}).get("reason")
            if not count and not last:
                continue
            finished = _time(last.get("finishedAt"))
            entry = {"pod": name, "container": status.get("name"), "restartCount": count,
                     "lastFinishedAt": last.get("finishedAt"), "reason": last.get("reason"),
                     "exitCode": last.get("exitCode"), "waiting": waiting,
                     "inWindow": bool(finished and finished >= since)}
            containers.append(entry)
            if entry["inWindow"]:
                why = f"{last.get('reason') or 'terminated'}, exit {last.get('exitCode')}"
                more = f"; {count} restart(s) in all" if count > 1 else ""
                now = f"; now {waiting}" if waiting else ""
                happenings.append(Happening(last["finishedAt"], "restart", f"{name}/{status.get('name')}",
                                            f"{why}{more}{now}"))
    return containers, happenings


def restarts_finding(history: History) -> Finding:
    recent = [c for c in history.restarts if c["inWindow"]]
    looping = [c for c in history.restarts if c["waiting"] == "CrashLoopBackOff"]
    evidence = {"containers": history.restarts, "since": history.since}
    if recent or looping:
        names = ", ".join(dict.fromkeys(f"{c['pod']} ({c['reason'] or c['waiting']}, exit {c['exitCode']})"
                                        for c in recent + looping))
        return Finding("recent-restarts", "warning", f"{len(recent)} container(s) restarted since {history.since}: {names}",
                       "kubectl -n {ns} logs <pod> -c <container> --previous; OOMKilled: raise "
                       "manager.resources.limits.memory", evidence)
    before = sum(c["restartCount"] for c in history.restarts)
    tail = f" ({before} restart(s) before it)" if before else ""
    return Finding("recent-restarts", "ok", f"no restart since {history.since}{tail}", evidence=evidence)


# ---- leader changes ----------------------------------------------------------------------

def leader_changes(lease: dict | None, events: list[dict] | None, since: dt.datetime) -> tuple[dict, list[Happening]]:
    spec = (lease or {}).get("spec") or {}
    acquired = _time(spec.get("acquireTime"))
    info = {"holder": spec.get("holderIdentity"), "leaseTransitions": spec.get("leaseTransitions"),
            "acquireTime": spec.get("acquireTime"), "renewTime": spec.get("renewTime"), "changes": []}
    changes: list[tuple[dt.datetime, str]] = []
    for event in events or []:
        if event.get("reason") != "LeaderElection":
            continue
        moment = _time(event.get("eventTime") or event.get("lastTimestamp") or event.get("firstTimestamp")
                       or event["metadata"].get("creationTimestamp"))
        if moment and moment >= since:
            changes.append((moment, event.get("message") or ""))
    if acquired and acquired >= since and not any(abs((m - acquired).total_seconds()) < 5 for m, _ in changes):
        changes.append((acquired, f"{spec.get('holderIdentity')} acquired the Lease"))
    changes.sort()
    info["changes"] = [{"at": _stamp(m), "message": text} for m, text in changes]
    return info, [Happening(_stamp(m), "leader", (lease or {}).get("metadata", {}).get("name", "lease"), text)
                  for m, text in changes]


def leader_finding(history: History) -> Finding:
    leader = history.leader
    changes = leader.get("changes") or []
    evidence = dict(leader)
    transitions = leader.get("leaseTransitions")
    total = f"; {transitions} transition(s) in the Lease's life" if transitions is not None else ""
    if "events" in history.errors:
        evidence["eventsError"] = history.errors["events"]
    if leader.get("holder") is None and not changes:
        return Finding("recent-leader-changes", "info", "no Lease holder to follow" + total, evidence=evidence)
    if len(changes) >= FLAPPING_CHANGES:
        return Finding("recent-leader-changes", "warning",
                       f"the leader changed {len(changes)} times since {history.since}: it is flapping{total}",
                       "look for restarts, renew failures (kruise_manager_lease_renew_failures_total) and apiserver "
                       "latency; kruisectl status shows the current holder", evidence)
    if changes:
        when = ", ".join(c["at"] for c in changes)
        return Finding("recent-leader-changes", "info", f"the leader changed {len(changes)} time(s) since "
                       f"{history.since} (at {when}); now {leader.get('holder')}{total}", evidence=evidence)
    return Finding("recent-leader-changes", "ok", f"{leader.get('holder')} has led since {leader.get('acquireTime')}{total}",
                   evidence=evidence)


# ---- webhook errors ----------------------------------------------------------------------

def webhook_counts(scrape) -> dict:
    """Requests and errors one replica answered: this manager's counter (results error and
    bad_request are errors) or controller-runtime's (upstream; non-2xx HTTP codes)."""
    ours = scrape.select("kruise_manager_webhook_requests_total")
    if ours:
        return {"requests": sum(v for _, v in ours),
                "errors": sum(v for labels, v in ours if labels.get("result") in ("error", "bad_request")),
                "byPath": _by(ours, "path", lambda l: l.get("result") in ("error", "bad_request"))}
    upstream = scrape.select("controller_runtime_webhook_requests_total")
    return {"requests": sum(v for _, v in upstream),
            "errors": sum(v for labels, v in upstream if not str(labels.get("code", "")).startswith("2")),
            "byPath": _by(upstream, "webhook", lambda l: not str(l.get("code", "")).startswith("2"))}


def _by(samples, key: str, is_error) -> dict:
    out: dict[str, float] = {}
    for labels, value in samples:
        if is_error(labels) and value:
            out[labels.get(key, "")] = out.get(labels.get(key, ""), 0) + value
    return out


def _started(pod: dict) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        started = ((status.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            return started
    return None


def webhook_errors(client, namespace: str, pods: list[dict], timeout: float, since: dt.datetime) -> dict[str, dict]:
    from . import scrape

    running = [p for p in pods if _started(p) and (p.get("status") or {}).get("podIP")]
    scrapes = scrape.replicas(client, namespace, running, timeout)
    out = {}
    for pod in running:
        name = pod["metadata"]["name"]
        started = _started(pod)
        result = scrapes[name]
        entry = {"countingSince": started, "startedBeforeWindow": bool(_time(started) < since), "ready": pod_ready(pod)}
        if result.error:
            entry["error"] = result.error
        else:
            entry.update(webhook_counts(result))
        out[name] = entry
    return out


def webhook_finding(history: History) -> Finding:
    counts = history.webhook
    read = {pod: c for pod, c in counts.items() if "error" not in c}
    evidence = {"replicas": counts, "since": history.since}
    if not counts:
        return Finding("recent-webhook-errors", "info", "no running replica to read", evidence=evidence)
    if not read:
        first = next(iter(counts.values()))["error"]
        return Finding("recent-webhook-errors", "info", f"unknown: no replica's metrics could be read ({first})",
                       "grant get pods/proxy in the manager's namespace", evidence)
    failing = {pod: c for pod, c in read.items() if c["errors"]}
    unread = sorted(set(counts) - set(read))
    note = f"; not read: {', '.join(unread)}" if unread else ""
    early = [pod for pod, c in read.items() if c["startedBeforeWindow"]]
    span = (f" (counted since each replica started; {len(early)} started before {history.since})" if early else "")
    if failing:
        parts = ", ".join(f"{pod}: {c['errors']:g} of {c['requests']:g}" for pod, c in sorted(failing.items()))
        return Finding("recent-webhook-errors", "warning", f"webhook errors answered by replicas{span}: {parts}{note}",
                       "kubectl -n {ns} logs <pod> -c manager (errors name the request); kruisectl webhook check",
                       evidence)
    total = sum(c["requests"] for c in read.values())
    return Finding("recent-webhook-errors", "ok", f"no webhook error in {total:g} answers of {len(read)} replica(s)"
                   f"{span}{note}", evidence=evidence)


# ---- the view ----------------------------------------------------------------------------

def collect(client, inventory: Inventory, window_s: float, timeout: float, now: dt.datetime | None = None) -> History:
    """The reads the view needs beyond doctor's inventory: the Lease's Events and every
    running replica's metrics."""
    from kubekit import paths

    from .errors import describe_api_error

    now = now or dt.datetime.now(dt.timezone.utc)
    since = now - dt.timedelta(seconds=window_s)
    names = inventory.names
    history = History(since=_stamp(since), now=_stamp(now), window_s=window_s)
    history.restarts, happened = restarts(inventory.pods, since)
    events = None
    try:
        events = client.get(paths.events(names.namespace), timeout,
                            fieldSelector=f"involvedObject.kind=Lease,involvedObject.name={names.lease}")["items"]
    except Exception as err:  # noqa: BLE001 - the Lease alone still tells the last change
        history.errors["events"] = describe_api_error(err)
    history.leader, changes = leader_changes(inventory.lease, events, since)
    history.webhook = webhook_errors(client, names.namespace, inventory.pods, timeout, since)
    errors = [Happening(history.now, "webhook-errors", pod, f"{c['errors']:g} error(s) of {c['requests']:g} answers "
                        f"since {c['countingSince']}")
              for pod, c in history.webhook.items() if c.get("errors")]
    history.happenings = sorted(happened + changes + errors, key=lambda h: h.at)
    return history


def findings(history: History, namespace: str) -> list[Finding]:
    out = [restarts_finding(history), leader_finding(history), webhook_finding(history)]
    for finding in out:
        finding.remediation = finding.remediation.replace("{ns}", namespace)
    return out


def timeline(history: History) -> str:
    from .output import table

    if not history.happenings:
        return f"nothing happened since {history.since}"
    return table([[h.at, h.what, h.subject, h.detail] for h in history.happenings], ["at", "what", "who", "detail"])
