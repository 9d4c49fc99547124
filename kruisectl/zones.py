"""Zone labels for nodes that lack them: where a value comes from, the plan, and applying it.

Bare-metal nodes often have no ``topology.kubernetes.io/zone``, and then the manager's zone
spread silently does nothing. A *source* proposes a zone (and region) for a node; ``plan``
turns nodes + source into one row per node; ``apply`` writes the rows that change something,
each patch guarded by the node's resourceVersion so a node edited meanwhile is re-read and
re-planned, never clobbered.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import yaml

from kubekit import formats, kruise, paths


# What happens to a node under the plan.
LABEL = "label"  # gets a value it lacked
OVERWRITE = "overwrite"  # a different value is replaced (only with --overwrite)
UNCHANGED = "unchanged"  # already has the proposed value (a re-run is a no-op)
CONFLICT = "conflict"  # has a different value and --overwrite was not given
UNPLACED = "unplaced"  # the source has no value for it: listed, never guessed
INVALID = "invalid"  # the source's value is not a valid label value: listed, never written
CHANGING_ACTIONS = (LABEL, OVERWRITE)


def label_value_error(value: str) -> str | None:
    """Why ``value`` cannot be a label value (None when it can), in the apiserver's terms."""
    if len(value) > 63:
        return f"{value[:20]!r}…: longer than 63 characters"
    if not formats.LABEL_VALUE.match(value):
        return (f"{value!r}: a label value has alphanumerics, '-', '_' or '.', and starts and ends with an "
                "alphanumeric")
    return None

KUBELET_NOTE = (
    "A kubelet started with --node-labels that include topology.kubernetes.io/zone (or region) "
    "sets its own value again when the node re-registers. Make them agree: put the same value in "
    "the kubelet's --node-labels (e.g. --node-labels=topology.kubernetes.io/zone=<zone>), or drop "
    "the key from that flag."
)


class SourceError(ValueError):
    """The source cannot be used as given (bad regex, unreadable map...)."""


class Source(Protocol):
    description: str

    def place(self, node: dict) -> tuple[str | None, str | None]:
        """(zone, region) for ``node``; None where the source has no value."""


def _labels(node: dict) -> dict[str, str]:
    return node.get("metadata", {}).get("labels") or {}


def _name(node: dict) -> str:
    return node["metadata"]["name"]


@dataclass
class FromLabel:
    """Copy the zone (and optionally region) from other labels, e.g. a rack label."""

    key: str
    region_key: str | None = None

    @property
    def description(self) -> str:
        return f"label {self.key}" + (f", region from {self.region_key}" if self.region_key else "")

    def place(self, node: dict) -> tuple[str | None, str | None]:
        labels = _labels(node)
        return labels.get(self.key) or None, (labels.get(self.region_key) or None) if self.region_key else None


@dataclass
class HostnamePattern:
    """A regex over the node's hostname (label kubernetes.io/hostname, else its name) with a
    named group ``zone`` and, optionally, ``region``."""

    pattern: str
    regex: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.regex = re.compile(self.pattern)
        except re.error as err:
            raise SourceError(f"--hostname-pattern is not a valid regular expression: {err}") from None
        if "zone" not in self.regex.groupindex:
            raise SourceError("--hostname-pattern needs a named group (?P<zone>...)")

    @property
    def description(self) -> str:
        return f"hostname pattern {self.pattern}"

    def place(self, node: dict) -> tuple[str | None, str | None]:
        hostname = _labels(node).get("kubernetes.io/hostname") or _name(node)
        match = self.regex.search(hostname)
        if not match:
            return None, None
        groups = match.groupdict()
        return groups.get("zone") or None, groups.get("region") or None


@dataclass
class ExplicitZone:
    """One zone (and region) for the nodes named on the command line."""

    zone: str
    nodes: tuple[str, ...]
    region: str | None = None

    @property
    def description(self) -> str:
        return f"--zone {self.zone}"

    def place(self, node: dict) -> tuple[str | None, str | None]:
        if _name(node) in self.nodes:
            return self.zone, self.region
        return None, None


@dataclass
class MapEntry:
    matcher: str
    zone: str
    region: str | None
    regex: re.Pattern | None


@dataclass
class NodeMap:
    """A file mapping node names (exact, or a regex when written /like this/ or when it is
    not a plain name) to a zone and region. YAML: ``{node-or-regex: zone}`` or
    ``{node-or-regex: {zone: z, region: r}}`` or a list of ``{node|match, zone, region}``.
    CSV: columns ``node,zone[,region]`` with an optional header. Exact names win over regexes;
    among regexes the first in the file wins."""

    path: str
    entries: list[MapEntry] = field(default_factory=list, repr=False)

    @property
    def description(self) -> str:
        return f"map {Path(self.path).name}"

    @classmethod
    def load(cls, path: str) -> "NodeMap":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise SourceError(f"cannot read map {path}: {err.strerror or err}") from None
        except UnicodeDecodeError as err:
            raise SourceError(f"map {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
        rows = _csv_rows(text) if path.lower().endswith(".csv") else _yaml_rows(text, path)
        entries = []
        for matcher, zone, region in rows:
            if not matcher or not zone:
                raise SourceError(f"map {path}: every entry needs a node (or regex) and a zone")
            entries.append(MapEntry(matcher, str(zone), str(region) if region else None, _as_regex(matcher, path)))
        if not entries:
            raise SourceError(f"map {path} has no entries")
        return cls(path=path, entries=entries)

    def place(self, node: dict) -> tuple[str | None, str | None]:
        name = _name(node)
        for entry in self.entries:
            if entry.matcher == name:
                return entry.zone, entry.region
        for entry in self.entries:
            if entry.regex is not None and entry.regex.fullmatch(name):
                return entry.zone, entry.region
        return None, None


_PLAIN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _as_regex(matcher: str, path: str) -> re.Pattern | None:
    if matcher.startswith("/") and matcher.endswith("/") and len(matcher) > 1:
        matcher = matcher[1:-1]
    elif _PLAIN_NAME.match(matcher):
        return None
    try:
        return re.compile(matcher)
    except re.error as err:
        raise SourceError(f"map {path}: {matcher!r} is not a valid regular expression: {err}") from None


def _csv_rows(text: str) -> list[tuple[str, str, str | None]]:
    rows = []
    for row in csv.reader(io.StringIO(text)):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if [c.lower() for c in cells[:2]] == ["node", "zone"]:
            continue
        rows.append((cells[0], cells[1] if len(cells) > 1 else "", cells[2] if len(cells) > 2 and cells[2] else None))
    return rows


def _yaml_rows(text: str, path: str) -> list[tuple[str, str, str | None]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SourceError(f"map {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    rows = []
    if isinstance(data, dict):
        for matcher, value in data.items():
            if isinstance(value, dict):
                rows.append((str(matcher), value.get("zone"), value.get("region")))
            else:
                rows.append((str(matcher), value, None))
    elif isinstance(data, list):
        for item in data:
            if not isinstance(item, dict):
                raise SourceError(f"map {path}: list entries must be mappings with node/match, zone, region")
            rows.append((str(item.get("node") or item.get("match") or ""), item.get("zone"), item.get("region")))
    else:
        raise SourceError(f"map {path}: expected a mapping or a list")
    return rows


@dataclass
class Row:
    """The plan for one node."""

    node: str
    current_zone: str | None
    current_region: str | None
    zone: str | None
    region: str | None
    action: str
    source: str
    replaced: dict[str, str] = field(default_factory=dict)  # label -> old value, for overwrites
    resource_version: str = ""
    note: str = ""  # why a node is not labelled as proposed (conflict, invalid value)

    def labels_to_set(self) -> dict[str, str]:
        wanted = {}
        if self.zone and self.zone != self.current_zone:
            wanted[kruise.ZONE_LABEL] = self.zone
        if self.region and self.region != self.current_region:
            wanted[kruise.REGION_LABEL] = self.region
        return wanted

    def to_dict(self) -> dict:
        return {"node": self.node, "currentZone": self.current_zone, "currentRegion": self.current_region,
                "zone": self.zone, "region": self.region, "action": self.action, "source": self.source,
                "replaced": self.replaced, "note": self.note}


def needs_label(node: dict, include_region: bool) -> bool:
    labels = _labels(node)
    return not labels.get(kruise.ZONE_LABEL) or (include_region and not labels.get(kruise.REGION_LABEL))


def plan_node(node: dict, source: Source, *, include_region: bool, overwrite: bool) -> Row:
    labels = _labels(node)
    current_zone, current_region = labels.get(kruise.ZONE_LABEL), labels.get(kruise.REGION_LABEL)
    zone, region = source.place(node)
    if not include_region:
        region = None
    row = Row(_name(node), current_zone, current_region, zone, region, UNPLACED, source.description,
              resource_version=node.get("metadata", {}).get("resourceVersion", ""))
    if zone is None and region is None:
        return row
    invalid = [f"{kind} {error}" for kind, value in (("zone", zone), ("region", region))
               if value is not None and (error := label_value_error(value))]
    if invalid:
        row.action, row.note = INVALID, "; ".join(invalid)
        return row
    differing = {
        key: old for key, old, new in ((kruise.ZONE_LABEL, current_zone, zone), (kruise.REGION_LABEL, current_region, region))
        if new and old and old != new
    }
    if differing and not overwrite:
        row.action = CONFLICT
        row.note = "has " + ", ".join(f"{key.split('/')[-1]} {old}" for key, old in differing.items()) + \
            ": --overwrite to replace"
    elif not row.labels_to_set():
        row.action = UNCHANGED
    else:
        row.action = OVERWRITE if differing else LABEL
        row.replaced = differing
    return row


def plan(nodes: Iterable[dict], source: Source, *, include_region: bool = False, overwrite: bool = False) -> list[Row]:
    """One row per node that lacks the zone (or, with ``include_region``, the region), plus
    labelled nodes whose value the source would change (a conflict, or with ``overwrite`` an
    overwrite); sorted by name. Nodes already as the source says are left out, so a re-run
    after applying plans nothing."""
    rows = []
    for node in nodes:
        row = plan_node(node, source, include_region=include_region, overwrite=overwrite)
        if needs_label(node, include_region) or row.action in (CONFLICT, OVERWRITE):
            rows.append(row)
    return sorted(rows, key=lambda r: r.node)


def summary(rows: list[Row]) -> dict[str, int]:
    counts = {action: 0 for action in (LABEL, OVERWRITE, UNCHANGED, CONFLICT, UNPLACED, INVALID)}
    for row in rows:
        counts[row.action] += 1
    return counts


# ---- applying ----------------------------------------------------------------------------

@dataclass
class Outcome:
    node: str
    applied: bool
    action: str
    error: str = ""
    replaced: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


MAX_CONFLICT_RETRIES = 5


class NodeWriter:
    """Patches nodes' labels through the API with a resourceVersion precondition."""

    def __init__(self, client, *, dry_run: bool = False, timeout: float = 30):
        self.client = client
        self.dry_run = dry_run
        self.timeout = timeout

    def read(self, name: str) -> dict:
        return self.client.get(paths.nodes(name), self.timeout)

    def patch(self, name: str, labels: dict[str, str], resource_version: str) -> None:
        # A JSON merge patch is cheaper for the apiserver than a strategic merge patch, and the
        # resourceVersion in it is a precondition all the same (409 when the node moved on).
        body = {"metadata": {"labels": labels, "resourceVersion": resource_version}}
        query = {"dryRun": "All"} if self.dry_run else {}
        self.client.request("PATCH", paths.nodes(name), body=body, timeout=self.timeout,
                            content_type="application/merge-patch+json", **query)


def apply_row(writer: NodeWriter, row: Row, source: Source, *, include_region: bool, overwrite: bool) -> Outcome:
    """Write one row; on 409 re-read the node and plan it again (someone changed it)."""
    from kubekit.api import ApiError

    current = row
    for _ in range(MAX_CONFLICT_RETRIES):
        if current.action not in CHANGING_ACTIONS:
            reason = "" if current.action == UNCHANGED else why_not(current)
            if current is not row and reason:  # the plan was fine; the node changed under us
                reason = f"changed meanwhile: {reason}"
            return Outcome(current.node, False, current.action, error=reason)
        labels = current.labels_to_set()
        try:
            writer.patch(current.node, labels, current.resource_version)
            return Outcome(current.node, True, current.action, replaced=current.replaced, labels=labels)
        except ApiError as err:
            if err.status == 409:
                current = plan_node(writer.read(current.node), source, include_region=include_region, overwrite=overwrite)
                continue
            if err.status == 404:
                return Outcome(current.node, False, current.action, error="node no longer exists")
            return Outcome(current.node, False, current.action, error=_api_reason(err))
        except Exception as err:  # noqa: BLE001 - reported per node at the end
            return Outcome(current.node, False, current.action, error=str(err).splitlines()[0])
    return Outcome(current.node, False, current.action, error=f"still changing after {MAX_CONFLICT_RETRIES} re-reads")


def why_not(row: Row) -> str:
    if row.action in (CONFLICT, INVALID):
        return row.note
    return "the source has no value for it"


def _api_reason(err) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (ValueError, TypeError, AttributeError):
        return f"{err.status} {err.reason}"


def apply(writer: NodeWriter, rows: list[Row], source: Source, *, include_region: bool, overwrite: bool,
          concurrency: int = 16, on_done: Callable[[Outcome], None] | None = None,
          stop: threading.Event | None = None) -> list[Outcome]:
    """Apply the changing rows with at most ``concurrency`` requests in flight. ``stop`` ends
    the run early (already written nodes stay written; a re-run picks up the rest)."""
    todo = [row for row in rows if row.action in CHANGING_ACTIONS]
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = []
        for row in todo:
            if stop is not None and stop.is_set():
                break
            futures.append(pool.submit(_guarded, writer, row, source, include_region, overwrite, stop))
        for future in as_completed(futures):
            outcome = future.result()
            if outcome is None:
                continue
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    return sorted(outcomes, key=lambda o: o.node)


def _guarded(writer, row, source, include_region, overwrite, stop):
    if stop is not None and stop.is_set():
        return None
    return apply_row(writer, row, source, include_region=include_region, overwrite=overwrite)


def list_nodes(client, selector: str | None = None, timeout: float = 60) -> list[dict]:
    """All nodes as plain dicts, paged (fast for thousands: no model objects)."""
    nodes, token = [], None
    while True:
        query = {"limit": 500}
        if selector:
            query["labelSelector"] = selector
        if token:
            query["continue"] = token
        page = client.get(paths.nodes(), timeout, **query)
        nodes.extend(page.get("items", []))
        token = page.get("metadata", {}).get("continue")
        if not token:
            return nodes
