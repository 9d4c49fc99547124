"""Watched caches (list, then watch from the list's resourceVersion; relist on 410).

Objects are kept in a slim form chosen by the caller (``transform``), so a cache of a
thousand pods costs little memory. Handlers run on the informer's own thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from kubekit.api import ApiError, Client

log = logging.getLogger("manager.informer")


class Informer:
    def __init__(self, client: Client, path: str, *, transform: Callable[[dict], dict] = lambda o: o,
                 on_change: Callable[[str, dict | None, dict | None], None] | None = None,
                 name: str = "", **query):
        self.client = client
        self.path = path
        self.query = query
        self.transform = transform
        self.on_change = on_change
        self.name = name or path
        self.items: dict[str, dict] = {}
        self.version = 0  # counts changes to ``items``: what was derived from them is stale when it moved
        self.synced = threading.Event()
        self.absent = threading.Event()  # the last list answered 404: the resource (its CRD) is not served
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"informer {self.name}", daemon=True)

    @staticmethod
    def key(obj: dict) -> str:
        meta = obj.get("metadata", {})
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def start(self) -> "Informer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.items.values())

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self.items.get(key)

    def _notify(self, kind: str, old: dict | None, new: dict | None) -> None:
        if self.on_change:
            try:
                self.on_change(kind, old, new)
            except Exception:  # a handler bug must not stop the cache
                log.exception("handler of %s failed", self.name)

    def _list(self) -> str:
        listed = self.client.get(self.path, timeout=30, **self.query)
        fresh = {}
        for obj in listed.get("items", []):
            slim = self.transform(obj)
            fresh[self.key(slim)] = slim
        self.absent.clear()
        with self._lock:
            old, self.items = self.items, fresh
            self.version += 1
        for key in old.keys() - fresh.keys():
            self._notify("DELETED", old[key], None)
        for key, obj in fresh.items():
            self._notify("MODIFIED" if key in old else "ADDED", old.get(key), obj)
        self.synced.set()
        return listed.get("metadata", {}).get("resourceVersion", "")

    def _run(self) -> None:
        backoff = 0.5
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                for event in self.client.watch(self.path, version, timeout_s=240, **self.query):
                    if self._stop.is_set():
                        return
                    obj = event.get("object", {})
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] == "BOOKMARK":
                        continue
                    slim = self.transform(obj)
                    key = self.key(slim)
                    with self._lock:
                        old = self.items.get(key)
                        if event["type"] == "DELETED":
                            self.items.pop(key, None)
                        else:
                            self.items[key] = slim
                        self.version += 1
                    self._notify(event["type"], old, None if event["type"] == "DELETED" else slim)
                backoff = 0.5
            except ApiError as err:
                if err.status == 404 and not version:
                    self.absent.set()
                if err.status == 410:
                    version = ""
                    continue
                log.warning("watch of %s failed, retrying in %.1fs: %s", self.name, backoff, err)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
                if err.status:
                    version = ""
            except Exception:
                log.exception("informer %s failed; relisting", self.name)
                version = ""
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)

