"""WorkloadSpread validation against upstream v1.8.3's own Go functions (tools/wsvalidation:
a test binary built from the module cache): the unit tables, patch cases and a fixed seed of
random WorkloadSpreads give the same verdicts and messages on both sides. `make
diff-wsvalidation SEED=… COUNT=…` runs a longer seed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster  # builds upstream's Go code, as the tier of the built binaries does

ROOT = Path(__file__).resolve().parents[2]


def test_verdicts_and_messages_equal_upstreams_go_functions():
    assert shutil.which("go"), "no Go toolchain on PATH: upstream's functions are built with it (as every binary here)"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "wsvalidation" / "diff.py"), "--seed", "20261204",
                           "--count", "500"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-2000:]
    figures = json.loads(lines[-1])
    print(figures)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert figures["verdictDiffs"] == 0 and figures["messageDiffs"] == 0, figures
    assert figures["refusedByBoth"] > 0 and figures["allowedByBoth"] > 0, figures  # both kinds of verdict compared
