"""Go's durations (``15s``, ``1h30m``, ``500ms``; a bare number is seconds), as the manager's
flags, the chart's values and kruisectl's options all take them."""

from __future__ import annotations

import math
import re

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class DurationError(ValueError):
    """Not a duration, or a negative, NaN or infinite one."""


def parse(text: str) -> float:
    """Seconds; never negative, NaN or infinite."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise DurationError(f"invalid duration {text!r} (examples: 15s, 1h30m, 500ms)") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"invalid duration {text!r}: must be a finite, non-negative time")
    return seconds


def format(seconds: float) -> str:  # noqa: A001 (the module's own verb, as durations.parse)
    """Seconds as a duration flag takes them, Go's units without zero parts (1h30m, 720h, 0.5s)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{int(hours)}h" if hours else "") + (f"{int(minutes)}m" if minutes else "") + \
        (f"{secs:g}s" if secs or not (hours or minutes) else "")
