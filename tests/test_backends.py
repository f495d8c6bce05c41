"""The real servers the backend fixtures start (``tests.backends``), tested directly.

They also document what each one keeps across a restart: PostgreSQL keeps its
data; Redis (no persistence) loses every queued message, which is why the
sweeper re-enqueues PENDING posts whose message went missing; RabbitMQ keeps
its durable queues.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

QUEUE = "backends-probe"


def _declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="probe")
    def probe(n: int) -> None:  # never run: the tests only count queued messages
        raise AssertionError(n)

    return probe


def test_postgres_restart_keeps_committed_data(postgres_server):
    postgres_server.create_database("backends_restart")
    postgres_server.execute("CREATE TABLE kept (n INTEGER)", "backends_restart")
    postgres_server.execute("INSERT INTO kept VALUES (1), (2)", "backends_restart")

    postgres_server.restart()

    assert postgres_server.execute("SELECT n FROM kept ORDER BY n", "backends_restart") == [
        (1,),
        (2,),
    ]


def test_redis_restart_loses_queued_messages(redis_server):
    redis_server.flush()
    broker = RedisBroker(url=redis_server.url)
    try:
        probe = _declare(broker)
        for n in range(3):
            probe.send(n)
        assert broker.client.llen(f"dramatiq:{QUEUE}") == 3

        redis_server.restart()

        # Nothing persists: the sweeper is what re-sends a PENDING post's message.
        assert broker.client.llen(f"dramatiq:{QUEUE}") == 0
    finally:
        broker.close()
        broker.client.connection_pool.disconnect()


def test_rabbitmq_takes_messages_and_purges_them(rabbit_server):
    broker = RabbitmqBroker(url=rabbit_server.url)
    try:
        probe = _declare(broker)
        for n in range(3):
            probe.send(n)
    finally:
        broker.close()

    assert rabbit_server.message_count(QUEUE) == 3
    assert rabbit_server.purge(QUEUE, "no-such-queue") == 3
    assert rabbit_server.message_count(QUEUE) == 0


def test_the_server_fixture_delivers_through_its_backend(server, api, tenant, ledger):
    from service import db

    # isort: split
    from posts.v1 import posts_pb2

    broker = {
        "sqlite": "StubBroker",
        "postgres-redis": "RedisBroker",
        "postgres-rabbitmq": "RabbitmqBroker",
    }[server.backend]
    assert broker in [kind.__name__ for kind in type(dramatiq.get_broker()).__mro__]
    assert db.is_sqlite() == (server.backend == "sqlite")
    post = api.create(tenant, text="through the broker", status=posts_pb2.STATUS_CHANGE_PUBLISH)
    api.wait_published(tenant, post.post_id)
    assert len(ledger.sends(post_id=post.post_id)) == 1
