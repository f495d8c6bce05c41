"""The Dramatiq broker, configured from the environment before any actor is declared.

Import this module first (``workers.actors`` does): Dramatiq otherwise makes a
RabbitMQ broker of its own the moment an actor is declared. No
POSTS_BROKER_URL means the embedded default: an in-memory broker whose worker
runs inside the server process.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, default_middleware

from service.config import Config
from workers.middleware import DatabaseConnection, WorkerBoot


def make_broker(url: str) -> dramatiq.Broker:
    """A broker for ``url`` (redis://, amqp://, or '' for in-memory).

    Dramatiq's Retries middleware is left out: it re-sends the same message,
    while delivery keeps its retries in the database.
    """
    middleware = [m() for m in default_middleware if m is not Retries]
    middleware.append(DatabaseConnection())
    if not url:
        return StubBroker(middleware=middleware)
    middleware.append(WorkerBoot())
    if url.startswith("redis://"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=middleware)


broker = make_broker(Config.from_env().broker_url)
dramatiq.set_broker(broker)
