"""A real browser engine for the pages this project writes (the drill report): Debian's headless
Chromium on a file:// URL, in a network namespace of its own when root (nothing to reach but a
loopback that is down) and with name resolution off, so a page that needed the network shows
it. ``make browser`` installs it (apt-get); the ``browser`` capability says when it is missing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium-headless-shell", "chromium")  # Debian's packages, the smaller first
PACKAGE = "chromium-headless-shell"
OFFLINE = ("--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND")


def find() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def available() -> str | None:
    """None when a headless Chromium is installed, else why not."""
    return None if find() else f"not installed: {' or '.join(CANDIDATES)}"


def command(page: Path, *args: str, profile: str) -> list[str]:
    binary = find()
    if binary is None:
        raise RuntimeError(available())
    argv = [binary, *(["--headless"] if Path(binary).name == "chromium" else []), *OFFLINE,
            f"--user-data-dir={profile}", *args, Path(page).resolve().as_uri()]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        if shutil.which("unshare"):
            argv = ["unshare", "--net", "--", *argv]
    return argv


def run(page: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Chromium on ``page`` with ``args``, in a throw-away profile; its whole process group is
    killed when it outlives ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="kruisectl-browser-") as profile:
        process = subprocess.Popen(command(page, *args, profile=profile), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def dump_dom(page: Path) -> str:
    """The DOM after the page was loaded and laid out, serialised."""
    result = run(page, "--dump-dom")
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(page: Path, png: Path, width: int = 1000, height: int = 2000) -> None:
    """The page as rendered in a ``width`` x ``height`` window, as PNG."""
    result = run(page, "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={Path(png).resolve()}")
    if result.returncode != 0 or not Path(png).is_file():
        raise RuntimeError(f"chromium --screenshot exited {result.returncode}: {result.stderr[-2000:]}")
