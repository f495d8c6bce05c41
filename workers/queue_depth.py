"""How many delivery messages wait in the broker's queue, for the sweeper.

A message a worker has fetched is no longer counted (Redis keeps it in the
worker's ``__acks__`` set, RabbitMQ as unacknowledged), so an empty queue means
every message still out is in a worker's hands or lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq

log = logging.getLogger(__name__)

Probe = Callable[[], "int | None"]


def queue_depth(broker: dramatiq.Broker, queue_name: str) -> int | None:
    """Messages waiting in ``queue_name`` (not yet fetched by any worker); None
    when it cannot tell (broker unreachable, or a kind it does not know). Never raises."""
    count = _counter(broker)
    if count is None:
        return None
    # One retry: the first call after a broker restart fails on the connection
    # it kept from before, the second makes a new one.
    for attempt in (1, 2):
        try:
            return int(count(broker, queue_name))
        except Exception as error:  # noqa: BLE001  (unreachable or half-up: cannot tell)
            _reset(broker)
            if attempt == 2:
                log.info("queue depth of %s unknown: %r", queue_name, error)
    return None


def probe(broker: dramatiq.Broker, queue_name: str) -> Probe:
    """``queue_depth`` of ``queue_name`` on ``broker``, as a call without arguments."""
    return lambda: queue_depth(broker, queue_name)


def _redis(broker, queue_name: str) -> int:
    # RedisBroker's dispatch script keeps the waiting message ids in the list
    # ``<namespace>:<queue>``; "fetch" pops them into the worker's acks set.
    return broker.client.llen(f"{broker.namespace}:{queue_name}")


def _rabbitmq(broker, queue_name: str) -> int:
    # The ready messages only (not those delivered and unacknowledged). The
    # declare re-creates the queue if the node came back without it.
    ready, _delayed, _dead = broker.get_queue_message_counts(queue_name)
    return ready


def _stub(broker, queue_name: str) -> int:
    return broker.queues[queue_name].qsize()


# By class name, so that neither client library is imported for the other broker.
_COUNTERS = {"RedisBroker": _redis, "RabbitmqBroker": _rabbitmq, "StubBroker": _stub}


def _counter(broker) -> Callable | None:
    for cls in type(broker).__mro__:
        if cls.__name__ in _COUNTERS:
            return _COUNTERS[cls.__name__]
    return None


def _reset(broker) -> None:
    """Drops this thread's RabbitMQ connection so the next call makes a new one
    (redis-py replaces a broken connection by itself)."""
    if _counter(broker) is _rabbitmq:
        try:
            del broker.connection
        except Exception:  # closing a dead connection
            log.debug("closing the broker connection failed", exc_info=True)
