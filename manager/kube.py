"""The manager's API client: JSON over the kubernetes client's configured connection pool.

Loads credentials the way client-go does (``--kubeconfig``, else ``$KUBECONFIG``, else the
in-cluster ServiceAccount), then speaks plain JSON. Every call carries a total timeout, so a
hung apiserver can never hold the leader past its renew deadline.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import urllib3


class ApiError(Exception):
    """An API call failed: ``status`` is the HTTP status (0 when no response arrived)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class Client:
    def __init__(self, kubeconfig: str | None = None, user_agent: str = "kruise-manager", pool_size: int = 16):
        from kubernetes import client, config

        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_kube_config(config_file=path, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = 0
        self._configuration = configuration
        self._pool = client.ApiClient(configuration).rest_client.pool_manager
        self.host = configuration.host
        self.user_agent = user_agent

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        configuration = self._configuration
        if configuration.refresh_api_key_hook is not None:
            configuration.refresh_api_key_hook(configuration)
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        token = configuration.get_api_key_with_prefix("authorization") or configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, *, body=None, timeout: float = 5.0,
                content_type: str = "application/json", **query) -> dict:
        """One call; ApiError on failure, the decoded JSON otherwise."""
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        try:
            response = self._pool.request(method, url, body=payload,
                                          headers=self._headers(content_type if payload is not None else None),
                                          timeout=urllib3.Timeout(total=timeout), retries=False)
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, f"{method} {path}: {err.__class__.__name__}: {err}") from None
        data = response.data
        if response.status >= 400:
            message = data.decode(errors="replace")
            try:
                message = json.loads(data).get("message", message)
            except ValueError:
                pass
            raise ApiError(response.status, message)
        return json.loads(data) if data else {}

    def get(self, path: str, timeout: float = 5.0, **query) -> dict:
        return self.request("GET", path, timeout=timeout, **query)

    def watch(self, path: str, resource_version: str, timeout_s: int = 300, **query):
        """Yield watch events (dicts with ``type`` and ``object``) until the server ends the
        watch. Raises ApiError when it cannot be opened; a 410 means relist."""
        query = {**query, "watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        url = self.host + path + "?" + urlencode(query)
        try:
            response = self._pool.request("GET", url, headers=self._headers(), preload_content=False, retries=False,
                                          timeout=urllib3.Timeout(connect=5.0, read=timeout_s + 15))
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, f"watch {path}: {err.__class__.__name__}: {err}") from None
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
            raise ApiError(0, f"watch {path} ended: {err.__class__.__name__}") from None
        finally:
            # A watch is rarely read to its end: close its connection rather than return a
            # half-read one to the pool.
            response.close()
            response.release_conn()
