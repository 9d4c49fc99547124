"""SidecarSet (apps.kruise.io/v1alpha1): which pods it selects, what it injects, what is a
valid one, and what its status says. Pure functions over plain dicts, used by the pod and
SidecarSet webhooks and by the leader's status controller.

Honoured fields (a subset of upstream; the README lists them): ``selector``,
``namespace``, ``namespaceSelector``, ``containers`` (with ``podInjectPolicy``
BeforeAppContainer / AfterAppContainer, ``shareVolumePolicy``, ``transferEnv``),
``initContainers``, ``volumes``, ``injectionStrategy.paused``. Injection records upstream's
annotations (``kruise.io/sidecarset-hash``, ``kruise.io/sidecarset-hash-without-image``,
``kruise.io/sidecarset-injected-list``). No in-place sidecar upgrade.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re

from kubekit.labels import selector_matches

GROUP_VERSION = "apps.kruise.io/v1alpha1"
HASH_ANNOTATION = "kruise.io/sidecarset-hash"
HASH_WITHOUT_IMAGE_ANNOTATION = "kruise.io/sidecarset-hash-without-image"
INJECTED_LIST_ANNOTATION = "kruise.io/sidecarset-injected-list"
INJECT_POLICIES = ("BeforeAppContainer", "AfterAppContainer")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_key_error(key) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "has an invalid prefix"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return "is not a valid label key"
    return None


def selector_errors(selector, field: str) -> list[str]:
    if not isinstance(selector, dict):
        return [f"{field}: must be an object"]
    errors = []
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, dict) or not isinstance(expressions, list):
        return [f"{field}: matchLabels must be a map and matchExpressions a list"]
    for key, value in match_labels.items():
        if (why := _label_key_error(key)) is not None:
            errors.append(f"{field}.matchLabels: key {key!r} {why}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"{field}.matchLabels[{key}]: {value!r} is not a valid label value")
    for i, expr in enumerate(expressions):
        where = f"{field}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            errors.append(f"{where}: must be an object")
            continue
        if (why := _label_key_error(expr.get("key"))) is not None:
            errors.append(f"{where}.key {why}")
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errors.append(f"{where}: operator {op} needs at least one value")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errors.append(f"{where}: operator {op} takes no values")
        else:
            errors.append(f"{where}: unknown operator {op!r} (In, NotIn, Exists, DoesNotExist)")
    return errors


# ---- selection --------------------------------------------------------------------------
def selects_namespace(sidecarset: dict, namespace: str, namespace_labels: dict | None) -> bool:
    spec = sidecarset.get("spec") or {}
    if spec.get("namespace") and spec["namespace"] != namespace:
        return False
    if spec.get("namespaceSelector") is not None:
        return selector_matches(spec["namespaceSelector"], namespace_labels)
    return True


def selects(sidecarset: dict, namespace: str, pod_labels: dict | None, namespace_labels: dict | None) -> bool:
    spec = sidecarset.get("spec") or {}
    if spec.get("selector") is None:
        return False
    return selects_namespace(sidecarset, namespace, namespace_labels) and selector_matches(spec["selector"], pod_labels)


def spec_hash(spec: dict, without_image: bool = False) -> str:
    """A stable revision of what a SidecarSet injects (its containers)."""
    containers = copy.deepcopy(spec.get("containers") or [])
    if without_image:
        for container in containers:
            container.pop("image", None)
    digest = hashlib.sha256(json.dumps(containers, sort_keys=True).encode()).hexdigest()
    return digest[:20]


# ---- injection --------------------------------------------------------------------------
_SIDECAR_ONLY_FIELDS = ("podInjectPolicy", "shareVolumePolicy", "transferEnv", "upgradeStrategy", "hotUpgrade")


def _as_container(sidecar: dict, app_containers: list[dict], pod_volumes: set[str]) -> dict:
    container = {k: copy.deepcopy(v) for k, v in sidecar.items() if k not in _SIDECAR_ONLY_FIELDS}
    env = container.setdefault("env", [])
    names = {e.get("name") for e in env}
    for transfer in sidecar.get("transferEnv") or []:
        source = next((c for c in app_containers if c.get("name") == transfer.get("sourceContainerName")), None)
        wanted = ([transfer["envName"]] if transfer.get("envName") else []) + list(transfer.get("envNames") or [])
        for item in (source or {}).get("env") or []:
            if item.get("name") in wanted and item.get("name") not in names:
                env.append(copy.deepcopy(item))
                names.add(item["name"])
    if "IS_INJECTED" not in names:
        env.append({"name": "IS_INJECTED", "value": "true"})
    if (sidecar.get("shareVolumePolicy") or {}).get("type", "").lower() == "enabled":
        mounts = container.setdefault("volumeMounts", [])
        taken_names, taken_paths = {m.get("name") for m in mounts}, {m.get("mountPath") for m in mounts}
        for app in app_containers:
            for mount in app.get("volumeMounts") or []:
                if mount.get("name") in pod_volumes and mount.get("name") not in taken_names \
                        and mount.get("mountPath") not in taken_paths:
                    mounts.append(copy.deepcopy(mount))
                    taken_names.add(mount["name"])
                    taken_paths.add(mount["mountPath"])
    return container


def inject(pod: dict, sidecarsets: list[dict], now: str | None = None) -> tuple[dict, list[str]]:
    """The pod with every given SidecarSet's containers, init containers and volumes added
    (the pod's own entries always win a name clash), and upstream's annotations. Returns the
    new pod and the names of the SidecarSets injected."""
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    meta = pod.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    app_containers = list(spec.get("containers") or [])
    before, after = [], []
    init_containers = list(spec.get("initContainers") or [])
    volumes = list(spec.get("volumes") or [])
    used_names = {c.get("name") for c in app_containers + init_containers}
    volume_names = {v.get("name") for v in volumes}
    hashes = json.loads(annotations.get(HASH_ANNOTATION) or "{}")
    hashes_without_image = json.loads(annotations.get(HASH_WITHOUT_IMAGE_ANNOTATION) or "{}")
    stamp = now or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    injected = []
    for sidecarset in sorted(sidecarsets, key=lambda s: s["metadata"]["name"]):
        name = sidecarset["metadata"]["name"]
        ss_spec = sidecarset.get("spec") or {}
        for volume in ss_spec.get("volumes") or []:
            if volume.get("name") not in volume_names:
                volumes.append(copy.deepcopy(volume))
                volume_names.add(volume["name"])
        added = []
        for init in ss_spec.get("initContainers") or []:
            if init.get("name") not in used_names:
                init_containers.append({k: copy.deepcopy(v) for k, v in init.items() if k not in _SIDECAR_ONLY_FIELDS})
                used_names.add(init["name"])
        for sidecar in ss_spec.get("containers") or []:
            if sidecar.get("name") in used_names:
                continue
            container = _as_container(sidecar, app_containers, volume_names)
            (before if sidecar.get("podInjectPolicy") == "BeforeAppContainer" else after).append(container)
            used_names.add(sidecar["name"])
            added.append(sidecar["name"])
        injected.append(name)
        sidecar_list = [c.get("name") for c in ss_spec.get("containers") or []]
        hashes[name] = {"updateTimestamp": stamp, "hash": spec_hash(ss_spec), "sidecarSetName": name,
                        "sidecarList": sidecar_list}
        hashes_without_image[name] = {"updateTimestamp": stamp, "hash": spec_hash(ss_spec, without_image=True),
                                      "sidecarSetName": name, "sidecarList": sidecar_list}
    if not injected:
        return pod, []
    spec["containers"] = before + app_containers + after
    if init_containers:
        spec["initContainers"] = init_containers
    if volumes:
        spec["volumes"] = volumes
    previous = [n for n in (annotations.get(INJECTED_LIST_ANNOTATION) or "").split(",") if n]
    annotations.update({
        HASH_ANNOTATION: json.dumps(hashes, sort_keys=True),
        HASH_WITHOUT_IMAGE_ANNOTATION: json.dumps(hashes_without_image, sort_keys=True),
        INJECTED_LIST_ANNOTATION: ",".join(sorted(set(previous) | set(injected))),
    })
    meta["annotations"] = annotations
    return pod, injected


def patch_for(old: dict, new: dict) -> list[dict]:
    """A JSONPatch from ``old`` to ``new`` for the fields injection touches."""
    ops = []
    for section, fields in (("metadata", ("annotations",)), ("spec", ("containers", "initContainers", "volumes"))):
        for name in fields:
            before, after = (old.get(section) or {}).get(name), (new.get(section) or {}).get(name)
            if after is not None and after != before:
                ops.append({"op": "add", "path": f"/{section}/{name}", "value": after})
    return ops


# ---- validation -------------------------------------------------------------------------
def _container_errors(container, where: str) -> list[str]:
    if not isinstance(container, dict):
        return [f"{where}: must be an object"]
    errors = []
    name = container.get("name")
    if not isinstance(name, str) or not _DNS1123_LABEL.match(name) or len(name) > 63:
        errors.append(f"{where}.name: {name!r} must be a DNS-1123 label (lowercase letters, digits, '-')")
    if not container.get("image"):
        errors.append(f"{where}.image: required")
    policy = container.get("podInjectPolicy")
    if policy is not None and policy not in INJECT_POLICIES:
        errors.append(f"{where}.podInjectPolicy: {policy!r} is not one of {', '.join(INJECT_POLICIES)}")
    share = container.get("shareVolumePolicy")
    if share is not None and (not isinstance(share, dict) or str(share.get("type", "")).lower() not in ("enabled", "disabled")):
        errors.append(f"{where}.shareVolumePolicy.type: must be enabled or disabled")
    for j, transfer in enumerate(container.get("transferEnv") or []):
        if not isinstance(transfer, dict) or not transfer.get("sourceContainerName") or not (
                transfer.get("envName") or transfer.get("envNames")):
            errors.append(f"{where}.transferEnv[{j}]: needs sourceContainerName and envName or envNames")
    if "IS_INJECTED" in {e.get("name") for e in container.get("env") or [] if isinstance(e, dict)}:
        errors.append(f"{where}.env: IS_INJECTED is set by injection and must not be declared")
    return errors


def _may_overlap(a: dict, b: dict) -> bool:
    """Could both SidecarSets select one pod? Conservative: only provably disjoint
    namespaces or conflicting matchLabels rule it out."""
    sa, sb = a.get("spec") or {}, b.get("spec") or {}
    if sa.get("namespace") and sb.get("namespace") and sa["namespace"] != sb["namespace"]:
        return False
    la = (sa.get("selector") or {}).get("matchLabels") or {}
    lb = (sb.get("selector") or {}).get("matchLabels") or {}
    return all(lb.get(k, v) == v for k, v in la.items())


def validate(sidecarset: dict, others: list[dict] = ()) -> list[str]:
    """Every reason ``sidecarset`` is invalid (empty when it is fine). ``others``: the other
    SidecarSets in the cluster, checked for container name clashes on shared pods."""
    errors = []
    if not isinstance(sidecarset, dict):
        return ["object: must be a SidecarSet"]
    spec = sidecarset.get("spec")
    if not isinstance(spec, dict):
        return ["spec: required"]
    if spec.get("selector") is None:
        errors.append("spec.selector: required")
    else:
        errors += selector_errors(spec["selector"], "spec.selector")
    if spec.get("namespace") and spec.get("namespaceSelector") is not None:
        errors.append("spec.namespace and spec.namespaceSelector are mutually exclusive")
    if spec.get("namespaceSelector") is not None:
        errors += selector_errors(spec["namespaceSelector"], "spec.namespaceSelector")
    containers, inits = spec.get("containers") or [], spec.get("initContainers") or []
    if not isinstance(containers, list) or not isinstance(inits, list):
        return errors + ["spec.containers and spec.initContainers must be lists"]
    if not containers and not inits:
        errors.append("spec.containers: at least one container or init container is required")
    seen: set[str] = set()
    for field, items in (("spec.containers", containers), ("spec.initContainers", inits)):
        for i, container in enumerate(items):
            errors += _container_errors(container, f"{field}[{i}]")
            name = container.get("name") if isinstance(container, dict) else None
            if name in seen:
                errors.append(f"{field}[{i}].name: duplicate container name {name!r}")
            seen.add(name)
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") if isinstance(volume, dict) else None
        if not name:
            errors.append(f"spec.volumes[{i}].name: required")
        elif name in volume_names:
            errors.append(f"spec.volumes[{i}].name: duplicate volume name {name!r}")
        volume_names.add(name)
    paused = (spec.get("injectionStrategy") or {}).get("paused")
    if paused is not None and not isinstance(paused, bool):
        errors.append("spec.injectionStrategy.paused: must be true or false")
    own = sidecarset.get("metadata", {}).get("name")
    for other in others:
        if other.get("metadata", {}).get("name") == own or not _may_overlap(sidecarset, other):
            continue
        theirs = {c.get("name") for c in (other.get("spec") or {}).get("containers") or []}
        for name in sorted((seen - {None}) & theirs):
            errors.append(f"container {name!r} is also injected by SidecarSet {other['metadata']['name']} "
                          "into pods both may select")
    return errors


# ---- status -----------------------------------------------------------------------------
def pod_revision(pod_annotations: dict | None, sidecarset_name: str) -> str | None:
    try:
        return (json.loads((pod_annotations or {}).get(HASH_ANNOTATION) or "{}").get(sidecarset_name) or {}).get("hash")
    except (ValueError, AttributeError):
        return None


def compute_status(sidecarset: dict, pods: list[dict], namespace_labels: dict[str, dict]) -> dict:
    """Status from slim pods (``namespace``, ``labels``, ``annotations``, ``ready``)."""
    name = sidecarset["metadata"]["name"]
    revision = spec_hash(sidecarset.get("spec") or {})
    matched = updated = ready = updated_ready = 0
    for pod in pods:
        if not selects(sidecarset, pod["namespace"], pod["labels"], namespace_labels.get(pod["namespace"])):
            continue
        matched += 1
        is_updated = pod_revision(pod["annotations"], name) == revision
        updated += is_updated
        ready += pod["ready"]
        updated_ready += is_updated and pod["ready"]
    return {"observedGeneration": sidecarset["metadata"].get("generation", 0), "matchedPods": matched,
            "updatedPods": updated, "readyPods": ready, "updatedReadyPods": updated_ready, "latestRevision": revision}
