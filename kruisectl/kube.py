"""Connection to the cluster: the flags every command shares and the client they build.

Flags follow kubectl (``--kubeconfig``, ``--context``, ``-n/--namespace``,
``--request-timeout``). Run as ``helm kruise …``, helm strips those flags and passes them in
the environment instead, so ``HELM_KUBECONTEXT`` and ``HELM_NAMESPACE`` are the defaults.
Helm always sets ``HELM_NAMESPACE`` (to ``default`` when ``-n`` was not given); since the
manager is never installed there by default, ``default`` from helm counts as unset.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import click

from kubekit import kruise

from .errors import CLIError
from .params import Duration


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
        """A configured kubernetes ApiClient; a one-line CLIError when that is impossible.
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
            raise CLIError(str(err)) from None
        except ConfigException as err:
            raise CLIError(f"bad kubeconfig: {str(err).splitlines()[0]}") from None
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
            raise CLIError(f"bad kubeconfig {path or '~/.kube/config'}: {err}") from None
        except Exception as err:  # yaml errors and the like
            raise CLIError(f"bad kubeconfig {path or '~/.kube/config'}: {str(err).splitlines()[0]}") from None
        configuration.retries = 0
        if pool_size:
            configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize)
        return client.ApiClient(configuration)


def _complete_contexts(ctx, param, incomplete: str):
    """Context names from the kubeconfig files, merged as kubectl merges them."""
    from click.shell_completion import CompletionItem

    from .kubeconfig import KubeconfigError, merge, split

    path = ctx.params.get("kubeconfig") or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        merged, _ = merge(split(path))
    except KubeconfigError:
        return []
    return [CompletionItem(c["name"]) for c in merged["contexts"] if c.get("name", "").startswith(incomplete)]


def _complete_from_api(path: str):
    """A completer listing object names from the cluster (quietly nothing when it cannot)."""

    def complete(ctx, param, incomplete: str):
        from click.shell_completion import CompletionItem

        try:
            target = KubeTarget(kubeconfig=ctx.params.get("kubeconfig"), context=ctx.params.get("context"),
                                request_timeout=3)
            items = request_json(target.api_client(), "GET", path, 3)["items"]
        except Exception:  # noqa: BLE001 - completion must never fail loudly
            return []
        return [CompletionItem(i["metadata"]["name"]) for i in items if i["metadata"]["name"].startswith(incomplete)]

    return complete


complete_namespaces = _complete_from_api("/api/v1/namespaces")
complete_nodes = _complete_from_api("/api/v1/nodes")


def kube_options(func):
    """Add ``--kubeconfig``, ``--context``, ``-n/--namespace``, ``--request-timeout``; the
    command receives one ``target: KubeTarget`` argument instead."""

    @click.option("--kubeconfig", envvar="KUBECONFIG", default=None, metavar="PATH",
                  help="Path to the kubeconfig file (env KUBECONFIG).")
    @click.option("--context", envvar="HELM_KUBECONTEXT", default=None, metavar="NAME", shell_complete=_complete_contexts,
                  help="Kubeconfig context to use (env HELM_KUBECONTEXT as a helm plugin).")
    @click.option("-n", "--namespace", default=default_namespace, show_default=kruise.NAMESPACE,
                  shell_complete=complete_namespaces,
                  metavar="NS", help="Namespace of the kruise-manager (env HELM_NAMESPACE as a helm plugin).")
    @click.option("--request-timeout", type=Duration(allow_zero=False, minimum=0.1), default="10s", show_default=True,
                  metavar="DURATION", help="Timeout of each API request.")
    @functools.wraps(func)
    def wrapper(*args, kubeconfig, context, namespace, request_timeout, **kwargs):
        target = KubeTarget(kubeconfig=kubeconfig, context=context or None, namespace=namespace,
                            request_timeout=request_timeout)
        return func(*args, target=target, **kwargs)

    return wrapper


def api(api_client):
    """The one API client (kubekit.api) over ``api_client``'s configuration and pool."""
    from kubekit.api import Client

    return Client.for_api_client(api_client)


def request_json(api_client, method: str, path: str, timeout: float, body: dict | None = None,
                 content_type: str = "application/json", **query) -> dict:
    """One API request with JSON in and out; kubekit.api.ApiError (a kubernetes ApiException)
    on a 4xx/5xx or when no answer came."""
    return api(api_client).request(method, path, body=body, timeout=timeout, content_type=content_type, **query)
