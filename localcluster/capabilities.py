"""What this machine must offer for each test tier, why it is missing, and how to get it.

A test that needs something the machine lacks must not pass by skipping: a full run (``make
test``, CI) fails, naming what is missing and the fix. Leaving tiers out is something a user
asks for by name in ``KRUISECTL_PARTIAL`` (``netns,oci``… or ``all``); such a run skips them
and ends with a count of what it skipped and why. ``python -m localcluster.capabilities`` is
``make test``'s preflight: it checks in a second, before the long Go builds.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

from . import browser, cgroups, image, network

PARTIAL_VARIABLE = "KRUISECTL_PARTIAL"
OCI_RUNTIMES = ("crun", "runc")  # localcluster.hostlet.oci.RUNTIMES (a test keeps them equal), without its imports
OCI_TOOLS = ("skopeo", "umoci")  # unpack the image for the runtime
IMAGE_TOOLS = (*image.TOOLS, "buildah")  # make image's, and the Dockerfile test's


def _root_and_tools(doing: str, tools: Iterable[str], any_of: Iterable[str] = ()) -> str | None:
    if os.geteuid() != 0:
        return f"{doing} needs root"
    missing = [tool for tool in tools if not shutil.which(tool)]
    alternatives = list(any_of)
    if alternatives and not any(shutil.which(tool) for tool in alternatives):
        missing.append(" or ".join(alternatives))
    return f"not installed: {', '.join(missing)}" if missing else None


def _oci() -> str | None:
    return _root_and_tools("running containers", OCI_TOOLS, OCI_RUNTIMES)


def _image() -> str | None:
    return _root_and_tools("building the image", IMAGE_TOOLS)


@dataclass(frozen=True)
class Capability:
    name: str  # as written in KRUISECTL_PARTIAL
    what: str
    needed_by: str
    fix: str
    detect: Callable[[], str | None]  # None when present, else why not


CAPABILITIES = {c.name: c for c in (
    Capability("netns", "network namespaces", "every test whose managers or webhooks run in hosts (drills, "
               "manager replicas, upstream, hostlet, chart)",
               "run as root (sudo make test), with iproute2's 'ip' on PATH", network.available),
    Capability("memory", "memory cgroup", "the OOM tests (limits.memory enforced by the kernel)",
               "run as root where the cgroup memory controller is usable (cgroup v2 with 'memory' in "
               "/sys/fs/cgroup/cgroup.controllers, or cgroup v1's memory hierarchy)", cgroups.available),
    Capability("oci", "OCI runtime", "the manager image run in containers on hostlet nodes",
               "run as root; make image-tools installs crun, runc, skopeo and umoci (apt-get)", _oci),
    Capability("image", "image tools", "the image tier (make image, the Dockerfile built with buildah)",
               "run as root; make image-tools installs mmdebstrap, umoci, skopeo and buildah (apt-get)", _image),
    Capability("browser", "browser engine", "the drill report's check in a real browser (headless Chromium)",
               f"make browser installs {browser.PACKAGE} (apt-get; as root)", browser.available),
)}


def parse_partial(value: str | None) -> frozenset[str]:
    """The capabilities a user allows a run to go without; ValueError names an unknown one."""
    names = {part.strip() for part in (value or "").split(",") if part.strip()}
    if "all" in names:
        return frozenset(CAPABILITIES)
    unknown = sorted(names - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"{PARTIAL_VARIABLE}: unknown {', '.join(unknown)} "
                         f"(one or more of {', '.join(CAPABILITIES)}, or all)")
    return frozenset(names)


def label(name: str, reason: str) -> str:
    """Short: what is missing and why, the key a partial run's skips are counted by."""
    return f"no {CAPABILITIES[name].what}: {reason}"


def message(name: str, reason: str) -> str:
    """What a test that needs ``name`` says when it cannot run."""
    capability = CAPABILITIES[name]
    return (f"{label(name, reason)}; needed by {capability.needed_by}. To get it: {capability.fix}. "
            f"To leave it out, ask for a partial run: {PARTIAL_VARIABLE}={name}")


def missing(names: Iterable[str] = CAPABILITIES) -> dict[str, str]:
    """Each named capability this machine lacks, with why."""
    reasons = {name: CAPABILITIES[name].detect() for name in names}
    return {name: reason for name, reason in reasons.items() if reason}


def preflight_report(absent: dict[str, str], allowed: frozenset[str]) -> tuple[bool, list[str]]:
    """(ok, lines): not ok when something is missing that the user did not allow to be."""
    blocking = {name: reason for name, reason in absent.items() if name not in allowed}
    lines = []
    if blocking:
        lines.append("make test cannot run every tier here; missing:")
        for name, reason in blocking.items():
            lines.append(f"  {name}: {label(name, reason)} -> {CAPABILITIES[name].fix}")
        lines.append(f"Get it, or ask for a partial run that skips what needs it and counts the skips: "
                     f"{PARTIAL_VARIABLE}={','.join(blocking)} make test (or {PARTIAL_VARIABLE}=all); "
                     f"make test-unit runs the unit tier alone.")
    left_out = {name: reason for name, reason in absent.items() if name in allowed}
    if left_out:
        lines.append(f"partial run ({PARTIAL_VARIABLE}): skipping what needs "
                     + "; ".join(label(name, reason) for name, reason in left_out.items()))
    return not blocking, lines


def skip_summary(skipped: Counter, unexpected: Counter) -> str:
    """How many tests a run skipped, and why (counts by reason, most first)."""
    total = sum(skipped.values()) + sum(unexpected.values())
    parts = [f"{reason} ({count})" for reason, count in skipped.most_common()]
    parts += [f"NOT ALLOWED: {reason} ({count})" for reason, count in unexpected.most_common()]
    return f"{total} skipped" + (": " + ", ".join(parts) if parts else "")


class Ledger:
    """One test run's verdicts on missing capabilities and its skips, for its last line: a skip
    that no ``require`` allowed is unexpected (the run fails)."""

    def __init__(self, allowed: frozenset[str] = frozenset(), partial: bool = False):
        self.allowed, self.partial = allowed, partial
        self.skip_labels: dict[str, str] = {}  # message -> reason, for the skips allowed
        self.fail_labels: dict[str, tuple[str, str]] = {}  # message -> (capability, reason)
        self.skipped, self.unexpected, self.missing = Counter(), Counter(), Counter()

    def decide(self, name: str, reason: str) -> tuple[bool, str]:
        """(skip?, the test's message) for a test that needs ``name``, missing for ``reason``."""
        text = message(name, reason)
        if name in self.allowed:
            self.skip_labels[text] = label(name, reason)
            return True, text
        self.fail_labels[text] = (name, label(name, reason))
        return False, text

    def decisions(self) -> dict:
        """What ``decide`` learnt, for a process that counts the skips of tests run by another
        (pytest-xdist's workers decide, the controller counts and writes the last line)."""
        return {"skip": dict(self.skip_labels), "fail": {text: list(pair) for text, pair in self.fail_labels.items()}}

    def adopt(self, decisions: dict) -> None:
        """Learn another process's ``decisions()``."""
        self.skip_labels.update(decisions.get("skip", {}))
        self.fail_labels.update({text: tuple(pair) for text, pair in decisions.get("fail", {}).items()})

    def skipped_test(self, text: str) -> None:
        if text in self.skip_labels:
            self.skipped[self.skip_labels[text]] += 1
        else:
            self.unexpected[text] += 1

    def failed_test(self, shown: str) -> None:
        for text, (_, reason) in self.fail_labels.items():
            if text in shown:
                self.missing[reason] += 1
                return

    def last_line(self) -> str | None:
        """What could not run and how to get it; how many were skipped and why. None when
        the run was full and nothing was missing or skipped."""
        parts = []
        if self.missing:
            names = ",".join(dict.fromkeys(name for name, _ in self.fail_labels.values()))
            parts.append(f"{sum(self.missing.values())} could not run: "
                         + ", ".join(f"{reason} ({count})" for reason, count in self.missing.most_common())
                         + f" -- get it (see above), or ask for a partial run: {PARTIAL_VARIABLE}={names}")
        if self.skipped or self.unexpected or self.partial:
            parts.append(skip_summary(self.skipped, self.unexpected))
        if self.unexpected:
            parts.append(f"a skip that no capability in {PARTIAL_VARIABLE} allows fails the run")
        return "; ".join(parts) or None


def main(argv: list[str] | None = None) -> int:
    """``make test``'s preflight: exit 1 naming what is missing (and the fix) unless allowed."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(f"usage: python -m localcluster.capabilities (no arguments; {PARTIAL_VARIABLE} allows a "
              "partial run)", file=sys.stderr)
        return 2
    try:
        allowed = parse_partial(os.environ.get(PARTIAL_VARIABLE))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ok, lines = preflight_report(missing(), allowed)
    for line in lines:
        print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
