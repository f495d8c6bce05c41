"""The dispatcher and the sweeper: database work that turns into delivery messages.

The dispatcher moves due SCHEDULED posts to PENDING and enqueues PENDING posts
whose retry is due; the sweeper re-enqueues PENDING posts whose message was
lost (within seconds when the broker's queue is empty) and takes over
PROCESSING posts whose worker died (lease expired). Every move is a
compare-and-set, so any number of them may run at once. Every enqueue carries a
new job token, so an older message for the post is dropped, except the
sweeper's re-send of a lost message (Event.LOST_MESSAGE).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable

from service import db, events, store
from service.lifecycle import Event, Status
from service.models import Post, load_items, micros
from workers import delivery
from workers.adapters import adapter_class

log = logging.getLogger(__name__)

BATCH = 500

#: Sends the delivery messages of committed (post_id, token) jobs, in one batch
#: (workers.actors.enqueue_all); raises when some may not have been sent.
SendAll = Callable[[list[tuple[str, str]]], None]
QueueDepth = Callable[[], "int | None"]

#: Seconds: the least a message must have been out, with the queue empty, to
#: count as lost (see Scheduler._lost_after).
LOST_WHEN_EMPTY = 2.0


@dataclasses.dataclass
class Hooks:
    """Named points where tests can step in.

    ``before_dispatch(now)`` runs at the start of each round, before its
    transaction reads the posts due at ``now``.
    """

    before_dispatch: list = dataclasses.field(default_factory=list)


hooks = Hooks()


# The posts each mover looks for, oldest first, up to a limit, whole (the version
# for the compare-and-set, the lifecycle columns the decision reads, the platform
# for a take-over's fence, the rest for the event's snapshot). The rows are
# claimed as they are read: SKIP LOCKED on PostgreSQL, the write lock on SQLite.
_DUE = db.Compiled(
    lambda scheduled, now, limit: db.claimable(
        Post.select()
        .where((Post.status == scheduled) & (Post.scheduled_at <= now))
        .order_by(Post.scheduled_at)
        .limit(limit)
    )
)
_RETRY_DUE = db.Compiled(
    lambda pending, now, limit: db.claimable(
        Post.select()
        .where(
            (Post.status == pending)
            & (Post.next_attempt_at <= now)
            & (Post.queued_at < Post.next_attempt_at)
        )
        .order_by(Post.next_attempt_at)
        .limit(limit)
    )
)
_LOST = db.Compiled(
    lambda pending, now, sent_before, limit: db.claimable(
        Post.select()
        .where(
            (Post.status == pending)
            & (Post.next_attempt_at <= now)
            & (Post.queued_at <= sent_before)
            & (Post.queued_at >= Post.next_attempt_at)
        )
        .limit(limit)
    )
)
_EXPIRED = db.Compiled(
    lambda processing, now, limit: db.claimable(
        Post.select()
        .where((Post.status == processing) & (Post.lease_expires_at <= now))
        .limit(limit)
    )
)


def _requeue(candidates: db.Compiled, params: tuple, expected: Status, event: Event, now) -> list:
    """Applies ``event`` to each post ``candidates`` finds, in one transaction;
    the (post_id, token) messages to send once it commits.

    Each move is a compare-and-set on the version read (``service.store``), so
    concurrent dispatchers and sweepers never move the same post twice.
    """
    jobs, ended = [], []
    with db.write():
        found = candidates.rows(Post, expected.value, *params)
        # The events' snapshots need the items: one read for the lot, not one per post.
        loaded = (
            {each.post.id: each for each in load_items(found)}
            if events.recorded(event, expected)
            else {}
        )
        for post in found:
            wait = _fence(post.platform) if event is Event.TAKE_OVER else 0.0
            outcome = store.apply(post, event, now, wait=wait, loaded=loaded.get(post.id))
            if outcome is not None and outcome.enqueue:
                jobs.append((post.id, post.job_token))
            if outcome is not None and expected is Status.PROCESSING:
                ended.append((post, wait))  # an attempt that ended without its worker
    for post, wait in ended:
        delivery.log_outcome(post, event, wait)
    return jobs


def _fence(platform: str) -> float:
    """Seconds a taken-over post waits before its next attempt.

    On a network that can neither dedupe nor be looked up, long enough for the
    old owner to have failed its own renewal (a second lease period) before a
    new owner may send; elsewhere a repeat is found or harmless, so none.
    """
    adapter = adapter_class(platform)
    if adapter is None or adapter.honours_idempotency_keys or adapter.can_look_up:
        return 0.0
    return store.policy().lease_seconds


def dispatch_due(now: dt.datetime, limit: int = BATCH) -> list[tuple[str, str]]:
    """Moves due posts to the queue; returns the (post_id, token) jobs to send after commit."""
    at = micros(now)
    return _requeue(_DUE, (at, limit), Status.SCHEDULED, Event.DUE, now) + _requeue(
        _RETRY_DUE, (at, limit), Status.PENDING, Event.RETRY_DUE, now
    )


def sweep(now: dt.datetime, requeue_after: float, limit: int = BATCH) -> list[tuple[str, str]]:
    """Re-enqueues lost messages and takes over expired leases; returns the jobs."""
    at = micros(now)
    sent_before = micros(now - dt.timedelta(seconds=requeue_after))
    # A message taken as lost may only be slow: LOST_MESSAGE re-sends the same
    # token, so whichever copy arrives first claims and the others drop.
    return _requeue(
        _LOST, (at, sent_before, limit), Status.PENDING, Event.LOST_MESSAGE, now
    ) + _requeue(_EXPIRED, (at, limit), Status.PROCESSING, Event.TAKE_OVER, now)


class Scheduler:
    """Runs the dispatcher every ``interval`` seconds and the sweeper less often, in a thread."""

    def __init__(
        self,
        send_all: SendAll,
        interval: float,
        requeue_after: float,
        sweep_every: float = 5.0,
        queue_depth: QueueDepth | None = None,
        event_retention: float | None = None,
    ):
        """``queue_depth``: messages waiting in the delivery queue (None: cannot
        tell), asked once per sweep; without it a message counts as lost only
        after ``requeue_after``. ``event_retention``: seconds post events are
        kept; each sweep prunes older ones (None: kept for ever)."""
        self._send_all = send_all
        self._interval = interval
        self._requeue_after = requeue_after
        self._sweep_every = sweep_every
        self._queue_depth = queue_depth
        self._event_retention = event_retention
        # A commit that sets queued_at is followed by its send within a round
        # (the dispatcher's, a handler's): three rounds, and no less than
        # LOST_WHEN_EMPTY, keep a message still on its way from looking lost.
        self._lost_when_empty = min(max(3 * interval, LOST_WHEN_EMPTY), requeue_after)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self, now: dt.datetime, sweep_too: bool) -> int:
        """One round; returns how many jobs it sent."""
        for hook in hooks.before_dispatch:
            hook(now)
        # Asked before the database work: no transaction waits on the broker.
        lost_after = self._lost_after() if sweep_too else None
        with db.connection():
            jobs = dispatch_due(now)
            if lost_after is not None:
                jobs += sweep(now, lost_after)
        try:
            self._send_all(jobs)
        except Exception:  # the broker is down: the sweeper sends them again later
            log.exception("enqueue of %d posts failed; the sweeper will retry", len(jobs))
        if sweep_too and self._event_retention is not None:
            # Small batches, each its own transaction: never a long write lock.
            events.prune(now - dt.timedelta(seconds=self._event_retention))
        return len(jobs)

    def _lost_after(self) -> float:
        """How long a PENDING post's message must have been out to count as lost.

        With the queue empty, a message out for longer than a few rounds is in a
        worker's hands or gone (a broker restart lost it): it is re-sent at once
        with its own token, and a copy that was only slow is dropped at its claim.
        The re-sends are bounded: each sets the post's queued_at to now, so a post
        is re-sent at most once a sweep; and the copies wait in the queue (a
        worker fetches only as it finishes, so a busy one leaves them there), so
        the next sweep sees it non-empty and sends nothing more. A sweep thus
        re-sends at most what the workers have prefetched plus what was lost.
        When the broker cannot tell (None) or the queue has a backlog,
        POSTS_REQUEUE_AFTER stays the bound.
        """
        if self._queue_depth is not None and self._queue_depth() == 0:
            return self._lost_when_empty
        return self._requeue_after

    def _run(self) -> None:
        next_sweep = 0.0
        clock = 0.0
        while not self._stop.is_set():
            sweep_too = clock >= next_sweep
            if sweep_too:
                next_sweep = clock + self._sweep_every
            try:
                sent = self.tick(db.utcnow(), sweep_too)
            except db.UNAVAILABLE:
                log.warning("database unavailable; the scheduler retries")
                sent = 0
            except Exception:
                log.exception("scheduler round failed")
                sent = 0
            if sent < BATCH:
                self._stop.wait(self._interval)
                clock += self._interval


def recover_after_restart(now: dt.datetime, leases_may_live: bool = False) -> list[tuple[str, str]]:
    """Every queued or in-flight post, re-enqueued: for the embedded default only.

    Its in-memory broker lost every message when the process stopped. The
    in-flight posts' worker stopped with it (the database lock says no other
    runs), so they need not wait for their leases. ``leases_may_live``: the
    lock may have ended without its process (PostgreSQL's, with a dropped
    connection), so an in-flight post whose lease is still live is left to the
    sweeper's take-over, which waits for it.
    """
    at = micros(now)
    in_flight, params = (_EXPIRED_IN_FLIGHT, (at,)) if leases_may_live else (_IN_FLIGHT, ())
    with db.connection():
        return _requeue(_QUEUED, (at,), Status.PENDING, Event.RESTART, now) + _requeue(
            in_flight, params, Status.PROCESSING, Event.RESTART, now
        )


_QUEUED = db.Compiled(
    lambda pending, now: Post.select().where(
        (Post.status == pending)
        & ((Post.next_attempt_at <= now) | (Post.queued_at >= Post.next_attempt_at))
    )
)
_IN_FLIGHT = db.Compiled(lambda processing: Post.select().where(Post.status == processing))
_EXPIRED_IN_FLIGHT = db.Compiled(
    lambda processing, now: Post.select().where(
        (Post.status == processing) & (Post.lease_expires_at <= now)
    )
)
