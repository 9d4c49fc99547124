"""Child processes of the harness: they die with it, and whether one is still alive."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path


def die_with_parent() -> None:
    """In a forked child before exec: SIGKILL when the parent dies (PR_SET_PDEATHSIG), so an
    interrupted run leaves no component behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie child of ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
