"""Shared fixtures: the real local control plane (see localcluster)."""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

from localcluster import capabilities
from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.network import available as network_unavailable_reason

from . import timeline


def pytest_configure(config):
    """Tests that need the local control plane (or its built binaries) carry the ``cluster``
    mark, set in their module. When a run deselects them (``make test-unit``), starting a
    cluster or building binaries raises, so an unmarked cluster test cannot hide in the
    fast tier."""
    if "not cluster" in (config.getoption("markexpr", "") or ""):
        os.environ["KRUISECTL_TEST_TIER"] = "unit"
    try:
        allowed = capabilities.parse_partial(os.environ.get(capabilities.PARTIAL_VARIABLE))
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None
    global _ledger
    _ledger = capabilities.Ledger(allowed, partial=capabilities.PARTIAL_VARIABLE in os.environ)
    if config.pluginmanager.hasplugin("xdist") and not config.pluginmanager.has_plugin("kruisectl-scheduling"):
        config.pluginmanager.register(_Scheduling(), "kruisectl-scheduling")


# ---- what the machine lacks: fail a full run, skip (and count) in a partial one ------------
_ledger = capabilities.Ledger()


def require(name: str, reason: str | None | object = ...) -> None:
    """Go on when this machine has the capability ``name`` (see localcluster.capabilities);
    else fail the test naming what is missing and how to get it, or skip it when the user asked
    for a partial run without it (``KRUISECTL_PARTIAL``). ``reason`` is why it is missing when
    the caller knows better than detection (e.g. the hostlet's OCI probe), None when present."""
    if reason is ...:
        reason = capabilities.CAPABILITIES[name].detect()
    if not reason:
        return
    skip, text = _ledger.decide(name, reason)
    if skip:
        pytest.skip(text)
    pytest.fail(text, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped or failed test's report carries this process's capability verdicts, so the
    process that counts (pytest-xdist's controller, not the worker that ran the test) knows an
    allowed skip from an unexpected one."""
    report = yield
    if report.skipped or report.failed:
        report.capability_decisions = _ledger.decisions()
    return report


def pytest_runtest_logreport(report):
    _ledger.adopt(getattr(report, "capability_decisions", None) or {})
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        _ledger.skipped_test(longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr))
    elif report.failed:
        _ledger.failed_test(str(report.longrepr))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """A skip nobody asked for fails the run; the last line says what was skipped and why."""
    if _ledger.unexpected and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    result = yield
    line = _ledger.last_line()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        bad = bool(_ledger.missing or _ledger.unexpected)
        reporter.write_line(line, red=bad, yellow=not bad)
    return result


# ---- parallel runs (pytest-xdist: make test runs -n N, docs/testing.md) ----------------------
# A session fixture too costly to build once per worker, and the modules whose tests use it: they
# run in one worker, one after another (a worker's collection checks that no other module uses it).
SHARED_SESSION_FIXTURES = {
    "upstream_install": frozenset(f"tests/upstream/test_{name}.py" for name in (
        "doctor", "drill", "injection_parity", "install", "rollout", "sidecarset_fuzz", "status",
        "webhook_check", "workloadspread_parity")),
    "drill_install": frozenset(f"tests/drill/test_{name}.py" for name in ("drill", "drill_report", "faults")),
}


_MISGROUPED = pytest.StashKey[str]()


def group_of(nodeid: str) -> str:
    """The unit of work one worker runs whole: the test's module (its module fixtures, a private
    cluster above all, start once), or the modules sharing a costly session fixture."""
    module = nodeid.split("::", 1)[0]
    for fixture, modules in SHARED_SESSION_FIXTURES.items():
        if module in modules:
            return fixture
    return module


def _needs_cluster(items: list) -> bool:
    return any(item.get_closest_marker("cluster") or item.get_closest_marker("image") for item in items)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker: the groups (``group_of``) in the order to run them, longest
    first by the measured table (tests/group_durations.json, tests/timeline.py); the
    controller's scheduler keeps that order (``--no-loadscope-reorder``). A run without
    workers keeps its order."""
    if not hasattr(config, "workerinput"):
        return
    groups: dict[str, list] = {}
    for item in items:
        group = group_of(item.nodeid)
        for fixture in SHARED_SESSION_FIXTURES:
            if fixture in item.fixturenames and group != fixture:
                item.stash[_MISGROUPED] = (f"{item.nodeid} uses {fixture} but would build it in a worker "
                                           f"of its own: add its module to SHARED_SESSION_FIXTURES in tests/conftest.py")
        groups.setdefault(group, []).append(item)
    ranked = timeline.order({group: _needs_cluster(members) for group, members in groups.items()},
                            timeline.load_durations())
    items[:] = [item for group in ranked for item in groups[group]]


def pytest_runtest_setup(item):
    if _MISGROUPED in item.stash:
        pytest.fail(item.stash[_MISGROUPED], pytrace=False)


TIMELINE_VARIABLE = "KRUISECTL_TEST_TIMELINE"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With ``KRUISECTL_TEST_TIMELINE=<file>``, each test's worker, group and wall-clock span
    (setup to teardown) is appended to the file as a JSON line: what each worker ran when, so
    a run's tail (one worker still busy while the others idle) can be seen and its order fixed
    (docs/testing.md)."""
    path = os.environ.get(TIMELINE_VARIABLE)
    began = time.time()
    result = yield
    if path:
        import json

        line = json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "group": group_of(item.nodeid),
                           "test": item.nodeid, "start": round(began, 3), "stop": round(time.time(), 3)})
        with open(path, "a") as out:  # one short write per line: workers' lines do not interleave
            out.write(line + "\n")
    return result


class _Scheduling:
    """pytest-xdist's hook, registered only when xdist is: the controller hands out whole groups."""

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        from xdist.scheduler import LoadScopeScheduling

        class GroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid)

        return GroupScheduling(config, log)


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def cluster():
    """One full control plane for the session: etcd, apiserver, controller-manager, scheduler,
    kwok; 6 kwok nodes over zone-a/b/c and 2 bare-metal nodes without a zone label, each a
    network-namespace host when this machine allows it. Tests share it: use their own
    namespaces (``namespace`` fixture) and never change these nodes."""
    network = network_unavailable_reason() is None
    options = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=network)
    local = LocalCluster.start(options, log=sys.stderr)
    try:
        local.create_nodes(6, bare_metal=2, with_hosts=network)
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def private():
    """A full control plane of the test module's own, for tests that change nodes or other
    cluster-wide state."""
    local = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, kwok=True), log=sys.stderr)
    yield local
    local.stop()


@pytest.fixture
def make_cluster():
    """Factory for a private control plane (for tests that change cluster-wide state)."""
    started: list[LocalCluster] = []

    def make(**options) -> LocalCluster:
        local = LocalCluster.start(ClusterOptions(**options), log=sys.stderr)
        started.append(local)
        return local

    yield make
    for local in started:
        local.stop()


@pytest.fixture
def api(cluster):
    return cluster.api()


@pytest.fixture
def namespace(cluster, api):
    """A fresh namespace, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30, what=f"default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")
