"""admission.k8s.io/v1 reviews: parsing a request, and the answers a handler gives.

Handlers take the review's ``request`` (a dict, as the API sends it) and return one of
:func:`allowed`, :func:`denied`, :func:`refused`, :func:`patched` or :func:`errored`; :func:`review_body`
completes the answer with the request's uid and encodes a patch as the API expects
(base64 of a JSON Patch), so no handler deals with the wire format. Reviews are decoded and
answers encoded with orjson: the stdlib's json cost a tenth of an admission's CPU.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from typing import Callable, Iterator

import orjson

Handler = Callable[[dict], dict]  # AdmissionRequest -> AdmissionResponse (without uid)

_answering = threading.local()  # the request a handler runs for, on the server's thread


@contextlib.contextmanager
def answering_by(deadline: float | None) -> Iterator[None]:
    """While a handler runs: the monotonic time by which the apiserver must have its answer
    (None: not known), for a handler that retries (:func:`answer_by`). Nested, the outer
    deadline is back once the inner block ends."""
    outer = getattr(_answering, "deadline", None)
    _answering.deadline = deadline
    try:
        yield
    finally:
        _answering.deadline = outer


def answer_by() -> float | None:
    """The monotonic time the apiserver stops waiting for the answer being computed on this
    thread; None when the request did not say (no ``?timeout=``) or no request is served."""
    return getattr(_answering, "deadline", None)


class BadReview(ValueError):
    """The body is not an admission.k8s.io/v1 AdmissionReview request."""


def parse_review(body: bytes) -> dict:
    """The review's ``request``; BadReview when the body is not a v1 AdmissionReview with a uid."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadReview(f"body is not JSON: {err}") from None
    if not isinstance(review, dict):
        raise BadReview("body is not a JSON object")
    if review.get("apiVersion") != "admission.k8s.io/v1" or review.get("kind") != "AdmissionReview":
        raise BadReview(f"expected admission.k8s.io/v1 AdmissionReview, got {review.get('apiVersion')!r} "
                        f"{review.get('kind')!r}")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("AdmissionReview has no request.uid")
    return request


def allowed(**audit_annotations: str) -> dict:
    return {"allowed": True, **({"auditAnnotations": audit_annotations} if audit_annotations else {})}


def denied(message: str, code: int = 403) -> dict:
    """Refused: ``message`` reaches the user through kubectl."""
    return {"allowed": False, "status": {"code": code, "message": message, "reason": "Forbidden" if code == 403 else ""}}


def refused(message: str) -> dict:
    """A verdict upstream answers as an error (its validating handlers return
    admission.Errored(500, ...)): code 500 on the wire, counted as ``denied``, not as a
    handler failure."""
    return {**denied(message, 500), "_verdict": True}


def errored(code: int, error: Exception | str) -> dict:
    """The handler could not decide (bad request object, a bug): denied with the reason."""
    return denied(str(error), code)


def patched(ops: list[dict], **audit_annotations: str) -> dict:
    """Allowed with a JSON Patch; an empty patch is a plain allow."""
    if not ops:
        return allowed(**audit_annotations)
    return {**allowed(**audit_annotations), "patch": ops}


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(old: dict, new: dict) -> list[dict]:
    """A JSON Patch from ``old`` to ``new``, field by field in ``metadata`` and ``spec``
    (whole values elsewhere): what a mutation that may change any field of a pod answers."""
    ops: list[dict] = []
    for section in [*old, *(k for k in new if k not in old)]:
        before, after = old.get(section), new.get(section)
        if section in ("metadata", "spec") and isinstance(before, dict) and isinstance(after, dict):
            for name in [*before, *(k for k in after if k not in before)]:
                path = f"/{_pointer(section)}/{_pointer(name)}"
                if name not in after:
                    ops.append({"op": "remove", "path": path})
                elif name not in before or before[name] != after[name]:
                    ops.append({"op": "add", "path": path, "value": after[name]})
        elif section not in new:
            ops.append({"op": "remove", "path": f"/{_pointer(section)}"})
        elif section not in old or before != after:
            ops.append({"op": "add", "path": f"/{_pointer(section)}", "value": after})
    return ops


def result_of(response: dict) -> str:
    """The metric label of an answer: allowed, patched, denied, or error (the handler could not
    decide: a 5xx status, which the chart's webhook-errors alert and doctor --since count)."""
    if response.get("patch"):
        return "patched"
    if response.get("allowed"):
        return "allowed"
    if response.get("_verdict"):
        return "denied"
    return "error" if ((response.get("status") or {}).get("code") or 0) >= 500 else "denied"


def patch_text(ops: list[dict]) -> bytes:
    """A JSON Patch as the JSON text that goes on the wire (the stdlib's encoding, byte-stable)."""
    return json.dumps(ops).encode()


def with_patch_text(response: dict, text: bytes) -> dict:
    """``response`` carrying the patch ``text`` in wire form (base64, ``patchType``)."""
    return {**response, "patchType": "JSONPatch", "patch": base64.b64encode(text).decode()}


def encode_patch(response: dict) -> dict:
    """The answer with its patch in wire form; an answer without a list patch is returned as
    it is. Done once for an answer reused many times."""
    if not isinstance(response.get("patch"), list):
        return response
    return with_patch_text(response, patch_text(response["patch"]))


def review_body(request: dict, response: dict) -> bytes:
    """The AdmissionReview to send back: the request's uid added, a patch encoded."""
    answer = {k: v for k, v in encode_patch(response).items() if k != "_verdict"}
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "response": {"uid": request["uid"], **answer}})
