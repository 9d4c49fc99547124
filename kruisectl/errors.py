"""Exit codes and the one-line messages that replace tracebacks."""

from __future__ import annotations

import json

EXIT_FINDINGS = 1  # an error-level finding (or, with --fail-on warning, a warning)
EXIT_CANNOT_CHECK = 2  # unreachable cluster, forbidden, bad kubeconfig, bad input
EXIT_TIMEOUT = 124  # --wait ran out, as timeout(1)


class KruisectlError(Exception):
    """What the library raises when it cannot do what was asked: one line for a person, and
    the exit code the command line ends with (2 unless said otherwise)."""

    def __init__(self, message: str, exit_code: int = EXIT_CANNOT_CHECK):
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def describe_api_error(exc: BaseException) -> str:
    """One line saying what went wrong talking to the apiserver, and what to do."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        try:
            reason = json.loads(exc.body or "{}").get("message") or reason
        except (ValueError, AttributeError):
            pass
        if exc.status == 401:
            return f"unauthorized: the kubeconfig's credentials were rejected ({reason})"
        if exc.status == 403:
            return f"forbidden: {reason}"
        if exc.status == 404:
            return f"not found: {reason}"
        if exc.status:
            return f"apiserver answered {exc.status}: {reason}"
        text = str(reason)  # no answer: the transport error, classified below
    else:
        text = str(exc)
    # The specific causes first: urllib3 wraps every one of them in "Max retries exceeded".
    for markers, message in (
        (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
         "TLS: the apiserver's certificate is not signed by the kubeconfig's certificate-authority (wrong CA?)"),
        (("doesn't match", "Hostname mismatch", "IP address mismatch"),
         "TLS: the apiserver's certificate does not name the host in the kubeconfig's server URL"),
        (("SSLError", "SSL:", "WRONG_VERSION_NUMBER"), "TLS handshake failed (is the server URL https?)"),
        (("Name or service not known", "Temporary failure in name resolution", "nodename nor servname",
          "NameResolutionError", "No address associated"),
         "cannot reach the cluster: DNS: the server's host name does not resolve"),
        (("ConnectTimeoutError", "ReadTimeoutError", "timed out"),
         "cannot reach the cluster: timed out (the apiserver did not answer)"),
        (("Connection refused",), "cannot reach the cluster: connection refused (nothing listens at the server URL)"),
        (("Connection reset", "RemoteDisconnected"), "the connection was closed by the server"),
        (("Max retries exceeded", "NewConnectionError"), "cannot reach the cluster"),
    ):
        if any(marker in text for marker in markers):
            url = _server_of(text)
            return f"{message}{f' ({url})' if url else ''}"
    if isinstance(exc, ApiException):
        return f"cannot reach the cluster: {text}"
    return text.splitlines()[0] if text else type(exc).__name__


def _server_of(text: str) -> str:
    import re

    match = re.search(r"host='([^']+)', port=(\d+)", text)
    return f"{match.group(1)}:{match.group(2)}" if match else ""
