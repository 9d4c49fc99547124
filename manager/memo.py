"""Admission answers reused for requests that differ only in per-object identity.

The pods of one ReplicaSet reach the pod webhook as one request but for their uid, name and
managedFields, so one answer (one patch) serves them all: it is computed once, not per pod.
Reuse must never change an answer, whatever rules the handler implements now or later:

- the key is the whole request without those volatile fields, a token of the state the rules
  read (the watched caches), and the wall-clock second (injection stamps the time);
- the first time a request shape is met in a state, the answer is computed twice: once as
  asked, once with other values in the volatile fields and the state's volatile parts (a
  SidecarSet's status and resourceVersion) removed. Only when both answers agree is that
  shape reused; rules that read a pod's name or a SidecarSet's status are always computed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from .admission import encode_patch

log = logging.getLogger("manager.memo")

VOLATILE_REQUEST = ("uid", "name")
VOLATILE_METADATA = ("name", "uid", "creationTimestamp", "managedFields", "resourceVersion")
_PROBE = "kruise-memo-probe"
_PROBE_VALUES = {"creationTimestamp": "1970-01-01T00:00:00Z", "managedFields": []}


@dataclass(frozen=True)
class State:
    """What the rules read: ``token`` changes whenever ``value`` may answer differently;
    ``probe`` is ``value`` without the parts the token leaves out."""
    token: Any
    value: Any
    probe: Any


def shape_of(request: dict) -> bytes | None:
    """The request without its volatile fields (and which of them it had), as bytes; None when
    it has no object to key on."""
    obj = request.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    shape = {k: v for k, v in request.items() if k not in VOLATILE_REQUEST}
    shape["object"] = {**obj, "metadata": {k: v for k, v in meta.items() if k not in VOLATILE_METADATA}}
    shape[" volatile"] = [k for k in VOLATILE_REQUEST if k in request] + [k for k in VOLATILE_METADATA if k in meta]
    try:
        return orjson.dumps(shape)
    except TypeError:
        return None


def variant_of(request: dict) -> dict:
    """The request with other values in every volatile field it has."""
    variant = {**request, **{k: _PROBE for k in VOLATILE_REQUEST if k in request}}
    obj = request["object"]
    meta = obj["metadata"]
    variant["object"] = {**obj, "metadata": {
        **meta, **{k: _PROBE_VALUES.get(k, _PROBE) for k in VOLATILE_METADATA if k in meta}}}
    return variant


class Memo:
    """``answer(request, state)`` is ``compute(request, state.value)``, reused as the module
    docstring says. Safe from any thread: a race costs a computation, never a wrong answer."""

    def __init__(self, compute: Callable[[dict, Any], dict], max_entries: int = 1024):
        self.compute = compute
        self.max_entries = max_entries
        self._answers: dict[tuple, tuple[int, dict]] = {}  # (token, shape) -> (second, answer in wire form)
        self._reusable: dict[tuple, bool] = {}  # (token, shape) -> the verdict of the probe
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def answer(self, request: dict, state: State) -> dict:
        shape = shape_of(request)
        if shape is None:
            return self.compute(request, state.value)
        key = (state.token, shape)
        second = int(time.time())
        found = self._answers.get(key)
        if found is not None and found[0] == second:
            self.hits += 1
            return found[1]
        self.misses += 1
        verdict = self._reusable.get(key)
        answer = self.compute(request, state.value)
        if verdict is False:
            return answer
        if verdict is None:
            probe = self.compute(variant_of(request), state.probe)
            if int(time.time()) != second:
                return answer  # the clock turned between the two: no verdict yet
            verdict = probe == answer
            if not verdict:
                log.info("admission answers depend on identity or status; not reused for this request shape")
            with self._lock:
                if len(self._reusable) >= self.max_entries:
                    self._reusable.clear()
                self._reusable[key] = verdict
        if verdict and int(time.time()) == second:
            with self._lock:
                if len(self._answers) >= self.max_entries:
                    self._answers.clear()
                self._answers[key] = (second, encode_patch(answer))
        return answer
