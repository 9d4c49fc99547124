"""Capacity planning for rollouts: how many surge pods could the scheduler place right now?

Pure functions over plain objects fetched from the cluster (API JSON with camelCase keys, or
the python client's ``to_dict()`` with snake_case keys). The placement is a greedy simulation of
the scheduler's filters that matter for kruise-manager: node allocatable minus the requests of
bound pods, unschedulable nodes, untolerated NoSchedule/NoExecute taints, nodeSelector and
required node affinity, host ports (host-network pods bind their container ports on the node),
and topology spread constraints with ``whenUnsatisfiable: DoNotSchedule``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubekit import quantity as kubekit_quantity
from kubekit.labels import requirement_matches, selector_matches

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
_PERCENT = re.compile(r"^(\d+)%$")


@dataclass
class SurgeFit:
    wanted: int  # surge pods the strategy would create
    fits: int  # how many of them can be placed now
    recommended_max_surge: int  # largest maxSurge (absolute) that fits, at most ``wanted``
    reasons: list[str] = field(default_factory=list)  # why the rest cannot be placed

    @property
    def ok(self) -> bool:
        return self.fits >= self.wanted


# --- strategy arithmetic ---------------------------------------------------------------------

def parse_int_or_percent(value: Any, name: str) -> tuple[int, bool]:
    """``(number, is_percent)`` for an IntOrString value as the API accepts it."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a number or a percentage")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}: {value} must be greater than or equal to 0")
        return value, False
    text = str(value).strip()
    if text.isdigit():
        return int(text), False
    match = _PERCENT.match(text)
    if not match:
        raise ValueError(f"{name}: {value!r} must be an integer or a percentage such as 25%")
    return int(match.group(1)), True


def scaled(value: Any, total: int, *, round_up: bool, name: str) -> int:
    number, percent = parse_int_or_percent(value, name)
    if not percent:
        return number
    exact = Decimal(number) * Decimal(total) / Decimal(100)
    return int(math.ceil(exact)) if round_up else int(math.floor(exact))


def validate_strategy(max_surge: Any, max_unavailable: Any) -> None:
    """The apiserver's rules for a RollingUpdate deployment strategy."""
    surge, _ = parse_int_or_percent(max_surge, "maxSurge")
    unavailable, unavailable_percent = parse_int_or_percent(max_unavailable, "maxUnavailable")
    if unavailable_percent and unavailable > 100:
        raise ValueError(f"maxUnavailable: {max_unavailable} must not be greater than 100%")
    if surge == 0 and unavailable == 0:
        raise ValueError("maxSurge and maxUnavailable may not both be 0: the rollout could never make progress")


def effective_numbers(replicas: int, max_surge: Any = None, max_unavailable: Any = None) -> tuple[int, int]:
    """Pods above / below ``replicas`` a rolling update may use, as the deployment controller
    computes them: percentages of maxSurge round up, of maxUnavailable round down."""
    max_surge = DEFAULT_MAX_SURGE if max_surge is None else max_surge
    max_unavailable = DEFAULT_MAX_UNAVAILABLE if max_unavailable is None else max_unavailable
    if replicas < 0:
        raise ValueError(f"replicas: {replicas} must be greater than or equal to 0")
    validate_strategy(max_surge, max_unavailable)
    surge = scaled(max_surge, replicas, round_up=True, name="maxSurge")
    unavailable = scaled(max_unavailable, replicas, round_up=False, name="maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the controller's fencepost: a 0/0 after rounding still lets one go
    # ... and its MaxUnavailable never exceeds the replicas (0 replicas: 0), so "at least N
    # available" is never negative.
    return surge, min(unavailable, replicas)


# --- reading API objects in either key style ------------------------------------------------

def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def get(obj: Any, *path: str, default: Any = None) -> Any:
    """``obj[path…]`` trying each key camelCase first, then snake_case."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        value = obj.get(key)
        if value is None:
            value = obj.get(_snake(key))
        if value is None:
            return default
        obj = value
    return obj


def quantity(value: Any) -> Decimal:
    """A resource quantity as apimachinery parses it (``kubekit.quantity``), absent as 0."""
    if value is None or value == "":
        return Decimal(0)
    amount = kubekit_quantity.parse(value).value
    return Decimal(amount.numerator) / Decimal(amount.denominator)


def pod_requests(spec: dict) -> dict[str, Decimal]:
    """Effective requests of a pod: sum over containers, at least each init container's."""
    total: Counter = Counter()
    for container in get(spec, "containers", default=[]) or []:
        for name, value in (get(container, "resources", "requests", default={}) or {}).items():
            total[name] += quantity(value)
    for container in get(spec, "initContainers", default=[]) or []:
        for name, value in (get(container, "resources", "requests", default={}) or {}).items():
            total[name] = max(total[name], quantity(value))
    for name, value in (get(spec, "overhead", default={}) or {}).items():
        total[name] += quantity(value)
    return dict(total)


def host_ports(spec: dict) -> set[tuple[str, int]]:
    """(protocol, port) the pod binds on its node: hostPorts, and every containerPort when it
    uses the host network."""
    host_network = bool(get(spec, "hostNetwork", default=False))
    used = set()
    for container in (get(spec, "containers", default=[]) or []) + (get(spec, "initContainers", default=[]) or []):
        for port in get(container, "ports", default=[]) or []:
            number = get(port, "hostPort") or (get(port, "containerPort") if host_network else None)
            if number:
                used.add((get(port, "protocol", default="TCP"), int(number)))
    return used


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """A taint is tolerated, by the scheduler's rule (an empty key with Exists tolerates all)."""
    for toleration in tolerations:
        effect = get(toleration, "effect")
        if effect and effect != get(taint, "effect"):
            continue
        key = get(toleration, "key")
        operator = get(toleration, "operator", default="Equal")
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != get(taint, "key"):
            continue
        if operator == "Exists" or (get(toleration, "value", default="") or "") == (get(taint, "value", default="") or ""):
            return True
    return False


def _node_affinity_ok(spec: dict, labels: dict[str, str]) -> bool:
    for key, value in (get(spec, "nodeSelector", default={}) or {}).items():
        if labels.get(key) != value:
            return False
    terms = get(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms", default=[]) or []
    if not terms:
        return True
    return any(all(requirement_matches(labels, e) for e in get(t, "matchExpressions", default=[]) or []) for t in terms)


def _node_ready(node: dict) -> bool:
    conditions = get(node, "status", "conditions", default=None)
    if not conditions:
        return True  # nothing reported: let taints (node.kubernetes.io/not-ready) decide
    return any(get(c, "type") == "Ready" and get(c, "status") == "True" for c in conditions)


# --- the simulation ---------------------------------------------------------------------------

@dataclass
class _Node:
    name: str
    labels: dict[str, str]
    free: dict[str, Decimal]
    ports: set[tuple[str, int]]
    refusal: str | None  # why no pod of this template can ever go here


def _spread_constraints(template_spec: dict) -> list[dict]:
    return [c for c in get(template_spec, "topologySpreadConstraints", default=[]) or []
            if get(c, "whenUnsatisfiable", default="DoNotSchedule") == "DoNotSchedule"]


def surge_fit(deployment: dict, nodes: list[dict], pods: list[dict]) -> SurgeFit:
    """Can the surge pods of the deployment's next rollout be scheduled now?"""
    spec = get(deployment, "spec", default={}) or {}
    replicas = int(get(spec, "replicas", default=1))
    strategy = get(spec, "strategy", default={}) or {}
    if get(strategy, "type", default="RollingUpdate") == "Recreate":
        return SurgeFit(wanted=0, fits=0, recommended_max_surge=0, reasons=[])
    rolling = get(strategy, "rollingUpdate", default={}) or {}
    wanted, _ = effective_numbers(replicas, get(rolling, "maxSurge"), get(rolling, "maxUnavailable"))
    template = get(spec, "template", default={}) or {}
    template_spec = get(template, "spec", default={}) or {}
    template_labels = get(template, "metadata", "labels", default={}) or {}
    namespace = get(deployment, "metadata", "namespace", default="default")
    return place(template_spec, template_labels, namespace, wanted, nodes, pods)


def place(template_spec: dict, template_labels: dict[str, str], namespace: str, wanted: int,
          nodes: list[dict], pods: list[dict]) -> SurgeFit:
    """Greedily place ``wanted`` new pods of a template, one at a time, as the scheduler would."""
    need = pod_requests(template_spec)
    need.setdefault("pods", Decimal(1))
    need["pods"] = Decimal(1)
    ports = host_ports(template_spec)
    tolerations = get(template_spec, "tolerations", default=[]) or []
    constraints = _spread_constraints(template_spec)

    by_name: dict[str, _Node] = {}
    for node in nodes:
        name = get(node, "metadata", "name")
        labels = get(node, "metadata", "labels", default={}) or {}
        allocatable = {k: quantity(v) for k, v in (get(node, "status", "allocatable", default={}) or {}).items()}
        refusal = None
        if get(node, "spec", "unschedulable", default=False):
            refusal = "node(s) were unschedulable"
        elif not _node_ready(node):
            refusal = "node(s) were not ready"
        else:
            for taint in get(node, "spec", "taints", default=[]) or []:
                if get(taint, "effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                    refusal = f"node(s) had untolerated taint {{{get(taint, 'key')}: {get(taint, 'value', default='') or ''}}}"
                    break
        if refusal is None and not _node_affinity_ok(template_spec, labels):
            refusal = "node(s) didn't match Pod's node affinity/selector"
        by_name[name] = _Node(name, labels, allocatable, set(), refusal)

    # Existing pods on each node, and per-constraint counts of matching pods per domain.
    counts: list[Counter] = [Counter() for _ in constraints]
    for pod in pods:
        node = by_name.get(get(pod, "spec", "nodeName", default="") or "")
        if node is None or get(pod, "status", "phase") in ("Succeeded", "Failed"):
            continue
        pod_spec = get(pod, "spec", default={}) or {}
        for key, value in pod_requests(pod_spec).items():
            node.free[key] = node.free.get(key, Decimal(0)) - value
        node.free["pods"] = node.free.get("pods", Decimal(0)) - 1
        node.ports |= host_ports(pod_spec)
        pod_labels = get(pod, "metadata", "labels", default={}) or {}
        if get(pod, "metadata", "namespace", default=namespace) != namespace or get(pod, "metadata", "deletionTimestamp"):
            continue
        for i, constraint in enumerate(constraints):
            if _counts_for_spread(constraint, template_labels, pod_labels):
                domain = node.labels.get(get(constraint, "topologyKey"))
                if domain is not None:
                    counts[i][domain] += 1

    # Domains a constraint considers: those of nodes passing the pod's node affinity.
    eligible_domains = []
    for constraint in constraints:
        key = get(constraint, "topologyKey")
        eligible_domains.append({n.labels[key] for n in by_name.values()
                                 if key in n.labels and _node_affinity_ok(template_spec, n.labels)})

    placed = 0
    reasons: list[str] = []
    for _ in range(wanted):
        refusals: Counter = Counter()
        candidates = []
        for node in by_name.values():
            why = node.refusal or _resource_refusal(node, need) or _port_refusal(node, ports) \
                or _spread_refusal(node, constraints, counts, eligible_domains)
            if why:
                refusals[why] += 1
            else:
                candidates.append(node)
        if not candidates:
            summary = ", ".join(f"{count} {why}" for why, count in sorted(refusals.items()))
            reasons.append(f"0/{len(by_name)} nodes are available for surge pod {placed + 1} of {wanted}: "
                           f"{summary or 'no nodes'}")
            break
        # Prefer the least-populated domain, then the emptiest node, to spread like the scheduler.
        node = min(candidates, key=lambda n: (
            tuple(counts[i][n.labels.get(get(c, "topologyKey"))] for i, c in enumerate(constraints)),
            -n.free.get("cpu", Decimal(0)), n.name))
        for key, value in need.items():
            node.free[key] = node.free.get(key, Decimal(0)) - value
        node.ports |= ports
        for i, constraint in enumerate(constraints):
            counts[i][node.labels[get(constraint, "topologyKey")]] += 1
        placed += 1
    return SurgeFit(wanted=wanted, fits=placed, recommended_max_surge=min(wanted, placed), reasons=reasons)


def _counts_for_spread(constraint: dict, template_labels: dict[str, str], pod_labels: dict[str, str]) -> bool:
    """Does an existing pod count toward a new pod's spread? matchLabelKeys such as
    pod-template-hash restrict counting to pods of the new ReplicaSet, which has no pods yet."""
    if not selector_matches(get(constraint, "labelSelector"), pod_labels):
        return False
    for key in get(constraint, "matchLabelKeys", default=[]) or []:
        if key == "pod-template-hash":
            return False
        if key in template_labels and pod_labels.get(key) != template_labels[key]:
            return False
    return True


def _resource_refusal(node: _Node, need: dict[str, Decimal]) -> str | None:
    for key, value in sorted(need.items()):
        if value > 0 and node.free.get(key, Decimal(0)) < value:
            return f"Insufficient {key}" if key != "pods" else "Too many pods"
    return None


def _port_refusal(node: _Node, ports: set[tuple[str, int]]) -> str | None:
    if ports & node.ports:
        return "node(s) didn't have free ports for the requested pod ports"
    return None


def _spread_refusal(node: _Node, constraints: list[dict], counts: list[Counter],
                    eligible_domains: list[set[str]]) -> str | None:
    for i, constraint in enumerate(constraints):
        key = get(constraint, "topologyKey")
        domain = node.labels.get(key)
        if domain is None:
            return f"node(s) didn't have the {key} label the spread constraint needs"
        domains = eligible_domains[i] or {domain}
        lowest = min(counts[i][d] for d in domains)
        if counts[i][domain] + 1 - lowest > int(get(constraint, "maxSkew", default=1)):
            return "node(s) didn't match pod topology spread constraints"
    return None
