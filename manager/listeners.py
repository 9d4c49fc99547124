"""Serving on a listening socket that was bound elsewhere: the supervisor binds the webhook,
health and metrics ports once and every worker it starts inherits them, so connections wait in
the backlog across a worker's restart instead of being refused."""

from __future__ import annotations

import socket


def adopt(server_class, handler, sock: socket.socket):
    """A ``socketserver`` server (``http.server``'s, ``wsgiref``'s) on an inherited listening
    socket: it binds nothing."""
    server = server_class(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    server.server_name, server.server_port = server.server_address[:2]
    if hasattr(server, "setup_environ"):  # a WSGI server's environ names its host and port
        server.setup_environ()
    return server
