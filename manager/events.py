"""Events the manager records (core/v1, as client-go's recorder writes them): the Lease's
LeaderElection, a Pod's WorkerRestarted, and the WorkloadSpread controller's warnings.

An Event is best effort: a failed POST is logged, never raised, so recording one cannot fail
the work it reports. Where client-go's correlator would count a repeat of the same Event,
this recorder sends it once per ``repeat_after`` seconds (a retried pass that fails the same
way every second must not write an Event every second); one the API refused is a repeat too,
so its failure is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kubekit import paths
from kubekit.timestamps import metav1_time

log = logging.getLogger("manager.events")

NORMAL, WARNING = "Normal", "Warning"


def involved(obj: dict, api_version: str, kind: str) -> dict:
    """The involvedObject reference of ``obj`` (its uid too, when it has one)."""
    meta = obj.get("metadata") or {}
    ref = {"apiVersion": api_version, "kind": kind, "name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    return ref


class EventRecorder:
    """``component``: the Event's source (upstream's controller name, or ``kruise-manager``)."""

    def __init__(self, client, component: str = "kruise-manager", timeout: float = 5.0, repeat_after: float = 300.0,
                 clock: Callable[[], float] = time.time):
        self.client, self.component, self.timeout = client, component, timeout
        self.repeat_after, self.clock = repeat_after, clock
        self._sent: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def record(self, ref: dict, type_: str, reason: str, message: str) -> bool:
        """POST the Event in ``ref``'s namespace; False when it was a recent repeat or not written."""
        now = self.clock()
        key = (ref.get("kind"), ref.get("namespace"), ref.get("name"), type_, reason, message)
        with self._lock:
            if now - self._sent.get(key, -self.repeat_after) < self.repeat_after:
                return False
            self._sent = {k: at for k, at in self._sent.items() if now - at < self.repeat_after}
            self._sent[key] = now
        when = metav1_time(now)
        body = {"metadata": {"generateName": f"{ref.get('name')}.", "namespace": ref.get("namespace")},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component}, "firstTimestamp": when, "lastTimestamp": when, "count": 1}
        try:
            self.client.request("POST", paths.events(ref.get("namespace")), timeout=self.timeout, body=body)
        except Exception as err:  # noqa: BLE001 - best effort, whatever the cause (ApiError for the API's and the transport's)
            log.warning("could not record the %s event on %s %s/%s: %s", reason, ref.get("kind"),
                        ref.get("namespace"), ref.get("name"), err)
            return False
        return True
