"""The parallel run's order: groups longest first by the measured table (tests/timeline.py)."""

import json
from pathlib import Path

import pytest

from . import timeline
from .conftest import SHARED_SESSION_FIXTURES

REPO = Path(__file__).resolve().parent.parent


def row(worker, group, start, stop, test="t"):
    return {"worker": worker, "group": group, "test": f"{group}::{test}", "start": start, "stop": stop}


@pytest.mark.parametrize("groups,seconds,expected", [
    ({"a": True, "b": True, "c": False}, {"a": 10, "b": 300, "c": 40}, ["b", "c", "a"]),  # measured: longest first
    ({"new": True, "known": True, "unit": False}, {"known": 20}, ["new", "known", "unit"]),  # unmeasured cluster: 30 s
    ({"x": False, "y": False}, {}, ["x", "y"]),  # nothing known: the given order
    ({"u": False, "k": True}, {}, ["k", "u"]),  # a cluster group before unit tests
    ({"a": True}, {"gone": 99}, ["a"]),  # a table entry for a group not collected changes nothing
])
def test_groups_run_longest_first(groups, seconds, expected):
    assert timeline.order(groups, seconds) == expected


def test_a_groups_seconds_are_its_tests_summed_and_averaged_over_the_runs():
    first = [row("gw0", "g", 0, 10), row("gw0", "g", 10, 30), row("gw1", "h", 0, 5)]
    second = [row("gw1", "g", 100, 140)]
    assert timeline.group_seconds([first, second]) == {"g": 35.0, "h": 5.0}


def test_show_lists_each_workers_long_groups(tmp_path):
    path = tmp_path / "timeline.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [row("gw0", "long", 0, 20), row("gw0", "short", 20, 21),
                                                       row("gw1", "other", 1, 40)]) + "\n")
    shown = timeline.show(timeline.read(path))
    assert shown.splitlines() == ["gw0: ended at 21 s, busy 21 s", "       0     20    20  long",
                                  "gw1: ended at 40 s, busy 39 s", "       1     40    39  other"]
    assert timeline.show([]) == "no tests in the timeline"


def test_without_a_table_every_group_is_guessed(tmp_path):
    assert timeline.load_durations(tmp_path / "absent.json") == {}


def test_the_table_names_only_groups_that_exist():
    """A module renamed or removed leaves a stale entry: regenerate the table
    (``python -m tests.timeline durations`` over a run's timeline)."""
    table = timeline.load_durations()
    assert table, "tests/group_durations.json is missing or empty"
    stale = [g for g in table if g not in SHARED_SESSION_FIXTURES and not (REPO / g).is_file()]
    assert stale == []
