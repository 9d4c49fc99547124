"""The election state machine over an in-memory lock and a clock that moves only when the
elector sleeps: acquire, renew, expiry on our own clock, conflicts, a missed renew deadline,
release, a Lease deleted under us. The real-apiserver behaviour (crash failover, frozen leader,
audit log) is in test_leader_election.py."""

from __future__ import annotations

import threading
import time

import pytest

from kubekit.api import ApiError
from manager.lease import (Clock, ElectionConfig, LeaderElectionRecord, LeaderElector, NoElection,
                           Versioned)

CONFIG = dict(namespace="kruise-system", name="kruise-manager", lease_duration=15.0, renew_deadline=10.0,
              retry_period=2.0, pod_uid="")


class FakeClock(Clock):
    """Time advances only by the elector's own sleeps (or the test's ``advance``)."""

    def __init__(self):
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.t += seconds
        return event.is_set()


class MemoryLock:
    """One Lease in memory with the apiserver's optimistic concurrency; errors can be queued."""

    def __init__(self, record: LeaderElectionRecord | None = None):
        self.record = record
        self.version = 1
        self.fail_updates: list[ApiError] = []
        self.fail_gets: list[ApiError] = []
        self.writes: list[LeaderElectionRecord] = []
        self.events: list[str] = []

    def _current(self) -> Versioned:
        return Versioned(self.record, str(self.version))

    def get(self, timeout: float) -> Versioned:
        if self.fail_gets:
            raise self.fail_gets.pop(0)
        if self.record is None:
            raise ApiError(404, "leases.coordination.k8s.io \"kruise-manager\" not found")
        return self._current()

    def create(self, record: LeaderElectionRecord, timeout: float) -> Versioned:
        if self.record is not None:
            raise ApiError(409, "already exists")
        self.record, self.version = record, self.version + 1
        self.writes.append(record)
        return self._current()

    def update(self, record: LeaderElectionRecord, resource_version: str, timeout: float) -> Versioned:
        if self.fail_updates:
            raise self.fail_updates.pop(0)
        if self.record is None:
            raise ApiError(404, "not found")
        if resource_version != str(self.version):
            raise ApiError(409, "the object has been modified")
        self.record, self.version = record, self.version + 1
        self.writes.append(record)
        return self._current()

    def other_writes(self, **fields) -> None:
        """Another replica's write: the record changes and so does the resourceVersion."""
        base = self.record or LeaderElectionRecord()
        self.record = LeaderElectionRecord(**{**base.__dict__, **fields})
        self.version += 1

    def record_event(self, reason: str, message: str) -> None:
        self.events.append(reason)

    def watch(self):
        return iter(())


def elector(lock, clock, identity="me", **callbacks) -> LeaderElector:
    return LeaderElector(lock, ElectionConfig(identity=identity, **CONFIG), clock=clock, watch=False, **callbacks)


def held_by(holder: str, renew: str = "2026-01-01T00:00:00.000000Z", transitions: int = 3) -> LeaderElectionRecord:
    return LeaderElectionRecord(holder, 15, renew, renew, transitions)


def test_no_lease_is_created_with_us_as_holder():
    lock, clock = MemoryLock(), FakeClock()
    e = elector(lock, clock)
    assert e.try_acquire_or_renew(timeout=5)
    assert lock.record.holder == "me" and lock.record.lease_transitions == 0
    assert lock.record.lease_duration_seconds == 15 and lock.record.acquire_time == lock.record.renew_time


@pytest.mark.parametrize("record, acquired, transitions", [
    (LeaderElectionRecord(), True, 0),                       # an empty record: free
    (held_by(""), True, 3),                                  # released: taken without a transition
    (held_by("me", transitions=5), True, 5),                 # ours already: a renewal
    (held_by("other"), False, 3),                            # someone else's, fresh to us
])
def test_one_attempt_against_each_kind_of_record(record, acquired, transitions):
    lock, clock = MemoryLock(record), FakeClock()
    e = elector(lock, clock)
    assert e.try_acquire_or_renew(timeout=5) is acquired
    assert lock.record.lease_transitions == transitions
    assert (lock.record.holder == "me") is acquired


def test_expiry_is_measured_on_our_clock_from_when_the_record_last_changed():
    # The holder's renewTime is years old by its own clock; that is never compared with ours.
    lock, clock = MemoryLock(held_by("other", renew="2001-01-01T00:00:00.000000Z")), FakeClock()
    e = elector(lock, clock)
    assert not e.try_acquire_or_renew(timeout=5)
    clock.advance(14.9)
    assert not e.try_acquire_or_renew(timeout=5)
    lock.other_writes(renew_time="2001-01-01T00:00:02.000000Z")  # it renews: our clock restarts
    clock.advance(0.2)
    assert not e.try_acquire_or_renew(timeout=5)
    clock.advance(14.9)
    assert not e.try_acquire_or_renew(timeout=5)
    clock.advance(0.2)
    assert e.try_acquire_or_renew(timeout=5)
    assert lock.record.holder == "me" and lock.record.lease_transitions == 4
    assert lock.record.acquire_time == lock.record.renew_time


def test_the_holder_view_says_how_long_the_record_has_not_changed_and_when_it_was_read():
    """What a follower judges a silent leader by (manager.peers): both on our own clock."""
    lock, clock = MemoryLock(held_by("other", renew="2001-01-01T00:00:00.000000Z")), FakeClock()
    e = elector(lock, clock)
    assert e.holder_view() is None  # nothing read yet
    e.try_acquire_or_renew(timeout=5)
    clock.advance(3)
    e.try_acquire_or_renew(timeout=5)  # read again, unchanged
    clock.advance(1.5)
    view = e.holder_view()
    assert (view.holder, view.renew_time) == ("other", "2001-01-01T00:00:00.000000Z")
    assert (view.unchanged_s, view.read_s) == (4.5, 1.5)
    lock.other_writes(renew_time="2001-01-01T00:00:02.000000Z")  # it renews
    e.try_acquire_or_renew(timeout=5)
    clock.advance(0.5)
    view = e.holder_view()
    assert (view.renew_time, view.unchanged_s, view.read_s) == ("2001-01-01T00:00:02.000000Z", 0.5, 0.5)
    lock.fail_gets.append(ApiError(503, "unavailable"))  # a failed read leaves the view as it was
    e.try_acquire_or_renew(timeout=5)
    clock.advance(2)
    assert (e.holder_view().unchanged_s, e.holder_view().read_s) == (2.5, 2.5)
    lock.other_writes(holder="")  # released: this replica takes it, and is the holder it sees
    e.try_acquire_or_renew(timeout=5)
    assert e.holder_view().holder == "me" and e.holder_view().unchanged_s == 0


def test_a_conflict_drops_the_cached_record_and_the_next_attempt_reads_again():
    lock, clock = MemoryLock(held_by("")), FakeClock()
    e = elector(lock, clock)
    e.try_acquire_or_renew(timeout=5)  # read and take
    lock.other_writes(holder="other", renew_time="2026-01-01T00:00:09.000000Z")
    assert not e.try_acquire_or_renew(timeout=5, use_cached=True)  # the write names a stale version
    assert e.holder == ""  # nothing cached
    assert not e.try_acquire_or_renew(timeout=5, use_cached=True)  # reads again: held by other
    assert e.holder == "other"


def test_a_lease_deleted_under_us_is_recreated_without_an_exception():
    lock, clock = MemoryLock(held_by("")), FakeClock()
    e = elector(lock, clock)
    assert e.try_acquire_or_renew(timeout=5)
    lock.record = None  # deleted; the watch tells the elector
    e._observe(None)
    assert e.try_acquire_or_renew(timeout=5, use_cached=True)
    assert lock.record.holder == "me"


def test_run_waits_out_the_holder_leads_renews_and_gates_writes():
    lock, clock = MemoryLock(held_by("other")), FakeClock()
    started, stopped = threading.Event(), threading.Event()
    e = elector(lock, clock, on_started_leading=started.set, on_stopped_leading=stopped.set)
    renewals = []
    real_update = lock.update

    def update(record, version, timeout):
        renewals.append(clock.now())
        if len(renewals) == 4:
            e.stop()
        return real_update(record, version, timeout)

    lock.update = update
    began = clock.now()
    e.run()
    assert started.wait(2) and lock.events == ["LeaderElection"]
    assert renewals[0] - began == pytest.approx(15.01, abs=0.02)  # woke when the holder expired
    # The first renewal follows the acquire at once (as client-go's loop), then every retry period.
    assert [b - a for a, b in zip(renewals, renewals[1:])] == pytest.approx([0.0, 2.0, 2.0])
    assert e.may_act() == pytest.approx(10.0 - 0.0)  # renewal just sent; clock not moved since
    clock.advance(9.0)
    assert e.may_act() == pytest.approx(1.0)
    clock.advance(1.5)
    assert e.may_act() == 0.0  # past the renew deadline: the gate is shut
    assert not stopped.is_set() and not e.lost.is_set()


def test_a_missed_renew_deadline_loses_leadership_once():
    lock, clock = MemoryLock(), FakeClock()
    stopped = []
    e = elector(lock, clock, on_stopped_leading=lambda: stopped.append(clock.now()))
    original = lock.update

    def update(record, version, timeout):
        if len(lock.writes) >= 2:  # created, renewed once, then the apiserver stops answering
            raise ApiError(0, "ReadTimeoutError")
        return original(record, version, timeout)

    lock.update = update
    e.run()  # returns by itself: no stop() was called
    assert e.lost.is_set() and not e.leading.is_set()
    assert len(stopped) == 1
    last_renewal_sent = 1000.0  # created at 1000 and renewed at once, then every renewal fails
    assert last_renewal_sent + 10.0 <= stopped[0] <= last_renewal_sent + 10.0 + 2.0
    assert e.may_act() == 0.0


class SlowLock(MemoryLock):
    """Every call takes ``latency`` seconds of the fake clock, the renewals numbered in ``slow``
    ``slow_s`` instead. A call cut by its timeout still commits at the apiserver, as a write it
    had already received does: the caller only learns nothing of it."""

    def __init__(self, clock: FakeClock, latency: float, slow: range, slow_s: float):
        super().__init__()
        self.clock, self.latency, self.slow, self.slow_s = clock, latency, slow, slow_s
        self.began = clock.now()
        self.renewals = 0
        self.timed_out = 0
        self.answered_sent: list[float] = []  # when each renewal the caller saw succeed was sent

    def _take(self, seconds: float, timeout: float) -> None:
        if self.clock.now() - self.began > 600:
            raise RuntimeError("the elector neither lost nor stopped within 600 s of its clock")
        if seconds > timeout:
            self.clock.advance(timeout)
            self.timed_out += 1
            raise ApiError(0, "ReadTimeoutError: read timed out")
        self.clock.advance(seconds)

    def get(self, timeout: float) -> Versioned:
        self._take(self.latency, timeout)
        return super().get(timeout)

    def update(self, record, resource_version, timeout):
        self.renewals += 1
        taken = self.slow_s if self.renewals in self.slow else self.latency
        if taken > timeout:
            try:
                super().update(record, resource_version, timeout)  # it lands, late
            except ApiError:
                pass
        sent = self.clock.now()
        self._take(taken, timeout)
        written = super().update(record, resource_version, timeout)
        self.answered_sent.append(sent)
        return written


@pytest.mark.parametrize("latency, slow, slow_s, kept", [
    # renew deadline 10 s, retry period 2 s: a renewal is sent 2 s after the last one was, so
    # it may take up to 8 s
    (0.0, range(3, 4), 7.9, True),   # one renewal slow, answered just within the deadline
    (1.0, range(3, 4), 7.9, True),   # the same, every call taking a second as well
    (1.0, range(3, 4), 8.1, False),  # answered past the deadline: lost, whatever the loop does
    (1.0, range(3, 9), 4.9, True),   # renewals in a row slow, under half the deadline: each sent at once
    (1.0, range(3, 9), 5.1, False),  # over half: two in a row cannot fit in the deadline
])
def test_a_slow_renewal_within_the_renew_deadline_keeps_leadership(latency, slow, slow_s, kept):
    clock = FakeClock()
    lock = SlowLock(clock, latency, slow, slow_s)
    stopped = []
    e = elector(lock, clock, on_stopped_leading=lambda: stopped.append(clock.now()))
    original = lock.update

    def update(record, version, timeout):
        if lock.renewals == 10:
            e.stop()
        return original(record, version, timeout)

    lock.update = update
    e.run()
    assert e.lost.is_set() is not kept, (lock.renewals, lock.timed_out)
    if kept:
        assert lock.timed_out == 0  # no call given up and written late, so no conflict after it
    else:  # lost the moment the deadline passed, not a pause later: the restart starts sooner
        assert stopped == [pytest.approx(lock.answered_sent[-1] + 10.0)]


def test_another_holder_seen_while_leading_ends_leadership():
    lock, clock = MemoryLock(), FakeClock()
    e = elector(lock, clock)
    original = lock.update

    def update(record, version, timeout):
        if len(lock.writes) == 2:
            lock.other_writes(holder="usurper")  # it wrote first: our write conflicts
        return original(record, version, timeout)

    lock.update = update
    e.run()
    assert e.lost.is_set() and e.holder == "usurper"


def test_release_clears_the_holder_so_a_standby_takes_it_at_once():
    lock, clock = MemoryLock(), FakeClock()
    stopped, releasing = [], []
    e = elector(lock, clock, on_stopped_leading=lambda: stopped.append(1))
    original = lock.update

    def update(record, version, timeout):
        if len(lock.writes) == 1 and not releasing:  # SIGTERM arrives while a renewal is in flight
            releasing.append(threading.Thread(target=e.release))
            releasing[0].start()
        return original(record, version, timeout)

    lock.update = update
    e.run()
    releasing[0].join(5)
    assert lock.record.holder == "" and lock.record.lease_duration_seconds == 1
    assert stopped == [1] and not e.lost.is_set() and e.may_act() == 0.0
    standby = elector(lock, FakeClock(), identity="standby")
    assert standby.try_acquire_or_renew(timeout=5)
    assert lock.record.holder == "standby" and lock.record.lease_transitions == 0


def test_release_waits_for_a_slow_renewal_in_flight_until_the_gate_would_shut():
    """A renewal may take up to the renew deadline; a release in the meantime must not give up
    after its own timeout, or the Lease stays held and the standbys wait it out. Real time,
    scaled down: renew deadline 1 s, a renewal of 0.5 s, a release timeout of 0.1 s."""
    lock = MemoryLock()
    config = ElectionConfig("kruise-system", "kruise-manager", "me", 1.5, 1.0, 0.2, "")
    e = LeaderElector(lock, config, watch=False)
    original = lock.update
    releasing, released = [], []

    def update(record, version, timeout):
        if len(lock.writes) == 2 and not releasing:  # SIGTERM while a slow renewal is in flight
            releasing.append(threading.Thread(target=lambda: released.append(e.release(timeout=0.1))))
            releasing[0].start()
            time.sleep(0.5)
        return original(record, version, timeout)

    lock.update = update
    e.run()
    releasing[0].join(5)
    assert released == [True]
    assert lock.record.holder == "" and lock.record.lease_duration_seconds == 1


def test_release_without_leading_writes_nothing():
    lock = MemoryLock(held_by("other"))
    e = elector(lock, FakeClock())
    e.try_acquire_or_renew(timeout=5)
    assert e.release() is False and lock.writes == []


def test_transient_read_errors_are_retried_not_fatal():
    lock, clock = MemoryLock(), FakeClock()
    lock.fail_gets = [ApiError(0, "connection refused"), ApiError(500, "etcdserver: leader changed")]
    e = elector(lock, clock, on_started_leading=lambda: e.stop())
    e.run()
    assert lock.record.holder == "me"
    assert clock.now() - 1000.0 == pytest.approx(4.0)  # two retry periods


@pytest.mark.parametrize("durations", [(10, 10, 2), (15, 10, 10), (15, 10, 0), (5, 10, 2)])
def test_config_requires_lease_above_renew_above_retry_above_zero(durations):
    lease, renew, retry = durations
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        ElectionConfig("ns", "n", "id", lease, renew, retry, "").validate()


def test_no_election_leads_at_once_and_never_shuts_its_gate():
    started, stopped = threading.Event(), []
    e = NoElection(ElectionConfig(identity="me", **CONFIG), on_started_leading=started.set,
                   on_stopped_leading=lambda: stopped.append(1))
    runner = threading.Thread(target=e.run)
    runner.start()
    assert started.wait(2) and e.may_act() == float("inf") and e.holder == "me"
    e.release()
    runner.join(2)
    assert not runner.is_alive() and stopped == [1] and e.may_act() == 0.0
