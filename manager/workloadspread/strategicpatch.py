"""apimachinery's strategic merge patch (v0.30, as upstream's WorkloadSpread webhook applies a
subset's ``patch`` to a pod): maps merge, ``null`` deletes, lists replace unless the Pod type
declares them ``merge`` lists (by merge key, or as sets of primitives), and the ``$patch``,
``$retainKeys`` and ``$deleteFromPrimitiveList/`` directives. ``$setElementOrder/`` lists are
accepted and dropped (a hand-written patch has none)."""

from __future__ import annotations

import copy


class PatchError(ValueError):
    """The patch cannot be applied (upstream's StrategicMergePatch returns an error)."""


# (struct, field) -> (element struct or None, merge key ("" for primitives)); the merge
# lists of core/v1.Pod, from the patchStrategy tags of k8s.io/api v0.30.
_CONTAINER = {"ports": (None, "containerPort"), "env": (None, "name"),
              "volumeMounts": (None, "mountPath"), "volumeDevices": (None, "devicePath")}
_STRUCTS = {
    "Pod": {"metadata": ("ObjectMeta", None), "spec": ("PodSpec", None), "status": ("PodStatus", None)},
    "ObjectMeta": {"ownerReferences": (None, "uid"), "finalizers": (None, "")},
    "PodSpec": {"volumes": (None, "name"), "initContainers": ("Container", "name"),
                "containers": ("Container", "name"), "ephemeralContainers": ("Container", "name"),
                "imagePullSecrets": (None, "name"), "hostAliases": (None, "ip"),
                "topologySpreadConstraints": (None, "topologyKey"), "schedulingGates": (None, "name"),
                "resourceClaims": (None, "name")},
    "PodStatus": {"conditions": (None, "type"), "hostIPs": (None, "ip"), "podIPs": (None, "ip"),
                  "resourceClaimStatuses": (None, "name")},
    "Container": _CONTAINER,
}
_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"
_ORDER_PREFIX = "$setElementOrder/"


def _field(struct: str | None, key: str) -> tuple[str | None, str | None]:
    """(the struct a field holds, its merge key: None = not a merge list)."""
    return (_STRUCTS.get(struct or "") or {}).get(key, (None, None))


def apply_to_pod(pod: dict, patch: dict) -> dict:
    """``pod`` with ``patch`` applied (neither is changed)."""
    if not isinstance(patch, dict):
        raise PatchError("the patch is not a JSON object")
    return _merge_map(copy.deepcopy(pod), copy.deepcopy(patch), "Pod")


def _remove_directives(value):
    """(value without directive maps, keep)."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        out = {}
        for k, v in value.items():
            v, keep = _remove_directives(v)
            if keep:
                out[k] = v
        return out, True
    if isinstance(value, list):
        return [v for v, keep in map(_remove_directives, value) if keep], True
    return value, True


def _discard_nulls(value):
    if isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            del value[k]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _kind(value) -> str:
    """What Go's reflect.TypeOf tells apart in decoded JSON (every number is a float64)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _merge_map(original: dict | None, patch: dict, struct: str | None) -> dict:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            return {k: v for k, v in patch.items() if k != _DIRECTIVE}
        if directive == "delete":
            return {}
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}")
    original = {} if original is None else original
    if _RETAIN in patch:
        retain = patch.pop(_RETAIN)
        if not isinstance(retain, list):
            raise PatchError("invalid patch format of retainKeys")
        for k, v in patch.items():
            if v is not None and not k.startswith((_DELETE_PREFIX, _ORDER_PREFIX)) and k not in retain:
                raise PatchError("invalid patch format of retainKeys")
        for k in [k for k in original if k not in retain]:
            del original[k]
    for key in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        del patch[key]
    for key, value in patch.items():
        delete_list = key.startswith(_DELETE_PREFIX)
        if delete_list:
            key = key[len(_DELETE_PREFIX):]
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(value):
            if not delete_list:
                _discard_nulls(value)
                kept, keep = _remove_directives(value)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        sub, merge_key = _field(struct, key)
        if isinstance(value, dict):
            original[key] = _merge_map(original[key], value, sub)
        elif isinstance(value, list):
            if merge_key is not None or delete_list:
                original[key] = _merge_slice(original[key], value, sub, merge_key or "", delete_list)
            else:
                original[key] = value  # not a merge list: the patch's list, as it is
        else:
            original[key] = value
    return original


def _dedupe(items: list) -> list:
    """apimachinery's deduplicateScalars, order effects included."""
    s = list(items)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if s[i] == s[j]:
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def _key_of(item, merge_key: str):
    return item.get(merge_key) if merge_key and isinstance(item, dict) else item


def _index(items: list, item, merge_key: str) -> int:
    wanted = _key_of(item, merge_key)
    for i, v in enumerate(items):
        if _key_of(v, merge_key) == wanted:
            return i
    return -1


def _sorted_by(items: list, order: list, merge_key: str) -> list:
    """normalizeSliceOrder: a stable sort by position in ``order`` ($patch: delete items last)."""
    deleted = [v for v in items if merge_key and isinstance(v, dict) and v.get(_DIRECTIVE) == "delete"]
    kept = [v for v in items if not any(v is d for d in deleted)]
    # Go's less() answers true when either side is missing from order; insertion sort keeps
    # that comparator's result as sort.SliceStable computes it for the lists met here.
    result: list = []
    for v in kept:
        pos = len(result)
        while pos > 0:
            ii, ij = _index(order, v, merge_key), _index(order, result[pos - 1], merge_key)
            if ii >= 0 and ij >= 0 and ii < ij:
                pos -= 1
            else:
                break
        result.insert(pos, v)
    return result + deleted


def _merge_sorted(left: list, right: list, order: list, merge_key: str) -> list:
    out, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j]); j += 1  # noqa: E702
        elif j >= len(right):
            out.append(left[i]); i += 1  # noqa: E702
        else:
            li, ri = _index(order, left[i], merge_key), _index(order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i]); i += 1  # noqa: E702
            else:
                out.append(right[j]); j += 1  # noqa: E702
    return out


def _merge_slice(original: list, patch: list, struct: str | None, merge_key: str, delete_list: bool) -> list:
    if not original and not patch:
        return original
    maps = all(isinstance(v, dict) for v in original + patch)
    if any(isinstance(v, list) for v in original + patch):
        raise PatchError("lists of lists are not supported")
    if not maps:
        if delete_list:
            return [v for v in original if v not in patch]
        merged = _dedupe(original + patch)
        patch_items = [v for v in merged if v in patch]
        server_only = [v for v in merged if v not in patch]
        key = ""
    else:
        if not merge_key:
            raise PatchError(f"cannot merge lists without merge key for {struct}")
        rest, replace = [], False
        for v in patch:
            directive = v.get(_DIRECTIVE)
            if directive is None:
                rest.append(v)
            elif directive == "delete":
                if merge_key not in v:
                    raise PatchError(f"map: {v} does not contain declared merge key: {merge_key}")
                original = [o for o in original if o.get(merge_key) != v[merge_key]]
            elif directive == "replace":
                replace = True
            elif directive == "merge":
                raise PatchError("merging lists cannot yet be specified in the patch")
            else:
                raise PatchError(f"Unknown patch type: {directive} in map: {v}")
        if replace:
            original, patch = rest, []
        else:
            patch = rest
        merged = list(original)
        for v in patch:
            if merge_key not in v:
                raise PatchError(f"map: {v} does not contain declared merge key: {merge_key}")
            at = next((i for i, o in enumerate(merged) if merge_key in o and o[merge_key] == v[merge_key]), -1)
            if at >= 0:
                merged[at] = _merge_map(merged[at], v, struct)
            else:
                merged.append(v)
        keys = [v.get(merge_key) for v in patch]
        patch_items = [v for v in merged if v.get(merge_key) in keys]
        server_only = [v for v in merged if v.get(merge_key) not in keys]
        key = merge_key
    return _merge_sorted(_sorted_by(server_only, original, key), _sorted_by(patch_items, patch, key), original, key)
