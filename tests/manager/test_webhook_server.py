"""The webhook server in this process over loopback TLS (no cluster): answers completed with
the uid and an encoded patch, every malformed request answered with its HTTP error, a
handler that raises denies only its request, keep-alive, the slow-client cut-off, TLS >= 1.2,
and the certificate reloaded when its files change. Admissions through the apiserver are in
test_sidecarset_admission.py."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time

import pytest

from localcluster.pki import LocalCA
from manager.admission import (BadReview, allowed, answer_by, denied, errored, parse_review, patched, refused,
                               result_of, review_body)
from manager.certs import service_dns_names
from manager.webhook import WebhookServer

from .conftest import webhook_options

SERVER_NAME = "kruise-webhook-service.kruise-system.svc"
OPS = [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]


def write_pair(directory, ca: LocalCA) -> None:
    cert, key = ca.issue("kruise-webhook-service",
                         dns_names=tuple(service_dns_names("kruise-webhook-service", "kruise-system")), server=True)
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)
    (directory / "ca.crt").write_bytes(ca.cert_pem)


def review(uid: str = "u-1", **request) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "operation": "CREATE", **request}}).encode()


def fail(request: dict) -> dict:
    raise KeyError("spec")


def slow(request: dict) -> dict:
    time.sleep(float(request.get("seconds", 1.0)))
    return allowed()


def deadline(request: dict) -> dict:
    """Allowed, with the seconds left until the apiserver's deadline as the handler sees it."""
    by = answer_by()
    return {"allowed": True, "warnings": ["none" if by is None else f"{by - time.monotonic():.3f}"]}


@pytest.fixture
def make_server(tmp_path):
    write_pair(tmp_path, LocalCA("server-test-ca"))
    started = []

    def make(*flags: str) -> WebhookServer:
        """The manager's defaults, a small body limit and a short I/O timeout, then ``flags``."""
        options = webhook_options(tmp_path, "--webhook-max-body-bytes=4096", "--webhook-io-timeout=500ms", *flags)
        srv = WebhookServer(options, {
            "/patch": lambda r: patched(OPS, by="test"), "/allow": lambda r: allowed(), "/fail": fail, "/slow": slow,
            "/deadline": deadline})
        srv.start()
        srv.cert_dir = tmp_path
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop(drain=0)


@pytest.fixture
def server(make_server):
    return make_server()


def connect(server, ca_file=None, **context_options) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca_file or server.cert_dir / "ca.crt"))
    for name, value in context_options.items():
        setattr(context, name, value)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return context.wrap_socket(sock, server_hostname=SERVER_NAME)


def exchange(tls: ssl.SSLSocket, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP request; read one answer (status, headers, body)."""
    tls.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += tls.recv(65536)
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, content_type: str = "application/json", length: int | None = None) -> bytes:
    length_header = f"Content-Length: {len(body) if length is None else length}\r\n" if length != -1 else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{length_header}\r\n").encode() + body


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


def closed_by_server(tls: ssl.SSLSocket, within: float = 3.0) -> bool:
    tls.settimeout(within)
    try:
        return tls.recv(1024) == b""
    except (ConnectionError, ssl.SSLError):
        return True


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


def test_shutdown_closes_connections_between_requests_and_loses_none(make_server):
    """Go's Shutdown after a delay: the answer on a kept-alive connection says close, a new
    connection in the delay is served, an idle one is closed after it, a request in flight
    finishes before shutdown returns."""
    srv = make_server("--webhook-io-timeout=5s")
    kept, idle, busy = connect(srv), connect(srv), connect(srv)
    for i, tls in enumerate((kept, idle, busy)):
        assert exchange(tls, post("/allow", review(f"warm-{i}")))[0] == 200
    busy.sendall(post("/slow", review("slow", seconds=1.0)))
    time.sleep(0.1)
    stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.6, "timeout": 5.0})
    began = time.monotonic()
    stopper.start()
    time.sleep(0.1)
    status, headers, _ = exchange(kept, post("/allow", review("after-sigterm")))
    assert status == 200 and headers.get("connection") == "close" and closed_by_server(kept)
    with connect(srv) as late:  # still listening during the delay
        status, headers, _ = exchange(late, post("/allow", review("late")))
        assert status == 200 and headers.get("connection") == "close"
    assert closed_by_server(idle, within=3.0)  # closed once the delay is over
    assert time.monotonic() - began >= 0.6
    status, headers, body = exchange(busy, b"")  # the slow answer arrives whole
    assert status == 200 and json.loads(body)["response"]["uid"] == "slow"
    stopper.join(5)
    assert not stopper.is_alive() and srv.connections() == 0
    with pytest.raises(OSError):
        connect(srv)
    for tls in (kept, idle, busy):
        tls.close()


def test_shutdown_waits_for_a_connection_accepted_before_the_listener_closed(make_server):
    """A connection accepted in the delay whose TLS handshake is still to come (the apiserver,
    short of CPU, dialed and has not sent its ClientHello yet) is a request on its way: the drain
    waits for it, and the answer closes the connection. Returning earlier lets the process exit
    under it, and the apiserver reads EOF in its handshake: a failed admission."""
    srv = make_server("--webhook-io-timeout=5s")
    raw = socket.create_connection(("127.0.0.1", srv.port))
    time.sleep(0.2)  # accepted by now, waiting for its ClientHello
    stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.3, "timeout": 5.0})
    stopper.start()
    time.sleep(0.8)  # past the delay: the listener is closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    assert stopper.is_alive() and srv.connections() == 1
    context = ssl.create_default_context(cafile=str(srv.cert_dir / "ca.crt"))
    with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
        status, headers, _ = exchange(tls, post("/allow", review("late-hello")))
        assert status == 200 and headers.get("connection") == "close" and closed_by_server(tls)
    stopper.join(5)
    assert not stopper.is_alive() and srv.connections() == 0


def test_shutdown_serves_the_connections_waiting_in_the_backlog_before_it_closes_the_listener(make_server):
    """At the connection cap a new connection waits in the listen backlog; closing the listener
    would reset it (the apiserver reads "connection reset by peer" in its handshake). The drain
    accepts what waits there once a slot frees, then closes the listener."""
    srv = make_server("--webhook-io-timeout=5s", "--webhook-max-connections=1", "--webhook-max-connection-age=0")
    with connect(srv) as holder:
        holder.sendall(post("/slow", review("holder", seconds=2.0)))  # answered after the listener closes
        time.sleep(0.2)
        raw = socket.create_connection(("127.0.0.1", srv.port))  # in the backlog: the one slot is taken
        stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.1, "timeout": 5.0})
        stopper.start()
        status, headers, _ = exchange(holder, b"")  # the answer closes the holder and frees the slot
        assert status == 200 and headers.get("connection") == "close"
    context = ssl.create_default_context(cafile=str(srv.cert_dir / "ca.crt"))
    with context.wrap_socket(raw, server_hostname=SERVER_NAME) as waited:
        status, headers, _ = exchange(waited, post("/allow", review("waited")))
        assert status == 200 and headers.get("connection") == "close"
    stopper.join(5)
    assert not stopper.is_alive() and srv.connections() == 0


def test_the_listener_stays_open_while_admissions_keep_coming_after_the_delay(make_server):
    """The delay is a guess at how long the endpoint's removal takes to reach the apiserver; on a
    loaded machine it takes longer, and a connection dialed after the listener closed is refused
    (a failed admission). So past the delay the listener closes only once no admission has come
    for a quiet second (never past the drain's deadline)."""
    srv = make_server("--webhook-io-timeout=5s")
    stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.3, "timeout": 4.0})
    began = time.monotonic()
    stopper.start()
    while time.monotonic() - began < 1.5:  # the apiserver still routes here: a new connection every 0.2 s
        with connect(srv) as tls:
            status, headers, _ = exchange(tls, post("/allow", review("still-routed")))
            assert status == 200 and headers.get("connection") == "close"
        time.sleep(0.2)
    time.sleep(1.5)  # quiet: the listener closes
    with pytest.raises(OSError):
        connect(srv)
    stopper.join(5)
    assert not stopper.is_alive() and time.monotonic() - began < 4.3


def test_shutdown_does_not_close_a_new_connection_before_its_first_request(make_server):
    """A connection that has not sent its first request yet was opened for one: the drain does
    not close it as idle (the apiserver would read EOF and not retry), it waits for the request."""
    srv = make_server("--webhook-io-timeout=5s")
    with connect(srv) as fresh:
        stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.2, "timeout": 5.0})
        stopper.start()
        time.sleep(0.7)  # past the delay, several rounds of closing idle connections
        assert stopper.is_alive()
        status, headers, _ = exchange(fresh, post("/allow", review("first")))
        assert status == 200 and headers.get("connection") == "close" and closed_by_server(fresh)
    stopper.join(5)
    assert not stopper.is_alive() and srv.connections() == 0


def test_the_drain_resets_an_idle_connection_so_a_request_racing_it_fails_unsent(make_server):
    """An idle kept-alive connection is closed with a reset, not a FIN: a client that writes on
    it afterwards gets its error from the write (nothing sent, which Go's transport retries on
    another connection), not EOF after its request went out (which it does not retry)."""
    srv = make_server("--webhook-io-timeout=5s")
    with connect(srv) as idle:
        assert exchange(idle, post("/allow", review("warm")))[0] == 200
        srv.shutdown(delay=0.1, timeout=2.0)
        assert srv.connections() == 0
        time.sleep(0.1)
        with pytest.raises(OSError):  # the first write fails: ConnectionResetError, or ssl's wrapper of it
            idle.sendall(post("/allow", review("racing")))


def test_the_drain_does_not_reset_a_connection_whose_last_answer_is_not_yet_acknowledged(tmp_path):
    """A reset drops what the peer has not acknowledged: a connection whose answer still sits in
    the send buffer (the client reads slowly) is not idle yet, and its answer arrives whole."""
    write_pair(tmp_path, LocalCA("server-test-ca"))
    big = [{"op": "add", "path": "/metadata/annotations/x", "value": "v" * 12000}]
    srv = WebhookServer(webhook_options(tmp_path, "--webhook-io-timeout=5s"),
                        {"/big": lambda r: patched(big, by="test")}).start()
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # a small window: most of the answer waits
        raw.connect(("127.0.0.1", srv.port))
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        with context.wrap_socket(raw, server_hostname=SERVER_NAME) as slow_reader:
            slow_reader.sendall(post("/big", review("big")))
            time.sleep(0.5)  # the answer is written; the client has read none of it
            stopper = threading.Thread(target=srv.shutdown, kwargs={"delay": 0.0, "timeout": 3.0})
            stopper.start()
            time.sleep(0.5)  # rounds of closing idle connections pass
            status, _headers, body = exchange(slow_reader, b"")
            assert status == 200 and len(body) > 12000 and json.loads(body)["response"]["uid"] == "big"
        stopper.join(5)
    finally:
        srv.stop(drain=0)


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
