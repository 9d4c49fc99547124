"""SidecarSet (apps.kruise.io/v1alpha1): which pods it selects, how it is defaulted, what
it injects, what is a valid one, and what its status says, each as upstream OpenKruise v1.8.3
does it (the differential test, tests/upstream/test_injection_parity.py, runs both managers).
Pure functions over plain dicts, used by the pod and SidecarSet webhooks and by the leader's
status controller.

Every field of upstream's CRD is honoured or refused at admission (docs/sidecarset.md lists
them): ``injectionStrategy.revision`` is refused (no ControllerRevision history here); the
rest is defaulted and stored as upstream's webhook stores it and injected as upstream injects
it on CREATE, HotUpgrade containers and ``patchPodMetadata`` (with its whitelist) included.
Injection records upstream's annotations (``kruise.io/sidecarset-hash``,
``kruise.io/sidecarset-hash-without-image``, ``kruise.io/sidecarset-injected-list``, the
hot-upgrade version and working-container ones). No in-place sidecar upgrade of running pods.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re

from kubekit.labels import selector_matches
from kubekit.timestamps import metav1_time

from kubekit import formats, quantity

from . import gojson

GROUP_VERSION = "apps.kruise.io/v1alpha1"
HASH_ANNOTATION = "kruise.io/sidecarset-hash"
HASH_WITHOUT_IMAGE_ANNOTATION = "kruise.io/sidecarset-hash-without-image"
INJECTED_LIST_ANNOTATION = "kruise.io/sidecarset-injected-list"
WORKING_HOT_UPGRADE_ANNOTATION = "kruise.io/sidecarset-working-hotupgrade-container"
VERSION_ANNOTATION = "version.sidecarset.kruise.io/"  # + the hot-upgrade container's name
VERSION_ALT_ANNOTATION = "versionalt.sidecarset.kruise.io/"
HOT_UPGRADE = "HotUpgrade"
CONFIGURATION_NAME = "kruise-configuration"  # upstream's ConfigMap, in the manager's namespace
PATCH_METADATA_WHITELIST_KEY = "SidecarSet_PatchPodMetadata_WhiteList"
PATCH_METADATA_DEFAULTS_ALLOWED = "SidecarSetPatchPodMetadataDefaultsAllowed"  # upstream's feature gate
INJECT_POLICIES = ("BeforeAppContainer", "AfterAppContainer")
IS_INJECTED = "IS_INJECTED"
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString
_SUBPATH_ENV = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_SPEC = ("struct", "apps/v1alpha1.SidecarSetSpec")
_VOLUME = ("struct", "core/v1.Volume")
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
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")


def _label_key_error(key) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not formats.DNS1123_SUBDOMAIN.match(prefix)):
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
        if not isinstance(value, str) or len(value) > 63 or not formats.LABEL_VALUE.match(value):
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
        if next((e.get("value") for e in app.get("env") or [] if e.get("name") == IS_INJECTED), None) == "true":
            continue  # upstream reads the first IS_INJECTED
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


class _RawNumber(str):
    """A JSON number as written: Go's merge patch copies number text unchanged."""


def _go_compact(value) -> str:
    """encoding/json's output for a decoded merge-patch document: object keys sorted, numbers
    as written, strings escaped as Go escapes them."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_compact(str(k))}:{_go_compact(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_compact(v) for v in value) + "]"
    if isinstance(value, _RawNumber):
        return str(value)
    return gojson.dumps(value)


def _loads_raw(text: str):
    return json.loads(text, parse_int=_RawNumber, parse_float=_RawNumber,
                      parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def _prune_nulls(value):
    """evanphx/json-patch's pruneNulls: drops null members of objects (at any depth);
    arrays keep their nulls."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) if v is not None else None for v in value]
    return value


def _merge(current, patch):
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif merged.get(key) is None:
            merged[key] = _prune_nulls(value)
        else:
            merged[key] = _merge(merged[key], value)
    return merged


def merge_patch(document: str, patch: str) -> str:
    """evanphx/json-patch v5.6 MergePatch (RFC 7386), as upstream applies a MergePatchJson
    annotation: a document or patch that is not JSON, or is null, is an error; a document that
    is not an object becomes the patch (an array patch is returned as is)."""
    try:
        doc = _loads_raw(document)
    except ValueError:
        raise InjectionError("Invalid JSON Document") from None
    try:
        change = _loads_raw(patch)
    except ValueError:
        raise InjectionError("Invalid JSON Patch") from None
    if doc is None:
        raise InjectionError("Invalid JSON Document")
    if change is None:
        raise InjectionError("Invalid JSON Patch")
    if not isinstance(doc, dict) or not isinstance(change, dict):
        if isinstance(change, dict):
            return _go_compact(_prune_nulls(change))
        if not isinstance(change, list):
            raise InjectionError("Invalid JSON Patch")
        return _go_compact(_prune_nulls(change))
    return _go_compact(_merge(doc, change))


def patch_pod_metadata(annotations: dict, patches: list[dict] | None) -> None:
    """Upstream's PatchPodMetadata on the pod's annotations, in place: Retain (or no policy)
    adds a key the pod lacks, Overwrite sets it, MergePatchJson merges the value into the
    pod's (JSON merge patch) or sets it; another policy does nothing."""
    for patch in patches or []:
        policy = patch.get("patchPolicy") or "Retain"
        for key, value in (patch.get("annotations") or {}).items():
            if policy == "Retain":
                annotations.setdefault(key, value)
            elif policy == "Overwrite":
                annotations[key] = value
            elif policy == "MergePatchJson":
                origin = annotations.get(key)
                annotations[key] = merge_patch(origin, value) if origin else value


def _is_native_sidecar(container: dict) -> bool:
    return container.get("restartPolicy") == "Always"


def _is_hot_upgrade(container: dict) -> bool:
    return (container.get("upgradeStrategy") or {}).get("upgradeType") == HOT_UPGRADE


def _hot_upgrade_pair(sidecar: dict, working: dict, annotations: dict) -> list[dict]:
    """Upstream's injectHotUpgradeContainers: ``<name>-1`` (working) and ``<name>-2`` (with
    ``hotUpgradeEmptyImage``), each given SIDECARSET_VERSION(_ALT) from its version
    annotations (1/0 and 0/1); ``working`` records ``<name> -> <name>-1``."""
    name = sidecar.get("name") or ""
    pair = []
    for suffix, version, alt in (("-1", "1", "0"), ("-2", "0", "1")):
        container = copy.deepcopy(sidecar)
        container["name"] = name + suffix
        if suffix == "-2":
            container["image"] = (sidecar.get("upgradeStrategy") or {}).get("hotUpgradeEmptyImage") or ""
        container["env"] = (container.get("env") or []) + [
            {"name": env, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{prefix}{name}{suffix}']"}}}
            for env, prefix in (("SIDECARSET_VERSION", VERSION_ANNOTATION),
                                ("SIDECARSET_VERSION_ALT", VERSION_ALT_ANNOTATION))]
        annotations[VERSION_ANNOTATION + name + suffix] = version
        annotations[VERSION_ALT_ANNOTATION + name + suffix] = alt
        pair.append(container)
    working[name] = name + "-1"
    annotations[WORKING_HOT_UPGRADE_ANNOTATION] = gojson.dumps({k: working[k] for k in sorted(working)})
    return pair


def _working_hot_upgrade(annotations: dict) -> dict:
    """The pod's record of its working hot-upgrade containers; unreadable is empty, as upstream."""
    try:
        found = json.loads(annotations.get(WORKING_HOT_UPGRADE_ANNOTATION) or "")
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


def inject(pod: dict, sidecarsets: list[dict], now: str | None = None) -> tuple[dict, list[str]]:
    """The pod with the given (matching, unpaused) SidecarSets injected as upstream injects
    them on CREATE: first each SidecarSet's patchPodMetadata on the pod's annotations, then
    containers by podInjectPolicy (a sidecar named like one of the pod's containers replaces
    it; a HotUpgrade sidecar as its two containers), init containers sorted by name after the
    pod's own, only the volumes the sidecars mount, image pull secrets, and the hash,
    injected-list and hot-upgrade annotations. Returns the new pod and the names of the
    SidecarSets injected. A pure function of its arguments (``now`` stamps the annotations).
    Raises InjectionError."""
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    meta = pod.setdefault("metadata", {})
    ordered = injection_order(sidecarsets, meta.get("namespace") or "default")
    annotations = dict(meta.get("annotations") or {})
    for sidecarset in ordered:
        patch_pod_metadata(annotations, (sidecarset.get("spec") or {}).get("patchPodMetadata"))
    if annotations or meta.get("annotations") is not None:
        meta["annotations"] = annotations  # transferEnv's sourceContainerNameFrom reads the patched pod
    hashes = _upgrade_specs(annotations, HASH_ANNOTATION)
    hashes_without_image = _upgrade_specs(annotations, HASH_WITHOUT_IMAGE_ANNOTATION)
    working = _working_hot_upgrade(annotations)
    hot_annotations: dict[str, str] = {}
    names = set(annotations[INJECTED_LIST_ANNOTATION].split(",")) if annotations.get(INJECTED_LIST_ANNOTATION) else set()
    stamp = now or metav1_time()
    sidecars, inits, secrets, used_volumes, injected = [], [], [], [], []
    for sidecarset in ordered:
        name = sidecarset["metadata"]["name"]
        ss_spec = sidecarset.get("spec") or {}
        names.add(name)
        volumes = {v.get("name"): v for v in ss_spec.get("volumes") or []}
        sidecar_list = set()
        for i, init in enumerate(ss_spec.get("initContainers") or []):
            if _is_native_sidecar(init):
                sidecar_list.add(init.get("name"))
            built = _build(init, pod, volumes, used_volumes, f"SidecarSet {name} initContainers[{i}]")
            if _is_native_sidecar(init) and _is_hot_upgrade(init):
                inits += _hot_upgrade_pair(built, working, hot_annotations)
            else:
                inits.append(built)
        secrets += copy.deepcopy(ss_spec.get("imagePullSecrets") or [])
        for i, container in enumerate(ss_spec.get("containers") or []):
            sidecar_list.add(container.get("name"))
            built = _build(container, pod, volumes, used_volumes, f"SidecarSet {name} containers[{i}]")
            sidecars += _hot_upgrade_pair(built, working, hot_annotations) if _is_hot_upgrade(container) else [built]
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
    annotations.update(hot_annotations)
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
def _container_errors(container, where: str, init: bool = False) -> list[str]:
    """An init container's podInjectPolicy, shareVolumePolicy and transferEnv are not checked:
    upstream checks them on containers only (and injection ignores what they cannot mean)."""
    if not isinstance(container, dict):
        return [f"{where}: must be an object"]
    errors = []
    name = container.get("name")
    if not isinstance(name, str) or not formats.DNS1123_LABEL.match(name) or len(name) > 63:
        errors.append(f"{where}.name: {name!r} must be a DNS-1123 label (lowercase letters, digits, '-')")
    image = container.get("image")
    if not image:
        errors.append(f"{where}.image: required")
    elif isinstance(image, str) and image != image.strip():
        errors.append(f"{where}.image: {image!r} must not have leading or trailing whitespace")
    for j, env in enumerate(container.get("env") or []):
        env_name = env.get("name") if isinstance(env, dict) else None
        if not env_name:
            errors.append(f"{where}.env[{j}].name: required")
        elif not formats.ENV_VAR_NAME.match(env_name):
            errors.append(f"{where}.env[{j}].name: {env_name!r} is not a valid environment variable name "
                          "(letters, digits, '_', '-', '.', not starting with a digit)")
    errors += _mount_errors(container.get("volumeMounts"), where)
    errors += _resource_errors(container.get("resources"), where)
    if init:
        return errors
    policy = container.get("podInjectPolicy")
    if policy is not None and policy not in INJECT_POLICIES:
        errors.append(f"{where}.podInjectPolicy: {policy!r} is not one of {', '.join(INJECT_POLICIES)}")
    share = container.get("shareVolumePolicy")
    if share is not None and (not isinstance(share, dict) or share.get("type", "disabled") not in ("enabled", "disabled")):
        errors.append(f"{where}.shareVolumePolicy.type: must be enabled or disabled")
    for j, transfer in enumerate(container.get("transferEnv") or []):
        # as upstream: only sourceContainerNameFrom is checked (a transfer naming no source
        # container or no variable is accepted and copies nothing)
        ref = ((transfer.get("sourceContainerNameFrom") or {}).get("fieldRef") if isinstance(transfer, dict) else None)
        if not isinstance(transfer, dict):
            errors.append(f"{where}.transferEnv[{j}]: must be an object")
        elif ref is not None and (why := _field_ref_error(ref)) is not None:
            errors.append(f"{where}.transferEnv[{j}].sourceContainerNameFrom.fieldRef: {why}")
    return errors  # a declared IS_INJECTED is kept (upstream appends its own after it)


def _restart_policy_errors(containers: list, inits: list) -> list[str]:
    """Kubernetes 1.30's pod rules that upstream applies to a SidecarSet (ValidatePodCreate on
    a pod of its containers): only an init container may set restartPolicy, and only to
    Always (a native sidecar); another init container may have no lifecycle nor probes; no
    init container has a resizePolicy."""
    errors = []
    for i, container in enumerate(containers):
        if isinstance(container, dict) and container.get("restartPolicy") is not None:
            errors.append(f"spec.containers[{i}].restartPolicy: may not be set for non-init containers")
    for i, init in enumerate(inits):
        if not isinstance(init, dict):
            continue
        policy = init.get("restartPolicy")
        if policy is not None and policy != "Always":
            errors.append(f"spec.initContainers[{i}].restartPolicy: {policy!r} is not supported (Always)")
        if policy != "Always":
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if init.get(key) is not None:
                    errors.append(f"spec.initContainers[{i}].{key}: may not be set for init containers without "
                                  "restartPolicy=Always")
        if init.get("resizePolicy"):
            errors.append(f"spec.initContainers[{i}].resizePolicy: must not be set for init containers")
    return errors


def _field_ref_error(ref: dict) -> str | None:
    """Upstream's check of transferEnv's fieldRef: API version v1, and a label or annotation
    whose key is a qualified name (an annotation's lowercased)."""
    if ref.get("apiVersion") not in (None, "", "v1"):
        return f"apiVersion {ref.get('apiVersion')!r} is not supported (v1)"
    found = _FIELD_REF.match(ref.get("fieldPath") or "")
    if found is None:
        return f"fieldPath {ref.get('fieldPath')!r} is not metadata.labels['<key>'] or metadata.annotations['<key>']"
    key = found.group(2).lower() if found.group(1) == "annotations" else found.group(2)
    if (why := _label_key_error(key)) is not None:
        return f"fieldPath {ref.get('fieldPath')!r}: the key {why}"
    return None


def _mount_errors(mounts, where: str) -> list[str]:
    """Kubernetes' pod validation of a container's mounts, as upstream runs it on the
    SidecarSet's containers: one mount per path."""
    errors, paths = [], set()
    for j, mount in enumerate(mounts or []):
        if not isinstance(mount, dict):
            continue
        path = mount.get("mountPath")
        if path in paths:
            errors.append(f"{where}.volumeMounts[{j}].mountPath: {path!r} must be unique")
        paths.add(path)
        if mount.get("subPath") and mount.get("subPathExpr"):
            errors.append(f"{where}.volumeMounts[{j}]: subPath and subPathExpr are mutually exclusive")
        for key in ("subPath", "subPathExpr"):
            if mount.get(key) and (why := _local_path_error(mount[key])) is not None:
                errors.append(f"{where}.volumeMounts[{j}].{key}: {mount[key]!r} {why}")
    return errors


def _local_path_error(path: str) -> str | None:
    """Kubernetes' rule for a path inside a volume (a subPath, a projected item's path)."""
    if not isinstance(path, str):
        return "must be a string"
    if path.startswith("/"):
        return "must be a relative path"
    if ".." in path.split("/"):
        return "must not contain '..'"
    return None


def _volume_errors(volume: dict, where: str) -> list[str]:
    """Kubernetes' pod validation of the item paths of a configMap, secret, downwardAPI or
    projected volume, as upstream runs it on the SidecarSet's volumes."""
    items = []
    for source in ("configMap", "secret", "downwardAPI"):
        items += [(f"{source}.items", item) for item in (volume.get(source) or {}).get("items") or []]
    for k, projection in enumerate((volume.get("projected") or {}).get("sources") or []):
        for source in ("configMap", "secret", "downwardAPI"):
            items += [(f"projected.sources[{k}].{source}.items", item)
                      for item in ((projection or {}).get(source) or {}).get("items") or []]
    errors = []
    for field, item in items:
        path = item.get("path") if isinstance(item, dict) else None
        if not path:
            errors.append(f"{where}.{field}: path required")
        elif (why := _local_path_error(path)) is not None or path.startswith(".."):
            errors.append(f"{where}.{field}: path {path!r} {why or 'must not start with ..'}")
    return errors


def _resource_errors(resources, where: str) -> list[str]:
    """Kubernetes' pod validation of a container's resources: no request above its limit."""
    if not isinstance(resources, dict):
        return []
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    errors = []
    for name, request in requests.items():
        if name not in limits:
            continue
        try:
            above = quantity.parse(request).value > quantity.parse(limits[name]).value
        except quantity.QuantityError:
            continue  # the defaulting webhook refuses it
        if above:
            errors.append(f"{where}.resources.requests: {request!r} must be less than or equal to "
                          f"{name} limit of {limits[name]}")
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


_NAME = re.compile(r"^[a-zA-Z0-9\-]+$")
_PERCENT = re.compile(r"^[0-9]+%$")


def _disjoint(first: dict, second: dict) -> bool:
    """upstream's util.isDisjoint: ``second`` provably selects nothing ``first`` selects."""
    values: dict[str, list[str]] = {}
    for key, value in (first.get("matchLabels") or {}).items():
        values[key] = [value]
    for expr in first.get("matchExpressions") or []:
        if expr.get("operator") == "In":
            for value in expr.get("values") or []:
                values.setdefault(expr.get("key"), []).append(value)
        elif expr.get("operator") == "Exists":
            values[expr.get("key")] = ["ALL"]
    for key, value in (second.get("matchLabels") or {}).items():
        if key in values and "ALL" not in values[key] and value not in values[key]:
            return True
    for expr in second.get("matchExpressions") or []:
        key, op, wanted = expr.get("key"), expr.get("operator"), expr.get("values") or []
        known = values.get(key)
        if op == "In" and known is not None and "ALL" not in known and not set(known) & set(wanted):
            return True
        if op == "NotIn" and known is not None and set(known) <= set(wanted):
            return True
        if (op == "Exists" and known is None) or (op == "DoesNotExist" and known is not None):
            return True
    return False


def selectors_overlap(first: dict, second: dict) -> bool:
    """upstream's util.IsSelectorOverlapping (conservative: may say yes for disjoint ones)."""
    return not (_disjoint(first or {}, second or {}) or _disjoint(second or {}, first or {}))


def _namespace_selected(name: str, selector: dict | None, namespace_labels) -> bool:
    """upstream's IsSelectorNamespace: the namespace exists and the selector (nil: nothing) matches it."""
    labels = namespace_labels(name)
    return selector is not None and labels is not None and selector_matches(selector, labels)


def _namespaces_overlap(origin: dict, other: dict, namespace_labels) -> bool:
    """upstream's isSidecarSetNamespaceOverlapping, its last test included (it reads the other
    SidecarSet's namespaceSelector where the origin's is meant: a SidecarSet with a
    namespaceSelector never overlaps one with a namespace)."""
    a, b = origin.get("spec") or {}, other.get("spec") or {}
    if a.get("namespace") and b.get("namespace") and a["namespace"] != b["namespace"]:
        return False
    sa, sb = a.get("namespaceSelector"), b.get("namespaceSelector")
    if sa is not None and sb is not None and not selectors_overlap(sa, sb):
        return False
    if a.get("namespace") and sb is not None and not _namespace_selected(a["namespace"], sb, namespace_labels):
        return False
    if b.get("namespace") and sa is not None and not _namespace_selected(b["namespace"], sb, namespace_labels):
        return False
    return True


def _conflict_errors(sidecarset: dict, others, namespace_labels) -> list[str]:
    """upstream's validateSidecarConflict against every SidecarSet whose namespaces and
    selector may overlap: the same init container or container name, a volume of the same
    name that differs, a patched annotation that either side overwrites."""
    spec = sidecarset.get("spec") or {}
    own = (sidecarset.get("metadata") or {}).get("name")
    inits, containers, volumes, annotations = {}, {}, {}, {}
    for other in others:
        other_name = (other.get("metadata") or {}).get("name")
        other_spec = other.get("spec") or {}
        if other_name == own or not (_namespaces_overlap(sidecarset, other, namespace_labels)
                                     and selectors_overlap(spec.get("selector"), other_spec.get("selector"))):
            continue
        inits.update({c.get("name"): other_name for c in other_spec.get("initContainers") or []})
        containers.update({c.get("name"): other_name for c in other_spec.get("containers") or []})
        volumes.update({v.get("name"): (other_name, v) for v in other_spec.get("volumes") or []})
        for patch in other_spec.get("patchPodMetadata") or []:
            if patch.get("patchPolicy") != "Retain":
                annotations.update({k: (other_name, patch.get("patchPolicy")) for k in patch.get("annotations") or {}})
    errors = []
    for field, found in (("initContainers", inits), ("containers", containers)):
        for container in spec.get(field) or []:
            if container.get("name") in found:
                errors.append(f"spec.{field}: container {container['name']} already exist in SidecarSet "
                              f"{found[container['name']]} (one pod may be selected by both)")
    for volume in spec.get("volumes") or []:
        other_name, theirs = volumes.get(volume.get("name"), (None, None))
        if other_name is not None and gojson.normalize(volume, _VOLUME) != gojson.normalize(theirs, _VOLUME):
            errors.append(f"spec.volumes: volume {volume['name']} is in conflict with SidecarSet {other_name}")
    for patch in spec.get("patchPodMetadata") or []:
        if patch.get("patchPolicy") == "Retain":
            continue
        for key in patch.get("annotations") or {}:
            other_name, policy = annotations.get(key, (None, None))
            if other_name is not None and "Overwrite" in (patch.get("patchPolicy"), policy):
                errors.append(f"spec.patchPodMetadata: annotation {key} is in conflict with SidecarSet {other_name}")
    return errors


def _int_or_percent_errors(value, where: str) -> list[str]:
    if isinstance(value, str):
        return [] if _PERCENT.match(value) else [f"{where}: {value!r} must be an integer or percentage (e.g '5%')"]
    return [f"{where}: must be greater than or equal to 0"] if isinstance(value, int) and value < 0 else []


def _update_strategy_errors(strategy: dict) -> list[str]:
    """upstream's validateSidecarSetUpdateStrategy (only a RollingUpdate strategy is checked)."""
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return []
    errors = []
    partition, selector = strategy.get("partition"), strategy.get("selector")
    if selector is not None and partition not in (None, 0):
        errors.append("spec.updateStrategy: partition and selector cannot be used together")
    if selector is not None:
        errors += selector_errors(selector, "spec.updateStrategy.selector")
        if isinstance(selector, dict) and not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append("spec.updateStrategy.selector: an empty selector is not valid for a SidecarSet")
    for key in ("partition", "maxUnavailable"):
        if strategy.get(key) is not None:
            errors += _int_or_percent_errors(strategy[key], f"spec.updateStrategy.{key}")
    priority = strategy.get("priorityStrategy") or {}
    if priority.get("weightPriority") and priority.get("orderPriority"):
        errors.append("spec.updateStrategy.priorityStrategy: only one of weightPriority and orderPriority can be used")
    for term in priority.get("weightPriority") or []:
        selector = term.get("matchSelector") or {}
        if not 0 <= (term.get("weight") or 0) <= 100:
            errors.append("spec.updateStrategy.priorityStrategy: weight must be valid number in the range 1-100")
        elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append("spec.updateStrategy.priorityStrategy: selector can not be empty")
        else:
            errors += selector_errors(selector, "spec.updateStrategy.priorityStrategy.weightPriority.matchSelector")
    if any(not term.get("orderedKey") for term in priority.get("orderPriority") or []):
        errors.append("spec.updateStrategy.priorityStrategy: order key can not be empty")
    seen = set()
    for term in strategy.get("scatterStrategy") or []:
        if not term.get("key"):
            errors.append("spec.updateStrategy.scatterStrategy: key should not be empty")
        elif (term.get("key"), term.get("value")) in seen:
            errors.append(f"spec.updateStrategy.scatterStrategy: duplicated key={term.get('key')} value={term.get('value')}")
        seen.add((term.get("key"), term.get("value")))
    return errors


def whitelist_error(sidecarset: dict, configuration: dict | None, defaults_allowed: bool) -> str | None:
    """upstream's ValidateSidecarSetPatchMetadataWhitelist: with patchPodMetadata, every
    annotation key must match an ``allowedAnnotationKeyExprs`` regular expression of a rule
    (of ``SidecarSet_PatchPodMetadata_WhiteList`` in the ``kruise-configuration`` ConfigMap)
    whose selector matches the SidecarSet's labels. With no whitelist, or no rule for the
    SidecarSet, the feature gate SidecarSetPatchPodMetadataDefaultsAllowed decides."""
    if not (sidecarset.get("spec") or {}).get("patchPodMetadata"):
        return None
    text = (configuration or {}).get(PATCH_METADATA_WHITELIST_KEY)
    if text is None:
        return None if defaults_allowed else "SidecarSet patch metadata whitelist not found"
    try:
        whitelist = json.loads(text)
        rules = (whitelist or {}).get("rules") or []
        assert isinstance(rules, list) and all(isinstance(r, dict) for r in rules)
    except (ValueError, AttributeError, AssertionError):
        return f"{CONFIGURATION_NAME} {PATCH_METADATA_WHITELIST_KEY}: not a whitelist (JSON with rules)"
    labels = (sidecarset.get("metadata") or {}).get("labels") or {}
    expressions = []
    for rule in rules:
        selector = rule.get("selector")
        if selector is not None:
            if selector_errors(selector, "selector"):
                return f"{CONFIGURATION_NAME} {PATCH_METADATA_WHITELIST_KEY}: invalid rule selector"
            if not selector_matches(selector, labels):
                continue
        exprs = rule.get("allowedAnnotationKeyExprs") or []
        if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
            return f"{CONFIGURATION_NAME} {PATCH_METADATA_WHITELIST_KEY}: allowedAnnotationKeyExprs is not a list of strings"
        for expr in exprs:
            try:
                expressions.append(re.compile(expr))
            except (re.error, TypeError):
                return f"{CONFIGURATION_NAME} {PATCH_METADATA_WHITELIST_KEY}: invalid expression {expr!r}"
    if not expressions:
        return None if defaults_allowed else "sidecarSet patch metadata annotation is not allowed"
    for patch in sidecarset["spec"]["patchPodMetadata"]:
        for key in sorted(patch.get("annotations") or {}):
            if not any(e.search(key) for e in expressions):
                return f"sidecarSet patch metadata annotation({key}) is not allowed"
    return None


def _patch_metadata_errors(spec: dict) -> list[str]:
    errors, seen = [], set()
    for i, patch in enumerate(spec.get("patchPodMetadata") or []):
        where = f"spec.patchPodMetadata[{i}]"
        annotations = patch.get("annotations") or {}
        if not annotations:
            errors.append(f"{where}.annotations: no annotations defined for SidecarSet")
        for key in annotations:
            if (why := _label_key_error(key.lower() if isinstance(key, str) else key)) is not None:
                errors.append(f"{where}.annotations: key {key!r} {why}")
            if key in seen:
                errors.append(f"{where}: patch annotation[{key}] already exist")
            seen.add(key)
        if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
            errors.append(f"{where}.annotations: may not be more than 262144 bytes")
        if not patch.get("patchPolicy"):
            errors.append(f"{where}.patchPolicy: no patchPolicy defined for patchPodMetadata")
    return errors


def validate(sidecarset: dict, others: list[dict] = (), previous: dict | None = None, *,
             configuration: dict | None = None, defaults_allowed: bool = False,
             namespace_labels=lambda name: None) -> list[str]:
    """Every reason ``sidecarset`` is invalid (empty when it is fine), upstream's rules and
    the fields this manager refuses. ``others``: the SidecarSets in the cluster (names, volumes
    and overwritten annotations may not clash on a pod both may select); ``previous``: the
    SidecarSet an update replaces (no container added, no upgradeType changed);
    ``configuration``: the ``kruise-configuration`` ConfigMap's data and ``defaults_allowed``
    the feature gate (patchPodMetadata's whitelist); ``namespace_labels(name)``: a
    namespace's labels, None when it does not exist."""
    if not isinstance(sidecarset, dict):
        return ["object: must be a SidecarSet"]
    name = (sidecarset.get("metadata") or {}).get("name") or ""
    errors = []
    if not _NAME.fullmatch(name):
        errors.append(f"metadata.name: {name!r}: sidecarset name must consist of alphanumeric characters or '-'")
    if len(name) > 63:
        errors.append(f"metadata.name: {name!r} must be no more than 63 characters")
    spec = sidecarset.get("spec")
    if not isinstance(spec, dict):
        return errors + ["spec: required"]
    strategy = spec.get("updateStrategy") or {}
    for init in spec.get("initContainers") or [] if isinstance(spec.get("initContainers"), list) else []:
        if isinstance(init, dict) and _is_native_sidecar(init) and (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
            errors.append(f"spec.updateStrategy: initContainer {init.get('name')} has restartPolicy Always (a native "
                          "sidecar): the initContainer in-place upgrade is not currently supported, set "
                          "spec.updateStrategy.type NotUpdate")
    if spec.get("selector") is None:
        errors.append("spec.selector: required")
    else:
        errors += selector_errors(spec["selector"], "spec.selector")
        if isinstance(spec["selector"], dict) and not (spec["selector"].get("matchLabels")
                                                       or spec["selector"].get("matchExpressions")):
            errors.append("spec.selector: an empty selector is not valid for a SidecarSet")
    if spec.get("namespace") and spec.get("namespaceSelector") is not None:
        errors.append("spec.namespace and spec.namespaceSelector are mutually exclusive")
    elif spec.get("namespaceSelector") is not None:
        errors += selector_errors(spec["namespaceSelector"], "spec.namespaceSelector")
        if isinstance(spec["namespaceSelector"], dict) and not (spec["namespaceSelector"].get("matchLabels")
                                                                or spec["namespaceSelector"].get("matchExpressions")):
            errors.append("spec.namespaceSelector: an empty selector is not valid for a SidecarSet")
    revision = (spec.get("injectionStrategy") or {}).get("revision")
    if revision is not None:
        errors.append("spec.injectionStrategy.revision: not supported by this manager (it keeps no ControllerRevision "
                      "history to inject from); upstream too refuses it unless the named revision exists")
    if isinstance(strategy, dict):
        errors += _update_strategy_errors(strategy)
    containers, inits = spec.get("containers") or [], spec.get("initContainers") or []
    if not isinstance(containers, list) or not isinstance(inits, list):
        return errors + ["spec.containers and spec.initContainers must be lists"]
    if not containers and not inits:
        errors.append("spec.containers: at least one container or init container is required")
    errors += _restart_policy_errors(containers, inits)
    seen: set[str] = set()
    for field, items in (("spec.containers", containers), ("spec.initContainers", inits)):
        for i, container in enumerate(items):
            errors += _container_errors(container, f"{field}[{i}]", init=field == "spec.initContainers")
            cname = container.get("name") if isinstance(container, dict) else None
            if cname in seen:
                errors.append(f"{field}[{i}].name: duplicate container name {cname!r}")
            seen.add(cname)
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        vname = volume.get("name") if isinstance(volume, dict) else None
        if not vname:
            errors.append(f"spec.volumes[{i}].name: required")
        elif vname in volume_names:
            errors.append(f"spec.volumes[{i}].name: duplicate volume name {vname!r}")
        volume_names.add(vname)
        if isinstance(volume, dict):
            errors += _volume_errors(volume, f"spec.volumes[{i}]")
    for field, items in (("spec.containers", containers), ("spec.initContainers", inits)):
        for i, container in enumerate(items):
            for j, mount in enumerate((container.get("volumeMounts") or []) if isinstance(container, dict) else []):
                if isinstance(mount, dict) and mount.get("name") not in volume_names:
                    errors.append(f"{field}[{i}].volumeMounts[{j}].name: {mount.get('name')!r} is not one of "
                                  "spec.volumes")
    paused = (spec.get("injectionStrategy") or {}).get("paused")
    if paused is not None and not isinstance(paused, bool):
        errors.append("spec.injectionStrategy.paused: must be true or false")
    if (why := whitelist_error(sidecarset, configuration, defaults_allowed)) is not None:
        errors.append(f"spec.patchPodMetadata: {why}")
    errors += _patch_metadata_errors(spec)
    if previous is not None:
        errors += _update_errors(sidecarset, previous)
    if errors:
        return errors  # as upstream: the other SidecarSets are compared with a valid one only
    return _conflict_errors(sidecarset, others, namespace_labels)


# ---- status -----------------------------------------------------------------------------
def pod_revision(pod_annotations: dict | None, sidecarset_name: str) -> str | None:
    try:
        return (json.loads((pod_annotations or {}).get(HASH_ANNOTATION) or "{}").get(sidecarset_name) or {}).get("hash")
    except (ValueError, AttributeError):
        return None


def hot_upgrade_settled(sidecarset: dict, pod: dict) -> bool:
    """upstream's IsPodReady condition for HotUpgrade: in the pod, the container that is not
    working (by ``kruise.io/sidecarset-working-hotupgrade-container``; ``<name>-2`` when
    unrecorded) of each HotUpgrade sidecar has the SidecarSet's ``hotUpgradeEmptyImage``.
    ``pod`` is slim: its ``annotations`` and ``images`` (container name: image)."""
    working = _working_hot_upgrade(pod.get("annotations") or {})
    images = pod.get("images") or {}
    for container in (sidecarset.get("spec") or {}).get("containers") or []:
        if not _is_hot_upgrade(container):
            continue
        name = container.get("name") or ""
        empty = f"{name}-2" if working.get(name) == f"{name}-1" else f"{name}-1"
        wanted = (container.get("upgradeStrategy") or {}).get("hotUpgradeEmptyImage") or ""
        if wanted and empty in images and images[empty] != wanted:
            return False
    return True


def compute_status(sidecarset: dict, pods: list[dict], namespace_labels: dict[str, dict]) -> dict:
    """Status from slim pods (``namespace``, ``labels``, ``annotations``, ``ready``, and
    ``images`` of a pod with hot-upgrade containers), in upstream's form: a pod is updated when
    it carries the SidecarSet's current hash, ready when Ready and its hot-upgrade containers
    are settled (:func:`hot_upgrade_settled`),
    ``latestRevision`` names upstream's ControllerRevision, zero counts it omits are omitted."""
    name = sidecarset["metadata"]["name"]
    revision = revisions_of(sidecarset)[0]
    matched = updated = ready = updated_ready = 0
    for pod in pods:
        if not selects(sidecarset, pod["namespace"], pod["labels"], namespace_labels.get(pod["namespace"])):
            continue
        matched += 1
        is_updated = pod_revision(pod["annotations"], name) == revision
        is_ready = pod["ready"] and hot_upgrade_settled(sidecarset, pod)
        updated += is_updated
        ready += is_ready
        updated_ready += is_updated and is_ready
    collisions = (sidecarset.get("status") or {}).get("collisionCount") or 0
    return gojson.normalize({
        "observedGeneration": sidecarset["metadata"].get("generation", 0), "matchedPods": matched,
        "updatedPods": updated, "readyPods": ready, "updatedReadyPods": updated_ready,
        "latestRevision": controller_revision_name(sidecarset), "collisionCount": collisions},
        ("struct", "apps/v1alpha1.SidecarSetStatus"))
