"""The Dramatiq broker, set up explicitly: importing a module builds none.

A ``dramatiq`` worker process calls ``setup`` (``dramatiq workers.broker:setup``,
which ``python -m workers`` runs); a server calls ``use``. Both declare the
actors on the broker they set. No POSTS_BROKER_URL means the embedded default:
an in-memory broker whose worker runs inside the server process.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, default_middleware

from service import metrics
from service.config import Config
from workers import actors
from workers.middleware import DatabaseConnection, QueueLag, WorkerBoot


def make_broker(url: str, worker_process: bool) -> dramatiq.Broker:
    """A broker for ``url`` (redis://, amqp://, or '' for in-memory).

    Dramatiq's Retries middleware is left out: it re-sends the same message,
    while delivery keeps its retries in the database. ``worker_process``: this
    is a ``dramatiq`` worker process, which sets itself up when it boots.
    """
    middleware = [m() for m in default_middleware if m is not Retries]
    middleware += [DatabaseConnection(), QueueLag()]
    if worker_process:
        middleware.append(WorkerBoot())
        if os.environ.get("dramatiq_prom_db"):  # POSTS_METRICS_LISTEN (see workers.__main__)
            from dramatiq.middleware.prometheus import Prometheus

            middleware.append(Prometheus())
            metrics.start()
    if not url:
        return StubBroker(middleware=middleware)
    if url.startswith("redis://"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=middleware)


def setup() -> dramatiq.Broker:
    """Sets this ``dramatiq`` worker process's broker, for POSTS_BROKER_URL: what
    ``dramatiq workers.broker:setup`` calls before it starts the worker."""
    url = Config.from_env().broker_url
    # Booting a worker process sets it up; on the embedded default the server does it.
    return _set(make_broker(url, worker_process=bool(url)))


def use(url: str) -> dramatiq.Broker:
    """Points this process (a server) at the broker for ``url``, and closes the
    one it used before; a no-op when it already uses that broker."""
    global _server_url
    if url == _server_url:
        return _current
    old = _current
    broker = _set(make_broker(url, worker_process=False))
    _server_url = url
    if old is not None:
        old.close()
    return broker


def _set(broker: dramatiq.Broker) -> dramatiq.Broker:
    global _current
    actors.declare(broker)
    dramatiq.set_broker(broker)
    _current = broker
    return broker


#: The broker ``setup`` or ``use`` set (None before either), and the URL ``use`` was given.
_current: dramatiq.Broker | None = None
_server_url: str | None = None
