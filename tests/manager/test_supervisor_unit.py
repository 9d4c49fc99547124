"""The supervisor's pure decisions: the restart window, how a worker ended, which ports it
holds, what it hands a worker, and the election's succession of a dead predecessor (an
in-memory lock and a clock that moves only when the elector sleeps). The processes, the real
apiserver and its audit log are in test_supervisor.py and tests/drill/test_crash_supervisor.py."""

from __future__ import annotations

import os
from dataclasses import replace
import signal

import pytest

from kubekit.api import ApiError
from manager.lease import (HOLDER_POD_ANNOTATION, ElectionConfig, LeaderElectionRecord, LeaderElector, LeaseLock,
                           Succession)
from manager.options import parse, validate
from manager.supervisor import ENV, Handoff, RestartWindow, addresses, describe

from .test_lease_unit import CONFIG, FakeClock, MemoryLock, held_by


@pytest.mark.parametrize("limit, window, deaths, allowed", [
    (3, 300, [0, 1, 2], [True, True, True]),
    (3, 300, [0, 1, 2, 3], [True, True, True, False]),          # the 4th within the window: exit
    (3, 300, [0, 1, 2, 300], [True, True, True, True]),         # the first left the window
    (3, 300, [0, 100, 200, 299.9], [True, True, True, False]),
    (1, 60, [0, 59, 61], [True, False, True]),                  # a refused one is not counted
    (0, 300, [0], [False]),                                     # 0: any death exits
])
def test_restart_window(limit, window, deaths, allowed):
    restarts = RestartWindow(limit, window)
    assert [restarts.allow(t) for t in deaths] == allowed


@pytest.mark.parametrize("status, expected", [
    (signal.SIGKILL, ("killed", "killed by SIGKILL", 137)),
    (signal.SIGSEGV, ("killed", "killed by SIGSEGV", 139)),
    (1 << 8, ("exited", "exited with code 1", 1)),
    (0, ("exited", "exited with code 0", 0)),
])
def test_how_a_worker_ended(status, expected):
    assert describe(status) == expected


@pytest.mark.parametrize("flags, expected", [
    ([], {"webhook": ("0.0.0.0", 9876), "health": ("0.0.0.0", 8000), "metrics": ("0.0.0.0", 8080)}),
    (["--role=controller"], {"health": ("0.0.0.0", 8000), "metrics": ("0.0.0.0", 8080)}),
    (["--metrics-addr=0", "--health-probe-addr=127.0.0.1:8001", "--webhook-bind-address=::", "--webhook-port=443"],
     {"webhook": ("::", 443), "health": ("127.0.0.1", 8001)}),
    (["--health-probe-addr=[::1]:8000", "--metrics-addr=0"], {"webhook": ("0.0.0.0", 9876), "health": ("::1", 8000)}),
])
def test_the_ports_it_holds_are_the_ones_the_worker_would_bind(flags, expected):
    assert addresses(parse(flags, environ={})) == expected


def test_a_negative_restart_limit_is_refused():
    with pytest.raises(ValueError, match="--worker-restart-limit"):
        validate(parse(["--worker-restart-limit=-1"], environ={}))


def test_the_handoff_travels_in_the_environment_and_names_the_dead():
    handoff = Handoff("pod_b", ["pod_a"], 100.0, 0.5, {"webhook": 3}, 7, {"killed": 1},
                      {"pid": 10, "identity": "pod_a", "how": "killed by SIGKILL", "reason": "killed", "ran_s": 1.0})
    back = Handoff.from_environ({ENV: handoff.dumps()})
    assert back == handoff
    assert back.succession() == Succession(frozenset({"pod_a"}), 100.5)
    assert Handoff.from_environ({}) is None
    assert Handoff("pod_a").succession() is None  # a first worker succeeds nobody


def test_a_listener_is_taken_once():
    import socket

    sock = socket.socket()
    handoff = Handoff("pod_a", sockets={"health": os.dup(sock.fileno())})
    sock.close()
    taken = handoff.listener("health")
    assert taken is not None and handoff.listener("health") is None
    taken.close()


@pytest.mark.parametrize("holder, expires, free_at", [
    ("dead", 115.0, 100.5),    # a dead predecessor: as soon as the succession allows
    ("dead", 100.2, 100.2),    # ... or when it expires, if that is sooner
    ("alive", 115.0, 115.0),   # anyone else: when it expires, as always
])
def test_succession_frees_only_a_dead_holder(holder, expires, free_at):
    assert Succession(frozenset({"dead"}), 100.5).free_at(holder, expires) == free_at


def successor(lock, clock, dead=("pod_a",), delay=0.5) -> LeaderElector:
    return LeaderElector(lock, ElectionConfig(identity="pod_b", **CONFIG), clock=clock, watch=False,
                         succession=Succession(frozenset(dead), clock.now() + delay))


def test_the_successor_takes_a_lease_naming_its_dead_predecessor_after_the_delay_not_the_lease():
    lock, clock = MemoryLock(held_by("pod_a", transitions=3)), FakeClock()
    e = successor(lock, clock)
    began = clock.now()
    assert not e.try_acquire_or_renew(timeout=5)  # within the succession delay
    assert e._acquire()
    assert clock.now() - began == pytest.approx(0.51, abs=0.02)  # slept until the delay was over
    assert lock.record.holder == "pod_b" and lock.record.lease_transitions == 4
    assert e.succeeded == "pod_a"


def test_a_lease_naming_anyone_else_is_waited_out_as_usual():
    lock, clock = MemoryLock(held_by("pod_z")), FakeClock()
    e = successor(lock, clock)
    began = clock.now()
    assert e._acquire()
    assert clock.now() - began == pytest.approx(15.01, abs=0.02)
    assert lock.record.holder == "pod_b" and e.succeeded == ""


def test_a_candidate_that_wrote_first_wins_and_the_successor_waits_for_it():
    lock, clock = MemoryLock(held_by("pod_a")), FakeClock()
    e = successor(lock, clock, delay=0.0)
    real_update = lock.update

    def update(record, version, timeout):
        # A standby's write lands between our read and our write: ours names a stale version.
        lock.update = real_update
        lock.other_writes(holder="standby", renew_time="2026-01-01T00:00:05.000000Z")
        return real_update(record, version, timeout)

    lock.update = update
    assert not e.try_acquire_or_renew(timeout=5)
    assert lock.record.holder == "standby"
    assert not e.try_acquire_or_renew(timeout=5)  # reads again: the standby's, fresh
    assert e.holder == "standby" and e.succeeded == ""


def test_a_failed_take_over_is_not_a_succession():
    lock, clock = MemoryLock(held_by("pod_a")), FakeClock()
    e = successor(lock, clock, delay=0.0)
    lock.fail_updates.append(ApiError(0, "ReadTimeoutError"))
    assert not e.try_acquire_or_renew(timeout=5)
    assert e.succeeded == "" and lock.record.holder == "pod_a"
    assert e.try_acquire_or_renew(timeout=5) and e.succeeded == "pod_a"


def test_a_worker_that_cannot_start_is_restarted_up_to_the_limit_then_its_status_is_the_exit(tmp_path):
    """Real processes, no cluster: every worker fails on a kubeconfig that is not one."""
    import subprocess
    import sys

    from localcluster.cluster import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not a kubeconfig")
    result = subprocess.run(
        [sys.executable, "-m", "manager", f"--kubeconfig={kubeconfig}", "--log-format=text", "--worker-restart-limit=1",
         "--webhook-bind-address=127.0.0.1", f"--webhook-port={free_port()}",
         f"--health-probe-addr=127.0.0.1:{free_port()}", "--metrics-addr=0"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "POD_NAME": "pod"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("worker started") == 2, result.stderr
    assert result.stderr.count("cannot build the API client") == 2, result.stderr
    assert "the restart limit (1 within 300s) is reached: exiting" in result.stderr


WORKER = """
import json, os, signal, sys, threading
from manager.options import parse
from manager.supervisor import Supervisor

def worker(options, handoff):
    fds = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")}  # not the listing's own descriptor
    listening = {name: handoff.listener(name).getsockname()[1] for name in list(handoff.sockets)}
    print(json.dumps({"comm": open("/proc/self/comm").read().strip(), "fds": fds, "heartbeat": handoff.heartbeat_fd,
                      "listening": listening, "sigterm": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
                      "sigchld": signal.getsignal(signal.SIGCHLD) is signal.SIG_DFL}), flush=True)
    return 3

if sys.argv[1] == "thread":  # a thread at fork time: the supervisor must not fork without exec
    threading.Thread(target=threading.Event().wait, daemon=True).start()
options = parse(sys.argv[2:], environ={})
sys.exit(Supervisor(options, sys.argv[2:], worker=worker).run())
"""


@pytest.mark.parametrize("threads", ["none", "thread"])
def test_a_forked_worker_holds_only_its_sockets_and_pipe_and_none_of_the_supervisors_handlers(tmp_path, threads):
    """Real processes, no cluster: the supervisor forks its worker without exec (named so, with
    only stdio, its listening sockets and heartbeat pipe open, default signal handlers), unless
    it runs a thread, when it starts ``python -m manager`` instead (which fails here on the
    kubeconfig: exit 2, not the forked worker's 3)."""
    import json
    import subprocess
    import sys

    from localcluster.cluster import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not a kubeconfig")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    webhook, health = free_port(), free_port()
    result = subprocess.run(
        [sys.executable, str(script), threads, f"--kubeconfig={kubeconfig}", "--log-format=text",
         "--worker-restart-limit=0", "--webhook-bind-address=127.0.0.1", f"--webhook-port={webhook}",
         f"--health-probe-addr=127.0.0.1:{health}", "--metrics-addr=0"],
        capture_output=True, text=True, timeout=60, cwd=os.getcwd(), env={**os.environ, "POD_NAME": "pod"})
    if threads == "thread":
        assert result.returncode == 2, result.stderr
        assert "starting the worker by exec" in result.stderr and "cannot build the API client" in result.stderr
        return
    assert result.returncode == 3, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["comm"] == "kruise-worker"
    assert seen["listening"] == {"webhook": webhook, "health": health}
    assert seen["sigterm"] and seen["sigchld"]
    sockets = {int(fd) for fd, what in seen["fds"].items() if what.startswith("socket:")}
    assert len(sockets) == 2 and {int(fd) for fd in seen["fds"]} == {0, 1, 2, seen["heartbeat"], *sockets}, seen


# ---- succession across a container restart of the same pod --------------------------------
@pytest.mark.parametrize("dead, pod_uid, holder, holder_pod_uid, free_at", [
    ((), "pod-1", "m_old", "pod-1", 100.5),     # held from this pod under another identity: an earlier container
    ((), "pod-1", "m_old", "pod-2", 115.0),     # another pod: no proof, the lease duration
    ((), "pod-1", "m_old", "", 115.0),          # the Lease does not say where its holder ran
    ((), "", "m_old", "", 115.0),               # nor do we: "" never matches ""
    (("m_old",), "", "m_old", "", 100.5),       # a worker this supervisor reaped, as before
    (("m_old",), "pod-1", "x_other", "pod-2", 115.0),
])
def test_succession_proves_dead_a_holder_from_an_earlier_container_of_this_pod(dead, pod_uid, holder,
                                                                                 holder_pod_uid, free_at):
    succession = Succession(frozenset(dead), 100.5, pod_uid)
    assert succession.free_at(holder, 115.0, holder_pod_uid) == free_at


@pytest.mark.parametrize("annotation, holder, expected", [
    ("uid-1 pod_a", "pod_a", "uid-1"),
    ("uid-1 pod_b", "pod_a", ""),       # written for an earlier holder (another manager kept the annotation)
    ("uid-1", "pod_a", ""),             # malformed
    (None, "pod_a", ""),
    ("uid-1 ", "", ""),                 # no holder: nothing to say about it
])
def test_the_holders_pod_is_read_only_when_the_lease_names_that_holder(annotation, holder, expected):
    metadata = {"annotations": {HOLDER_POD_ANNOTATION: annotation}} if annotation is not None else {}
    lease = {"metadata": metadata, "spec": {"holderIdentity": holder}}
    assert LeaderElectionRecord.from_lease(lease).holder_pod_uid == expected


def test_the_lease_body_says_which_pod_its_holder_runs_in():
    lock = LeaseLock(None, "kruise-system", "kruise-manager")
    with_pod = lock._body(LeaderElectionRecord("pod_a", 15, holder_pod_uid="uid-1"), "42")
    assert with_pod["metadata"]["annotations"] == {HOLDER_POD_ANNOTATION: "uid-1 pod_a"}
    assert LeaderElectionRecord.from_lease(with_pod).holder_pod_uid == "uid-1"
    assert "annotations" not in lock._body(LeaderElectionRecord("pod_a", 15), "42")["metadata"]


def test_a_first_worker_succeeds_earlier_containers_of_its_pod_after_its_supervisor_started():
    first = Handoff("m_new", succession_delay=0.5, started=200.0)
    assert first.succession("uid-1") == Succession(frozenset(), 200.5, "uid-1")
    assert first.succession("") is None  # no pod UID: nothing to prove with
    assert Handoff("m_new", succession_delay=0.5).succession("uid-1") is None  # no start time known
    later = Handoff("m_3", ["m_2"], 250.0, 0.5, started=200.0)
    assert later.succession("uid-1") == Succession(frozenset({"m_2"}), 250.5, "uid-1")


@pytest.mark.parametrize("holder, holder_pod_uid, waited, succeeded", [
    ("m_old", "uid-1", 0.51, "m_old"),   # this pod's earlier container: after the delay, and it says so
    ("x_old", "uid-2", 15.01, ""),       # another pod: the lease duration, as any standby
    ("x_old", "", 15.01, ""),            # a Lease that does not say
])
def test_a_restarted_container_takes_the_lease_at_once_only_from_its_own_pods_earlier_container(
        holder, holder_pod_uid, waited, succeeded):
    lock, clock = MemoryLock(held_by(holder, transitions=3)), FakeClock()
    lock.record = replace(lock.record, holder_pod_uid=holder_pod_uid)
    e = LeaderElector(lock, ElectionConfig(identity="m_new", **{**CONFIG, "pod_uid": "uid-1"}), clock=clock,
                      watch=False, succession=Succession(frozenset(), clock.now() + 0.5, "uid-1"))
    began = clock.now()
    assert e._acquire()
    assert clock.now() - began == pytest.approx(waited, abs=0.02)
    assert lock.record.holder == "m_new" and lock.record.holder_pod_uid == "uid-1"
    assert lock.record.lease_transitions == 4 and e.succeeded == succeeded


def test_every_renewal_keeps_saying_which_pod_the_holder_runs_in():
    lock, clock = MemoryLock(), FakeClock()
    e = LeaderElector(lock, ElectionConfig(identity="m_new", **{**CONFIG, "pod_uid": "uid-1"}), clock=clock,
                      watch=False)
    assert e.try_acquire_or_renew(timeout=5)
    assert lock.record.holder_pod_uid == "uid-1"
    clock.advance(2)
    assert e.try_acquire_or_renew(timeout=5)
    assert lock.record.holder == "m_new" and lock.record.holder_pod_uid == "uid-1"
