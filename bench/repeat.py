"""Run a benchmark several times (or read the logs of runs already made) and print, for every
number in its final JSON line, the min / median / max over the runs, as a final JSON line.

A single run of a drill on a shared 2-core machine says little; the spread over repeated runs
says how much a figure can be trusted. Nothing is computed that the runs did not print.

    python bench/repeat.py --times 5 -- bench/ha_drills.py --skip-machine-loss
    python bench/repeat.py --logs run1.log run2.log run3.log
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def final_json(text: str) -> dict:
    """The figures: the last non-empty line of ``text``, which must be a JSON object (a run
    that died after printing a progress row has no figures, not that row's)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output")
    try:
        value = json.loads(lines[-1])
    except ValueError:
        raise ValueError(f"the last line is not JSON: {lines[-1][:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError("the last line is not a JSON object")
    return value


def numbers(figures: dict, prefix: str = "") -> dict[str, float]:
    """Every number in ``figures``, keyed by its dotted path (booleans are not numbers; lists
    are left out: their items have no stable identity across runs)."""
    out: dict[str, float] = {}
    for key, value in figures.items():
        path = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[path] = value
        elif isinstance(value, dict):
            out.update(numbers(value, f"{path}."))
    return out


def spread(runs: list[dict]) -> dict:
    """{path: {"min", "median", "max", "n"}} over the runs that printed that figure (a figure
    missing or null in some runs is reported with its own ``n``)."""
    per_run = [numbers(r) for r in runs]
    paths = sorted({p for figures in per_run for p in figures})
    out = {}
    for path in paths:
        values = [figures[path] for figures in per_run if path in figures]
        out[path] = {"min": min(values), "median": round(statistics.median(values), 4), "max": max(values),
                     "n": len(values)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=0, help="run the benchmark this many times")
    parser.add_argument("--logs", nargs="*", default=[], help="read these runs' output instead")
    parser.add_argument("bench", nargs="*", help="the benchmark and its arguments (after --)")
    args = parser.parse_args(argv)
    if bool(args.logs) == bool(args.times):
        parser.error("give either --times N with a benchmark, or --logs FILE...")
    if args.times and not args.bench:
        parser.error("--times needs a benchmark to run, e.g. -- bench/ha_drills.py")
    runs, failed = [], 0
    if args.logs:
        for path in args.logs:
            try:
                runs.append(final_json(Path(path).read_text()))
            except (OSError, ValueError) as err:
                print(f"repeat: {path}: {err}", file=sys.stderr)
                failed += 1
    for i in range(args.times):
        print(f"== run {i + 1}/{args.times}: {' '.join(args.bench)}", file=sys.stderr)
        done = subprocess.run([sys.executable, *args.bench], stdout=subprocess.PIPE, text=True)
        sys.stderr.write(done.stdout)
        try:
            runs.append(final_json(done.stdout))
        except ValueError:
            failed += 1
        if done.returncode != 0:
            failed += 1
    print(json.dumps({"runs": len(runs), "failed_runs": failed, "figures": spread(runs)}))
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
