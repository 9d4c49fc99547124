"""A SidecarSet as the upstream manager's Go types read and write it: decoding keeps only
known fields, encoding writes them in struct order, leaves out empty ``omitempty`` fields,
writes empty structs as ``{}`` and nil slices, maps and pointers without ``omitempty`` as
``null``, and quantities in their canonical form. Upstream stores SidecarSets in that form (its
defaulting webhook patches the object to its own encoding) and hashes that encoding, so the
same rules give the same stored objects and the same revision hashes. Shapes come from
:mod:`manager.gotypes`.
"""

from __future__ import annotations

import json

from kubekit import quantity

from . import gotypes


class DecodeError(ValueError):
    """The value does not fit the Go type (upstream's decoder refuses it too)."""


def _zero(kind):
    if kind == "string":
        return ""
    if kind in ("int", "float", "intorstr"):
        return 0
    if kind == "bool":
        return False
    if kind == "quantity":
        return "0"
    if isinstance(kind, tuple) and kind[0] == "struct":
        return normalize({}, kind)
    return None  # pointers, slices, maps, time, raw, bytes


def _empty(kind, value) -> bool:
    """encoding/json's omitempty test (a struct is never empty)."""
    if value is None:
        return True
    if kind in ("string", "bytes") or (isinstance(kind, tuple) and kind[0] in ("slice", "map")):
        return len(value) == 0
    if kind in ("int", "float", "bool"):
        return not value
    return False


def normalize(value, kind=gotypes.SIDECARSET, where: str = ""):
    """``value`` (decoded JSON) after Go's Unmarshal into ``kind`` and Marshal back, as
    Python values: dicts in field order, None where Go writes null."""
    if isinstance(kind, tuple):
        shape, inner = kind
        if value is None:
            return _zero(kind) if shape == "struct" else None
        if shape == "ptr":
            return normalize(value, inner, where)
        if shape == "slice":
            if not isinstance(value, list):
                raise DecodeError(f"{where or 'value'}: expected an array")
            return [normalize(item, inner, f"{where}[{i}]") for i, item in enumerate(value)]
        if shape == "map":
            if not isinstance(value, dict):
                raise DecodeError(f"{where or 'value'}: expected an object")
            return {k: normalize(value[k], inner, f"{where}.{k}") for k in sorted(value)}
        if not isinstance(value, dict):
            raise DecodeError(f"{where or 'value'}: expected an object")
        out = {}
        for name, omitempty, field_kind in gotypes.STRUCTS[inner]:
            got = normalize(value[name], field_kind, f"{where}.{name}" if where else name) \
                if name in value else _zero(field_kind)
            if not (omitempty and _empty(field_kind, got)):
                out[name] = got
        return out
    if value is None:
        return _zero(kind)
    if kind == "string":
        if not isinstance(value, str):
            raise DecodeError(f"{where}: expected a string")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise DecodeError(f"{where}: expected an integer")
        return int(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise DecodeError(f"{where}: expected true or false")
        return value
    if kind == "intorstr":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise DecodeError(f"{where}: expected an integer or a string")
        return value
    if kind == "quantity":
        try:
            return str(quantity.parse(value))
        except quantity.QuantityError as err:
            raise DecodeError(f"{where}: {err}") from None
    return value  # float, time, bytes, raw: kept as written


def dumps(value, sort_keys: bool = False) -> str:
    """encoding/json's bytes for ``value``: compact, with <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
