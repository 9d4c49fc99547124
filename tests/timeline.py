"""A parallel run's timeline and the group durations the scheduler orders by (docs/testing.md).

``make test`` with ``KRUISECTL_TEST_TIMELINE=<file>`` appends one JSON line per test: its
worker, group (``conftest.group_of``), and wall-clock span from setup to teardown.

    python -m tests.timeline show FILE            # per worker: its groups, when, how long
    python -m tests.timeline durations FILE...    # the groups' seconds (mean over the runs), as
                                                  # tests/group_durations.json holds them

Pure: no cluster, no pytest.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

DURATIONS_FILE = Path(__file__).with_name("group_durations.json")
UNMEASURED_CLUSTER_GROUP_S = 30.0  # a cluster module not in the table yet: about a private cluster's module
UNMEASURED_UNIT_GROUP_S = 0.0


def read(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def group_seconds(runs: list[list[dict]]) -> dict[str, float]:
    """Each group's summed test time, the mean over the runs that ran it (rounded to 0.1 s)."""
    totals: dict[str, list[float]] = defaultdict(list)
    for rows in runs:
        per_run: dict[str, float] = defaultdict(float)
        for row in rows:
            per_run[row["group"]] += row["stop"] - row["start"]
        for group, seconds in per_run.items():
            totals[group].append(seconds)
    return {group: round(sum(s) / len(s), 1) for group, s in sorted(totals.items())}


def order(groups: dict[str, bool], seconds: dict[str, float]) -> list[str]:
    """The groups, longest first (``groups``: name -> whether it needs a cluster or the image),
    so no worker starts a long group late while the others run out of work. A group the table
    does not know is guessed at a private cluster's module, or nothing for unit tests; ties keep
    the given order."""
    def expected(group: str) -> float:
        if group in seconds:
            return seconds[group]
        return UNMEASURED_CLUSTER_GROUP_S if groups[group] else UNMEASURED_UNIT_GROUP_S

    return sorted(groups, key=lambda group: -expected(group))


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    """The table, or nothing when it is absent (every group then guessed: the run is as right,
    only perhaps longer)."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}


def show(rows: list[dict]) -> str:
    """Per worker: when it ended, how long it was busy, and its groups of 15 s or more."""
    if not rows:
        return "no tests in the timeline"
    began = min(r["start"] for r in rows)
    by_worker: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_worker[row["worker"]].append(row)
    lines = []
    for worker, worker_rows in sorted(by_worker.items()):
        worker_rows.sort(key=lambda r: r["start"])
        spans: list[list] = []
        for row in worker_rows:
            if spans and spans[-1][0] == row["group"]:
                spans[-1][2] = row["stop"]
            else:
                spans.append([row["group"], row["start"], row["stop"]])
        busy = sum(r["stop"] - r["start"] for r in worker_rows)
        lines.append(f"{worker}: ended at {worker_rows[-1]['stop'] - began:.0f} s, busy {busy:.0f} s")
        lines += [f"  {a - began:6.0f} {b - began:6.0f} {b - a:5.0f}  {group}" for group, a, b in spans if b - a >= 15]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "show":
        print(show(read(argv[1])))
        return 0
    if len(argv) >= 2 and argv[0] == "durations":
        print(json.dumps(group_seconds([read(p) for p in argv[1:]]), indent=1))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
