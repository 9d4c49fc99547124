"""Option types shared by the commands."""

from __future__ import annotations

import click

from kubekit import durations


class Duration(click.ParamType):
    """A kubectl/Go duration (``30s``, ``5m``, ``1h2m``, ``500ms``; a bare number is seconds),
    as seconds. Negative, NaN and (unless allowed) zero are refused, naming the option."""

    name = "duration"

    def __init__(self, allow_zero: bool = True, minimum: float = 0.0):
        self.allow_zero, self.minimum = allow_zero, minimum

    def convert(self, value, param, ctx) -> float:
        text = str(value)
        try:
            seconds = durations.parse(text)
        except durations.DurationError as err:
            self.fail(str(err), param, ctx)
        if seconds == 0 and not self.allow_zero:
            self.fail(f"{text!r}: must be more than 0", param, ctx)
        if seconds and seconds < self.minimum:
            self.fail(f"{text!r}: must be at least {self.minimum:g}s", param, ctx)
        return seconds


DURATION = Duration()
POSITIVE_DURATION = Duration(allow_zero=False)
