"""The serving certificate on disk, and the TLS context made from it.

Re-read when its files change (checked at most once a second, on new connections), so a
rotation needs no restart; a pair caught half-written is ignored until it is whole and the
previous context keeps serving.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time

log = logging.getLogger("manager.certwatcher")


class CertWatcher:
    def __init__(self, cert_file: str, key_file: str, *, min_interval: float = 1.0):
        self.cert_file, self.key_file = cert_file, key_file
        self.min_interval = min_interval
        self._context: ssl.SSLContext | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple | None:
        try:
            a, b = os.stat(self.cert_file), os.stat(self.key_file)
        except OSError:
            return None
        return (a.st_mtime_ns, a.st_size, a.st_ino, b.st_mtime_ns, b.st_size, b.st_ino)

    def context(self) -> ssl.SSLContext | None:
        """The current server context (TLS >= 1.2, HTTP/1.1); None until a pair has loaded."""
        now = time.monotonic()
        if self._context is not None and now - self._checked < self.min_interval:
            return self._context
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.set_alpn_protocols(["http/1.1"])
                try:
                    context.load_cert_chain(self.cert_file, self.key_file)
                    if self._context is not None:
                        log.info("reloaded the serving certificate")
                    self._context, self._stamp = context, stamp
                except (ssl.SSLError, OSError) as err:  # a pair caught mid-rotation: retry later
                    log.warning("serving certificate not loadable yet: %s", err)
            return self._context
