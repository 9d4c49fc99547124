"""The webhook server in this process over loopback TLS (no cluster): answers completed with
the uid and an encoded patch, every malformed request answered with its HTTP error, a
handler that raises denies only its request, keep-alive, the slow-client cut-off, TLS >= 1.2,
and the certificate reloaded when its files change. Admissions through the apiserver are in
test_sidecarset_admission.py; shutdown and the drain in test_webhook_drain.py."""

from __future__ import annotations

import base64
import json
import ssl
import time

import pytest

from localcluster.pki import LocalCA
from manager.admission import (BadReview, allowed, answer_by, denied, errored, parse_review, patched, refused,
                               result_of, review_body)

from .webhook_harness import OPS, closed_by_server, connect, exchange, post, review, write_pair


def test_a_patch_is_completed_with_the_uid_and_encoded_and_keep_alive_serves_the_next(server):
    with connect(server) as tls:
        for uid in ("first", "second"):
            status, headers, body = exchange(tls, post("/patch", review(uid)))
            answer = json.loads(body)
            assert status == 200 and headers["content-type"] == "application/json"
            assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
            response = answer["response"]
            assert response["uid"] == uid and response["allowed"] is True and response["patchType"] == "JSONPatch"
            assert json.loads(base64.b64decode(response["patch"])) == OPS
            assert response["auditAnnotations"] == {"by": "test"}


@pytest.mark.parametrize("raw, status, text", [
    (post("/allow", b"{not json"), 400, "body is not JSON"),
    (post("/allow", b"[1, 2]"), 400, "not a JSON object"),
    (post("/allow", json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                                "request": {"uid": "u"}}).encode()), 400, "expected admission.k8s.io/v1"),
    (post("/allow", review(uid="")), 400, "no request.uid"),
    (post("/nowhere", review()), 404, "no webhook at /nowhere"),
    (post("/allow", review(), length=-1), 411, "Content-Length required"),
    (post("/allow", b"x" * 5000), 413, "body over 4096 bytes"),
    (post("/allow", review(), content_type="text/plain"), 415, "Content-Type must be application/json"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not found"),
])
def test_each_malformed_request_gets_its_http_error(server, raw, status, text):
    with connect(server) as tls:
        got, _, body = exchange(tls, raw)
    assert got == status and text in body.decode()


def test_a_handler_that_raises_denies_only_its_request(server):
    with connect(server) as tls:
        status, _, body = exchange(tls, post("/fail", review("bad")))
        response = json.loads(body)["response"]
        assert status == 200 and response["uid"] == "bad" and response["allowed"] is False
        assert response["status"]["code"] == 500 and "KeyError" in response["status"]["message"]
        status, _, body = exchange(tls, post("/allow", review("next")))
        assert json.loads(body)["response"] == {"uid": "next", "allowed": True}


def test_a_client_that_stalls_is_cut_off_after_the_io_timeout(server):
    with connect(server) as tls:
        tls.sendall(b"POST /allow HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        started = time.monotonic()
        tls.settimeout(5)
        assert tls.recv(1024) == b""  # the server closed
        assert time.monotonic() - started < 3


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(server):
    with pytest.raises(ssl.SSLError):
        connect(server, maximum_version=ssl.TLSVersion.TLSv1_1).close()


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(server, tmp_path_factory):
    old_ca = server.cert_dir / "ca.crt"
    kept = tmp_path_factory.mktemp("old") / "ca.crt"
    kept.write_bytes(old_ca.read_bytes())
    write_pair(server.cert_dir, LocalCA("rotated-ca"))
    deadline = time.monotonic() + 5
    while True:
        try:
            connect(server).close()  # verified against the new CA
            break
        except ssl.SSLCertVerificationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server, ca_file=kept).close()


@pytest.mark.parametrize("body, error", [
    (b"", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b'"review"', "not a JSON object"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "no request.uid"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}).encode(),
     "no request.uid"),
    (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "expected admission.k8s.io/v1 AdmissionReview"),
])
def test_parse_review_rejects_what_is_not_a_v1_review(body, error):
    with pytest.raises(BadReview, match=error):
        parse_review(body)


@pytest.mark.parametrize("response, result, wire", [
    (allowed(), "allowed", {"uid": "u", "allowed": True}),
    (patched([]), "allowed", {"uid": "u", "allowed": True}),
    (denied("no"), "denied", {"uid": "u", "allowed": False,
                              "status": {"code": 403, "message": "no", "reason": "Forbidden"}}),
    (errored(400, "not a pod"), "denied", {"uid": "u", "allowed": False,
                                           "status": {"code": 400, "message": "not a pod", "reason": ""}}),
    (errored(500, "bug"), "error", {"uid": "u", "allowed": False, "status": {"code": 500, "message": "bug", "reason": ""}}),
    # upstream answers an invalid SidecarSet with code 500: a verdict, not a failure of the handler
    (refused("invalid"), "denied", {"uid": "u", "allowed": False,
                                    "status": {"code": 500, "message": "invalid", "reason": ""}}),
    (patched(OPS), "patched", {"uid": "u", "allowed": True, "patchType": "JSONPatch",
                               "patch": base64.b64encode(json.dumps(OPS).encode()).decode()}),
])
def test_answers_and_their_wire_form(response, result, wire):
    assert result_of(response) == result
    assert json.loads(review_body({"uid": "u"}, response))["response"] == wire


def test_idle_keep_alive_outlives_the_io_timeout(make_server):
    srv = make_server("--webhook-io-timeout=300ms", "--webhook-idle-timeout=5s")
    with connect(srv) as tls:
        assert exchange(tls, post("/allow", review("a")))[0] == 200
        time.sleep(0.8)  # idle well past the I/O timeout, inside the idle timeout
        assert exchange(tls, post("/allow", review("b")))[0] == 200


def test_a_connection_is_closed_after_its_request_budget_between_two_requests(make_server):
    srv = make_server("--webhook-max-requests-per-connection=3")
    with connect(srv) as tls:
        headers = [exchange(tls, post("/allow", review(str(i))))[1] for i in range(3)]
        assert [h.get("connection") for h in headers] == [None, None, "close"]
        assert closed_by_server(tls)


def test_with_the_managers_defaults_a_connection_closes_on_its_1000th_answer_or_past_half_a_second(server):
    """The server here has kruise-manager's own defaults (no test-only ones): 1000 answers or the
    first answer past 0.5 s of age, whichever comes first, close the connection; none before."""
    budget = server.max_requests_per_connection
    assert budget == 1000 and server.max_connection_age == 0.5
    with connect(server) as tls:
        opened = time.monotonic()
        closes, ages = [], []
        for i in range(budget):
            closes.append(exchange(tls, post("/allow", review(str(i))))[1].get("connection"))
            ages.append(time.monotonic() - opened)
            if closes[-1] == "close":
                break
        assert closed_by_server(tls)
    assert closes.count("close") == 1 and closes[-1] == "close"
    if len(closes) < budget:  # closed by age: not before it, and at the first answer past it
        assert ages[-1] >= 0.5, ages[-1]
        assert len(closes) == 1 or ages[-2] < 1.0, ages[-2]


def test_a_connection_past_its_age_is_closed_after_its_next_answer(make_server):
    srv = make_server("--webhook-max-connection-age=300ms")
    with connect(srv) as tls:
        assert exchange(tls, post("/allow", review("young")))[1].get("connection") is None
        time.sleep(0.4)
        assert exchange(tls, post("/allow", review("old")))[1].get("connection") == "close"


@pytest.mark.parametrize("raw, status", [
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"BROKEN\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"POST /allow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     411),
])
def test_a_broken_request_head_gets_its_http_error_and_the_connection_closes(server, raw, status):
    with connect(server) as tls:
        got, headers, _ = exchange(tls, raw)
        assert got == status and headers.get("connection") == "close"
        assert closed_by_server(tls)


def test_pipelined_requests_are_answered_in_order_and_connection_close_is_honoured(server):
    with connect(server) as tls:
        tls.sendall(post("/allow", review("one")) + post("/allow", review("two")).replace(
            b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.rstrip().endswith(b"}"):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.index(b'"one"') < data.index(b'"two"')
        assert data.count(b"Connection: close") == 1
        assert closed_by_server(tls)


@pytest.mark.parametrize("target, left", [
    ("/deadline?timeout=10s", 10.0),  # as the apiserver calls a webhook whose timeoutSeconds is 10
    ("/deadline?timeout=3s&x=1", 3.0),
    ("/deadline", None),
])
def test_a_handler_knows_when_the_apiserver_stops_waiting(server, target, left):
    with connect(server) as tls:
        status, _, body = exchange(tls, post(target, review()))
    said = json.loads(body)["response"]["warnings"][0]
    assert status == 200
    if left is None:
        assert said == "none"
    else:
        assert left - 0.5 < float(said) <= left
    assert answer_by() is None  # only while its handler runs, on its thread
