"""A broker restart that loses its queue costs seconds, not POSTS_REQUEUE_AFTER.

A server process takes 200 posts to publish now: each is PENDING with its
message in the broker, and no worker consumes yet. The broker then stops, the
worker processes (each with its dispatcher and sweeper) start while it is down,
and it comes back without the messages (Redis keeps nothing across a restart;
RabbitMQ's queue is purged first). POSTS_REQUEUE_AFTER stays at its 300 s
default, so only the sweeper's queue-depth probe can find the lost messages in
time: every post must be claimed within CLAIM_WITHIN seconds of the broker
answering again, and reach the network exactly once.

And the probe itself: it counts what waits in each broker's queue, and says
None (never raises) when it cannot tell; and the sweeper re-sends a message on
an empty queue at most once per quiet period, so workers busy with prefetched
messages (the queue empty, their posts still PENDING) cannot set off a flood.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import re
import socket
import time
from typing import Any

import grpc
import pytest

from service import logs
from tests.fakes.webhook import FakeWebhook
from tests.processes import (
    FAKES_EGRESS_ALLOW,
    ServerProcess,
    WorkerProcess,
    free_port,
    provision_tenant,
    provision_webhook_tenant,
    run_python,
)
from tests.support import Api, stored_posts, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

POSTS = 200
CLAIM_WITHIN = 15.0  # seconds from the broker answering again to every post claimed
PUBLISH_WITHIN = 60.0
SECRET_KEY = "broker-loss-secret-key-0123456789abcdef-0123"
HOOK_SECRET = "broker-loss-hook"

# The ``server`` fixture (an in-process scheduler, kept idle) is only for the
# sweeper test, which needs a database and no broker.
BACKENDS = ["sqlite"]
pytestmark = pytest.mark.server_env(POSTS_DISPATCH_INTERVAL="3600")

_databases = itertools.count(1)


@dataclasses.dataclass
class Broker:
    """The broker server a test runs on (``tests.backends``), and what it counts."""

    backend: str
    server: Any

    @property
    def url(self) -> str:
        return self.server.url

    def waiting(self) -> int:
        """Messages in the delivery queue, as the broker server itself counts them."""
        from workers.actors import DELIVERY_QUEUE

        if self.backend == "postgres-redis":
            with contextlib.closing(self.server.client()) as client:
                return client.llen(f"dramatiq:{DELIVERY_QUEUE}")  # RedisBroker's list of ids
        return self.server.message_count(DELIVERY_QUEUE)


@pytest.fixture(params=["postgres-redis", "postgres-rabbitmq"])
def broker(request) -> Broker:
    """The session's Redis or RabbitMQ server, its delivery queue empty."""
    from workers.actors import DELIVERY_QUEUE

    backend = request.param
    if backend not in request.config.posts_backends:
        pytest.skip(f"{backend} not in --backends")
    if backend == "postgres-redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
    else:
        from dramatiq.common import dq_name, xq_name

        server = request.getfixturevalue("rabbit_server")
        server.purge(DELIVERY_QUEUE, dq_name(DELIVERY_QUEUE), xq_name(DELIVERY_QUEUE))
    return Broker(backend, server)


@pytest.fixture
def loss(broker, tmp_path, postgres_server):
    """A server process on its own database and the emptied broker, a webhook
    network, and the pieces the test drives."""
    backend = broker.backend
    database = f"broker_loss_{next(_databases)}_{backend.split('-')[1]}"
    hook = FakeWebhook(secret=HOOK_SECRET).start()
    env = {
        "POSTS_DATABASE_URL": postgres_server.create_database(database),
        "POSTS_BROKER_URL": broker.url,
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_MAX_WORKERS": "8",
    }
    tenant = provision_webhook_tenant(
        env, "loss", hook.base_url + "/hooks/loss", HOOK_SECRET, migrate=True
    )
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = WorkerProcess(env, str(tmp_path / "workers.log"), processes=2, threads=4)
    try:
        server.start()
        server.wait_serving(timeout=60)
        yield {
            "broker": broker,
            "hook": hook,
            "server": server,
            "workers": workers,
            "tenant": tenant,
            "sql": lambda query: postgres_server.execute(query, database),
        }
    finally:
        for process in (workers, server):
            process.stop(timeout=20)
        hook.stop()
        if not broker.server.running:  # a failure mid-outage: later modules need it
            broker.server._launch()


def depth_of(url: str) -> int | None:
    """The delivery queue's depth as the sweeper's probe sees it, from here."""
    from workers.actors import DELIVERY_QUEUE
    from workers.broker import make_broker
    from workers.queue_depth import queue_depth

    broker = make_broker(url, worker_process=False)
    try:
        return queue_depth(broker, DELIVERY_QUEUE)
    finally:
        broker.close()


@pytest.mark.timeout(600)
def test_a_broker_restart_that_loses_the_queue_costs_seconds(loss, request):
    from workers.actors import DELIVERY_QUEUE

    broker, hook, sql = loss["broker"], loss["hook"], loss["sql"]
    tenant = loss["tenant"]

    # Given 200 posts PENDING, their messages in the broker and no worker consuming
    with grpc.insecure_channel(loss["server"].address) as channel:
        api = Api(posts_pb2_grpc.PostServiceStub(channel))
        post_ids = [
            api.create(tenant, text=f"loss {n}", status=pb.STATUS_CHANGE_PUBLISH).post_id
            for n in range(POSTS)
        ]
    assert sql("SELECT count(*) FROM post WHERE status = 'pending'") == [(POSTS,)]
    wait_for(
        lambda: broker.waiting() == POSTS,
        timeout=10,
        message=f"{POSTS} messages in the broker's queue",
    )

    # When the broker stops, workers start meanwhile, and it comes back empty
    if broker.backend == "postgres-rabbitmq":
        # RabbitMQ keeps durable messages across a restart: lose them first.
        assert broker.server.purge(DELIVERY_QUEUE) == POSTS
    broker.server._halt()
    loss["workers"].start()
    loss["workers"].wait_ready(timeout=60)
    broker.server._launch()
    back = time.monotonic()

    # Then every post is claimed within seconds of the broker answering again
    def claimed() -> int:
        [(count,)] = sql("SELECT count(DISTINCT post_id) FROM post_event WHERE cause = 'claim'")
        return count

    try:
        wait_for(lambda: claimed() == POSTS, timeout=CLAIM_WITHIN, interval=0.1)
    except AssertionError:
        raise AssertionError(
            f"{POSTS - claimed()} of {POSTS} posts not claimed {CLAIM_WITHIN}s after the "
            f"broker was back"
        ) from None
    took = time.monotonic() - back

    # And each reaches the network exactly once
    wait_for(
        lambda: sql("SELECT count(*) FROM post WHERE status = 'published'") == [(POSTS,)],
        timeout=PUBLISH_WITHIN,
        interval=0.2,
    )
    with hook.lock:
        live = collections.Counter(entry["post_id"] for entry in hook.live)
        requests = collections.Counter(
            (a.request.json or {}).get("post", {}).get("postId") for a in hook.arrivals
        )
    assert live == dict.fromkeys(post_ids, 1)
    assert requests == dict.fromkeys(post_ids, 1)
    claims = sql("SELECT post_id, count(*) FROM post_event WHERE cause = 'claim' GROUP BY post_id")
    assert sorted(claims) == sorted((post_id, 1) for post_id in post_ids)
    [(resent,)] = sql("SELECT count(*) FROM post_event WHERE cause = 'message lost'")
    request.node.user_properties.append(("claimed_all_after_s", round(took, 2)))
    print(
        f"{broker.backend}: all {POSTS} claimed {took:.2f}s after the broker was back; "
        f"{resent} re-sends"
    )


def message(n: int):
    """A delivery message, as ``workers.actors.enqueue`` sends one."""
    import dramatiq

    from workers.actors import DELIVERY_QUEUE

    return dramatiq.Message(
        queue_name=DELIVERY_QUEUE,
        actor_name="deliver_post",
        args=(f"pst_{n}", "token"),
        kwargs={},
        options={},
    )


def test_the_probe_counts_the_messages_waiting(broker):
    from workers.actors import DELIVERY_QUEUE
    from workers.broker import make_broker
    from workers.queue_depth import queue_depth

    client = make_broker(broker.url, worker_process=False)
    try:
        for n in range(3):
            client.enqueue(message(n))
        wait_for(lambda: broker.waiting() == 3, timeout=10)
        assert queue_depth(client, DELIVERY_QUEUE) == 3
        client.flush(DELIVERY_QUEUE)
        assert queue_depth(client, DELIVERY_QUEUE) == broker.waiting() == 0
    finally:
        client.close()


def test_the_probe_counts_in_memory_and_cannot_tell_without_a_broker():
    from dramatiq.brokers.stub import StubBroker

    from workers.actors import DELIVERY_QUEUE
    from workers.queue_depth import queue_depth

    stub = StubBroker()
    stub.declare_queue(DELIVERY_QUEUE)
    assert queue_depth(stub, DELIVERY_QUEUE) == 0
    stub.enqueue(message(0))
    assert queue_depth(stub, DELIVERY_QUEUE) == 1
    assert queue_depth(stub, "never-declared") is None
    assert queue_depth(object(), DELIVERY_QUEUE) is None  # a broker it does not know
    nobody = f"127.0.0.1:{free_port()}"  # loopback, nothing listening: refused at once
    assert depth_of(f"redis://{nobody}/0") is None
    assert depth_of(f"amqp://guest:guest@{nobody}/%2F") is None


def pending_posts(tenant, count: int, sent_ago: float) -> dict[str, str]:
    """``count`` PENDING posts whose message went out ``sent_ago`` seconds ago;
    returns {post_id: job token}."""
    from service import db

    sent = db.utcnow() - dt.timedelta(seconds=sent_ago)
    return stored_posts(
        tenant, count, "quiet", status="pending", queued_at=sent, next_attempt_at=sent
    )


def test_an_empty_queue_resends_each_message_once_per_quiet_period(make_tenant):
    from service import db
    from workers.scheduler import Scheduler

    # Given PENDING posts whose messages went out 3 s ago (in a busy worker's
    # prefetch, or lost: the sweeper cannot tell which)
    posts = pending_posts(make_tenant("quiet"), count=5, sent_ago=3.0)
    depth: list[int | None] = [None]
    asked = []

    def probe() -> int | None:
        asked.append(depth[0])
        return depth[0]

    sent: list[tuple[str, str]] = []
    scheduler = Scheduler(
        sent.extend,
        interval=0.2,
        requeue_after=300.0,
        queue_depth=probe,
    )

    def sweep(now) -> list[tuple[str, str]]:
        sent.clear()
        scheduler.tick(now, sweep_too=True)
        return sorted(job for job in sent if job[0] in posts)

    now = db.utcnow()
    # When the broker cannot tell, or its queue has a backlog, nothing is re-sent yet
    assert sweep(now) == []
    depth[0] = 4
    assert sweep(now) == []
    # When its queue is empty, each is re-sent at once, with its own token
    depth[0] = 0
    assert sweep(now) == sorted(posts.items())
    # And not again while the copies are younger than the quiet period, however
    # often the queue is found empty (a dispatch round without sweep asks nothing)
    assert sweep(now + dt.timedelta(seconds=1)) == []
    asked.clear()
    scheduler.tick(now + dt.timedelta(seconds=1), sweep_too=False)
    assert [job for job in sent if job[0] in posts] == [] and asked == []
    # Then, the queue still empty one quiet period on, once more (a copy that
    # arrives after the post's claim is dropped there)
    assert sweep(now + dt.timedelta(seconds=2.5)) == sorted(posts.items())


def test_python_m_workers_with_its_database_out_of_reach_says_so_in_one_line(tmp_path):
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_python(
        {
            "POSTS_VAR_DIR": str(tmp_path),
            "POSTS_DATABASE_URL": f"postgresql://posts@127.0.0.1:{port}/posts",
            "POSTS_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "POSTS_SECRET_KEY": "workers-secret-key-0123456789abcdef-01234",
        },
        "-m",
        "workers",
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and f"127.0.0.1:{port}" in line, line


def test_python_m_workers_without_a_broker_refuses_to_start(tmp_path):
    # Without POSTS_BROKER_URL nothing would ever send to this worker: it must not
    # start, "ready for action" on an in-memory broker of its own
    result = run_python({"POSTS_VAR_DIR": str(tmp_path), "POSTS_BROKER_URL": ""}, "-m", "workers")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        (
            "error: python -m workers needs POSTS_BROKER_URL (without one, the worker runs inside"
            " the one `python -m service serve` process)"
        )
    ]


#: A line as service.logs writes it: time, level, pid, logger.
_LOGGED = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \[\d+\] "
)


@pytest.mark.timeout(300)
def test_the_logs_say_in_one_line_each_when_the_broker_is_lost_and_reached_again(
    broker, tmp_path, postgres_server
):
    kind = broker.backend.split("-")[1]
    env = {
        "POSTS_DATABASE_URL": postgres_server.create_database(
            f"broker_log_{next(_databases)}_{kind}"
        ),
        "POSTS_BROKER_URL": broker.url,
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_VAR_DIR": str(tmp_path),
    }
    tenant = provision_tenant(env, "broker-log", migrate=True)
    where = logs.redact(broker.url)
    server_log, workers_log = tmp_path / "server.log", tmp_path / "workers.log"
    server = ServerProcess(env, str(server_log), processes=2)
    workers = WorkerProcess(env, str(workers_log), processes=1, threads=2)
    try:
        server.start()
        workers.start()
        server.wait_serving(timeout=60)
        workers.wait_ready(timeout=60)
        # Given workers that reached the broker
        wait_for(lambda: f"connected to the broker {where}" in workers_log.read_text(), timeout=30)
        # When the broker stops, and a post is published meanwhile
        broker.server._halt()
        try:
            with grpc.insecure_channel(server.address) as channel:
                api = Api(posts_pb2_grpc.PostServiceStub(channel))
                post = api.create(tenant, text="during the outage", status=pb.STATUS_CHANGE_PUBLISH)
            wait_for(lambda: f"lost the broker {where}" in workers_log.read_text(), timeout=30)
            wait_for(
                lambda: f"enqueue of {post.post_id} failed" in server_log.read_text(), timeout=30
            )
        finally:
            broker.server._launch()
        # Then the workers say when they reach it again, and the post is delivered
        wait_for(
            lambda: f"reconnected to the broker {where} after " in workers_log.read_text(),
            timeout=60,
        )
        with grpc.insecure_channel(server.address) as channel:
            Api(posts_pb2_grpc.PostServiceStub(channel)).wait_published(
                tenant, post.post_id, timeout=60
            )
    finally:
        for process in (workers, server):
            process.stop(timeout=20)
    server_text, workers_text = server_log.read_text(), workers_log.read_text()
    # And the outage is one line each, with time and level, not a traceback
    for text in (server_text, workers_text):
        assert "Traceback" not in text, text
        assert "guest:guest@" not in text  # the broker's credentials (RabbitMQ's URL has some)
    assert workers_text.count(f"lost the broker {where}") == 1, workers_text
    assert workers_text.count(f"reconnected to the broker {where}") == 1, workers_text
    assert "Restarting consumer" not in workers_text  # (Dramatiq's, per consumer, every 3 s)
    assert all(_LOGGED.match(line) for line in server_text.splitlines()), server_text
    # (and not pika's dozen lines for each step of each refused connection)
    for text in (server_text, workers_text):
        assert " pika." not in text, text
    [failed] = [line for line in server_text.splitlines() if f"enqueue of {post.post_id}" in line]
    assert " ERROR " in failed and "the sweeper will retry (" in failed
    # (and the delivery's own line names the post and its outcome)
    assert f"delivery of {post.post_id} (x, attempt 1 of 5): PUBLISHED" in workers_text
