"""metav1.Time as the API serialises it: RFC 3339 in UTC, whole seconds (``2026-12-05T14:07:15Z``).
The one writer of that form for statuses, Events and annotations."""

from __future__ import annotations

import time


def metav1_time(epoch: float | None = None) -> str:
    """``epoch`` (now when None) as metav1.Time's JSON, the fraction of its second dropped."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))
