"""The production topology under fire: PostgreSQL and Redis, two server
processes and three worker processes (each also dispatching and sweeping).

Posts are published, scheduled, rescheduled and cancelled through both servers
while workers are SIGKILLed and restarted, Redis is restarted (losing every
queued message) and PostgreSQL is restarted. At the end every post is in the
status its last accepted request implies, the fake network holds each post
that should be live exactly once and nothing else, and nothing the service
answered with success was lost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
import time

import grpc
import pytest

from tests.backends import PostgresServer, RedisServer
from tests.fakes.webhook import FakeWebhook
from tests.processes import (
    FAKES_EGRESS_ALLOW,
    ServerProcess,
    WorkerProcess,
    provision_webhook_tenant,
)
from tests.support import timestamp, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

POSTS = 2000
CLIENTS = 6
SECRET_KEY = "topology-secret-key-0123456789abcdef-012345"
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclasses.dataclass
class Expectation:
    """What the client was told about one post."""

    post_id: str = ""
    status: int = pb.POST_STATUS_UNSPECIFIED  # where its last accepted request leads


@pytest.fixture
def topology(tmp_path):
    with PostgresServer() as postgres, RedisServer() as redis:
        hook = FakeWebhook(secret="topology-hook").start()
        hook.delay = 0.005
        env = {
            "POSTS_DATABASE_URL": postgres.create_database("topology"),
            "POSTS_BROKER_URL": redis.url,
            "POSTS_SECRET_KEY": SECRET_KEY,
            "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
            "POSTS_VAR_DIR": str(tmp_path),
            "POSTS_LEASE_SECONDS": "5",
            "POSTS_REQUEUE_AFTER": "5",
            "POSTS_RETRY_BASE": "0.2",
            "POSTS_MAX_ATTEMPTS": "100",
            "POSTS_DISPATCH_INTERVAL": "0.2",
            "POSTS_MAX_WORKERS": "8",
        }
        tenant = provision_webhook_tenant(
            env, "topology", hook.base_url + "/hooks/topology", "topology-hook", migrate=True
        )
        key, account = tenant.key, tenant.account_id
        servers = [ServerProcess(env, str(tmp_path / f"server-{i}.log")) for i in range(2)]
        workers = [
            WorkerProcess(env, str(tmp_path / f"worker-{i}.log"), threads=4) for i in range(3)
        ]
        try:
            for process in servers + workers:
                process.start()
            for server in servers:
                server.wait_serving(timeout=60)
            yield {
                "postgres": postgres,
                "redis": redis,
                "hook": hook,
                "servers": servers,
                "workers": workers,
                "key": key,
                "account": account,
            }
        finally:
            for process in servers + workers:
                process.stop(timeout=20)
            hook.stop()


def _call(stub_method, request, key: str, deadline: float):
    """Sends a request until it is answered (retrying while the backend is down)."""
    while True:
        try:
            return stub_method(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _in(seconds: float):
    return timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


def _drive(
    stub, key: str, account: str, n: int, rng: random.Random, deadline: float
) -> Expectation:
    """One post's life: created one way, then maybe rescheduled, published or cancelled."""
    kind = rng.choice(["publish", "schedule", "schedule", "draft", "cancel-pending"])
    text = f"topology post {n}"
    create = pb.CreatePostRequest(
        account_id=account, post_type=pb.POST_TYPE_POST, text=text, idempotency_key=f"topology-{n}"
    )
    if kind in ("publish", "cancel-pending"):
        create.status = pb.STATUS_CHANGE_PUBLISH
    elif kind == "schedule":
        create.status = pb.STATUS_CHANGE_SCHEDULED
        create.scheduled_at.CopyFrom(_in(rng.uniform(1, 6)))
    else:
        create.status = pb.STATUS_CHANGE_DRAFT
    post = _call(stub.CreatePost, create, key, deadline).post
    expected = Expectation(post.post_id, pb.POST_STATUS_PUBLISHED)
    if kind == "draft":
        expected.status = pb.POST_STATUS_DRAFT
    change = None
    if kind == "cancel-pending" or (kind == "schedule" and rng.random() < 0.3):
        change = pb.UpdatePostRequest(post_id=post.post_id, status=pb.STATUS_CHANGE_CANCELLED)
    elif kind == "schedule" and rng.random() < 0.5:
        change = pb.UpdatePostRequest(post_id=post.post_id, scheduled_at=_in(rng.uniform(0.5, 6)))
    elif kind == "draft" and rng.random() < 0.5:
        change = pb.UpdatePostRequest(post_id=post.post_id, status=pb.STATUS_CHANGE_PUBLISH)
    if change is None:
        return expected
    try:
        updated = _call(stub.UpdatePost, change, key, deadline).post
    except grpc.RpcError as error:
        # Too late: the post is already being delivered (claimed) or delivered.
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        return expected
    # The answer is the post as the update wrote it (or found it, when a retry
    # repeats an update that had committed): never a worker's later status
    if change.status == pb.STATUS_CHANGE_CANCELLED:
        assert updated.status == pb.POST_STATUS_CANCELLED, updated
        expected.status = pb.POST_STATUS_CANCELLED
    elif change.status == pb.STATUS_CHANGE_PUBLISH:
        assert updated.status == pb.POST_STATUS_PENDING, updated
        expected.status = pb.POST_STATUS_PUBLISHED
    else:  # a reschedule: PENDING when its new time passed on the way
        assert updated.status in (pb.POST_STATUS_SCHEDULED, pb.POST_STATUS_PENDING), updated
        expected.status = pb.POST_STATUS_PUBLISHED
    return expected


@pytest.mark.timeout(900)
def test_many_processes_survive_kills_and_restarts(topology):
    key, account, hook = topology["key"], topology["account"], topology["hook"]
    servers, workers = topology["servers"], topology["workers"]
    deadline = time.monotonic() + 240
    expectations: list[Expectation] = []
    lock = threading.Lock()
    failures: list[Exception] = []

    def client(index: int) -> None:
        rng = random.Random(index)
        channel = grpc.insecure_channel(servers[index % len(servers)].address)
        stub = posts_pb2_grpc.PostServiceStub(channel)
        try:
            for n in range(index, POSTS, CLIENTS):
                outcome = _drive(stub, key, account, n, rng, deadline)
                with lock:
                    expectations.append(outcome)
        except Exception as error:  # noqa: BLE001 (surfaced by the main thread)
            failures.append(error)
        finally:
            channel.close()

    # When clients drive posts through both servers ...
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    # ... while workers die, Redis loses its queues and PostgreSQL restarts
    incidents = [
        lambda: _restart_worker(workers[0]),
        lambda: topology["redis"].restart(),
        lambda: _restart_worker(workers[1]),
        lambda: topology["postgres"].restart(),
        lambda: _restart_worker(workers[2]),
    ]
    for done, incident in enumerate(incidents, start=1):
        target = done * POSTS // (len(incidents) + 1)
        wait_for(lambda t=target: len(expectations) >= t or failures, timeout=180)
        incident()
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 1))
    assert not failures, failures[0]
    assert len(expectations) == POSTS

    # Then every post settles where its last accepted request leads
    channel = grpc.insecure_channel(servers[0].address)
    stub = posts_pb2_grpc.PostServiceStub(channel)

    def final(expectation: Expectation):
        request = pb.GetPostStatusRequest(post_id=expectation.post_id)
        return _call(stub.GetPostStatus, request, key, deadline).post

    def settled() -> bool:
        return all(final(e).status == e.status for e in expectations)

    try:
        wait_for(settled, timeout=180, interval=1.0)
    except AssertionError:
        wrong = [
            (e.post_id, pb.PostStatus.Name(e.status), pb.PostStatus.Name(final(e).status))
            for e in expectations
            if final(e).status != e.status
        ]
        raise AssertionError(f"{len(wrong)} posts not where expected, e.g. {wrong[:5]}") from None
    finally:
        channel.close()

    # And the network holds each post that should be live exactly once, and nothing else
    with hook.lock:
        live = [entry["post_id"] for entry in hook.live]
        keys_seen: dict[str, set[str]] = {}
        for arrival in hook.arrivals:
            body = arrival.request.json or {}
            keys_seen.setdefault(body.get("post", {}).get("postId", ""), set()).add(arrival.key)
    should_be_live = {e.post_id for e in expectations if e.status == pb.POST_STATUS_PUBLISHED}
    assert sorted(live) == sorted(should_be_live)
    assert all(len(keys) == 1 for keys in keys_seen.values())
    never_sent = {e.post_id for e in expectations if e.status != pb.POST_STATUS_PUBLISHED}
    assert not never_sent & set(keys_seen)
    print(
        f"{len(should_be_live)} published, {len(never_sent)} not; "
        f"{len(hook.arrivals)} requests reached the network"
    )


def _restart_worker(worker: WorkerProcess) -> None:
    worker.kill()
    worker.start()
