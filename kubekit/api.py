"""The one API client of the manager, the CLI library and the harness: JSON requests and
watches over the kubernetes client's configured connection pool.

It bypasses the generated typed APIs on purpose: importing them costs over a second and
validating every call about a millisecond, which dominate short commands, bulk writes and
the manager's hot paths. Every call carries a total timeout, so a hung apiserver can never
hold a leader past its renew deadline nor a command past ``--request-timeout``. Failures are
``ApiError``, a kubernetes ``ApiException``, so code holding a typed client catches one type.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Callable
from urllib.parse import urlencode

import urllib3
from kubernetes.client.exceptions import ApiException


class ApiError(ApiException):
    """An API call failed: ``status`` is the HTTP status (0 when no response arrived),
    ``message`` the Status message (or the transport error), ``body`` the raw answer."""

    def __init__(self, status: int, message: str, body: str | None = None):
        super().__init__(status=status, reason=message)
        self.body = body
        self.message = message

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def _default_socket_options() -> list:
    """What the kubernetes client sets when given none: TCP keepalive as client-go's (and
    urllib3's TCP_NODELAY)."""
    try:
        from kubernetes.utils.keepalive import tcp_keepalive_socket_options
    except ImportError:
        return list(urllib3.connection.HTTPConnection.default_socket_options)
    return list(tcp_keepalive_socket_options())


class GateShut(Exception):
    """A guarded request's guard said no just before its body went out."""


def _guarded(payload: bytes, guard: Callable[[], bool]):
    """The body as one chunk, sent only if ``guard()`` still holds once the headers are out."""
    if not guard():
        raise GateShut()
    yield payload


class Client:
    """Requests and watches on one connection pool. ``retries`` False (the manager's): a
    failure is reported at once; None: the pool's own policy (the CLI's kubeconfig setting)."""

    def __init__(self, configuration, pool, user_agent: str, retries: bool | None = False):
        self._configuration = configuration
        self._pool = pool
        self.host = configuration.host
        self.user_agent = user_agent
        self._retries = retries

    @property
    def configuration(self):
        """The kubernetes client ``Configuration`` this client sends with (server, credentials)."""
        return self._configuration

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, user_agent: str = "kruise-manager",
                        pool_size: int = 16, abort_on_close: bool = False, context: str | None = None) -> "Client":
        """Credentials as :func:`kubekit.kubeconfig.load` finds them (``kubeconfig``, else
        ``$KUBECONFIG`` merged as kubectl merges it, else the in-cluster ServiceAccount;
        ``context`` else the current one). ``abort_on_close``: connections close with a reset
        (SO_LINGER 0), so what this process had not yet sent dies with it instead of reaching
        the server after its death."""
        from .kubeconfig import load

        return cls.for_configuration(load(kubeconfig, context).configuration, user_agent, pool_size,
                                     abort_on_close=abort_on_close)

    @classmethod
    def for_configuration(cls, configuration, user_agent: str, pool_size: int = 16, abort_on_close: bool = False,
                          retries: bool | None = False) -> "Client":
        """A client over a loaded kubernetes ``Configuration``, with a pool of ``pool_size``
        connections (at least the number of concurrent requests, or each extra one pays a new
        TLS handshake)."""
        from kubernetes import client

        configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize or 0)
        configuration.retries = 0
        if abort_on_close:
            configuration.socket_options = [*_default_socket_options(),
                                            (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))]
        return cls._owning(client.ApiClient(configuration), user_agent, retries)

    @classmethod
    def for_certificate(cls, server: str, ca_file: str, cert_file: str, key_file: str, user_agent: str,
                        pool_size: int = 4) -> "Client":
        """A client authenticated by a client certificate (the harness's admin and kubelets)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = server
        configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file = ca_file, cert_file, key_file
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = 0
        configuration.proxy = None  # never through a proxy from the environment: the harness is local
        return cls._owning(client.ApiClient(configuration), user_agent)

    @classmethod
    def _owning(cls, api_client, user_agent: str, retries: bool | None = False) -> "Client":
        """A client over ``api_client``'s pool that keeps it alive: a collected ApiClient
        clears its pool."""
        made = cls(api_client.configuration, api_client.rest_client.pool_manager, user_agent, retries)
        made._api_client = api_client
        return made

    def _retry_args(self) -> dict:
        return {} if self._retries is None else {"retries": self._retries}

    def _headers(self, content_type: str | None = None, accept: str = "application/json") -> dict[str, str]:
        configuration = self._configuration
        if configuration.refresh_api_key_hook is not None:
            configuration.refresh_api_key_hook(configuration)
        headers = {"Accept": accept, "User-Agent": self.user_agent}
        token = configuration.get_api_key_with_prefix("authorization") or configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method: str, path: str, payload: bytes | None, timeout: float, content_type: str,
              accept: str, query: dict, guard: Callable[[], bool] | None = None) -> bytes:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        headers = self._headers(content_type if payload is not None else None, accept)
        body = payload
        if guard is not None and payload is not None:
            headers["Content-Length"] = str(len(payload))
            body = _guarded(payload, guard)
        try:
            if guard is not None and payload is None and not guard():
                raise GateShut()  # no body to hold back: the request itself is not sent
            response = self._pool.request(method, url, body=body, headers=headers,
                                          timeout=urllib3.Timeout(total=timeout), **self._retry_args())
        except GateShut:
            raise ApiError(0, f"{method} {path}: not sent: the writer's gate shut before its body went out") from None
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, f"{method} {path}: {err.__class__.__name__}: {err}") from err
        data = response.data
        if response.status >= 400:
            body = data.decode(errors="replace")
            message = body
            try:
                message = json.loads(data).get("message", message)
            except (ValueError, AttributeError):
                pass
            raise ApiError(response.status, message or response.reason or "", body)
        return data

    def request(self, method: str, path: str, *, body=None, timeout: float = 5.0,
                content_type: str = "application/json", guard: Callable[[], bool] | None = None, **query) -> dict:
        """One call; ApiError on failure, the decoded JSON otherwise. ``guard``: asked once the
        headers are out and just before the body is (nothing else runs in between): False
        closes the connection with the body unsent, so the apiserver never acts on it. A
        leader's write passes its lease gate there, not only before it builds the request (a
        process frozen after that first check would send a stale write when thawed)."""
        payload = json.dumps(body).encode() if body is not None else None
        data = self._send(method, path, payload, timeout, content_type, "application/json", query, guard)
        return json.loads(data) if data else {}

    def get_text(self, path: str, timeout: float = 5.0, **query) -> str:
        """A GET whose answer is text (a pod's /metrics through the apiserver's proxy)."""
        return self._send("GET", path, None, timeout, "", "text/plain", query).decode(errors="replace")

    def get(self, path: str, timeout: float = 5.0, **query) -> dict:
        return self.request("GET", path, timeout=timeout, **query)

    def watch(self, path: str, resource_version: str, timeout_s: int = 300, **query):
        """Yield watch events (dicts with ``type`` and ``object``) until the server ends the
        watch. Raises ApiError when it cannot be opened; a 410 means relist."""
        with self.open_watch(path, resource_version, timeout_s, **query) as watch:
            yield from watch

    def open_watch(self, path: str, resource_version: str, timeout_s: int = 300, **query) -> "Watch":
        """A watch another thread can end at once with :meth:`Watch.close` (a reader blocked on
        a quiet watch would otherwise wait for the server's timeout)."""
        query = {**query, "watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        url = self.host + path + "?" + urlencode(query)
        try:
            response = self._pool.request("GET", url, headers=self._headers(), preload_content=False,
                                          timeout=urllib3.Timeout(connect=5.0, read=timeout_s + 15), **self._retry_args())
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, f"watch {path}: {err.__class__.__name__}: {err}") from err
        if response.status >= 400:
            body = response.read().decode(errors="replace")
            response.release_conn()
            raise ApiError(response.status, body)
        return Watch(path, response)


class Watch:
    """One open watch: iterate it for events; :meth:`close` from any thread ends it."""

    def __init__(self, path: str, response):
        self.path = path
        self._response = response
        self.closed = False

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        buffer = b""
        try:
            for chunk in self._response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object", {})
                            raise ApiError(int(status.get("code") or 500), status.get("message", "watch error"))
                        yield event
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            if not self.closed:
                raise ApiError(0, f"watch {self.path} ended: {err.__class__.__name__}") from err

    def close(self) -> None:
        """End the watch: shut its socket down (waking a blocked reader), then drop the
        connection rather than return a half-read one to the pool."""
        self.closed = True
        sock = getattr(getattr(self._response, "_connection", None), "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # noqa: BLE001 - closing twice or from another thread is harmless
            pass


def resource_version(obj: dict | None) -> int | None:
    """``metadata.resourceVersion`` as a number, to tell which of two reads of one object is newer
    (etcd's revisions, which this apiserver's are); None when absent or not a number."""
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None
