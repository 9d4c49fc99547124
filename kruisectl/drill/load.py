"""The drill's load: server-side dry-run pod creates at a steady rate, each answer classified —
admitted with the probe sidecar, admitted without it (a silent loss), or failed with the
apiserver's message kept. With a ``spread`` (:mod:`.spread`), a ``share`` of the creates are
real pods a WorkloadSpread places in its subsets (a dry run takes no place in one)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..probe import PROBE_CONTAINER, probe_pod

ADMITTED, NOT_INJECTED, FAILED = "admitted", "not-injected", "failed"


@dataclass
class Outcome:
    started: float  # monotonic
    latency_s: float
    kind: str  # ADMITTED / NOT_INJECTED / FAILED
    message: str = ""
    spread: bool = False  # a real create of a WorkloadSpread's pod


def _error_message(err) -> str:
    try:
        return json.loads(err.body).get("message", str(err))
    except (ValueError, TypeError, AttributeError):
        return str(getattr(err, "reason", None) or err)


class AdmissionLoad:
    """Open-loop dry-run pod creates at ``rate``/s: a slow or failing answer never lowers the
    offered rate (each request runs on its own worker, up to ``max_in_flight``)."""

    def __init__(self, api, namespace: str, labels: dict[str, str], rate: float, timeout: float,
                 max_in_flight: int = 256, prefix: str = "kruisectl-drill-", spread=None, share: float = 0.0):
        self.api, self.namespace, self.labels, self.prefix = api, namespace, labels, prefix
        self.spread, self.share = spread, (share if spread is not None else 0.0)
        self._credit = 0.0  # of WorkloadSpread creates: one is sent each time it reaches 1
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="drill-load")
        self._ticker: threading.Thread | None = None
        self.skipped = 0  # ticks dropped because max_in_flight requests were outstanding
        self._in_flight = threading.BoundedSemaphore(max_in_flight)

    def one(self, spread: bool = False) -> Outcome:
        """One create: dry run, or (``spread``) a real pod of the spread's Job."""
        from kubernetes.client.exceptions import ApiException

        started = time.monotonic()
        body, query = (self.spread.pod(self.labels), {}) if spread else (probe_pod(self.labels, self.prefix),
                                                                       {"dryRun": "All"})
        try:
            pod = self.api.request("POST", f"/api/v1/namespaces/{self.namespace}/pods",
                                   timeout=self.timeout, body=body, **query)
        except ApiException as err:
            return Outcome(started, time.monotonic() - started, FAILED, _error_message(err), spread)
        except Exception as err:  # noqa: BLE001 - a transport error is a failed admission too
            return Outcome(started, time.monotonic() - started, FAILED, f"{err.__class__.__name__}: {err}", spread)
        if spread:
            self.spread.created(pod)
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        kind = ADMITTED if PROBE_CONTAINER in names else NOT_INJECTED
        return Outcome(started, time.monotonic() - started, kind, spread=spread)

    def _record(self, spread: bool = False) -> None:
        try:
            outcome = self.one(spread)
            with self._lock:
                self.outcomes.append(outcome)
        finally:
            self._in_flight.release()

    def _tick(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._credit += self.share
            spread = self._credit >= 1.0
            if spread:
                self._credit -= 1.0
            if self.spread is not None:
                self.spread.churn()
            if self._in_flight.acquire(blocking=False):
                self._pool.submit(self._record, spread)
            else:
                self.skipped += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> "AdmissionLoad":
        self._ticker = threading.Thread(target=self._tick, name="drill-ticker", daemon=True)
        self._ticker.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.started < end]
