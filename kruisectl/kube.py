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

from . import __version__
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
    context_used: str | None = None  # set by client(): the context and user really used
    user_used: str | None = None

    def client(self, pool_size: int | None = None):
        """The kubekit client of this target (kubekit.kubeconfig loads the credentials); a
        one-line KruisectlError when that is impossible. ``pool_size``: connections kept open,
        at least the number of concurrent requests, or each extra request pays a new TLS
        handshake. Failed calls raise kubekit.api.ApiError."""
        from kubekit.api import Client
        from kubekit.kubeconfig import KubeconfigError, load

        try:
            loaded = load(self.kubeconfig, self.context)
        except KubeconfigError as err:
            raise KruisectlError(str(err)) from None
        self.context_used, self.user_used = loaded.context, loaded.user
        # retries None: urllib3's errors keep naming the server (describe_api_error shows it).
        return Client.for_configuration(loaded.configuration, f"kruisectl/{__version__}", pool_size or 0, retries=None)
