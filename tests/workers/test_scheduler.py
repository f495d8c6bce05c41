"""Several dispatchers and sweepers at once never do the same work twice.

``workers.scheduler.dispatch_due`` and ``sweep`` run in many processes on many
machines. Here several threads, each with its own database connection, drain
the same backlog in lockstep rounds (each round starts on every thread at the
same moment, so they race for the same rows every time): due SCHEDULED posts,
PENDING posts whose retry is due, PENDING posts whose message was lost, and
PROCESSING posts whose worker's lease expired. Every post must be moved exactly
once in total, by one of them, as its event history shows. And at the worker's claim:
a message whose token a takeover superseded is dropped while the new token
claims the post; a lost message re-sent by the sweeper keeps its token (it may
only be slow), so of its copies the first claims and the others drop.

The server's own Scheduler is kept out of the way (it runs once at start-up,
then every hour), and the posts' states are written straight to the database:
the backlog is made, not waited for.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import itertools
import threading

import pytest

from tests.support import stored_posts

pytestmark = pytest.mark.server_env(POSTS_DISPATCH_INTERVAL="3600")

PER_KIND = 40
THREADS = 6
LIMIT = 7  # a small batch: no thread can take a kind's whole backlog in one round
REQUEUE_AFTER = 300.0  # the sweeper's "message lost" age, in seconds
BARRIER_TIMEOUT = 10.0

#: Each kind of move: the status it leaves, the cause it writes to the post's
#: history, and whether it issues a new token (a lost message is re-sent with its
#: own: it may only be slow, and a new token would drop it).
MOVES = {
    "due": ("scheduled", "due", True),
    "retry": ("pending", "retry due", True),
    "lost": ("pending", "message lost", False),
    "expired": ("processing", "lease expired", True),
}
MOVE_CAUSES = {cause for _, cause, _ in MOVES.values()}


def make_posts(tenant, kind: str, count: int) -> dict[str, str]:
    """``count`` posts in the state ``kind`` names; returns {post_id: job token}."""
    from service import db

    now = db.utcnow()

    def ago(seconds: float) -> dt.datetime:
        return now - dt.timedelta(seconds=seconds)

    # Laid out by hand, as a table: one state per line.
    # fmt: off
    states = {
        "due": {"status": "scheduled", "scheduled_at": ago(1)},
        "retry": {"status": "pending", "attempts": 1,
                  "queued_at": ago(60), "next_attempt_at": ago(1)},
        "lost": {"status": "pending", "queued_at": ago(3600), "next_attempt_at": ago(3600)},
        "expired": {"status": "processing", "attempts": 1, "last_attempt_at": ago(120),
                    "lease_expires_at": ago(1), "queued_at": ago(180), "next_attempt_at": None},
    }
    # fmt: on
    return stored_posts(tenant, count, kind, **states[kind])


def history(post_ids) -> dict[str, list]:
    """Each post's events, oldest first."""
    from service import db
    from service.models import PostEvent

    events = collections.defaultdict(list)
    with db.connection():
        for event in (
            PostEvent.select()
            .where(PostEvent.post.in_(list(post_ids)))
            .order_by(PostEvent.at, PostEvent.id)
        ):
            events[event.post_id].append(event)
    return events


def rows(post_ids) -> dict:
    from service import db
    from service.models import Post

    with db.connection():
        return {post.id: post for post in Post.select().where(Post.id.in_(list(post_ids)))}


class Rounds:
    """Lockstep rounds for the draining threads.

    Left free, one thread can win the database's write lock round after round
    and do nearly all the work (on SQLite it often did), so the race would not
    be tested. Here every thread starts each round at the same moment, and all
    stop together after the first round in which none of them found anything.
    """

    def __init__(self, parties: int):
        self._barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT)
        self._lock = threading.Lock()
        self._found: collections.Counter = collections.Counter()  # round -> jobs found

    def start(self) -> None:
        self._barrier.wait()

    def finish(self, number: int, found: int) -> bool:
        """Waits for every thread to end round ``number``; True if any found work."""
        with self._lock:
            self._found[number] += found
        self._barrier.wait()  # also the start of the next round, on every thread
        with self._lock:
            return self._found[number] > 0

    def abort(self) -> None:
        """Frees the other threads at once when one fails (no wait for the timeout)."""
        self._barrier.abort()


def drain(role: str, rounds: Rounds) -> list[tuple[str, str]]:
    """One dispatcher, sweeper or both, on its own connection: one call per round
    until a round finds nothing anywhere."""
    from service import db
    from workers.scheduler import dispatch_due, sweep

    jobs = []
    with db.connection():
        try:
            rounds.start()
            for number in itertools.count():
                found = []
                if role in ("dispatcher", "both"):
                    found += dispatch_due(db.utcnow(), limit=LIMIT)
                if role in ("sweeper", "both"):
                    found += sweep(db.utcnow(), REQUEUE_AFTER, limit=LIMIT)
                jobs += found
                if not rounds.finish(number, len(found)):
                    return jobs
        except BaseException:
            rounds.abort()
            raise
    raise AssertionError("unreachable")


def test_concurrent_dispatchers_and_sweepers_move_each_post_exactly_once(make_tenant, request):
    # Given a backlog of every kind of work the dispatcher and the sweeper do
    tenant = make_tenant("scheduler-race")
    kinds = {kind: make_posts(tenant, kind, PER_KIND) for kind in MOVES}
    kind_of = {post_id: kind for kind, made in kinds.items() for post_id in made}
    old_tokens = {post_id: token for made in kinds.values() for post_id, token in made.items()}

    # When several dispatchers and sweepers drain it at the same moment
    roles = ["dispatcher", "sweeper", "both"] * (THREADS // 3)
    rounds = Rounds(len(roles))
    with concurrent.futures.ThreadPoolExecutor(len(roles)) as pool:
        running = [pool.submit(drain, role, rounds) for role in roles]
        results = [future.result(timeout=60) for future in running]

    # Then together they moved every post, and none twice
    jobs = [
        (post_id, token) for result in results for post_id, token in result if post_id in kind_of
    ]
    moved = collections.Counter(post_id for post_id, _ in jobs)
    twice = {post_id: count for post_id, count in moved.items() if count > 1}
    assert not twice, f"posts moved more than once: {twice}"
    assert set(moved) == set(kind_of), f"never moved: {sorted(set(kind_of) - set(moved))}"
    split = [f"{role}:{len(result)}" for role, result in zip(roles, results, strict=True)]
    request.node.user_properties.append(("jobs_per_thread", split))
    print("jobs per thread:", split)
    # And they really raced: every thread moved posts, none did most of the work
    # (each round gives a thread at most LIMIT of a kind that four threads
    # share, so none can take more than about a third of the backlog)
    counts = [sum(post_id in kind_of for post_id, _ in result) for result in results]
    assert all(counts), f"a thread moved nothing: {split}"
    assert max(counts) <= len(kind_of) // 2, f"one thread did most of the work: {split}"

    # And each post is PENDING under the token its job carries (a new one, but
    # for a lost message)
    token_of = dict(jobs)
    after = rows(kind_of)
    for post_id, kind in kind_of.items():
        post = after[post_id]
        assert (post.status, post.job_token) == ("pending", token_of[post_id]), (post_id, kind)
        renewed = token_of[post_id] != old_tokens[post_id]
        assert renewed == MOVES[kind][2], (post_id, kind, token_of[post_id])

    # And its history shows exactly that one move (a lost message sent again
    # changes nothing a caller sees: it makes no event)
    events = history(kind_of)
    for post_id, kind in kind_of.items():
        moves = [e for e in events[post_id] if e.cause in MOVE_CAUSES]
        before, cause, _ = MOVES[kind]
        expected = [] if kind == "lost" else [(before, "pending", cause, token_of[post_id])]
        assert [(e.from_status, e.to_status, e.cause, e.job_token) for e in moves] == expected, (
            post_id,
            kind,
            [(e.from_status, e.to_status, e.cause) for e in events[post_id]],
        )


def claim_at_once(post_id: str, token: str, copies: int = 4) -> list[bool]:
    """``copies`` messages for ``post_id`` with ``token``, claimed at the same moment."""
    from service import db
    from workers.delivery import claim

    start = threading.Barrier(copies, timeout=BARRIER_TIMEOUT)

    def one() -> bool:
        with db.connection():
            start.wait()
            return claim(post_id, token, db.utcnow()) is not None

    with concurrent.futures.ThreadPoolExecutor(copies) as pool:
        return sorted(f.result(timeout=30) for f in [pool.submit(one) for _ in range(copies)])


def claims(post_id: str) -> list[tuple]:
    return [
        (e.from_status, e.to_status, e.job_token)
        for e in history([post_id])[post_id]
        if e.cause == "claim"
    ]


def test_a_takeover_drops_the_old_message_and_a_resent_one_claims_once(make_tenant):
    from service import db
    from workers.delivery import claim
    from workers.scheduler import sweep

    # Given a post whose worker died and one whose message was lost
    tenant = make_tenant("superseded")
    [(expired, dead_token)] = make_posts(tenant, "expired", 1).items()
    [(lost, lost_token)] = make_posts(tenant, "lost", 1).items()

    # When a sweeper takes over the one and re-sends the other
    with db.connection():
        jobs = dict(sweep(db.utcnow(), REQUEUE_AFTER))
    new_token = jobs[expired]
    assert new_token != dead_token
    assert jobs[lost] == lost_token  # the same message again: it may only be slow

    # Then the dead worker's message (still in the broker, or redelivered) is
    # dropped, while the new token claims the post once, however many copies try
    with db.connection():
        assert claim(expired, dead_token, db.utcnow()) is None
    assert rows([expired])[expired].status == "pending"
    assert claim_at_once(expired, new_token) == [False, False, False, True]
    with db.connection():
        assert claim(expired, dead_token, db.utcnow()) is None
    assert (rows([expired])[expired].status, rows([expired])[expired].job_token) == (
        "processing",
        new_token,
    )
    assert claims(expired) == [("pending", "processing", new_token)]

    # And of the lost message and its re-sent copy, the first claims, the rest drop
    assert claim_at_once(lost, lost_token) == [False, False, False, True]
    assert rows([lost])[lost].status == "processing"
    assert claims(lost) == [("pending", "processing", lost_token)]
