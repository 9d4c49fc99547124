"""The webhook server's framing (manager/http1.py) on bytes alone: requests however the bytes
are split, pipelined ones in order, and the limits llhttp does not keep (head size, header
count, HTTP version, body kept only up to the limit). Table-driven; the server around it is
tested over loopback TLS in test_webhook_server.py."""

from __future__ import annotations

import pytest

from manager.http1 import MAX_HEAD, MAX_HEADERS, Requests, answer_within

REVIEW = b'{"kind": "AdmissionReview"}'
POST = (b"POST /mutate-pod?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(REVIEW)) + REVIEW


def fed(*chunks: bytes, limit: int = 4096) -> Requests:
    requests = Requests(limit)
    for chunk in chunks:
        requests.feed(chunk)
    return requests


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(POST)])
def test_a_request_is_the_same_however_its_bytes_are_split(size):
    requests = fed(*(POST[i:i + size] for i in range(0, len(POST), size)))
    assert requests.error is None and len(requests.ready) == 1
    request = requests.ready[0]
    assert (request.method, request.path, request.keep_alive, request.complete) == ("POST", "/mutate-pod", True, True)
    assert (request.content_type, request.length, request.chunked) == ("application/json", len(REVIEW), False)
    assert request.timeout == 10.0  # the apiserver's ?timeout=
    assert b"".join(request.body) == REVIEW
    assert not requests.mid_request()


def test_pipelined_requests_come_out_in_order_and_connection_close_ends_keep_alive():
    second = POST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n").replace(b"/mutate-pod", b"/validate")
    requests = fed(POST + second)
    assert [(r.path, r.keep_alive, r.complete) for r in requests.ready] == [
        ("/mutate-pod", True, True), ("/validate", False, True)]


@pytest.mark.parametrize("raw, keep_alive", [
    (b"GET /healthz HTTP/1.0\r\n\r\n", False),
    (b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET /healthz HTTP/1.1\r\n\r\n", True),
    (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", False),
])
def test_keep_alive_follows_the_version_and_connection_header(raw, keep_alive):
    (request,) = fed(raw).ready
    assert request.keep_alive is keep_alive


def chunks_of(data: bytes, size: int = 16384) -> list[bytes]:
    """As TLS hands a large head over: one record at a time."""
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("raw, status", [
    (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
    (b"GET /healthz HTTP/1.2\r\n\r\n", 505),
    (b"BROKEN\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),  # whole: ends in its last chunk
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD + 20000), 431),  # still arriving
    (b"GET /" + b"a" * MAX_HEAD + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /" + b"a" * (MAX_HEAD + 20000), 414),
])
def test_what_cannot_be_framed_gets_its_http_error(raw, status):
    requests = fed(*chunks_of(raw))
    assert requests.error is not None and requests.error[0] == status, requests.error
    assert not requests.ready


def test_a_head_just_under_the_limit_is_read():
    line = b"GET /healthz HTTP/1.1\r\n"
    value = b"a" * (MAX_HEAD - len(line) - 200)
    requests = fed(*chunks_of(line + b"X-Big: " + value + b"\r\nContent-Type: text/plain\r\n\r\n"))
    assert requests.error is None and [r.content_type for r in requests.ready] == ["text/plain"]


def test_the_requests_before_an_error_are_kept():
    requests = fed(POST + b"BROKEN\r\n\r\n")
    assert [r.path for r in requests.ready] == ["/mutate-pod"] and requests.error[0] == 400


def test_a_body_over_the_limit_is_counted_not_kept():
    big = b"x" * 5000
    (request,) = fed(b"POST /allow HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(big) + big).ready
    assert not request.keep_body and request.body == [] and request.size == len(big)


def test_a_protocol_upgrade_ends_the_connection_after_its_request():
    requests = fed(b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxyz")
    assert [r.keep_alive for r in requests.ready] == [False]


def test_a_request_cut_short_is_mid_request():
    requests = fed(POST[:-5])
    assert requests.mid_request() and not requests.ready[0].complete


@pytest.mark.parametrize("query, seconds", [
    ("timeout=10s", 10.0),  # what the apiserver sends for timeoutSeconds: 10
    ("timeout=30s", 30.0),
    ("dryRun=All&timeout=1m0s", 60.0),
    ("timeout=2.5s", 2.5),
    ("timeout=10%73", 10.0),  # percent-encoded
    ("", None),
    ("timeouts=10s", None),
    ("timeout=", None),
    ("timeout=0s", None),  # no deadline at all: as if not said
    ("timeout=soon", None),
    ("timeout=-1s", None),
])
def test_the_apiservers_deadline_is_read_from_the_query(query, seconds):
    assert answer_within(query) == seconds
