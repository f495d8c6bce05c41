"""Event webhooks sent by ``python -m workers`` processes on PostgreSQL: a worker
SIGKILLed mid-send loses no event, and several worker processes (Redis, then
RabbitMQ) never send one event twice.

A module of its own, with no ``server`` fixture: no in-process worker of another
module's server may consume these processes' queues.
"""

from __future__ import annotations

import collections

import grpc
import pytest

from tests.fakes.events import FakeSubscriber
from tests.processes import (
    FAKES_EGRESS_ALLOW,
    ServerProcess,
    WorkerProcess,
    provision_tenant,
)
from tests.support import Api, Tenant, call, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

ENV = {
    "POSTS_LEASE_SECONDS": "6",  # a killed sender's row is claimed again within seconds
    "POSTS_WEBHOOK_RETRY_BASE": "0.05",
    "POSTS_DISPATCH_INTERVAL": "0.05",
    "POSTS_SECRET_KEY": "webhook-secret-key-0123456789abcdef-012345",
    "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
}


def subscribe(api: Api, tenant: Tenant, fake: FakeSubscriber, name: str) -> None:
    request = pb.CreateWebhookSubscriptionRequest(
        workspace_id=tenant.workspace_id, url=fake.url(name)
    )
    fake.secrets[name] = call(api.stub.CreateWebhookSubscription, request, tenant.key).secret


def expected_events(api: Api, tenant: Tenant, post_ids) -> dict[str, list[str]]:
    """Each post's event ids, in order, once every post is PUBLISHED."""
    found = {}
    for post_id in post_ids:
        api.wait_published(tenant, post_id, timeout=90)
        request = pb.ListPostEventsRequest(
            workspace_id=tenant.workspace_id, post_id=post_id, page_size=1000
        )
        found[post_id] = [
            str(e.event_id) for e in call(api.stub.ListPostEvents, request, tenant.key).events
        ]
    return found


def wait_all(fake: FakeSubscriber, expected: dict[str, list[str]], timeout: float) -> None:
    wanted = {event_id for ids in expected.values() for event_id in ids}
    wait_for(
        lambda: wanted <= {e["id"] for e in fake.received()},
        timeout=timeout,
        interval=0.1,
        message="every event at the subscriber",
    )


def first_order(fake: FakeSubscriber, post_id: str) -> list[str]:
    """The post's event ids in the order they first arrived."""
    return list(dict.fromkeys(e["id"] for e in fake.received(post_id=post_id)))


@pytest.fixture
def subscriber():
    fake = FakeSubscriber().start()
    yield fake
    fake.release()
    fake.stop()


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_send_loses_no_event(
    tmp_path, postgres_server, redis_server, subscriber
):
    env = {
        **ENV,
        "POSTS_DATABASE_URL": postgres_server.create_database("webhook_kill"),
        "POSTS_BROKER_URL": redis_server.url_for(2),
        "POSTS_VAR_DIR": str(tmp_path),
    }
    redis_server.flush()
    tenant = provision_tenant(env, "killed", migrate=True)
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = WorkerProcess(env, str(tmp_path / "workers.log"), processes=1, threads=4)
    try:
        server.start()
        server.wait_serving(timeout=60)
        workers.start()
        workers.wait_ready()
        with grpc.insecure_channel(server.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            subscribe(api, tenant, subscriber, "killed")
            # Given a send held in flight at the subscriber
            subscriber.hold(timeout=60)
            posts = [
                api.create(tenant, text=f"kill {n}", status=pb.STATUS_CHANGE_PUBLISH).post_id
                for n in range(3)
            ]
            wait_for(lambda: subscriber.in_flight >= 1, timeout=30, message="a send in flight")
            held = subscriber.in_flight

            # When the worker is SIGKILLed mid-send (what it had in flight never
            # arrives: only a send the worker saw answered counts), then started again
            workers.kill()
            subscriber.discarding = True
            subscriber.release()
            wait_for(lambda: subscriber.in_flight == 0, message="the held sends discarded")
            subscriber.discarding = False
            assert subscriber.received() == []
            workers.start()
            workers.wait_ready()

            # Then every event of every post arrives, in order per post
            expected = expected_events(api, tenant, posts)
            wait_all(subscriber, expected, timeout=90)
            for post_id in posts:
                assert first_order(subscriber, post_id) == expected[post_id]
            assert held >= 1 and subscriber.refused == []
    finally:
        subscriber.release()
        workers.stop()
        server.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_several_worker_processes_send_each_event_once(
    request, tmp_path, postgres_server, subscriber, broker
):
    if broker == "redis":
        redis = request.getfixturevalue("redis_server")
        redis.flush()
        broker_url = redis.url_for(3)
    else:
        rabbit = request.getfixturevalue("rabbit_server")
        broker_url = rabbit.add_vhost(f"webhooks-{tmp_path.name}")
    database = f"webhook_many_{broker}"
    env = {
        **ENV,
        "POSTS_DATABASE_URL": postgres_server.create_database(database),
        "POSTS_BROKER_URL": broker_url,
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_LEASE_SECONDS": "30",
    }
    tenant = provision_tenant(env, f"many-{broker}", migrate=True)
    subscriber.delay = 0.02  # each send takes a while: more chances to overlap
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = WorkerProcess(env, str(tmp_path / "workers.log"), processes=3, threads=4)
    try:
        server.start()
        server.wait_serving(timeout=60)
        workers.start()
        workers.wait_ready()
        with grpc.insecure_channel(server.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            subscribe(api, tenant, subscriber, "many")
            posts = [
                api.create(tenant, text=f"many {n}", status=pb.STATUS_CHANGE_PUBLISH).post_id
                for n in range(20)
            ]
            expected = expected_events(api, tenant, posts)
            wait_all(subscriber, expected, timeout=90)
            # Nothing is left to send: the counts below are final.
            wait_for(
                lambda: (
                    postgres_server.execute('SELECT count(*) FROM "webhook_delivery"', database)[0][
                        0
                    ]
                    == 0
                ),
                timeout=30,
                message="the outbox empty",
            )
        counts = collections.Counter(e["id"] for e in subscriber.received())
        assert set(counts.values()) == {1}, [i for i, n in counts.items() if n > 1]
        assert len(counts) == sum(len(ids) for ids in expected.values())
        for post_id in posts:
            assert first_order(subscriber, post_id) == expected[post_id]
    finally:
        workers.stop()
        server.stop()
