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


def make_broker(url: str, worker_process: bool) -> dramatiq.Broker:
    """A broker for ``url`` (redis://, amqp://, or '' for in-memory).

    Dramatiq's Retries middleware is left out: it re-sends the same message,
    while delivery keeps its retries in the database. ``worker_process``: this
    is a ``dramatiq workers`` process, which sets itself up when it boots.
    """
    middleware = [m() for m in default_middleware if m is not Retries]
    middleware.append(DatabaseConnection())
    if worker_process:
        middleware.append(WorkerBoot())
    if not url:
        return StubBroker(middleware=middleware)
    if url.startswith("redis://"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=middleware)


def current() -> dramatiq.Broker:
    """The broker actors send to and workers consume from."""
    return dramatiq.get_broker()


def use(url: str) -> dramatiq.Broker:
    """Points this process (a server) at the broker for ``url`` and moves the
    declared actors over to it; a no-op when it already uses that broker."""
    global _server_url
    if url == _server_url:
        return current()
    old = current()
    broker = make_broker(url, worker_process=False)
    for name in old.get_declared_actors():
        actor = old.get_actor(name)
        actor.broker = broker
        broker.declare_actor(actor)
    dramatiq.set_broker(broker)
    old.close()
    _server_url = url
    return broker


# At import, as ``dramatiq workers`` needs it: a worker process's broker. A
# server switches to its own with ``use``.
_server_url: str | None = None
_env_url = Config.from_env().broker_url
dramatiq.set_broker(make_broker(_env_url, worker_process=bool(_env_url)))
