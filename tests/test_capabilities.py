"""What a machine lacks fails a full test run, naming it and the fix; a partial run is asked for
by name and ends with its skips counted by reason. Table-driven tests of the logic, then real
runs (preflight and pytest) as a user without root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localcluster import capabilities
from localcluster.capabilities import Ledger

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
NEEDS_NETNS = "tests/test_hostlet.py::test_memory_limit_is_enforced_by_the_kernel"  # its module fixture needs netns
BROWSER = ",browser" if capabilities.CAPABILITIES["browser"].detect() else ""  # needs no root: this machine's


# ---- the logic ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, allowed", [
    (None, set()),
    ("", set()),
    ("netns", {"netns"}),
    (" netns , oci,", {"netns", "oci"}),
    ("all", set(capabilities.CAPABILITIES)),
    ("memory,all", set(capabilities.CAPABILITIES)),
])
def test_partial_names_what_a_run_may_go_without(value, allowed):
    assert capabilities.parse_partial(value) == allowed


@pytest.mark.parametrize("value, named", [("root", "root"), ("netns,nets", "nets"), ("ALL", "ALL")])
def test_an_unknown_name_in_partial_is_an_error_naming_it(value, named):
    with pytest.raises(ValueError, match=f"unknown {named} "):
        capabilities.parse_partial(value)


@pytest.mark.parametrize("euid, tools, expected", [
    (1000, {"ip", "crun", "skopeo", "umoci", "mmdebstrap", "buildah"},
     {"netns": "network namespaces need root", "memory": "memory cgroups need root",
      "oci": "running containers needs root", "image": "building the image needs root"}),
    (0, {"ip", "runc", "skopeo", "umoci", "mmdebstrap", "buildah"}, {}),
    (0, {"crun", "skopeo", "umoci", "mmdebstrap", "buildah"}, {"netns": "iproute2 ('ip') is not installed"}),
    (0, {"ip", "skopeo", "umoci", "mmdebstrap", "buildah"}, {"oci": "not installed: crun or runc"}),
    (0, {"ip", "crun", "mmdebstrap"},
     {"oci": "not installed: skopeo, umoci", "image": "not installed: umoci, skopeo, buildah"}),
])
def test_detection_says_why_each_capability_is_missing(monkeypatch, euid, tools, expected):
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}" if tool in tools else None)
    names = ["netns", "oci", "image"] + (["memory"] if euid else [])  # root's memory cgroup is this machine's
    assert capabilities.missing(names) == expected


@pytest.mark.parametrize("tools, expected", [
    (set(), "not installed: chromium-headless-shell or chromium"),
    ({"chromium"}, None),
    ({"chromium-headless-shell"}, None),
])
def test_the_browser_is_debians_headless_chromium_and_needs_no_root(monkeypatch, tools, expected):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}" if tool in tools else None)
    assert capabilities.missing(["browser"]) == ({"browser": expected} if expected else {})
    assert "make browser installs chromium-headless-shell" in capabilities.CAPABILITIES["browser"].fix


@pytest.mark.parametrize("absent, allowed, ok, says, not_says", [
    ({}, frozenset(), True, [], ["missing"]),
    ({"netns": "network namespaces need root"}, frozenset(), False,
     ["missing:", "netns: no network namespaces: network namespaces need root -> run as root",
      "KRUISECTL_PARTIAL=netns make test"], ["partial run ("]),
    ({"netns": "network namespaces need root", "oci": "running containers needs root"}, frozenset({"oci"}), False,
     ["KRUISECTL_PARTIAL=netns make test", "partial run (KRUISECTL_PARTIAL): skipping what needs no OCI runtime"],
     ["oci: no OCI runtime"]),
    ({"image": "not installed: buildah"}, frozenset({"image", "netns"}), True,
     ["skipping what needs no image tools: not installed: buildah"], ["missing:"]),
])
def test_preflight_fails_on_what_is_missing_unless_allowed(absent, allowed, ok, says, not_says):
    passed, lines = capabilities.preflight_report(absent, allowed)
    text = "\n".join(lines)
    assert passed is ok
    for expected in says:
        assert expected in text
    for unexpected in not_says:
        assert unexpected not in text


def _run(ledger: Ledger, events) -> Ledger:
    """Replay a run: ("need", capability, reason) for a fixture's require, ("skip", text) and
    ("fail", text) for a test's report (text "@" is the last need's message)."""
    last = None
    for event in events:
        if event[0] == "need":
            _, last = ledger.decide(event[1], event[2])
        elif event[0] == "skip":
            ledger.skipped_test(last if event[1] == "@" else event[1])
        else:
            ledger.failed_test(f"ERROR at setup: {last}" if event[1] == "@" else event[1])
    return ledger


@pytest.mark.parametrize("allowed, partial, events, line, unexpected", [
    (frozenset(), False, [], None, False),
    (frozenset(), True, [], "0 skipped", False),
    (frozenset({"netns"}), True,
     [("need", "netns", "network namespaces need root"), ("skip", "@"), ("skip", "@"),
      ("need", "netns", "network namespaces need root"), ("skip", "@"),
      ("need", "netns", "iproute2 ('ip') is not installed"), ("skip", "@")],
     "4 skipped: no network namespaces: network namespaces need root (3), "
     "no network namespaces: iproute2 ('ip') is not installed (1)", False),
    (frozenset(), False,
     [("need", "netns", "network namespaces need root"), ("fail", "@"), ("fail", "@"), ("fail", "an assertion")],
     "2 could not run: no network namespaces: network namespaces need root (2) -- get it (see above), "
     "or ask for a partial run: KRUISECTL_PARTIAL=netns", False),
    (frozenset({"oci"}), True,
     [("need", "memory", "memory cgroups need root"), ("fail", "@"),
      ("need", "oci", "running containers needs root"), ("skip", "@"), ("skip", "flaky here")],
     "1 could not run: no memory cgroup: memory cgroups need root (1) -- get it (see above), or ask for a "
     "partial run: KRUISECTL_PARTIAL=memory; 2 skipped: no OCI runtime: running containers needs root (1), "
     "NOT ALLOWED: flaky here (1); a skip that no capability in KRUISECTL_PARTIAL allows fails the run", True),
    (frozenset(capabilities.CAPABILITIES), True, [("skip", "the run finished before it could be interrupted")],
     "1 skipped: NOT ALLOWED: the run finished before it could be interrupted (1); a skip that no capability "
     "in KRUISECTL_PARTIAL allows fails the run", True),
])
def test_a_runs_last_line_counts_its_skips_by_reason(allowed, partial, events, line, unexpected):
    ledger = _run(Ledger(allowed, partial), events)
    assert ledger.last_line() == line
    assert bool(ledger.unexpected) is unexpected


def test_skip_summary_orders_reasons_by_count():
    assert capabilities.skip_summary(Counter({"a": 1, "b": 5}), Counter({"c": 2})) == \
        "8 skipped: b (5), a (1), NOT ALLOWED: c (2)"


def test_a_require_message_names_what_needs_it_the_fix_and_the_partial_run():
    text = capabilities.message("oci", "crun: cannot mount /proc")
    assert text.startswith("no OCI runtime: crun: cannot mount /proc; needed by ")
    assert "make image-tools installs crun, runc" in text
    assert text.endswith("KRUISECTL_PARTIAL=oci")


# ---- real runs without root ---------------------------------------------------------------
class Unprivileged:
    """Runs this Python's code as this user when it is not root, else as nobody (setpriv). The
    interpreter, the checkout and its packages must be readable by that user: when they are not
    (a virtualenv or clone under /root), the checkout and the packages are copied for it."""

    CHECK = ("import importlib.util, localcluster.capabilities, pytest; open('tests/conftest.py').close(); "
             "assert importlib.util.find_spec('kubernetes')")

    def __init__(self, scratch: Path):
        self.prefix = () if os.geteuid() else ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
        self.python = self._interpreter()
        self.checkout = REPO
        self.paths = list(dict.fromkeys([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
        if self.run(["-c", self.CHECK], {}).returncode != 0:
            scratch.chmod(0o755)
            self.checkout = scratch / "checkout"
            shutil.copytree(REPO, self.checkout, symlinks=True,
                            ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "dist", "__pycache__"))
            self.paths = [str(self.checkout)]
            for number, path in enumerate(self.paths_of_packages()):
                shutil.copytree(path, scratch / f"site{number}", ignore=shutil.ignore_patterns("__pycache__"))
                self.paths.append(str(scratch / f"site{number}"))
            check = self.run(["-c", self.CHECK], {})
            assert check.returncode == 0, f"user {NOBODY} cannot import the copied checkout: {check.stderr}"

    @staticmethod
    def paths_of_packages() -> list[str]:
        return list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))

    def _interpreter(self) -> str:
        """A Python of this one's version that the user can run, found through env as make's
        shell runs it (setpriv's own exec may reach further than a shell's)."""
        want = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [c for c in dict.fromkeys([sys.executable, os.path.realpath(sys.executable),
                                                shutil.which("python3") or "", f"/usr/bin/python{want}"]) if c]
        for candidate in candidates:
            probe = subprocess.run([*self.prefix, "env", candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/")
            if probe.returncode == 0 and probe.stdout.strip() == want:
                return candidate
        pytest.fail(f"no Python {want} that user {NOBODY} may run: tried {', '.join(candidates)}")

    def run(self, argv: list[str], extra_env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(self.paths), **extra_env}
        return subprocess.run([*self.prefix, self.python, *argv], capture_output=True, text=True, env=env,
                              cwd=cwd or self.checkout, timeout=120)


@pytest.fixture(scope="module")
def unprivileged():
    with tempfile.TemporaryDirectory(prefix="kruisectl-unprivileged-") as scratch:  # tmp_path is root's alone
        yield Unprivileged(Path(scratch))


def _last_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("partial, rc, says, not_says", [
    (None, 1, ["netns: no network namespaces: network namespaces need root -> run as root",
               "image: no image tools: building the image needs root -> run as root",
               f"KRUISECTL_PARTIAL=netns,memory,oci,image{BROWSER} make test"], []),
    ("netns,memory", 1, ["oci: no OCI runtime: running containers needs root -> run as root",
                         f"KRUISECTL_PARTIAL=oci,image{BROWSER} make test",
                         "skipping what needs no network namespaces: network namespaces need root"],
     ["netns: no network"]),
    ("all", 0, ["partial run (KRUISECTL_PARTIAL): skipping what needs no network namespaces: network namespaces "
                "need root; no memory cgroup: memory cgroups need root"], ["missing"]),
])
def test_preflight_without_root_fails_naming_root_unless_all_is_allowed(unprivileged, partial, rc, says, not_says):
    result = unprivileged.run(["-m", "localcluster.capabilities"],
                              {"KRUISECTL_PARTIAL": partial} if partial is not None else {})
    assert result.returncode == rc, result.stdout + result.stderr
    output = result.stdout + result.stderr
    for expected in says:
        assert expected in output
    for unexpected in not_says:
        assert unexpected not in output


XDIST = ("-n", "2", "--dist", "loadscope")  # as make test runs: the workers decide, the controller counts


@pytest.mark.parametrize("workers", [(), XDIST], ids=["one-process", "xdist"])
def test_a_full_run_without_root_fails_naming_what_is_missing_and_a_partial_one_passes_counting_its_skips(
        unprivileged, workers):
    argv = ["-m", "pytest", "-p", "no:cacheprovider", "-ra", *workers, NEEDS_NETNS]
    with ThreadPoolExecutor(2) as pool:
        full, partial = pool.map(lambda env: unprivileged.run(argv, env), [{}, {"KRUISECTL_PARTIAL": "netns"}])

    assert full.returncode == 1, full.stdout + full.stderr
    assert "1 error" in full.stdout
    assert "no network namespaces: network namespaces need root" in full.stdout
    assert "To get it: run as root" in full.stdout
    assert _last_line(full) == ("1 could not run: no network namespaces: network namespaces need root (1) -- get it "
                                "(see above), or ask for a partial run: KRUISECTL_PARTIAL=netns")

    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "1 skipped" in partial.stdout and "error" not in partial.stdout
    assert _last_line(partial) == "1 skipped: no network namespaces: network namespaces need root (1)"


@pytest.mark.parametrize("workers", [(), XDIST], ids=["one-process", "xdist"])
def test_a_skip_no_capability_allows_fails_even_a_partial_run(unprivileged, workers):
    """A test file outside tests/ that skips on its own, run with tests/conftest.py's hooks."""
    with tempfile.TemporaryDirectory(prefix="kruisectl-skips-") as scratch:
        folder = Path(scratch)
        folder.chmod(0o755)
        (folder / "test_skips.py").write_text(
            "import pytest\n\n\ndef test_skips():\n    pytest.skip('flaky here')\n\n\ndef test_passes():\n    pass\n")
        result = unprivileged.run(["-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest", "--rootdir",
                                   scratch, "-c", os.devnull, "-ra", *workers, scratch], {"KRUISECTL_PARTIAL": "all"}, cwd=folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert _last_line(result) == ("1 skipped: NOT ALLOWED: flaky here (1); a skip that no capability in "
                                  "KRUISECTL_PARTIAL allows fails the run")


def test_make_test_without_root_stops_at_its_preflight_naming_what_is_missing(unprivileged):
    """The Makefile's own path: ``make test`` as that user, with that Python; the cache is put
    where nobody can write, so a preflight that let it through would fail the build at once."""
    result = unprivileged.run(["-c", "import os, sys; os.execvp('make', ['make', *sys.argv[1:]])",
                               "--no-print-directory", "test", "STAMP=", f"PY={unprivileged.python}"],
                              {"KRUISECTL_CACHE_DIR": "/proc/kruisectl-no-cache"})
    assert result.returncode != 0
    assert "make test cannot run every tier here; missing:" in result.stderr
    assert "netns: no network namespaces: network namespaces need root -> run as root" in result.stderr
    assert "KRUISECTL_PARTIAL=netns,memory,oci,image make test" in result.stderr
    assert "build" not in result.stdout, "nothing is built before the preflight passes"


def test_the_preflight_looks_for_the_runtimes_and_tools_the_harness_uses():
    from localcluster import image
    from localcluster.hostlet import oci

    assert capabilities.OCI_RUNTIMES == oci.RUNTIMES
    assert set(image.TOOLS) <= set(capabilities.IMAGE_TOOLS)
