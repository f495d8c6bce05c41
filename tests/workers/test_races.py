"""Edits racing the delivery of the same post, made to happen many times.

A ``before_claim`` hook stops the worker at a barrier just before its claim
compare-and-set; the test thread meets it there and sends its RPC, so the RPC
and the claim run at the same moment. Whichever side wins, the sandbox ledger
must show that a cancelled post was never delivered, that no post was
delivered twice, and the post must end in the status its winner implies.
"""

from __future__ import annotations

import collections
import datetime
import threading
import time

import grpc
import pytest

from tests.support import Failure, as_datetime, in_seconds, utcnow

# isort: split
from posts.v1 import posts_pb2 as pb

pytestmark = pytest.mark.server_env(POSTS_DISPATCH_INTERVAL="0.05")

ITERATIONS = 30
LAGS = [0.0, 0.1, 0.2, 0.3, 0.45, 0.7]  # of one RPC's latency: the worker's head start, or not
# The dispatcher's round is shorter than a claim and its delivery: it needs longer lags to lose.
DISPATCH_LAGS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
BARRIER_TIMEOUT = 5.0  # seconds; a broken barrier fails the test instead of hanging it


class _Race:
    """Barriers armed one per post, at which a delivery hook waits for the test."""

    def __init__(self):
        self._lock = threading.Lock()
        self._armed: dict[str, tuple[threading.Barrier, float]] = {}

    def _arm(self, post_id: str, lag: float) -> threading.Barrier:
        barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
        with self._lock:
            self._armed[post_id] = (barrier, lag)
        return barrier

    @staticmethod
    def _meet(barrier: threading.Barrier, lag: float) -> None:
        """The hook's side of the barrier: meets the test, then lets it lead by ``lag`` seconds."""
        try:
            barrier.wait()
            # The RPC needs a network round trip before it reaches the database, the
            # hook's side does not: a varying lag lets either side get there first.
            time.sleep(lag)
        except threading.BrokenBarrierError:
            pass

    def abort(self) -> None:
        with self._lock:
            barriers = [barrier for barrier, _ in self._armed.values()]
            self._armed.clear()
        for barrier in barriers:
            barrier.abort()


class RaceAtClaim(_Race):
    """A before_claim hook: the first claim of each armed post waits at a barrier for the test."""

    def __init__(self):
        super().__init__()
        self._passed: dict[str, threading.Event] = {}

    def arm(self, post_id: str, lag: float = 0.0) -> threading.Barrier:
        """Arms the first claim of ``post_id``; it starts ``lag`` seconds after the barrier."""
        with self._lock:
            self._passed[post_id] = threading.Event()
        return self._arm(post_id, lag)

    def __call__(self, post_id: str, token: str) -> None:
        with self._lock:
            barrier, lag = self._armed.pop(post_id, (None, 0.0))
            passed = self._passed.get(post_id)
        if barrier is None:
            return
        try:
            self._meet(barrier, lag)
        finally:
            passed.set()

    def wait_passed(self, post_id: str) -> None:
        """Waits until the worker has gone past the barrier for ``post_id`` (to its claim)."""
        with self._lock:
            passed = self._passed[post_id]
        assert passed.wait(BARRIER_TIMEOUT), f"the worker never went past the claim of {post_id}"


@pytest.fixture
def race(delivery_hooks):
    hook = RaceAtClaim()
    delivery_hooks.before_claim(hook)
    try:
        yield hook
    finally:
        hook.abort()


def meet(barrier: threading.Barrier, post_id: str) -> None:
    """The test thread's side of the barrier: returns as the worker goes on to its claim."""
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pytest.fail(f"the worker did not reach the claim of {post_id} within {BARRIER_TIMEOUT}s")


def rpc_latency(api, tenant) -> float:
    """The median time of a write RPC here, to aim the races with."""
    post = api.create(tenant, text="latency probe")
    times = []
    for n in range(7):
        start = time.perf_counter()
        api.update(tenant, post.post_id, text=f"probe {n}")
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def report(request, **outcomes: float) -> None:
    """Says which side won how often (shown with ``-rP``; kept in the test's user_properties)."""
    request.node.user_properties.extend(outcomes.items())
    print(", ".join(f"{name}={count:g}" for name, count in outcomes.items()))


def assert_sent_at_most_once_each(ledger, post_ids) -> None:
    counts = collections.Counter(
        (send.post_id, send.item_index)
        for post_id in post_ids
        for send in ledger.sends(post_id=post_id)
    )
    twice = {key: count for key, count in counts.items() if count > 1}
    assert not twice, f"delivered more than once: {twice}"


# ------------------------------------------------------------------- cancel


CANCELS = {
    "update-cancelled": lambda api, tenant, post_id: api.update(
        tenant, post_id, status=pb.STATUS_CHANGE_CANCELLED
    ),
    "delete": lambda api, tenant, post_id: api.delete(tenant, post_id),
}


@pytest.mark.parametrize("how", list(CANCELS))
def test_a_cancel_racing_the_claim_never_lets_a_cancelled_post_out(
    api, tenant, ledger, race, request, how
):
    cancel = CANCELS[how]
    cancelled, claimed = [], []
    latency = rpc_latency(api, tenant)

    for n in range(ITERATIONS):
        # Given a post the worker is about to claim
        draft = api.create(tenant, text=f"race {n}")
        barrier = race.arm(draft.post_id, lag=LAGS[n % len(LAGS)] * latency)
        api.update(tenant, draft.post_id, status=pb.STATUS_CHANGE_PUBLISH)

        # When the cancel and the claim run at the same moment
        meet(barrier, draft.post_id)
        try:
            post = cancel(api, tenant, draft.post_id)
        except grpc.RpcError as error:
            # Then either the claim won, and the cancel is refused...
            failure = Failure.of(error)
            assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION"), failure
            assert failure.metadata["currentStatus"] in (
                "POST_STATUS_PROCESSING",
                "POST_STATUS_PUBLISHED",
            ), failure
            claimed.append(draft.post_id)
        else:
            # ...or the cancel won
            assert post.status == pb.POST_STATUS_CANCELLED
            cancelled.append(draft.post_id)

    report(request, cancel_won=len(cancelled), claim_won=len(claimed), latency_ms=latency * 1000)
    # The race was real: each side won at least once (the lags spread the starts)
    assert cancelled and claimed, f"cancel won {len(cancelled)}, claim won {len(claimed)}"

    # Once every worker went past its claim, and later work was delivered
    for post_id in cancelled + claimed:
        race.wait_passed(post_id)
    for post_id in claimed:
        live = api.wait_published(tenant, post_id)
        assert len(ledger.sends(post_id=post_id)) == 1, post_id
        assert live.platform_post_id
    api.settle(tenant)

    # Then no cancelled post went out, and nothing went out twice
    for post_id in cancelled:
        post = api.get(tenant, post_id)
        assert pb.PostStatus.Name(post.status) == "POST_STATUS_CANCELLED", post_id
        assert not post.platform_post_id, post_id
        assert ledger.sends(post_id=post_id) == [], post_id
    assert_sent_at_most_once_each(ledger, cancelled + claimed)


def test_a_cancel_after_the_claim_is_refused_and_the_post_goes_out_once(
    api, tenant, ledger, held_sends
):
    # Given a post the worker has claimed and is about to send
    post = api.create(tenant, status=pb.STATUS_CHANGE_PUBLISH)
    held_sends.wait_arrival(post.post_id)

    # When it is cancelled or deleted
    cancel = api.refused(
        "UpdatePost", tenant, post_id=post.post_id, status=pb.STATUS_CHANGE_CANCELLED
    )
    delete = api.refused("DeletePost", tenant, post_id=post.post_id)

    # Then both are refused, and the post goes out exactly once
    for failure in (cancel, delete):
        assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION")
        assert failure.metadata["currentStatus"] == "POST_STATUS_PROCESSING"
    held_sends.release()
    api.wait_published(tenant, post.post_id)
    assert len(ledger.sends(post_id=post.post_id)) == 1


# --------------------------------------------------------------- reschedule


class RaceAtDispatch(_Race):
    """A before_dispatch hook: the first dispatcher round that finds an armed
    post due waits at a barrier for the test, so the reschedule RPC and the
    round's SCHEDULED -> PENDING compare-and-set run at the same moment."""

    def __init__(self):
        super().__init__()
        self._due: dict[str, datetime.datetime] = {}

    def arm(self, post_id: str, due: datetime.datetime, lag: float) -> threading.Barrier:
        barrier = self._arm(post_id, lag)
        with self._lock:
            self._due[post_id] = due
        return barrier

    def __call__(self, now: datetime.datetime) -> None:
        with self._lock:
            ready = [pid for pid, due in self._due.items() if due <= now]
            for pid in ready:
                del self._due[pid]
            met = [self._armed.pop(pid) for pid in ready if pid in self._armed]
        for barrier, lag in met:
            self._meet(barrier, lag)


@pytest.fixture
def race_at_dispatch(delivery_hooks):
    hook = RaceAtDispatch()
    delivery_hooks.before_dispatch(hook)
    try:
        yield hook
    finally:
        hook.abort()


@pytest.mark.parametrize("moment", ["at-the-dispatch", "at-the-due-time"])
def test_a_reschedule_racing_delivery_fires_the_post_exactly_once(
    api, tenant, ledger, race_at_dispatch, request, moment
):
    moved, refused_ = {}, {}
    latency = rpc_latency(api, tenant)

    for n in range(ITERATIONS):
        # Given a post due in a moment
        post = api.create(
            tenant,
            text=f"race {n}",
            status=pb.STATUS_CHANGE_SCHEDULED,
            scheduled_at=in_seconds(0.3),
        )
        due = as_datetime(post.scheduled_at)
        if moment == "at-the-dispatch":
            # The dispatcher round that finds it due waits for this RPC
            lag = DISPATCH_LAGS[n % len(DISPATCH_LAGS)] * latency
            barrier = race_at_dispatch.arm(post.post_id, due, lag)
            meet(barrier, post.post_id)
        else:
            # Aim at the dispatcher: spread the RPC around the due time (this sleep
            # only aims the race; no assertion depends on how it lands).
            offset = ((n % 5) - 2) * 0.03
            time.sleep(max(0.0, (due - utcnow()).total_seconds() + offset))

        # When it is rescheduled a second later at that moment
        new_time = in_seconds(1)
        try:
            rescheduled = api.update(tenant, post.post_id, scheduled_at=new_time)
        except grpc.RpcError as error:
            # Then either delivery had begun, and the reschedule is refused...
            failure = Failure.of(error)
            assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION"), failure
            assert failure.metadata["currentStatus"] in (
                "POST_STATUS_PENDING",
                "POST_STATUS_PROCESSING",
                "POST_STATUS_PUBLISHED",
            ), failure
            refused_[post.post_id] = due
        else:
            # ...or the reschedule won, and the post waits for its new time
            assert rescheduled.status == pb.POST_STATUS_SCHEDULED
            moved[post.post_id] = as_datetime(rescheduled.scheduled_at)
            assert moved[post.post_id] > due

    report(
        request, reschedule_won=len(moved), delivery_won=len(refused_), latency_ms=latency * 1000
    )

    # Then every post goes out exactly once: at its old time if delivery won,
    # at (never before) its new time if the reschedule won
    for post_id, due in {**refused_, **moved}.items():
        live = api.wait_published(tenant, post_id)
        assert as_datetime(live.scheduled_at) == due, post_id
        assert as_datetime(live.delivery.last_attempt_time) >= due, post_id
        assert as_datetime(live.delivery.publish_time) >= due, post_id
    api.settle(tenant)
    for post_id in {**refused_, **moved}:
        assert len(ledger.sends(post_id=post_id)) == 1, post_id
    # And the race was real: each side won at least once
    assert moved and refused_, f"reschedule won {len(moved)}, delivery won {len(refused_)}"
