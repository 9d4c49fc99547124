"""The one-line verdict of `kruisectl webhook check`: a risk in what the pod webhooks cover
is not a webhook the apiserver cannot call."""

from __future__ import annotations

import pytest

from kruisectl.findings import Finding
from kruisectl.webhookcheck import servable_verdict


@pytest.mark.parametrize("levels, verdict", [
    ({"service": "ok", "probe/mutating": "ok"}, "servable"),
    ({"service": "ok", "pod-webhook/mpod.kb.io": "error", "pod-webhook/vpod.kb.io": "error"},
     "servable, with 2 configuration error(s)"),
    ({"service": "error", "pod-webhook/mpod.kb.io": "error"}, "NOT servable"),
    ({"probe/mutating": "error"}, "NOT servable"),
    ({"cabundle/mpod.kb.io": "error"}, "NOT servable"),
    ({"endpoint/198.18.1.10": "warning"}, "servable"),
])
def test_verdict(levels, verdict):
    assert servable_verdict([Finding(check, level, "") for check, level in levels.items()]) == verdict
