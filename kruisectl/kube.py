"""Connection to the cluster: where the user asked to connect, and the client that gives.

Flags follow kubectl (``--kubeconfig``, ``--context``, ``-n/--namespace``,
``--request-timeout``). Run as ``helm kruise …``, helm strips those flags and passes them in
the environment instead, so ``HELM_KUBECONTEXT`` and ``HELM_NAMESPACE`` are the defaults.
Helm always sets ``HELM_NAMESPACE`` (to ``default`` when ``-n`` was not given); since the
manager is never installed there by default, ``default`` from helm counts as unset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubekit import kruise

from .errors import KruisectlError


def default_namespace() -> str:
    from_helm = os.environ.get("HELM_NAMESPACE", "")
    if from_helm and not (from_helm == "default" and os.environ.get("HELM_PLUGIN_NAME")):
        return from_helm
    return kruise.NAMESPACE


@dataclass
class KubeTarget:
    """Where to connect, as the user asked for it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = kruise.NAMESPACE
    request_timeout: float = 10.0
    context_used: str | None = None  # set by api_client(): the context and user really used
    user_used: str | None = None

    def api_client(self, pool_size: int | None = None):
        """A configured kubernetes ApiClient; a one-line KruisectlError when that is impossible.
        ``pool_size``: connections kept open, at least the number of concurrent requests, or
        each extra request pays a new TLS handshake."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        from .kubeconfig import KubeconfigError, merge, split

        path = self.kubeconfig or os.environ.get("KUBECONFIG") or None
        try:
            if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                configuration = client.Configuration()
                files = split(path) if path else [os.path.expanduser("~/.kube/config")]
                merged, used = merge(files)
                self.context_used = self.context or merged.get("current-context")
                context = next((c for c in merged["contexts"] if c.get("name") == self.context_used), None)
                self.user_used = ((context or {}).get("context") or {}).get("user")
                config.load_kube_config_from_dict(merged, context=self.context, client_configuration=configuration,
                                                  persist_config=False)
            else:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                self.context_used, self.user_used = "(in-cluster)", "(service account)"
        except KubeconfigError as err:
            raise KruisectlError(str(err)) from None
        except ConfigException as err:
            raise KruisectlError(f"bad kubeconfig: {str(err).splitlines()[0]}") from None
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
            raise KruisectlError(f"bad kubeconfig {path or '~/.kube/config'}: {err}") from None
        except Exception as err:  # yaml errors and the like
            raise KruisectlError(f"bad kubeconfig {path or '~/.kube/config'}: {str(err).splitlines()[0]}") from None
        configuration.retries = 0
        if pool_size:
            configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize)
        return client.ApiClient(configuration)


def api(api_client):
    """The one API client (kubekit.api) over ``api_client``'s configuration and pool."""
    from kubekit.api import Client

    return Client.for_api_client(api_client)


def request_json(api_client, method: str, path: str, timeout: float, body: dict | None = None,
                 content_type: str = "application/json", **query) -> dict:
    """One API request with JSON in and out; kubekit.api.ApiError (a kubernetes ApiException)
    on a 4xx/5xx or when no answer came."""
    return api(api_client).request(method, path, body=body, timeout=timeout, content_type=content_type, **query)
