"""HTTP/1.1 requests of one connection, parsed by llhttp (Node's parser, through ``httptools``):
an admission endpoint is the last place for a home-made parser. This module only frames: bytes
in, requests out in arrival order, or the HTTP error that ends the connection; what the server
answers stays in ``webhook``.

Limits llhttp does not keep are kept here: a request head over ``MAX_HEAD`` bytes gets 414 (the
request line alone is that long) or 431, more than ``MAX_HEADERS`` header lines 431, a version
other than HTTP/1.0 or 1.1 gets 505, and a body is kept only up to the size the server reads.
"""

from __future__ import annotations

import urllib.parse
from collections import deque

import httptools

from kubekit import durations

MAX_HEAD = 65536  # the request line and the header block, as http.server limits them
MAX_HEADERS = 100
_VERSIONS = ("1.1", "1.0")
# A request line's bytes besides its target: the longest method llhttp knows, two spaces,
# "HTTP/1.1" and CRLF.
_LINE_OVERHEAD = len("PROPPATCH") + 2 + len("HTTP/1.1") + 2


class Request:
    """A request whose head is complete; ``complete`` once its whole body is here. Of its
    headers only what the server reads: Content-Length (None: none), Content-Type, whether a
    Transfer-Encoding was sent; of its query only ``timeout`` (:func:`answer_within`)."""

    __slots__ = ("method", "path", "length", "content_type", "chunked", "keep_alive", "body", "size", "keep_body",
                 "complete", "timeout")

    def __init__(self, method: str, path: str, headers: dict[bytes, bytes], keep_alive: bool, body_limit: int,
                 timeout: float | None = None):
        self.method, self.path, self.keep_alive, self.timeout = method, path, keep_alive, timeout
        length = headers.get(b"content-length")
        self.length = None if length is None else int(length)  # llhttp let only digits through
        self.content_type = headers.get(b"content-type", b"").decode("latin-1")
        self.chunked = b"transfer-encoding" in headers
        self.body: list[bytes] = []
        self.size = 0
        self.keep_body = self.length is not None and self.length <= body_limit
        self.complete = False


def answer_within(query: str) -> float | None:
    """The seconds the apiserver waits for the answer: the ``timeout`` it puts in a webhook's
    URL (``?timeout=10s``, the webhook's timeoutSeconds); None when absent or unreadable."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "timeout":
            try:
                return durations.parse(urllib.parse.unquote(value)) or None
            except durations.DurationError:
                return None
    return None


class _Stop(Exception):
    """Raised in a callback to stop llhttp once ``error`` is set."""


class Requests:
    """Feed it what the socket gives (:meth:`feed`); take requests from ``ready`` (heads
    complete, in order); ``error`` is ``(status, text)`` once the input can no longer be
    framed, after the requests before it. ``body_limit``: larger bodies are not kept."""

    __slots__ = ("parser", "ready", "error", "body_limit", "_current", "_url", "_headers", "_head", "_size", "_chunk",
                 "_completed_here")

    def __init__(self, body_limit: int):
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[Request] = deque()
        self.error: tuple[int, str] | None = None
        self.body_limit = body_limit
        self._current: Request | None = None  # the request whose body is arriving
        self._url = b""
        self._headers: dict[bytes, bytes] | None = None  # None: no head being read
        self._head = 0  # bytes of the head being read, counted by chunk (see on_message_begin)
        self._size = 0  # the head's size as its parts add up (without the spaces llhttp trims)
        self._chunk = 0
        self._completed_here = False

    def mid_request(self) -> bool:
        """Part of a request is here (a connection closed now would lose it)."""
        return self._headers is not None or self._current is not None

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        if self._headers is not None:
            self._head += len(data)  # a head read on from an earlier chunk: all of this is head, or ends it
        self._chunk, self._completed_here = len(data), False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_after_last("protocol upgrade requested")
        except httptools.HttpParserError as err:  # or a callback's _Stop, the error already set
            if self.error is None:
                self.error = (505, "HTTP/1.1 only") if "HTTP version" in str(err) else (400, f"bad request: {err}")
        else:
            if self._headers is not None and self._head > MAX_HEAD:
                self._too_large()

    def _stop_after_last(self, reason: str) -> None:
        last = self._current or (self.ready[-1] if self.ready else None)
        if last is None:
            self.error = (400, f"bad request: {reason}")
        else:
            last.keep_alive = False
            self.error = (400, reason)  # never reached: the connection closes after ``last``

    def _too_large(self) -> None:
        line = len(self._url) + _LINE_OVERHEAD
        self.error = (414, "request line too long") if line > MAX_HEAD else (431, "request head too large")

    # ---- llhttp's callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._size = b"", {}, _LINE_OVERHEAD
        # From this chunk's start, unless a request ended earlier in it: then where this one
        # starts is unknown and counting starts with the next chunk (at most one chunk more).
        self._head = 0 if self._completed_here else self._chunk

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if len(headers) >= MAX_HEADERS:
            self.error = (431, "too many headers")
            raise _Stop()
        headers[name.lower()] = value.strip()
        self._size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        parser = self.parser
        if self._size > MAX_HEAD:
            self._too_large()
            raise _Stop()
        if parser.get_http_version() not in _VERSIONS:
            self.error = (505, "HTTP/1.1 only")
            raise _Stop()
        path, _, query = self._url.decode("latin-1").partition("?")
        request = Request(parser.get_method().decode("latin-1"), path, self._headers, parser.should_keep_alive(),
                          self.body_limit, answer_within(query))
        self._headers, self._current = None, request
        self.ready.append(request)

    def on_body(self, body: bytes) -> None:
        request = self._current
        if request.keep_body:
            request.body.append(body)
        request.size += len(body)

    def on_message_complete(self) -> None:
        self._current.complete = True
        self._current = None
        self._completed_here = True
