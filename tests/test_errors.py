"""Transport failures named by their cause, specific before generic (urllib3 wraps each in
"Max retries exceeded")."""

from __future__ import annotations

import pytest

from kruisectl.errors import describe_api_error

POOL = "HTTPSConnectionPool(host='10.0.0.1', port=6443): Max retries exceeded with url: /api/v1/namespaces (Caused by "


@pytest.mark.parametrize("cause, words", [
    ("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to "
     "get local issuer certificate (_ssl.c:1006)')))", "not signed by the kubeconfig's certificate-authority"),
    ("SSLError(SSLCertVerificationError(\"hostname '10.0.0.1' doesn't match 'kubernetes'\")))", "does not name the host"),
    ("SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')))", "TLS handshake failed"),
    ("NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve 'api.nope' ([Errno -2] "
     "Name or service not known)\"))", "DNS: the server's host name does not resolve"),
    ("ConnectTimeoutError(<urllib3.connection.HTTPSConnection object>, 'Connection to 10.0.0.1 timed out. "
     "(connect timeout=5)'))", "timed out"),
    ("NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", "connection refused"),
    ("ProtocolError('Connection aborted.', RemoteDisconnected('Remote end closed connection')))",
     "closed by the server"),
])
def test_transport_failures_say_which_cause(cause, words):
    message = describe_api_error(Exception(POOL + cause))
    assert words in message and "(10.0.0.1:6443)" in message and "\n" not in message, message
    if "TLS" in words or "handshake" in words:
        assert "cannot reach" not in message, message  # it was reached: its certificate is the problem
