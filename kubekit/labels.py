"""Label selectors evaluated as the apiserver evaluates them.

One implementation for every caller: a SidecarSet's selector and namespaceSelector, a
webhook's namespaceSelector and objectSelector, a PodDisruptionBudget's or a spread
constraint's labelSelector, and node affinity terms (which add ``Gt``/``Lt``).
"""

from __future__ import annotations

def requirement_matches(labels: dict[str, str], requirement: dict) -> bool:
    """One ``{key, operator, values}`` requirement. ``NotIn`` and ``DoesNotExist`` match an
    absent key; ``Gt``/``Lt`` (node selectors only) compare integers; an unknown operator
    never matches (the apiserver would have rejected it)."""
    key, operator = requirement.get("key"), requirement.get("operator")
    values = requirement.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def selector_matches(selector: dict | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector: every matchLabels pair and every matchExpressions requirement
    must hold. An empty or absent selector matches everything (as a webhook's
    namespaceSelector or a SidecarSet's selector does)."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(requirement_matches(labels, r) for r in selector.get("matchExpressions") or [])


def unmatched_requirements(selector: dict | None, labels: dict[str, str] | None) -> list[str]:
    """The parts of ``selector`` that ``labels`` fail, as short text (why an object is
    skipped): ``control-plane NotIn [openkruise]``, ``app=web``."""
    labels = labels or {}
    selector = selector or {}
    failed = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items() if labels.get(k) != v]
    for r in selector.get("matchExpressions") or []:
        if not requirement_matches(labels, r):
            values = r.get("values")
            failed.append(f"{r.get('key')} {r.get('operator')}" + (f" [{', '.join(values)}]" if values else ""))
    return failed
