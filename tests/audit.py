"""The apiserver's own record of the requests it answered (its audit log), for tests whose counts
must not come from the code under test: the flags that turn a policy on, and the completed
events read back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml


def apiserver_args(rules: list[dict], log: Path) -> tuple[str, ...]:
    """kube-apiserver flags logging what ``rules`` select (anything else: nothing) to ``log``,
    each event written before the request's response is finished (blocking mode)."""
    policy = log.with_suffix(".policy.yaml")
    policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                      "omitStages": ["RequestReceived"], "omitManagedFields": True,
                                      "rules": [*rules, {"level": "None"}]}))
    return (f"--audit-policy-file={policy}", f"--audit-log-path={log}", "--audit-log-mode=blocking")


def size(log: Path) -> int:
    """Where the log ends now: read from here for what happens next."""
    return log.stat().st_size if log.exists() else 0


def completed(log: Path, offset: int = 0) -> list[dict]:
    """Every ResponseComplete event written after ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as file:
        file.seek(offset)
        data = file.read()
    lines = data[:data.rfind(b"\n") + 1].decode().splitlines()  # a line still being written: later
    events = [json.loads(line) for line in lines if line.strip()]
    return [e for e in events if e.get("stage") == "ResponseComplete"]


def settled(log: Path, offset: int, select, quiet_s: float = 1.0, timeout_s: float = 15.0) -> list[dict]:
    """The selected events once no new one has come for ``quiet_s`` (the last responses may
    reach the client a moment before their event is on disk)."""
    deadline = time.monotonic() + timeout_s
    found = [e for e in completed(log, offset) if select(e)]
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again = [e for e in completed(log, offset) if select(e)]
        if len(again) == len(found):
            return again
        found = again
    return found
