"""The WorkloadSpread validating webhook (``vworkloadspread.kb.io``), upstream OpenKruise v1.8.3's
rules (pkg/webhook/workloadspread/validating) ported to plain dicts, plus this manager's two
refusals: a target other than a Deployment, ReplicaSet or Job (no CloneSet or StatefulSet here),
and a ``targetFilter.replicasPathList`` path with a negative list index (upstream panics on it).

Messages are upstream's: each is a Kubernetes ``field.Error`` as Go prints it ("<path>:
<type>: <value>: <detail>") and the answer joins them as upstream's aggregate does, so a
refusal reads the same from either manager. Upstream answers a refusal with code 400.

Checked as upstream does, with the same early stops: the target reference; the subsets
(names non-empty and unique, ``requiredNodeSelectorTerm``, ``preferredNodeSelectorTerms`` and
``tolerations`` with Kubernetes' core validators, ``maxReplicas`` int or percent of one type
whose percentages sum to 100); ``scheduleStrategy`` and ``rescheduleCriticalSeconds``;
``targetFilter``'s selector; one WorkloadSpread per workload; no change of the target on
update. A subset's ``patch`` is checked, as upstream, only when the target workload exists:
it must merge (strategic merge) onto the workload's pod template and leave a valid pod (the
parts of Kubernetes' pod validation a patch can break). tools/wsvalidation/diff.py compares
verdicts and messages with upstream's own Go functions.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Callable

from kubekit import formats, quantity

from ..admission import allowed, denied, errored
from . import subsets

SUPPORTED_KINDS = {"Deployment": "apps", "ReplicaSet": "apps", "Job": "batch"}
UNSUPPORTED_TARGET = "this manager supports Deployment, ReplicaSet and Job targets"
FIXED, ADAPTIVE = "Fixed", "Adaptive"
MAX_SCHEDULED_FAILED_SECONDS = 300  # upstream's MaxScheduledFailedDuration
MAX_INT32 = 2**31 - 1
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_ATOI = re.compile(r"^[+-]?[0-9]+$")  # Go's strconv.Atoi (no spaces, no underscores)
# the pod lists a strategic merge patch merges by a key (k8s.io/api core/v1's patchMergeKey tags)
_POD_SPEC_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                        "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip"}
_CONTAINER_MERGE_KEYS = {"env": "name", "ports": "containerPort", "volumeMounts": "mountPath",
                         "volumeDevices": "devicePath"}


class _MergeError(ValueError):
    """A strategic merge patch that Kubernetes' strategicpatch refuses."""


# ---- how Go prints a field.Error ----------------------------------------------------------
def _q(value) -> str:
    """Go's %q of a string (and %#v of a named string type)."""
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def _target_text(ref) -> str:
    ref = ref if isinstance(ref, dict) else {}
    return (f"v1alpha1.TargetReference{{APIVersion:{_q(ref.get('apiVersion') or '')}, "
            f"Kind:{_q(ref.get('kind') or '')}, Name:{_q(ref.get('name') or '')}}}")


def _intstr_text(value) -> str:
    if value is None:
        return '"null"'  # Go prints a nil pointer as the string "null"
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{_q(value)}}}"
    return f"intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:\"\"}}"


def _invalid(path: str, value_text: str, detail: str = "") -> str:
    return f"{path}: Invalid value: {value_text}" + (f": {detail}" if detail else "")


def _required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def _not_supported(path: str, value, supported) -> str:
    return f"{path}: Unsupported value: {_q(value)}: supported values: " + ", ".join(_q(v) for v in supported)


def aggregate(errors: list[str]) -> str:
    """The errors as one message, as Go's ErrorList.ToAggregate().Error(): duplicates dropped,
    several joined in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---- Kubernetes' core validators ----------------------------------------------------------
def _qualified_name_errors(value: str) -> list[str]:
    """apimachinery's IsQualifiedName."""
    parts = value.split("/")
    errs = []
    if len(parts) > 2:
        return ["a qualified name " + formats.QUALIFIED_NAME.message + " with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in _dns_subdomain_errors(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not formats.QUALIFIED_NAME.match(name):
        errs.append("name part " + formats.QUALIFIED_NAME.message)
    return errs


def _dns_subdomain_errors(value: str) -> list[str]:
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not formats.DNS1123_SUBDOMAIN.match(value):
        errs.append(formats.DNS1123_SUBDOMAIN.message)
    return errs


def _label_value_errors(value: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not formats.LABEL_VALUE.match(value):
        errs.append(formats.LABEL_VALUE.message)
    return errs


def _label_name_errors(key, path: str) -> list[str]:
    key = key if isinstance(key, str) else ""
    return [_invalid(path, _q(key), m) for m in _qualified_name_errors(key)]


def _requirement_errors(req, path: str) -> list[str]:
    """Kubernetes' ValidateNodeSelectorRequirement."""
    req = req if isinstance(req, dict) else {}
    op, values = req.get("operator") or "", req.get("values") or []
    errs = []
    if op in ("In", "NotIn"):
        if not values:
            errs.append(_required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(f"{path}.values: Forbidden: may not be specified when `operator` is 'Exists' or "
                        "'DoesNotExist'")
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(_required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"))
    else:
        errs.append(_invalid(f"{path}.operator", _q(op), "not a valid selector operator"))
    return errs + _label_name_errors(req.get("key"), f"{path}.key")


def _field_requirement_errors(req, path: str) -> list[str]:
    """Kubernetes' ValidateNodeFieldSelectorRequirement (only metadata.name may be selected)."""
    req = req if isinstance(req, dict) else {}
    op, values = req.get("operator") or "", req.get("values") or []
    errs = []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            errs.append(_required(f"{path}.values",
                                  "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
    else:
        errs.append(_invalid(f"{path}.operator", _q(op), "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        errs.append(_invalid(f"{path}.key", _q(req.get("key") or ""), "not a valid field selector key"))
    else:
        for i, value in enumerate(values):
            errs += [_invalid(f"{path}.values[{i}]", _q(value), m) for m in _dns_subdomain_errors(str(value))]
    return errs


def node_selector_term_errors(term, path: str) -> list[str]:
    """Kubernetes' ValidateNodeSelectorTerm."""
    term = term if isinstance(term, dict) else {}
    errs = []
    for j, req in enumerate(term.get("matchExpressions") or []):
        errs += _requirement_errors(req, f"{path}.matchExpressions[{j}]")
    for j, req in enumerate(term.get("matchFields") or []):
        errs += _field_requirement_errors(req, f"{path}.matchFields[{j}]")
    return errs


def _toleration_text(t: dict) -> str:
    seconds = "(*int64)(nil)" if t.get("tolerationSeconds") is None else f"&{t['tolerationSeconds']}"
    return (f"core.Toleration{{Key:{_q(t.get('key') or '')}, Operator:{_q(t.get('operator') or '')}, "
            f"Value:{_q(t.get('value') or '')}, Effect:{_q(t.get('effect') or '')}, TolerationSeconds:{seconds}}}")


def toleration_errors(tolerations, path: str) -> list[str]:
    """Kubernetes' ValidateTolerations."""
    errs = []
    for i, t in enumerate(tolerations if isinstance(tolerations, list) else []):
        t = t if isinstance(t, dict) else {}
        where = f"{path}[{i}]"
        key, op, value, effect = t.get("key") or "", t.get("operator") or "", t.get("value") or "", t.get("effect") or ""
        if key:
            errs += _label_name_errors(key, f"{where}.key")
        if not key and op != "Exists":
            errs.append(_invalid(f"{where}.operator", _q(op),
                                 "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(_invalid(f"{where}.effect", _q(effect), "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            if msgs := _label_value_errors(value):
                errs.append(_invalid(f"{where}.operator", _q(value), ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(_invalid(f"{where}.operator", _toleration_text(t), "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(_not_supported(f"{where}.operator", op, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(_not_supported(f"{where}.effect", effect, TAINT_EFFECTS))
    return errs


def _strings_text(values) -> str:
    return "[]string(nil)" if not values else "[]string{" + ", ".join(_q(v) for v in values) + "}"


def _requirement_error(key, op: str, values: list) -> str | None:
    """labels.NewRequirement's aggregated error (None: the requirement is valid)."""
    key = key if isinstance(key, str) else ""
    errs = []
    if msgs := _qualified_name_errors(key):
        errs.append(_invalid("key", _q(key), "; ".join(msgs)))
    if op in ("in", "notin") and not values:
        errs.append(_invalid("values", _strings_text(values), "for 'in', 'notin' operators, values set can't be empty"))
    elif op == "=" and len(values) != 1:
        errs.append(_invalid("values", _strings_text(values), "exact-match compatibility requires one single value"))
    elif op in ("exists", "!") and values:
        errs.append(_invalid("values", _strings_text(values), "values set must be empty for exists and does not exist"))
    for i, value in enumerate(values):
        if msgs := _label_value_errors(value if isinstance(value, str) else ""):
            errs.append(_invalid(f"values[{i}][{key}]", _q(value), "; ".join(msgs)))
    return aggregate(errs) if errs else None


def _selector_error(selector) -> str | None:
    """metav1.LabelSelectorAsSelector's error for ``selector`` (None: it converts). Go visits
    matchLabels in map order: with several bad labels another may be named first."""
    if selector is None:
        return None
    if not isinstance(selector, dict):
        return "must be a label selector"
    for key, value in (selector.get("matchLabels") or {}).items():
        if why := _requirement_error(key, "=", [value]):
            return why
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        expr = expr if isinstance(expr, dict) else {}
        if expr.get("operator") not in operators:
            return f"{_q(expr.get('operator') or '')} is not a valid label selector operator"
        if why := _requirement_error(expr.get("key"), operators[expr["operator"]], list(expr.get("values") or [])):
            return why
    return None


# ---- maxReplicas --------------------------------------------------------------------------
def _int_or_percent(value) -> int | None:
    """intstr.GetValueFromIntOrPercent(value, 100, true); None when Go refuses it. As Go's, a
    string is a percentage once every '%' is dropped from it: "3" is 3%, "5%%" is 5%."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -2**31 <= value < 2**31 else None  # an IntOrString holds an int32
    if isinstance(value, str) and _ATOI.match(value.replace("%", "")):
        number = int(value.replace("%", ""))
        return number if -2**63 <= number < 2**63 else None
    return None


def _parse_group(api_version) -> str | None:
    """schema.ParseGroupVersion's group; None when Go cannot parse it."""
    if not isinstance(api_version, str):
        return None
    if api_version in ("", "v1"):
        return ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return ""
    return parts[0] if len(parts) == 2 else None


# ---- the patch ----------------------------------------------------------------------------
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _go_map(value) -> str:
    """Go's %v of a decoded JSON value (maps print with sorted keys)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_map(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_map(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _json_type(value) -> str:
    return {bool: "bool", dict: "object", list: "array", str: "string"}.get(type(value), "number")


def _merge_list(base: list, patch: list, key: str) -> list:
    """A keyed list merged as strategicpatch does: patch items merged into the base item with
    the same key (new ones first), ``$patch: delete`` removes one; an item without the key is
    strategicpatch's error."""
    merged, new = [copy.deepcopy(item) for item in base], []
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise _MergeError(f"map: {_go_map(item)} does not contain declared merge key: {key}")
        found = next((n for n, b in enumerate(merged) if isinstance(b, dict) and b.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if found is not None:
                merged.pop(found)
        elif found is not None:
            merged[found] = _merge(merged[found], item, _CONTAINER_MERGE_KEYS if key == "name" else {})
        else:
            new.append(_merge({}, item, _CONTAINER_MERGE_KEYS if key == "name" else {}))
    return new + merged


def _merge(base, patch, keyed: dict):
    """A strategic merge patch of ``patch`` onto ``base`` for the pod fields a subset patches:
    maps merged, null deletes, the lists named in ``keyed`` merged by their key when the base
    has them, other lists replaced."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in keyed and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, keyed[key])
        elif isinstance(value, list):
            result[key] = [copy.deepcopy(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
        elif isinstance(value, dict):
            result[key] = _merge(result.get(key), value, _POD_SPEC_MERGE_KEYS if key == "spec" else {})
        else:
            result[key] = value
    return result


def _quantity_error(resources) -> str | None:
    for group in ("limits", "requests"):
        for name, value in ((resources or {}).get(group) or {}).items() if isinstance(resources, dict) else ():
            try:
                quantity.parse(value)
            except quantity.QuantityError:
                return ("quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return None


def _resource_errors(resources, where: str) -> list[str]:
    """Kubernetes' ValidateResourceRequirements: no negative quantity, no request above its limit."""
    if not isinstance(resources, dict):
        return []
    errs = []
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for group, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            if quantity.parse(value).value < 0:
                errs.append(_invalid(f"{where}.resources.{group}[{name}]", _q(value), "must be greater than or equal to 0"))
    for name, request in requests.items():
        if name in limits and quantity.parse(request).value > quantity.parse(limits[name]).value:
            errs.append(_invalid(f"{where}.resources.requests", _q(request),
                                 f"must be less than or equal to {name} limit of {limits[name]}"))
    return errs


def _container_errors(container: dict, where: str, volumes: set) -> list[str]:
    """The parts of Kubernetes 1.30's ValidatePodSpec a subset patch can break in a container."""
    errs = []
    name = container.get("name") or ""
    if not name:
        errs.append(_required(f"{where}.name"))
    elif len(name) > 63 or not formats.DNS1123_LABEL.match(name):
        errs.append(_invalid(f"{where}.name", _q(name), formats.DNS1123_LABEL.message))
    if not container.get("image"):
        errs.append(_required(f"{where}.image"))
    for j, env in enumerate(container.get("env") or []):
        env_name = (env or {}).get("name") or "" if isinstance(env, dict) else ""
        if not env_name:
            errs.append(_required(f"{where}.env[{j}].name"))
        elif not formats.ENV_VAR_NAME.match(env_name):
            errs.append(_invalid(f"{where}.env[{j}].name", _q(env_name), formats.ENV_VAR_NAME.message))
    paths: set = set()
    for j, mount in enumerate(container.get("volumeMounts") or []):
        if not isinstance(mount, dict):
            continue
        if mount.get("name") not in volumes:
            errs.append(f"{where}.volumeMounts[{j}].name: Not found: {_q(mount.get('name') or '')}")
        if mount.get("mountPath") in paths:
            errs.append(_invalid(f"{where}.volumeMounts[{j}].mountPath", _q(mount.get("mountPath")), "must be unique"))
        paths.add(mount.get("mountPath"))
        sub = mount.get("subPath") or ""
        if sub.startswith("/"):
            errs.append(_invalid(f"{where}.volumeMounts.subPath", _q(sub), "must be a relative path"))
        elif ".." in sub.split("/"):
            errs.append(_invalid(f"{where}.volumeMounts.subPath", _q(sub), "must not contain '..'"))
    return errs + _resource_errors(container.get("resources"), where)


def _affinity_errors(affinity, where: str) -> list[str]:
    node = (affinity or {}).get("nodeAffinity") if isinstance(affinity, dict) else None
    if not isinstance(node, dict):
        return []
    errs = []
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required, dict):
        path = f"{where}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        terms = required.get("nodeSelectorTerms") or []
        if not terms:
            errs.append(_required(f"{path}.nodeSelectorTerms", "must have at least one node selector term"))
        for i, term in enumerate(terms):
            errs += node_selector_term_errors(term, f"{path}.nodeSelectorTerms[{i}]")
    for i, term in enumerate(node.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        term = term if isinstance(term, dict) else {}
        path = f"{where}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        weight = term.get("weight") or 0
        if not isinstance(weight, int) or weight <= 0 or weight > 100:
            errs.append(_invalid(f"{path}.weight", str(weight), "must be in the range 1-100"))
        errs += node_selector_term_errors(term.get("preference"), f"{path}.preference")
    return errs


def patch_errors(raw, template: dict, where: str) -> list[str]:
    """Upstream's check of a subset's patch against the target's pod template: the patch must
    merge and the merged pod must be valid. Checked of Kubernetes' pod validation: what a patch
    can break in metadata types, containers (names, images, env names, mounts, resources),
    dnsPolicy, restartPolicy, tolerations and node affinity."""
    text = json.dumps(raw)
    # upstream goes on after a failed merge with an empty pod: its three errors
    unmerged = [_invalid(where, _q(text), "failed to unmarshal: unexpected end of JSON input"),
                _required(f"{where}.containers")]
    if not isinstance(raw, dict):
        return [_invalid(where, _q(text), "failed to merge patch: invalid JSON document"), *unmerged]
    try:
        pod = _merge({"metadata": template.get("metadata"), "spec": template.get("spec")}, raw, {})
    except _MergeError as err:
        return [_invalid(where, _q(text), f"failed to merge patch: {err}"), *unmerged]
    try:
        return _merged_pod_errors(pod, text, where)
    except (AttributeError, TypeError, ValueError, quantity.QuantityError) as err:  # a field of the wrong JSON type
        return [_invalid(where, _q(text), f"failed to unmarshal: json: cannot unmarshal the patched pod: {err}")]


def _merged_pod_errors(pod: dict, text: str, where: str) -> list[str]:
    meta, spec = pod.get("metadata"), pod.get("spec")
    for field in ("labels", "annotations"):
        values = (meta or {}).get(field) if isinstance(meta, dict) else None
        if values is None:
            continue
        bad = values if not isinstance(values, dict) else next((v for v in values.values() if not isinstance(v, str)), "")
        if not isinstance(bad, str):
            return [_invalid(where, _q(text), f"failed to unmarshal: json: cannot unmarshal {_json_type(bad)} into Go "
                             f"struct field ObjectMeta.metadata.{field} of type "
                             f"{'string' if isinstance(values, dict) else 'map[string]string'}")]
    if not isinstance(spec, dict):
        return [_invalid(where, _q(text), "failed to unmarshal: json: cannot unmarshal spec: not an object")]
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                return [_invalid(where, _q(text), f"failed to unmarshal: json: cannot unmarshal {key}: not objects")]
            if why := _quantity_error(container.get("resources")):
                return [_invalid(where, _q(text), f"failed to unmarshal: {why}")]
    errs = []
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    if not spec.get("containers"):
        errs.append(_required(f"{where}.containers"))
    seen: set = set()
    for key in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(key) or []):
            cwhere = f"{where}.{key}[{i}]"
            errs += _container_errors(container, cwhere, volumes)
            if container.get("name") and container.get("name") in seen:
                errs.append(f"{cwhere}.name: Duplicate value: {_q(container['name'])}")
            seen.add(container.get("name"))
    if spec.get("restartPolicy") not in RESTART_POLICIES:
        errs.append(_not_supported(f"{where}.restartPolicy", spec.get("restartPolicy") or "", RESTART_POLICIES))
    if spec.get("dnsPolicy") not in DNS_POLICIES:
        errs.append(_not_supported(f"{where}.dnsPolicy", spec.get("dnsPolicy") or "", DNS_POLICIES))
    errs += toleration_errors(spec.get("tolerations"), f"{where}.tolerations")
    errs += _affinity_errors(spec.get("affinity"), f"{where}.affinity")
    return errs


# ---- decoding -----------------------------------------------------------------------------
_STR, _INT, _BOOL, _INTSTR, _ANY = "string", "int32", "bool", "IntOrString", "any"
_REQUIREMENT = {"key": _STR, "operator": _STR, "values": [_STR]}
_TERM = {"matchExpressions": [_REQUIREMENT], "matchFields": [_REQUIREMENT]}
_SELECTOR = {"matchLabels": {"*": _STR}, "matchExpressions": [_REQUIREMENT]}
_SCHEMA = {  # the fields of apps/v1alpha1.WorkloadSpread this module reads, as Go types them
    "metadata": {"name": _STR, "namespace": _STR, "uid": _STR},
    "spec": {
        "targetRef": {"apiVersion": _STR, "kind": _STR, "name": _STR},
        "subsets": [{"name": _STR, "maxReplicas": _INTSTR, "requiredNodeSelectorTerm": _TERM,
                     "preferredNodeSelectorTerms": [{"weight": _INT, "preference": _TERM}],
                     "tolerations": [{"key": _STR, "operator": _STR, "value": _STR, "effect": _STR,
                                      "tolerationSeconds": "int64"}],
                     "patch": _ANY}],
        "scheduleStrategy": {"type": _STR, "adaptive": {"rescheduleCriticalSeconds": _INT,
                                                        "disableSimulationSchedule": _BOOL}},
        "targetFilter": {"selector": _SELECTOR, "replicasPathList": [_STR]},
    },
}


def _decode_error(value, schema, path: str) -> str | None:
    """Why Go's json.Unmarshal of ``value`` into the typed WorkloadSpread fails (None: it
    decodes). JSON null decodes into anything; unknown fields are ignored."""
    if value is None or schema == _ANY:
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{path or 'object'}: cannot unmarshal {_json_type(value)} into an object"
        for key, item in value.items():
            sub = schema.get("*", schema.get(key))
            if sub is not None and (why := _decode_error(item, sub, f"{path}.{key}" if path else key)):
                return why
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{path}: cannot unmarshal {_json_type(value)} into an array"
        return next((why for i, item in enumerate(value) if (why := _decode_error(item, schema[0], f"{path}[{i}]"))), None)
    fits = {_STR: isinstance(value, str), _BOOL: isinstance(value, bool),
            _INTSTR: isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)
                                                and -2**31 <= value < 2**31),
            _INT: isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31,
            "int64": isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63}[schema]
    return None if fits else f"{path}: cannot unmarshal {_json_type(value)} {json.dumps(value)[:40]} into {schema}"


def decode_error(ws) -> str | None:
    """Why upstream's decoder refuses ``ws`` as a WorkloadSpread (its answer: code 400)."""
    return _decode_error(ws, _SCHEMA, "")


# ---- the WorkloadSpread -------------------------------------------------------------------
def _target_errors(ref) -> list[str]:
    path = "spec.targetRef"
    if ref is None:
        return [_required(path, "no targetRef defined in WorkloadSpread")]
    if not isinstance(ref, dict) or not (ref.get("apiVersion") and ref.get("name") and ref.get("kind")):
        return [_invalid(path, _target_text(ref), "empty TargetReference is not valid for WorkloadSpread.")]
    kind = ref["kind"]
    if kind not in SUPPORTED_KINDS:
        return [_invalid(path, _target_text(ref), UNSUPPORTED_TARGET)]
    if _parse_group(ref["apiVersion"]) != SUPPORTED_KINDS[kind]:
        return [_invalid(path, _target_text(ref), f"TargetReference is not valid for {kind}.")]
    return []


def _subset_errors(ws: dict, subsets, template: dict | None) -> list[str]:
    """upstream's validateWorkloadSpreadSubsets, with its early returns on maxReplicas."""
    path = "spec.subsets"
    if not subsets:
        return [_required(path, "subsets number must >= 1 in WorkloadSpread")]
    if not isinstance(subsets, list):
        return [_invalid(path, _q(str(subsets)), "must be a list")]
    errs: list[str] = []
    names: set[str] = set()
    percent_sum, first_type = 0, None
    ref = (ws.get("spec") or {}).get("targetRef")
    for i, subset in enumerate(subsets):
        where = f"{path}[{i}]"
        subset = subset if isinstance(subset, dict) else {}
        name = subset.get("name") or ""
        if not name:
            errs.append(_invalid(f"{where}.name", _q(name)))
        else:
            if name in names:
                errs.append(_invalid(f"{where}.name", _q(name), f"duplicated subset name {name}"))
            names.add(name)
        if subset.get("requiredNodeSelectorTerm") is not None:
            errs += node_selector_term_errors(subset["requiredNodeSelectorTerm"], f"{where}.requiredNodeSelectorTerm")
        if subset.get("preferredNodeSelectorTerms") is not None:
            for k, term in enumerate(subset["preferredNodeSelectorTerms"] or []):
                term = term if isinstance(term, dict) else {}
                weight = term.get("weight") or 0
                tpath = f"{where}.preferredSchedulingTerms[{k}]"  # upstream's path name
                if not isinstance(weight, int) or weight <= 0 or weight > 100:
                    errs.append(_invalid(f"{tpath}.weight", str(weight), "must be in the range 1-100"))
                errs += node_selector_term_errors(term.get("preference"), f"{tpath}.preference")
        if subset.get("tolerations") is not None:
            errs += toleration_errors(subset["tolerations"], f"{where}.tolerations")
        if subset.get("patch") is not None and template is not None:
            errs += patch_errors(subset["patch"], template, f"{where}.patch")
        max_replicas = subset.get("maxReplicas")
        if max_replicas is None:
            continue
        kind = "percent" if isinstance(max_replicas, str) else "int"
        mpath, mtext = f"{where}.maxReplicas", _intstr_text(max_replicas)
        if first_type is None:
            first_type = kind
        elif kind != first_type:
            return errs + [_invalid(mpath, mtext, "the maxReplicas type of all subsets must be the same")]
        if isinstance(ref, dict) and ref.get("kind") == "StatefulSet" and kind != "int":
            return errs + [_invalid(mpath, mtext, "the maxReplicas type must be Int for StatefulSet")]
        value = _int_or_percent(max_replicas)
        if value is None or value < 0:
            return errs + [_invalid(mpath, mtext, "maxReplicas is not valid for subset")]
        if kind == "percent":
            percent_sum += value
            if percent_sum > 100:
                return errs + [_invalid(mpath, mtext, "the sum of all subset's maxReplicas exceeds 100% is no permitted")]
    if first_type == "percent" and percent_sum < 100 and subsets[-1].get("maxReplicas") is not None:
        errs.append(_invalid(f"{path}[0].maxReplicas", _intstr_text(subsets[0].get("maxReplicas")),
                             "maxReplicas sum of all subsets must equal 100% when type is specified as percent"))
    return errs


def _strategy_errors(spec: dict) -> list[str]:
    strategy = spec.get("scheduleStrategy") or {}
    strategy = strategy if isinstance(strategy, dict) else {}
    subsets = spec.get("subsets") if isinstance(spec.get("subsets"), list) else []
    errs = []
    kind = strategy.get("type") or ""
    if kind not in ("", FIXED, ADAPTIVE):
        errs.append(_invalid("spec.scheduleStrategy.type", _q(kind), "ScheduleStrategy's type is not valid"))
    adaptive = strategy.get("adaptive")
    if adaptive is None:
        return errs
    adaptive = adaptive if isinstance(adaptive, dict) else {}
    seconds = adaptive.get("rescheduleCriticalSeconds")
    seconds_text = '"null"' if seconds is None else str(seconds)
    if kind != ADAPTIVE:
        errs.append(_invalid("spec.scheduleStrategy.type", seconds_text,
                             "the scheduleStrategy's type must be adaptive when using adaptive scheduleStrategy"))
    if len(subsets) > 1 and isinstance(subsets[-1], dict) and subsets[-1].get("maxReplicas") is not None:
        errs.append(_invalid("spec.scheduleStrategy.adaptive", seconds_text,
                             "the last subset's maxReplicas must be not specified when using adaptive scheduleStrategy"))
    allowed_max = MAX_INT32 if len(subsets) <= 1 else (MAX_SCHEDULED_FAILED_SECONDS - 5) // (len(subsets) - 1)
    if seconds is not None and (not isinstance(seconds, int) or seconds < 0 or seconds > allowed_max):
        errs.append(_invalid("spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds", seconds_text,
                             f"rescheduleCriticalSeconds < 0 or rescheduleCriticalSeconds > {allowed_max} is not permitted"))
    return errs


def _same_target(first, second) -> bool:
    """Same group, kind and name; an apiVersion Go cannot parse counts as the empty group, as
    upstream ignores the parse error here."""
    return (isinstance(first, dict) and isinstance(second, dict)
            and (_parse_group(first.get("apiVersion")) or "") == (_parse_group(second.get("apiVersion")) or "")
            and first.get("kind") == second.get("kind") and first.get("name") == second.get("name"))


def conflict_errors(ws: dict, others) -> list[str]:
    """One WorkloadSpread per workload: the first other WorkloadSpread of the namespace
    (another name) with the same target group, kind and name."""
    meta = ws.get("metadata") or {}
    ref = (ws.get("spec") or {}).get("targetRef")
    for other in others or ():
        other_meta = (other or {}).get("metadata") or {}
        if other_meta.get("name") == meta.get("name"):
            continue
        if meta.get("namespace") and other_meta.get("namespace") and other_meta["namespace"] != meta["namespace"]:
            continue
        if ref is not None and _same_target(ref, ((other or {}).get("spec") or {}).get("targetRef")):
            return [_invalid("spec.targetRef", _target_text(ref),
                             f"ws.spec.targetRef is in conflict with other WorkloadSpread {other_meta.get('name')}")]
    return []


def update_errors(new: dict, old: dict) -> list[str]:
    """An update keeps the object's identity and its target (group, kind and name)."""
    errs = []
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    for key in ("name", "namespace", "uid"):
        if old_meta.get(key) and new_meta.get(key) != old_meta.get(key):
            errs.append(_invalid(f"metadata.{key}", _q(new_meta.get(key) or ""), "field is immutable"))
    ref, old_ref = (new.get("spec") or {}).get("targetRef"), (old.get("spec") or {}).get("targetRef")
    if isinstance(ref, dict) and isinstance(old_ref, dict) and not _same_target(ref, old_ref):
        errs.append(_invalid("spec.targetRef", _target_text(ref), "change TargetReference is not permitted for WorkloadSpread"))
    return errs


def spec_errors(ws: dict, workload: dict | None = None) -> list[str]:
    """upstream's validateWorkloadSpreadSpec plus this manager's target refusal."""
    if not isinstance(ws, dict) or not isinstance(ws.get("spec"), dict):
        return [_required("spec", "a WorkloadSpread has a spec")]
    spec = ws["spec"]
    template = None
    workload_spec = workload.get("spec") if isinstance(workload, dict) else None
    if isinstance(workload_spec, dict) and not _target_errors(spec.get("targetRef")):
        found = workload_spec.get("template")
        template = found if isinstance(found, dict) else None
    errs = _target_errors(spec.get("targetRef"))
    errs += _subset_errors(ws, spec.get("subsets"), template)
    errs += _strategy_errors(spec)
    target_filter = spec.get("targetFilter")
    if target_filter is not None:
        why = _selector_error(target_filter.get("selector") if isinstance(target_filter, dict) else target_filter)
        if why is not None:
            errs.append(_invalid("spec.targetFilter", json.dumps(target_filter, sort_keys=True), why))
        errs += _replicas_path_errors(target_filter)
    return errs


NEGATIVE_INDEX = ("a negative list index is not supported (upstream's manager crashes reading it, "
                  "so it has no result to match)")


def _replicas_path_errors(target_filter) -> list[str]:
    """This manager's refusal of a ``replicasPathList`` path with a part strconv.Atoi reads as
    a negative number: upstream accepts it, then indexes a list with it and panics (in its
    pod webhook and its controller); in a map such a key never leads to an integer either."""
    paths = target_filter.get("replicasPathList") if isinstance(target_filter, dict) else None
    errs = []
    for i, path in enumerate(paths if isinstance(paths, list) else []):
        if isinstance(path, str) and (part := subsets.negative_index(path)) is not None:
            errs.append(_invalid(f"spec.targetFilter.replicasPathList[{i}]", _q(path), f"{_q(part)}: {NEGATIVE_INDEX}"))
    return errs


def validate(ws: dict, old: dict | None = None, others=(), workload: dict | None = None) -> list[str]:
    """Every reason upstream (and this manager) refuses ``ws``, in upstream's order; empty when
    it is valid. ``old``: the object an update replaces; ``others``: the WorkloadSpreads of its
    namespace (the one-per-workload rule); ``workload``: the target workload when it exists
    (its pod template is what a subset's patch is checked against, as upstream)."""
    for obj in (ws, old):
        if obj is not None and (why := decode_error(obj)):
            return [why]
    errs = spec_errors(ws, workload)
    if isinstance(ws, dict):
        errs += conflict_errors(ws, [o for o in others or () if not decode_error(o)])
        if isinstance(old, dict):
            errs += update_errors(ws, old)
    return errs


def validate_request(request: dict, others: Callable[[str], list[dict]] | None = None,
                     workload: Callable[[str, dict], dict | None] | None = None) -> dict:
    """The webhook's answer to a WorkloadSpread CREATE or UPDATE (other operations pass, as
    upstream registers only these two); a refusal is code 400 as upstream's. ``others(namespace)``:
    the namespace's WorkloadSpreads (a failure is upstream's internal-error refusal; None skips
    the one-per-workload rule); ``workload(namespace, targetRef)``: the target workload, None
    when it does not exist (without it the patches are not checked, as upstream when the
    workload is absent)."""
    operation = request.get("operation")
    if operation not in ("CREATE", "UPDATE"):
        return allowed()
    obj = request.get("object")
    if not isinstance(obj, dict):
        return errored(400, "request.object is not a WorkloadSpread")
    old = request.get("oldObject") if operation == "UPDATE" else None
    if operation == "UPDATE" and not isinstance(old, dict):
        return errored(400, "request.oldObject is not a WorkloadSpread")
    for found in (obj, old):
        if found is not None and (why := decode_error(found)):
            return errored(400, why)
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""
    if not (obj.get("metadata") or {}).get("namespace"):
        obj = {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}
    target = None
    ref = (obj.get("spec") or {}).get("targetRef") if isinstance(obj.get("spec"), dict) else None
    if workload is not None and isinstance(ref, dict) and not _target_errors(ref):
        try:
            target = workload(namespace, ref)
        except Exception:  # noqa: BLE001 - upstream skips the patch check when its Get fails
            target = None
    errs = spec_errors(obj, target)
    if others is not None:
        try:
            errs += conflict_errors(obj, [o for o in others(namespace) if not decode_error(o)])
        except Exception as err:  # noqa: BLE001 - upstream refuses with the reason, whatever it is
            errs.append(f": Internal error: query other WorkloadSpread failed, err: {err}")
    if old is not None:
        errs += update_errors(obj, old)
    if errs:
        return denied(aggregate(errs), 400)
    return allowed()
