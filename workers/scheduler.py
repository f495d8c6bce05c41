"""The dispatcher and the sweeper: database work that turns into delivery messages.

The dispatcher moves due SCHEDULED posts to PENDING and enqueues PENDING posts
whose retry is due; the sweeper re-enqueues PENDING posts whose message was
lost and takes over PROCESSING posts whose worker died (lease expired). Every
move is a compare-and-set, so any number of them may run at once. Every
enqueue carries a new job token, so an older message for the post is dropped,
except the sweeper's re-send of a lost message (see ``_requeue``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable

from service import db, lifecycle, posts
from service.lifecycle import Event, Status
from service.models import Post, micros

log = logging.getLogger(__name__)

BATCH = 500

Enqueue = Callable[[str, str], None]


@dataclasses.dataclass
class Hooks:
    """Named points where tests can step in.

    ``before_dispatch(now)`` runs at the start of each round, before its
    transaction reads the posts due at ``now``.
    """

    before_dispatch: list = dataclasses.field(default_factory=list)


hooks = Hooks()


_COLUMNS = (Post.id, Post.version, Post.status, Post.job_token)

# The posts each mover looks for, oldest first, up to a limit. The rows are
# claimed as they are read: SKIP LOCKED on PostgreSQL, the write lock on SQLite.
_DUE = db.Compiled(
    lambda scheduled, now, limit: db.claimable(
        Post.select(*_COLUMNS)
        .where((Post.status == scheduled) & (Post.scheduled_at <= now))
        .order_by(Post.scheduled_at)
        .limit(limit)
    )
)
_RETRY_DUE = db.Compiled(
    lambda pending, now, limit: db.claimable(
        Post.select(*_COLUMNS)
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
        Post.select(*_COLUMNS)
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
        Post.select(*_COLUMNS)
        .where((Post.status == processing) & (Post.lease_expires_at <= now))
        .limit(limit)
    )
)


def _requeue(candidates: db.Compiled, params: tuple, expected: Status, event: Event | None,
             cause: str, now, new_token: bool = True) -> list:  # fmt: skip
    """Gives each post ``candidates`` finds a new token (and status), in one transaction.

    ``new_token=False`` re-sends the post's current token instead: for a message
    taken as lost, which may only be slow. A new token would drop it, and a
    queue slower than POSTS_REQUEUE_AFTER would then never deliver anything;
    with the same token the first copy to arrive claims and the others drop.

    Each update is a compare-and-set on the version read, so concurrent
    dispatchers and sweepers never move the same post twice.
    """
    jobs = []
    status = lifecycle.next_status(expected, event).value if event else expected.value
    with db.write():
        for post in candidates.rows(Post, expected.value, *params):
            version = post.version
            post.status = status
            post.job_token = posts.new_token() if new_token else post.job_token
            post.queued_at = post.next_attempt_at = now
            post.lease_expires_at = None
            post.version = version + 1
            post.updated_at = now
            if db.update_changed(post, version=version):
                posts.record_event(post, expected.value, cause)
                jobs.append((post.id, post.job_token))
    return jobs


def dispatch_due(now: dt.datetime, limit: int = BATCH) -> list[tuple[str, str]]:
    """Moves due posts to the queue; returns the (post_id, token) jobs to send after commit."""
    at = micros(now)
    return _requeue(_DUE, (at, limit), Status.SCHEDULED, Event.DUE, "due", now) + _requeue(
        _RETRY_DUE, (at, limit), Status.PENDING, None, "retry due", now
    )


def sweep(now: dt.datetime, requeue_after: float, limit: int = BATCH) -> list[tuple[str, str]]:
    """Re-enqueues lost messages and takes over expired leases; returns the jobs."""
    at = micros(now)
    sent_before = micros(now - dt.timedelta(seconds=requeue_after))
    return _requeue(
        _LOST, (at, sent_before, limit), Status.PENDING, None, "message lost", now,
        new_token=False,
    ) + _requeue(_EXPIRED, (at, limit), Status.PROCESSING, Event.TAKE_OVER, "lease expired", now)


class Scheduler:
    """Runs the dispatcher every ``interval`` seconds and the sweeper less often, in a thread."""

    def __init__(self, enqueue: Enqueue, interval: float, requeue_after: float,
                 sweep_every: float = 5.0):  # fmt: skip
        self._enqueue = enqueue
        self._interval = interval
        self._requeue_after = requeue_after
        self._sweep_every = sweep_every
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
        with db.connection():
            jobs = dispatch_due(now)
            if sweep_too:
                jobs += sweep(now, self._requeue_after)
        for post_id, token in jobs:
            try:
                self._enqueue(post_id, token)
            except Exception:  # the broker is down: the sweeper sends it again later
                log.exception("enqueue of %s failed", post_id)
        return len(jobs)

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


def recover_after_restart(now: dt.datetime) -> list[tuple[str, str]]:
    """Every queued or in-flight post, re-enqueued: for the embedded default only.

    Its in-memory broker lost every message when the process stopped, and no
    other process can be delivering, so nothing needs to wait for a lease.
    """
    with db.connection():
        return _requeue(_QUEUED, (micros(now),), Status.PENDING, None, "restart", now) + _requeue(
            _IN_FLIGHT, (), Status.PROCESSING, Event.TAKE_OVER, "restart", now
        )


_QUEUED = db.Compiled(
    lambda pending, now: Post.select(*_COLUMNS).where(
        (Post.status == pending)
        & ((Post.next_attempt_at <= now) | (Post.queued_at >= Post.next_attempt_at))
    )
)
_IN_FLIGHT = db.Compiled(lambda processing: Post.select(*_COLUMNS).where(Post.status == processing))
