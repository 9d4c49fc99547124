"""The webhook server's shutdown and drain in this process over loopback TLS (no cluster):
connections between requests closed and none lost, connections accepted or waiting in the
backlog served before the listener closes, the listener kept open while admissions keep coming,
and which idle connections the drain resets."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest

from localcluster.pki import LocalCA
from manager.admission import patched
from manager.webhook import WebhookServer

from .conftest import webhook_options
from .webhook_harness import SERVER_NAME, closed_by_server, connect, exchange, post, review, write_pair


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
