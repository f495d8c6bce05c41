"""The delivery messages of one commit go out in one batch (``enqueue_all``).

On each broker the batch reaches the queue whole, each message once, and the
broker's middleware sees each message before and after its send, as with
``enqueue``. On Redis the whole batch is one round trip, counted on the
client's socket writes. And a batch the broker missed, whole (the broker down)
or in part (Redis refusing writes past its memory limit), is not lost: its
posts stay PENDING and the sweeper sends them again, each delivered once.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable

import dramatiq
import pytest

from tests.support import DEFAULT_WAIT, in_seconds, stored_posts

# isort: split
from posts.v1 import posts_pb2 as pb

BATCH = 300
#: One dispatcher round (workers.scheduler.BATCH): more than Redis takes under
#: the memory limit the test sets.
PART = 500

# The ``server`` fixture (an in-process worker, its own scheduler kept idle)
# serves the sweeper tests, which need a broker that can go down.
BACKENDS = ["postgres-redis", "postgres-rabbitmq"]
pytestmark = pytest.mark.server_env(POSTS_DISPATCH_INTERVAL="3600")


def message(n: int) -> dramatiq.Message:
    """A delivery message, as ``workers.actors.enqueue_all`` makes one."""
    from workers.actors import DELIVERY_QUEUE

    return dramatiq.Message(
        queue_name=DELIVERY_QUEUE,
        actor_name="deliver_post",
        args=(f"pst_{n}", "token"),
        kwargs={},
        options={},
    )


class Seen(dramatiq.Middleware):
    """Records the message ids each enqueue hook saw, in order."""

    def __init__(self):
        self.before: list[str] = []
        self.after: list[str] = []

    def before_enqueue(self, broker, message, delay):
        assert delay is None
        self.before.append(message.message_id)

    def after_enqueue(self, broker, message, delay):
        assert delay is None
        self.after.append(message.message_id)


@dataclasses.dataclass
class Target:
    """A broker to send to: its URL ('' for in-memory) and how many messages
    wait in its delivery queue, as the broker itself counts them."""

    backend: str
    url: str
    waiting: Callable[[dramatiq.Broker], int]


@pytest.fixture(params=["sqlite", "postgres-redis", "postgres-rabbitmq"])
def target(request) -> Target:
    """Each broker, its delivery queue empty."""
    from dramatiq.common import dq_name, xq_name

    from workers.actors import DELIVERY_QUEUE

    backend = request.param
    if backend not in request.config.posts_backends:
        pytest.skip(f"{backend} not in --backends")
    if backend == "sqlite":
        return Target(backend, "", lambda client: client.queues[DELIVERY_QUEUE].qsize())
    if backend == "postgres-redis":
        redis_server = request.getfixturevalue("redis_server")
        redis_server.flush()

        def in_redis(client) -> int:
            with contextlib.closing(redis_server.client()) as own:
                return own.llen(f"dramatiq:{DELIVERY_QUEUE}")  # RedisBroker's list of ids

        return Target(backend, redis_server.url, in_redis)
    rabbit = request.getfixturevalue("rabbit_server")
    rabbit.purge(DELIVERY_QUEUE, dq_name(DELIVERY_QUEUE), xq_name(DELIVERY_QUEUE))
    return Target(backend, rabbit.url, lambda client: rabbit.message_count(DELIVERY_QUEUE))


@contextlib.contextmanager
def client_of(url: str):
    """A broker client as a server makes one, with a ``Seen`` middleware."""
    from workers.actors import DELIVERY_QUEUE
    from workers.broker import make_broker

    client = make_broker(url, worker_process=False)
    seen = Seen()
    client.add_middleware(seen)
    client.declare_queue(DELIVERY_QUEUE)
    try:
        yield client, seen
    finally:
        client.close()


def consume(client: dramatiq.Broker, count: int) -> list[tuple]:
    """The args of ``count`` messages taken from the delivery queue (acked)."""
    from workers.actors import DELIVERY_QUEUE

    consumer = client.consume(DELIVERY_QUEUE, prefetch=count, timeout=100)
    taken: list[tuple] = []
    deadline = time.monotonic() + DEFAULT_WAIT
    try:
        while len(taken) < count:
            assert time.monotonic() < deadline, f"{len(taken)} of {count} messages arrived"
            got = next(consumer)
            if got is not None:
                taken.append(tuple(got.args))
                consumer.ack(got)
    finally:
        consumer.close()
    return taken


def test_a_batch_reaches_the_queue_once_each_through_the_middleware(target):
    with client_of(target.url) as (client, seen):
        # When a batch is sent
        messages = [message(n) for n in range(BATCH)]
        client.enqueue_all(messages)
        # Then the queue holds each message once
        assert target.waiting(client) == BATCH
        taken = consume(client, BATCH)
        assert collections.Counter(taken) == {(f"pst_{n}", "token"): 1 for n in range(BATCH)}
        assert target.waiting(client) == 0
        # And the middleware saw each, before its send and after
        ids = [m.message_id for m in messages]
        assert seen.before == ids
        assert seen.after == ids


class RoundTrips:
    """Counts the writes this thread's Redis connections make: each is one round
    trip (a pipeline writes all its commands at once, then reads the answers)."""

    def __init__(self, monkeypatch):
        from redis.connection import AbstractConnection

        self.count = 0
        send = AbstractConnection.send_packed_command
        thread = threading.get_ident()

        def counted(connection, command, check_health=True):
            if threading.get_ident() == thread:
                self.count += 1
            return send(connection, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)

    def of(self, action: Callable[[], object]) -> int:
        before = self.count
        action()
        return self.count - before


def test_a_batch_is_one_round_trip_to_redis(request, monkeypatch):
    if "postgres-redis" not in request.config.posts_backends:
        pytest.skip("postgres-redis not in --backends")
    redis_server = request.getfixturevalue("redis_server")
    redis_server.flush()
    trips = RoundTrips(monkeypatch)
    with client_of(redis_server.url) as (client, seen):
        # (once per client: Redis learns the script, the client Lua's stack size)
        client.enqueue(message(0))
        # Sent one by one, each message is a round trip (the counter counts)
        assert trips.of(lambda: [client.enqueue(message(n)) for n in range(1, 11)]) == 10
        # A batch is one
        assert trips.of(lambda: client.enqueue_all([message(n) for n in range(11, 511)])) == 1
        # Redis forgets its scripts on a restart: then the batch is refused whole,
        # the script loaded, and the batch sent again (three round trips)
        with contextlib.closing(redis_server.client()) as own:
            own.script_flush()
        assert trips.of(lambda: client.enqueue_all([message(n) for n in range(511, 611)])) == 3
        assert trips.of(lambda: client.enqueue_all([])) == 0
        assert len(seen.after) == 611
        taken = consume(client, 611)
    assert collections.Counter(taken) == {(f"pst_{n}", "token"): 1 for n in range(611)}


# ------------------------------------------------------ a batch the broker missed


def due_posts(tenant, count: int) -> list[str]:
    """``count`` SCHEDULED posts due a second ago, written straight to the database; their ids."""
    from service import db

    due = db.utcnow() - dt.timedelta(seconds=1)
    return list(stored_posts(tenant, count, "batch", status="scheduled", scheduled_at=due))


def scheduled_posts(api, tenant, count: int) -> list[str]:
    """``count`` posts due in a second, by the API; their ids."""
    return [
        api.create(
            tenant, text=f"batch {n}", status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(1)
        ).post_id
        for n in range(count)
    ]


def statuses(post_ids) -> collections.Counter:
    from service import db
    from service.models import Post

    with db.connection():
        return collections.Counter(
            post.status for post in Post.select().where(Post.id.in_(list(post_ids)))
        )


def resend_and_deliver(api, tenant, ledger, post_ids, scheduler, at: dt.datetime) -> None:
    """The sweeper's round past the requeue period, then each post published once."""
    scheduler.tick(at, sweep_too=True)
    for post_id in post_ids:
        api.wait_published(tenant, post_id, timeout=60)
    assert {post_id: len(ledger.sends(post_id=post_id)) for post_id in post_ids} == dict.fromkeys(
        post_ids, 1
    )


def broker_server(request, server):
    return request.getfixturevalue(
        "redis_server" if server.backend == "postgres-redis" else "rabbit_server"
    )


@pytest.mark.timeout(300)
def test_a_batch_sent_while_the_broker_is_down_is_sent_again_by_the_sweeper(
    request, server, api, make_tenant, ledger, caplog
):
    from service import db
    from workers import actors
    from workers.scheduler import Scheduler

    tenant = make_tenant("batch-down")
    post_ids = scheduled_posts(api, tenant, 20)
    scheduler = Scheduler(actors.enqueue_all, interval=0.2, requeue_after=30.0)
    due = db.utcnow() + dt.timedelta(seconds=5)
    broker = broker_server(request, server)
    # When the dispatcher moves them while the broker is down
    broker._halt()
    try:
        assert scheduler.tick(due, sweep_too=False) == 20
    finally:
        broker._launch()
    # Then its send failed, and they wait PENDING
    assert "enqueue of 20 posts failed; the sweeper will retry" in caplog.text
    assert statuses(post_ids) == {"pending": 20}
    # And the sweeper sends them again, each delivered once
    resend_and_deliver(api, tenant, ledger, post_ids, scheduler, due + dt.timedelta(seconds=60))


@pytest.mark.timeout(300)
def test_a_batch_redis_takes_in_part_is_completed_by_the_sweeper(
    request, server, api, make_tenant, ledger, caplog, held_claims
):
    from service import db
    from workers import actors
    from workers.scheduler import Scheduler

    if server.backend != "postgres-redis":
        pytest.skip("Redis's memory limit")
    redis_server = request.getfixturevalue("redis_server")
    tenant = make_tenant("batch-part")
    post_ids = due_posts(tenant, PART)
    scheduler = Scheduler(actors.enqueue_all, interval=0.2, requeue_after=30.0)
    due = db.utcnow() + dt.timedelta(seconds=5)
    # When Redis refuses writes partway through the batch (its memory limit reached)
    with contextlib.closing(redis_server.client()) as own:
        used = own.info("memory")["used_memory"]
        own.config_set("maxmemory-policy", "noeviction")
        own.config_set("maxmemory", used + 192 * 1024)
        try:
            assert scheduler.tick(due, sweep_too=False) == PART
        finally:
            own.config_set("maxmemory", 0)
    # Then the send failed, some of the messages stored and the rest not (none
    # is acked yet: the workers hold every delivery before its claim)
    assert f"enqueue of {PART} posts failed; the sweeper will retry" in caplog.text
    assert "OutOfMemoryError" in caplog.text
    stored = stored_messages(redis_server)
    assert 0 < stored < PART, stored
    print(f"Redis stored {stored} of the batch of {PART} before its memory limit")
    # And the sweeper sends the posts still waiting, each delivered once
    held_claims.release()
    resend_and_deliver(api, tenant, ledger, post_ids, scheduler, due + dt.timedelta(seconds=60))


def stored_messages(redis_server) -> int:
    """Delivery messages Redis holds (queued, or fetched and not yet acked)."""
    from workers.actors import DELIVERY_QUEUE

    with contextlib.closing(redis_server.client()) as own:
        return own.hlen(f"dramatiq:{DELIVERY_QUEUE}.msgs")
