"""The options commands share: kubectl's connection flags (``--kubeconfig``, ``--context``,
``-n/--namespace``, ``--request-timeout``; as ``helm kruise …`` helm hands them over in the
environment), ``-o`` and duration-typed options. The click side of :mod:`kruisectl.kube`."""

from __future__ import annotations

import functools
import os

import click

from kubekit import durations, kruise, paths

from ..kube import KubeTarget, default_namespace
from ..output import FORMATS


class Duration(click.ParamType):
    """A kubectl/Go duration (``30s``, ``5m``, ``1h2m``, ``500ms``; a bare number is seconds),
    as seconds. Negative, NaN and (unless allowed) zero are refused, naming the option."""

    name = "duration"

    def __init__(self, allow_zero: bool = True, minimum: float = 0.0):
        self.allow_zero, self.minimum = allow_zero, minimum

    def convert(self, value, param, ctx) -> float:
        text = str(value)
        try:
            seconds = durations.parse(text)
        except durations.DurationError as err:
            self.fail(str(err), param, ctx)
        if seconds == 0 and not self.allow_zero:
            self.fail(f"{text!r}: must be more than 0", param, ctx)
        if seconds and seconds < self.minimum:
            self.fail(f"{text!r}: must be at least {self.minimum:g}s", param, ctx)
        return seconds


DURATION = Duration()
POSITIVE_DURATION = Duration(allow_zero=False)


def output_option(default: str = "table", formats: tuple[str, ...] = FORMATS):
    return click.option(
        "-o",
        "--output",
        type=click.Choice(formats),
        default=default,
        show_default=True,
        help="Output format.",
    )


def _complete_contexts(ctx, param, incomplete: str):
    """Context names from the kubeconfig files, merged as kubectl merges them."""
    from click.shell_completion import CompletionItem

    from kubekit.kubeconfig import KubeconfigError, merge, split

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
            items = target.client().get(path, 3)["items"]
        except Exception:  # noqa: BLE001 - completion must never fail loudly
            return []
        return [CompletionItem(i["metadata"]["name"]) for i in items if i["metadata"]["name"].startswith(incomplete)]

    return complete


complete_namespaces = _complete_from_api(paths.namespaces())
complete_nodes = _complete_from_api(paths.nodes())


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
