"""Go durations, parsed once for the manager, the chart's values and kruisectl."""

import pytest

from kubekit import durations


@pytest.mark.parametrize("text,seconds", [("15s", 15.0), ("1h30m", 5400.0), ("500ms", 0.5), ("2", 2.0),
                                          (" 1m ", 60.0), ("0", 0.0), ("1.5s", 1.5)])
def test_parses(text, seconds):
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1x", "-1s", "-3", "nan", "inf", "1s2", "1 s"])
def test_refuses_with_its_own_error(text):
    with pytest.raises(durations.DurationError):
        durations.parse(text)


@pytest.mark.parametrize("seconds,text", [(5400.0, "1h30m"), (0.5, "0.5s"), (2592000.0, "720h"), (0.0, "0s")])
def test_formats_as_flags_take_it(seconds, text):
    assert durations.format(seconds) == text and durations.parse(text) == seconds
