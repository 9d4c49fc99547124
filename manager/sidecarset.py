"""SidecarSet (apps.kruise.io/v1alpha1): which pods it selects, how it is defaulted, what
it injects, what is a valid one, and what its status says, each as upstream OpenKruise v1.8.3
does it (the differential test, tests/upstream/test_injection_parity.py, runs both managers).
Pure functions over plain dicts, used by the pod and SidecarSet webhooks and by the leader's
status controller.

Honoured fields (a subset of upstream; the README lists them): ``selector``,
``namespace``, ``namespaceSelector``, ``containers`` (with ``podInjectPolicy``,
``shareVolumePolicy``, ``transferEnv``), ``initContainers``, ``volumes``,
``imagePullSecrets``, ``injectionStrategy.paused``; every field is defaulted and stored as
upstream's webhook stores it. Injection records upstream's annotations
(``kruise.io/sidecarset-hash``, ``kruise.io/sidecarset-hash-without-image``,
``kruise.io/sidecarset-injected-list``). No in-place sidecar upgrade.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re

from kubekit.labels import selector_matches

from kubekit import quantity

from . import gojson

GROUP_VERSION = "apps.kruise.io/v1alpha1"
HASH_ANNOTATION = "kruise.io/sidecarset-hash"
HASH_WITHOUT_IMAGE_ANNOTATION = "kruise.io/sidecarset-hash-without-image"
INJECTED_LIST_ANNOTATION = "kruise.io/sidecarset-injected-list"
INJECT_POLICIES = ("BeforeAppContainer", "AfterAppContainer")
IS_INJECTED = "IS_INJECTED"
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString
_SUBPATH_ENV = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_SPEC = ("struct", "apps/v1alpha1.SidecarSetSpec")
_FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")  # where transferEnv may read a name
_REVISION_FIELDS = ("volumes", "containers", "initContainers", "imagePullSecrets", "patchPodMetadata")
_VOLUME_DEFAULTS = {
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {"cachingMode": "ReadWrite", "kind": "Shared", "fsType": "ext4", "readOnly": False},
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}
_HOST = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(  # distribution/reference's grammar: name[:tag][@digest]
    rf"^((?:(?:{_HOST}(?:\.{_HOST})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?$")
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
    """As upstream: an absent or empty selector selects no pod."""
    selector = (sidecarset.get("spec") or {}).get("selector") or {}
    if not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    return selects_namespace(sidecarset, namespace, namespace_labels) and selector_matches(selector, pod_labels)


def namespace_index(sidecarset: dict) -> list[str] | None:
    """The namespaces upstream files a SidecarSet under (None: cluster scope). Upstream injects
    the SidecarSets filed under the pod's namespace before the cluster-scoped ones."""
    spec = sidecarset.get("spec") or {}
    if spec.get("namespace"):
        return [spec["namespace"]]
    selector = spec.get("namespaceSelector")
    if selector is not None:
        if METADATA_NAME_LABEL in (selector.get("matchLabels") or {}):
            return [selector["matchLabels"][METADATA_NAME_LABEL]]
        for expression in selector.get("matchExpressions") or []:
            if expression.get("key") == METADATA_NAME_LABEL and expression.get("operator") == "In":
                return list(expression.get("values") or [])
    return None


# ---- defaulting and revisions -------------------------------------------------------------
def _image_tag(image: str | None) -> str | None:
    """The tag of an image reference as the container runtime reads it ("latest" when it has
    neither tag nor digest, "" with only a digest), None when it is not a valid reference."""
    image = image or ""
    if re.fullmatch(r"[a-f0-9]{64}", image):
        return None
    slash = image.find("/")
    first = image[:slash]
    if slash == -1 or (not any(ch in first for ch in ".:") and first != "localhost" and first.lower() == first):
        full, remainder = "docker.io/" + image, image
    else:
        full, remainder = image, image[slash + 1:]
    remote = remainder.split(":", 1)[0]
    found = _IMAGE_REFERENCE.match(full)
    if remote.lower() != remote or found is None or len(found.group(1)) > 255:
        return None
    return found.group(2) or ("" if found.group(3) else "latest")


def _default_probe(probe: dict | None) -> None:
    if probe is None:
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))


def _default_http_get(action: dict | None) -> None:
    if action is not None:
        action["path"] = action.get("path") or "/"
        action["scheme"] = action.get("scheme") or "HTTP"


def _default_field_ref(ref: dict | None) -> None:
    if ref is not None and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _default_container(container: dict, inject_policy: str) -> None:
    """Upstream's SidecarContainer defaults (its own and Kubernetes' container defaults)."""
    container["podInjectPolicy"] = container.get("podInjectPolicy") or inject_policy
    container.setdefault("upgradeStrategy", {})["upgradeType"] = \
        container["upgradeStrategy"].get("upgradeType") or "ColdUpgrade"
    container.setdefault("shareVolumePolicy", {})["type"] = container["shareVolumePolicy"].get("type") or "disabled"
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = "Always" if _image_tag(container.get("image")) == "latest" else "IfNotPresent"
    container["terminationMessagePath"] = container.get("terminationMessagePath") or "/dev/termination-log"
    container["terminationMessagePolicy"] = container.get("terminationMessagePolicy") or "File"
    for port in container.get("ports") or []:
        port["protocol"] = port.get("protocol") or "TCP"
    for transfer in container.get("transferEnv") or []:
        _default_field_ref((transfer.get("sourceContainerNameFrom") or {}).get("fieldRef"))
    for env in container.get("env") or []:
        _default_field_ref((env.get("valueFrom") or {}).get("fieldRef"))
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        for name, value in (resources.get(kind) or {}).items():
            resources[kind][name] = str(quantity.round_up(quantity.parse(value), -3))
    _default_probe(container.get("livenessProbe"))
    _default_probe(container.get("readinessProbe"))
    for hook in ("postStart", "preStop"):
        _default_http_get(((container.get("lifecycle") or {}).get(hook) or {}).get("httpGet"))


def _default_volume(volume: dict) -> None:
    """Kubernetes' volume defaults, as upstream applies them to a SidecarSet's volumes."""
    if not any(key != "name" for key in volume):
        volume["emptyDir"] = {}
    if "hostPath" in volume:
        volume["hostPath"].setdefault("type", "")
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if source in volume and volume[source].get("defaultMode") is None:
            volume[source]["defaultMode"] = 420
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        _default_field_ref(item.get("fieldRef"))
    for projection in (volume.get("projected") or {}).get("sources") or []:
        for item in (projection.get("downwardAPI") or {}).get("items") or []:
            _default_field_ref(item.get("fieldRef"))
        if "serviceAccountToken" in projection and projection["serviceAccountToken"].get("expirationSeconds") is None:
            projection["serviceAccountToken"]["expirationSeconds"] = 3600
    for source, defaults in _VOLUME_DEFAULTS.items():
        if source in volume:
            for key, value in defaults.items():
                if volume[source].get(key) in (None, ""):
                    volume[source][key] = value


def revision_hashes(spec: dict) -> tuple[str, str]:
    """Upstream's ``kruise.io/sidecarset-hash`` and ``-hash-without-image`` of a (defaulted)
    spec: sha256 of Go's encoding of the containers (and of the init containers when one is
    a native sidecar, ``restartPolicy: Always``), hex, each byte mapped onto an alphabet."""
    spec = gojson.normalize(spec, _SPEC)
    hashes = []
    for without_image in (False, True):
        containers = copy.deepcopy(spec.get("containers"))
        inits = copy.deepcopy(spec.get("initContainers"))
        if without_image:
            for container in (containers or []) + (inits or []):
                container.pop("image", None)
        encoded = {"containers": containers}
        if any(c.get("restartPolicy") == "Always" for c in inits or []):
            encoded["initContainers"] = inits
        digest = hashlib.sha256(gojson.dumps(encoded).encode()).hexdigest()
        hashes.append("".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in digest))
    return hashes[0], hashes[1]


def defaulted(sidecarset: dict) -> dict:
    """The SidecarSet as upstream's SidecarSet mutating webhook has the apiserver store it:
    decoded into its Go types, defaulted, encoded again, and its two revision hashes added as
    annotations. Raises gojson.DecodeError / quantity.QuantityError when the types refuse it."""
    obj = gojson.normalize(sidecarset)
    spec = obj["spec"]
    strategy = spec["updateStrategy"]
    strategy["type"] = strategy.get("type") or "RollingUpdate"
    strategy["maxUnavailable"] = 1 if strategy.get("maxUnavailable") is None else strategy["maxUnavailable"]
    strategy["partition"] = 0 if strategy.get("partition") is None else strategy["partition"]
    for container in spec.get("initContainers") or []:
        _default_container(container, "AfterAppContainer")
    for container in spec.get("containers") or []:
        _default_container(container, "BeforeAppContainer")
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    for patch in spec.get("patchPodMetadata") or []:
        patch["patchPolicy"] = patch.get("patchPolicy") or "Retain"
    revision = spec["injectionStrategy"].get("revision")
    if revision is not None and not revision.get("policy"):
        revision["policy"] = "Always"
    obj = gojson.normalize(obj)
    metadata = copy.deepcopy(sidecarset.get("metadata") or {})
    annotations = metadata.get("annotations") or {}
    annotations[HASH_ANNOTATION], annotations[HASH_WITHOUT_IMAGE_ANNOTATION] = revision_hashes(obj["spec"])
    metadata["annotations"] = annotations
    obj["metadata"] = metadata
    return obj


def revisions_of(sidecarset: dict) -> tuple[str, str]:
    """The revision hashes a SidecarSet carries (its annotations, as upstream reads them);
    computed for one stored without them (created before the defaulting webhook)."""
    annotations = (sidecarset.get("metadata") or {}).get("annotations") or {}
    if annotations.get(HASH_ANNOTATION) and annotations.get(HASH_WITHOUT_IMAGE_ANNOTATION):
        return annotations[HASH_ANNOTATION], annotations[HASH_WITHOUT_IMAGE_ANNOTATION]
    return revision_hashes(sidecarset.get("spec") or {})


def _fnv32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def controller_revision_name(sidecarset: dict) -> str:
    """The name of the ControllerRevision upstream's controller records for the SidecarSet's
    current spec (``status.latestRevision``, the pods' ``controllerRevision``): the name, "-",
    and the FNV-32 of the revision's data (the spec's containers, init containers, volumes,
    image pull secrets and metadata patches, as JSON with sorted keys) and collision count."""
    spec = gojson.normalize(sidecarset.get("spec") or {}, _SPEC)
    data = {"spec": {"$patch": "replace", **{k: spec.get(k) for k in _REVISION_FIELDS}}}
    collisions = ((sidecarset.get("status") or {}).get("collisionCount")) or 0
    digest = _fnv32(gojson.dumps(data, sort_keys=True).encode() + str(collisions).encode())
    safe = "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(digest))
    return f"{sidecarset['metadata']['name'][:223]}-{safe}"


# ---- injection --------------------------------------------------------------------------
_SIDECAR_ONLY_FIELDS = ("podInjectPolicy", "shareVolumePolicy", "transferEnv", "upgradeStrategy")


class InjectionError(ValueError):
    """Upstream refuses the pod too (an unreadable hash annotation, a sidecar mounting a
    volume its SidecarSet does not declare)."""


def _merge_by(key: str, original: list[dict], additional: list[dict]) -> list[dict]:
    """``original`` then each of ``additional`` whose ``key`` is not taken yet."""
    taken = {item.get(key) for item in original}
    merged = list(original)
    for item in additional:
        if item.get(key) not in taken:
            merged.append(item)
            taken.add(item.get(key))
    return merged


def _shared_mounts(sidecar: dict, app_containers: list[dict]) -> tuple[list[dict], list[dict]]:
    """With shareVolumePolicy enabled: every mount of the app containers (sidecars already
    injected excluded), and the env their subPathExpr refers to."""
    if (sidecar.get("shareVolumePolicy") or {}).get("type") != "enabled":
        return [], []
    mounts, envs = [], []
    for app in app_containers:
        if any(e.get("name") == IS_INJECTED and e.get("value") == "true" for e in app.get("env") or []):
            continue
        for mount in app.get("volumeMounts") or []:
            mounts.append(copy.deepcopy(mount))
            for name in _SUBPATH_ENV.findall(mount.get("subPathExpr") or ""):
                found = next((e for e in app.get("env") or [] if e.get("name") == name), None)
                if found is not None:
                    envs.append(copy.deepcopy(found))
    return mounts, envs


def _source_container(transfer: dict, pod: dict) -> str | None:
    ref = (transfer.get("sourceContainerNameFrom") or {}).get("fieldRef")
    if ref is None:
        return transfer.get("sourceContainerName") or ""
    found = _FIELD_REF.match(ref.get("fieldPath") or "")
    if found is None:
        return None
    return ((pod.get("metadata") or {}).get(found.group(1)) or {}).get(found.group(2), "")


def _transfer_envs(sidecar: dict, pod: dict) -> list[dict]:
    """Each transferEnv's variables (sorted by name) copied from the named app container."""
    envs_in_pod = {(c.get("name"), e.get("name")): e for c in pod["spec"].get("containers") or []
                   for e in c.get("env") or []}
    out = []
    for transfer in sidecar.get("transferEnv") or []:
        names = set(transfer.get("envNames") or []) | ({transfer["envName"]} if transfer.get("envName") else set())
        source = _source_container(transfer, pod)
        if source is None:
            continue
        out += [copy.deepcopy(envs_in_pod[(source, n)]) for n in sorted(names) if (source, n) in envs_in_pod]
    return out


def _build(sidecar: dict, pod: dict, volumes: dict[str, dict], used: list[dict], where: str) -> dict:
    """The sidecar as injected: its own mounts and env, IS_INJECTED, then the transferred
    env and the shared mounts; the volumes it mounts go to ``used``."""
    sidecar = copy.deepcopy(sidecar)
    mounts, sub_path_envs = _shared_mounts(sidecar, pod["spec"].get("containers") or [])
    transfer = _merge_by("name", _transfer_envs(sidecar, pod), sub_path_envs)
    for mount in sidecar.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            raise InjectionError(f"{where}: volume {mount.get('name')!r} is mounted but not declared in spec.volumes")
        used.append(copy.deepcopy(volumes[mount["name"]]))
    if sidecar.get("volumeMounts") or mounts:
        sidecar["volumeMounts"] = _merge_by("mountPath", sidecar.get("volumeMounts") or [], mounts)
    sidecar["env"] = _merge_by("name", (sidecar.get("env") or []) + [{"name": IS_INJECTED, "value": "true"}], transfer)
    return sidecar


def _merge_containers(origins: list[dict], injected: list[dict]) -> list[dict]:
    """Upstream's merge: a sidecar named like a pod's container takes its place; the others go
    before (BeforeAppContainer) or after the pod's containers."""
    origins = list(origins)
    index = {c.get("name"): i for i, c in enumerate(origins)}
    before, after = [], []
    for sidecar in injected:
        container = {k: v for k, v in sidecar.items() if k not in _SIDECAR_ONLY_FIELDS}
        if sidecar.get("name") in index:
            origins[index[sidecar["name"]]] = container
        else:
            (before if sidecar.get("podInjectPolicy") == "BeforeAppContainer" else after).append(container)
    return before + origins + after


def _upgrade_specs(annotations: dict, key: str) -> dict:
    """A pod's hash annotation as upstream re-reads it (the old map of plain hashes too)."""
    text = annotations.get(key)
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        raise InjectionError(f"annotation {key} is not JSON") from None
    if not isinstance(parsed, dict):
        raise InjectionError(f"annotation {key} is not a JSON object")
    specs = {}
    for name, value in parsed.items():
        if isinstance(value, str):
            value = {"hash": value, "sidecarSetName": name}
        if not isinstance(value, dict):
            raise InjectionError(f"annotation {key}[{name}] is neither an object nor a string")
        specs[name] = {"updateTimestamp": value.get("updateTimestamp"), "hash": value.get("hash") or "",
                       "sidecarSetName": value.get("sidecarSetName") or "", "sidecarList": value.get("sidecarList"),
                       **({"controllerRevision": value["controllerRevision"]} if value.get("controllerRevision") else {})}
    return specs


def injection_order(sidecarsets: list[dict], namespace: str) -> list[dict]:
    """Upstream reads the SidecarSets filed under the pod's namespace first, then the
    cluster-scoped ones, each group in its cache's (unspecified) order; here by name."""
    def key(s):
        return (namespace not in (namespace_index(s) or []), s["metadata"]["name"])
    return sorted(sidecarsets, key=key)


def inject(pod: dict, sidecarsets: list[dict], now: str | None = None) -> tuple[dict, list[str]]:
    """The pod with the given (matching, unpaused) SidecarSets injected as upstream injects
    them on CREATE: containers by podInjectPolicy (a sidecar named like one of the pod's
    containers replaces it), init containers sorted by name after the pod's own, only the
    volumes the sidecars mount, image pull secrets, and the hash and injected-list
    annotations. Returns the new pod and the names of the SidecarSets injected. A pure
    function of its arguments (``now`` stamps the annotations). Raises InjectionError."""
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    meta = pod.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    hashes = _upgrade_specs(annotations, HASH_ANNOTATION)
    hashes_without_image = _upgrade_specs(annotations, HASH_WITHOUT_IMAGE_ANNOTATION)
    names = set(annotations[INJECTED_LIST_ANNOTATION].split(",")) if annotations.get(INJECTED_LIST_ANNOTATION) else set()
    stamp = now or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sidecars, inits, secrets, used_volumes, injected = [], [], [], [], []
    for sidecarset in injection_order(sidecarsets, meta.get("namespace") or "default"):
        name = sidecarset["metadata"]["name"]
        ss_spec = sidecarset.get("spec") or {}
        names.add(name)
        volumes = {v.get("name"): v for v in ss_spec.get("volumes") or []}
        sidecar_list = set()
        for i, init in enumerate(ss_spec.get("initContainers") or []):
            if init.get("restartPolicy") == "Always":
                sidecar_list.add(init.get("name"))
            inits.append(_build(init, pod, volumes, used_volumes, f"SidecarSet {name} initContainers[{i}]"))
        secrets += copy.deepcopy(ss_spec.get("imagePullSecrets") or [])
        for i, container in enumerate(ss_spec.get("containers") or []):
            sidecar_list.add(container.get("name"))
            sidecars.append(_build(container, pod, volumes, used_volumes, f"SidecarSet {name} containers[{i}]"))
        if not (ss_spec.get("initContainers") or ss_spec.get("containers")):
            continue
        injected.append(name)
        revision, revision_without_image = revisions_of(sidecarset)
        hashes[name] = {"updateTimestamp": stamp, "hash": revision, "sidecarSetName": name,
                        "sidecarList": sorted(sidecar_list)}
        latest = (sidecarset.get("status") or {}).get("latestRevision")
        if latest:
            hashes[name]["controllerRevision"] = latest
        hashes_without_image[name] = {"updateTimestamp": stamp, "hash": revision_without_image,
                                      "sidecarSetName": name, "sidecarList": sorted(sidecar_list)}
    if not sidecars and not inits:
        return pod, []
    inits.sort(key=lambda c: c.get("name") or "")
    if inits:
        spec["initContainers"] = _merge_containers(spec.get("initContainers") or [], inits)
    spec["containers"] = _merge_containers(spec.get("containers") or [], sidecars)
    if used_volumes or spec.get("volumes"):
        spec["volumes"] = _merge_by("name", spec.get("volumes") or [], used_volumes)
    pull_secrets = _merge_by("name", [], (spec.get("imagePullSecrets") or []) + secrets)
    if pull_secrets:
        spec["imagePullSecrets"] = pull_secrets
    annotations.update({
        HASH_ANNOTATION: gojson.dumps({k: hashes[k] for k in sorted(hashes)}),  # a Go map: sorted keys
        HASH_WITHOUT_IMAGE_ANNOTATION: gojson.dumps({k: hashes_without_image[k] for k in sorted(hashes_without_image)}),
        INJECTED_LIST_ANNOTATION: ",".join(sorted(names)),
    })
    meta["annotations"] = annotations
    return pod, injected


def patch_for(old: dict, new: dict) -> list[dict]:
    """A JSONPatch from ``old`` to ``new`` for the fields injection touches."""
    ops = []
    for section, fields in (("metadata", ("annotations",)),
                            ("spec", ("initContainers", "containers", "volumes", "imagePullSecrets"))):
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
        ref = ((transfer.get("sourceContainerNameFrom") or {}).get("fieldRef") if isinstance(transfer, dict) else None)
        if not isinstance(transfer, dict) or not (transfer.get("sourceContainerName") or ref) or not (
                transfer.get("envName") or transfer.get("envNames")):
            errors.append(f"{where}.transferEnv[{j}]: needs sourceContainerName or sourceContainerNameFrom.fieldRef, "
                          "and envName or envNames")
        elif ref is not None and not _FIELD_REF.match(ref.get("fieldPath") or ""):
            errors.append(f"{where}.transferEnv[{j}].sourceContainerNameFrom.fieldRef.fieldPath: "
                          f"{ref.get('fieldPath')!r} is not metadata.labels['<key>'] or metadata.annotations['<key>']")
    if "IS_INJECTED" in {e.get("name") for e in container.get("env") or [] if isinstance(e, dict)}:
        errors.append(f"{where}.env: IS_INJECTED is set by injection and must not be declared")
    return errors


def _update_errors(new: dict, old: dict) -> list[str]:
    before = {c.get("name"): (c.get("upgradeStrategy") or {}).get("upgradeType")
              for c in (old.get("spec") or {}).get("containers") or [] if isinstance(c, dict)}
    errors = []
    for container in ((new.get("spec") or {}).get("containers") or []) if isinstance(new.get("spec"), dict) else []:
        if not isinstance(container, dict):
            continue
        name = container.get("name")
        if name not in before:
            errors.append(f"spec.containers: container {name!r} is not in the SidecarSet being updated "
                          "(containers cannot be added by an update)")
        elif before[name] and (container.get("upgradeStrategy") or {}).get("upgradeType") != before[name]:
            errors.append(f"spec.containers: the upgradeType of container {name!r} is immutable")
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


def validate(sidecarset: dict, others: list[dict] = (), previous: dict | None = None) -> list[str]:
    """Every reason ``sidecarset`` is invalid (empty when it is fine). ``others``: the other
    SidecarSets in the cluster, checked for container name clashes on shared pods;
    ``previous``: the SidecarSet an update replaces (as upstream, an update may not add a
    container nor change a container's upgradeType)."""
    errors = _update_errors(sidecarset, previous) if previous is not None else []
    if not isinstance(sidecarset, dict):
        return ["object: must be a SidecarSet"]
    spec = sidecarset.get("spec")
    if not isinstance(spec, dict):
        return ["spec: required"]
    if spec.get("selector") is None:
        errors.append("spec.selector: required")
    else:
        errors += selector_errors(spec["selector"], "spec.selector")
        if isinstance(spec["selector"], dict) and not (spec["selector"].get("matchLabels")
                                                       or spec["selector"].get("matchExpressions")):
            errors.append("spec.selector: an empty selector is not valid for a SidecarSet")
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
    for field, items in (("spec.containers", containers), ("spec.initContainers", inits)):
        for i, container in enumerate(items):
            for j, mount in enumerate((container.get("volumeMounts") or []) if isinstance(container, dict) else []):
                if isinstance(mount, dict) and mount.get("name") not in volume_names:
                    errors.append(f"{field}[{i}].volumeMounts[{j}].name: {mount.get('name')!r} is not one of "
                                  "spec.volumes")
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
    """Status from slim pods (``namespace``, ``labels``, ``annotations``, ``ready``), in
    upstream's form: a pod is updated when it carries the SidecarSet's current hash,
    ``latestRevision`` names upstream's ControllerRevision, zero counts it omits are omitted."""
    name = sidecarset["metadata"]["name"]
    revision = revisions_of(sidecarset)[0]
    matched = updated = ready = updated_ready = 0
    for pod in pods:
        if not selects(sidecarset, pod["namespace"], pod["labels"], namespace_labels.get(pod["namespace"])):
            continue
        matched += 1
        is_updated = pod_revision(pod["annotations"], name) == revision
        updated += is_updated
        ready += pod["ready"]
        updated_ready += is_updated and pod["ready"]
    collisions = (sidecarset.get("status") or {}).get("collisionCount") or 0
    return gojson.normalize({
        "observedGeneration": sidecarset["metadata"].get("generation", 0), "matchedPods": matched,
        "updatedPods": updated, "readyPods": ready, "updatedReadyPods": updated_ready,
        "latestRevision": controller_revision_name(sidecarset), "collisionCount": collisions},
        ("struct", "apps/v1alpha1.SidecarSetStatus"))
