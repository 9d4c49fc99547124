"""Admission answers reused for requests that differ only in per-object identity.

The pods of one ReplicaSet reach the pod webhook as one request but for their uid, name,
managedFields and the name of their ServiceAccount token volume (``kube-api-access-<random>``),
so one answer, with those names put back in, serves them all: it is computed once per second,
not once per pod. Reuse must never change an answer, whatever rules the handler implements
now or later, so:

- the key is the whole request as JSON, with the uid, managedFields and timestamps left out
  and each identity name (exact JSON string) replaced by a placeholder; plus a token of the
  state the rules read (the watched caches) and the wall-clock second (injection stamps the
  time);
- the answer is kept as a template: the same names replaced by the same placeholders;
- the first time a key is met, the answer is computed as without the memo, and only the key
  is remembered (a hash of it, in a bounded table): most requests never repeat (pods that
  differ in labels or spec), and for them the memo costs its key, not a template and a probe;
- the second time, the answer is computed a second time for a probe: the request with other
  names, uid and managedFields. Only when the probe's template equals the answer's is the key
  reused (from the third time on): rules that copy a name into the answer are served with the
  pod's own name put back; rules that decide anything from a name are computed for every pod,
  and a probe that disagrees keeps the key from being reused.

Its outcomes (hit, first, miss, bypass) and probes are counted in the manager's metrics, so a
benchmark can tell a reused answer from a computed one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from . import metrics
from .admission import patch_text, with_patch_text

log = logging.getLogger("manager.memo")

DROPPED_REQUEST = ("uid",)
DROPPED_METADATA = ("uid", "creationTimestamp", "managedFields", "resourceVersion")
TOKEN_VOLUME_PREFIX = "kube-api-access-"  # the ServiceAccount admission plugin's volume, random per pod
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # JSON strings with nothing to escape
_MARK = b"\\u0000"  # how orjson writes NUL; no placeholder-like text may be in a request
_PROBE_PREFIX = "kruise-memo-probe-"
_UNVERIFIED_FOR = 30.0  # seconds a failed probe keeps a key from being reused
_HIT, _FIRST, _MISS, _BYPASS = (metrics.MEMO_ANSWERS.labels(result) for result in ("hit", "first", "miss", "bypass"))


@dataclass(frozen=True)
class State:
    """What the rules read, and a token that changes whenever it changes."""
    token: Any
    value: Any


def _placeholder(i: int) -> bytes:
    return b'"' + _MARK + b"memo" + str(i).encode() + b'"'


def names_of(request: dict) -> list[str]:
    """The identity names in a request: the object's name and its token volumes' names."""
    found = []
    obj = request.get("object")
    obj = obj if isinstance(obj, dict) else {}
    meta, spec = obj.get("metadata"), obj.get("spec")
    for name in (request.get("name"), meta.get("name") if isinstance(meta, dict) else None):
        if isinstance(name, str) and name not in found and _NAME.match(name):
            found.append(name)
    volumes = spec.get("volumes") if isinstance(spec, dict) else None
    for volume in volumes if isinstance(volumes, list) else ():
        name = volume.get("name") if isinstance(volume, dict) else None
        if isinstance(name, str) and name.startswith(TOKEN_VOLUME_PREFIX) and name not in found and _NAME.match(name):
            found.append(name)
    return found


def _template(text: bytes, names: list[str]) -> bytes:
    for i, name in enumerate(names):
        text = text.replace(b'"' + name.encode() + b'"', _placeholder(i))
    return text


def _fill(template: bytes, names: list[str]) -> bytes:
    for i, name in enumerate(names):
        template = template.replace(_placeholder(i), b'"' + name.encode() + b'"')
    return template


def key_of(request: dict, names: list[str]) -> bytes | None:
    """The request without its volatile fields, names as placeholders; None when it has no
    object metadata or already holds placeholder-like text."""
    obj = request.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    shape = {k: v for k, v in request.items() if k not in DROPPED_REQUEST}
    shape["object"] = {**obj, "metadata": {k: v for k, v in meta.items() if k not in DROPPED_METADATA}}
    shape[" dropped"] = [k for k in DROPPED_METADATA if k in meta]
    try:
        text = orjson.dumps(shape)
    except TypeError:
        return None
    if _MARK in text:
        return None
    return _template(text, names)


def probe_of(request: dict, names: list[str]) -> tuple[dict, list[str]]:
    """The request with other names, uid and metadata timestamps (and the names used)."""
    others = [f"{_PROBE_PREFIX}{i}" for i in range(len(names))]
    probe = orjson.loads(_fill(_template(orjson.dumps(request), names), others))
    probe["uid"] = _PROBE_PREFIX + "uid"
    meta = probe["object"]["metadata"]
    for field, value in (("managedFields", []), ("creationTimestamp", "1970-01-01T00:00:00Z"), ("uid", "x")):
        if field in meta:
            meta[field] = value
    return probe, others


class _Template:
    """An answer with names as placeholders: the patch as the wire's JSON text, the rest as is
    (or as JSON text when a name is in it)."""

    __slots__ = ("rest", "rest_text", "patch_text")

    def __init__(self, answer: dict, names: list[str]):
        rest = {k: v for k, v in answer.items() if k != "patch"}
        patch = answer.get("patch")
        if patch is not None and not isinstance(patch, list):
            raise ValueError("the patch is already encoded")
        text_of_patch = patch_text(patch) if patch else None
        text = orjson.dumps(rest)
        if _MARK in text or (text_of_patch and _MARK in text_of_patch):
            raise ValueError("the answer holds placeholder-like text")
        self.patch_text = _template(text_of_patch, names) if text_of_patch else None
        templated = _template(text, names)
        self.rest, self.rest_text = (rest, None) if templated == text else (None, templated)

    def same(self, other: "_Template") -> bool:
        return (self.patch_text, self.rest_text, self.rest) == (other.patch_text, other.rest_text, other.rest)

    def fill(self, names: list[str]) -> dict:
        """The answer for these names, in wire form (patch encoded)."""
        rest = self.rest if self.rest_text is None else orjson.loads(_fill(self.rest_text, names))
        if self.patch_text is None:
            return rest
        return with_patch_text(rest, _fill(self.patch_text, names))


class Memo:
    """``answer(request, state)`` is ``compute(request, state.value)``, reused as the module
    docstring says. Safe from any thread: a race costs a computation, never a wrong answer."""

    def __init__(self, compute: Callable[[dict, Any], dict], max_entries: int = 1024):
        self.compute = compute
        self.max_entries = max_entries
        self._answers: dict[tuple, tuple[int, _Template]] = {}  # (token, key) -> (second, template)
        self._verdicts: dict[tuple, bool | float] = {}  # (token, key) -> True, or when a probe failed
        # hash((token, key)) of keys met once: a collision only probes a key a time early
        self._seen: dict[int, None] = {}
        self._lock = threading.Lock()
        self.hits = self.firsts = self.misses = 0

    def answer(self, request: dict, state: State) -> dict:
        names = names_of(request)
        key = key_of(request, names)
        if key is None:
            _BYPASS.inc()
            return self.compute(request, state.value)
        key = (state.token, key)
        second = int(time.time())
        found = self._answers.get(key)
        if found is not None and found[0] == second:
            self.hits += 1
            _HIT.inc()
            return found[1].fill(names)
        verdict = self._verdicts.get(key)
        if verdict is None:
            seen = hash(key)
            if seen not in self._seen:
                self.firsts += 1
                _FIRST.inc()
                self._store(self._seen, seen, None)
                return self.compute(request, state.value)
        self.misses += 1
        _MISS.inc()
        answer = self.compute(request, state.value)
        if verdict is not None and verdict is not True and time.monotonic() - verdict < _UNVERIFIED_FOR:
            return answer
        try:
            template = _Template(answer, names)
        except (TypeError, ValueError):
            return answer
        if verdict is not True:
            probe, others = probe_of(request, names)
            metrics.MEMO_PROBES.inc()
            try:
                agrees = _Template(self.compute(probe, state.value), others).same(template)
            except Exception:  # noqa: BLE001 - rules that fail on other names are rules that read them
                agrees = False
            if int(time.time()) != second:
                return answer  # the clock turned between the two: no verdict yet
            if not agrees:
                log.info("admission answers depend on a pod's identity; this request shape is not reused")
            self._store(self._verdicts, key, True if agrees else time.monotonic())
            if not agrees:
                return answer
        if int(time.time()) == second:
            self._store(self._answers, key, (second, template))
        return answer

    def _store(self, table: dict, key, value) -> None:
        with self._lock:
            if len(table) >= self.max_entries:
                table.clear()
            table[key] = value
