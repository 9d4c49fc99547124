"""A guarded write (``Client.request(guard=...)``): the guard is asked after the headers are out
and before the body, and a False leaves the server with no complete request to act on. Against
a real HTTP server on loopback."""

import http.server
import threading

import pytest

from kubekit.api import ApiError, Client


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_PUT(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the connection closed before the whole body came: like any server, act on nothing
        type(self).received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a request whose body never came (the refused write): expected, not printed


@pytest.fixture
def server():
    _Recorder.received = []
    httpd = _Server(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def client_of(httpd) -> Client:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{httpd.server_address[1]}"
    configuration.proxy = None
    return Client.for_configuration(configuration, "guard-test", pool_size=2)


@pytest.mark.parametrize("open_gate, sent", [(True, True), (False, False)])
def test_a_guard_decides_whether_the_body_goes_out(server, open_gate, sent):
    asked = []

    def guard():
        asked.append(True)
        return open_gate

    api = client_of(server)
    if sent:
        assert api.request("PUT", "/status", body={"status": 1}, guard=guard) == {}
    else:
        with pytest.raises(ApiError, match="gate shut"):
            api.request("PUT", "/status", body={"status": 1}, guard=guard)
    assert asked == [True]
    assert _Recorder.received == ([b'{"status": 1}'] if sent else [])
    # the connection a refused write used is not reused half-sent: the next call goes through
    assert api.request("PUT", "/status", body={"next": 2}) == {}
    assert _Recorder.received[-1] == b'{"next": 2}'


def test_the_guard_runs_after_the_headers_are_sent(server):
    """What the guard sees: the server already holds the request line and headers (the write
    is on its way), so nothing the caller does after the guard can come before it."""
    seen_by_server_before_guard = []

    class Watching(_Recorder):
        def parse_request(self):
            ok = super().parse_request()
            seen_by_server_before_guard.append(self.path)
            return ok

    server.RequestHandlerClass = Watching
    order = []

    def guard():
        # give the server a moment to read the headers the client has already sent
        for _ in range(200):
            if seen_by_server_before_guard:
                break
            threading.Event().wait(0.01)
        order.append(list(seen_by_server_before_guard))
        return False

    with pytest.raises(ApiError):
        client_of(server).request("PUT", "/late", body={"x": 1}, guard=guard)
    assert order == [["/late"]]
    assert _Recorder.received == []


def test_a_request_without_a_body_is_not_sent_when_its_guard_says_no(server):
    api = client_of(server)
    with pytest.raises(ApiError, match="gate shut"):
        api.request("PUT", "/status", guard=lambda: False)
    assert _Recorder.received == []


@pytest.mark.parametrize("left_before, left_at_body, outcome", [
    (15.0, 15.0, "sent"),  # leading all along
    (0.4, 15.0, "not leading"),  # gate shut before: no request at all
    (15.0, 0.4, "gate shut"),  # shut while the headers went out: the body never does
])
def test_a_leaders_write_asks_the_lease_gate_before_and_just_before_its_body(server, left_before, left_at_body,
                                                                          outcome):
    """manager.reconciler.Reconciler.write: the one way the leader-only controllers write."""
    from manager.reconciler import NotLeading, Reconciler

    class Elector:
        asked = 0

        def may_act(self) -> float:
            self.asked += 1
            return left_before if self.asked == 1 else left_at_body

    loop = Reconciler(client_of(server), Elector())
    if outcome == "sent":
        assert loop.write("PUT", "/status", body={"status": 1}) == {}
    elif outcome == "not leading":
        with pytest.raises(NotLeading):
            loop.write("PUT", "/status", body={"status": 1})
    else:
        with pytest.raises(ApiError, match="gate shut"):
            loop.write("PUT", "/status", body={"status": 1})
    assert _Recorder.received == ([b'{"status": 1}'] if outcome == "sent" else [])
    assert loop.elector.asked == (1 if outcome == "not leading" else 2)
