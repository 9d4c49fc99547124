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
import os
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


class Client:
    """Requests and watches on one connection pool. ``retries`` False (the manager's): a
    failure is reported at once; None: the pool's own policy (the CLI's kubeconfig setting)."""

    def __init__(self, configuration, pool, user_agent: str, retries: bool | None = False):
        self._configuration = configuration
        self._pool = pool
        self.host = configuration.host
        self.user_agent = user_agent
        self._retries = retries

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, user_agent: str = "kruise-manager",
                        pool_size: int = 16) -> "Client":
        """Credentials the way client-go loads them: ``kubeconfig``, else ``$KUBECONFIG``, else
        the in-cluster ServiceAccount."""
        from kubernetes import client, config

        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_kube_config(config_file=path, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = 0
        return cls(configuration, client.ApiClient(configuration).rest_client.pool_manager, user_agent)

    @classmethod
    def for_api_client(cls, api_client) -> "Client":
        """The same client over a kubernetes ``ApiClient``'s configuration and pool (the CLI's)."""
        return cls(api_client.configuration, api_client.rest_client.pool_manager, api_client.user_agent, retries=None)

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
              accept: str, query: dict) -> bytes:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self._pool.request(method, url, body=payload,
                                          headers=self._headers(content_type if payload is not None else None, accept),
                                          timeout=urllib3.Timeout(total=timeout), **self._retry_args())
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
                content_type: str = "application/json", **query) -> dict:
        """One call; ApiError on failure, the decoded JSON otherwise."""
        payload = json.dumps(body).encode() if body is not None else None
        data = self._send(method, path, payload, timeout, content_type, "application/json", query)
        return json.loads(data) if data else {}

    def get_text(self, path: str, timeout: float = 5.0, **query) -> str:
        """A GET whose answer is text (a pod's /metrics through the apiserver's proxy)."""
        return self._send("GET", path, None, timeout, "", "text/plain", query).decode(errors="replace")

    def get(self, path: str, timeout: float = 5.0, **query) -> dict:
        return self.request("GET", path, timeout=timeout, **query)

    def watch(self, path: str, resource_version: str, timeout_s: int = 300, **query):
        """Yield watch events (dicts with ``type`` and ``object``) until the server ends the
        watch. Raises ApiError when it cannot be opened; a 410 means relist."""
        query = {**query, "watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        url = self.host + path + "?" + urlencode(query)
        try:
            response = self._pool.request("GET", url, headers=self._headers(), preload_content=False,
                                          timeout=urllib3.Timeout(connect=5.0, read=timeout_s + 15), **self._retry_args())
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, f"watch {path}: {err.__class__.__name__}: {err}") from err
        try:
            if response.status >= 400:
                raise ApiError(response.status, response.read().decode(errors="replace"))
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object", {})
                            raise ApiError(int(status.get("code") or 500), status.get("message", "watch error"))
                        yield event
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ApiError(0, f"watch {path} ended: {err.__class__.__name__}") from err
        finally:
            # A watch is rarely read to its end: close its connection rather than return a
            # half-read one to the pool.
            response.close()
            response.release_conn()
