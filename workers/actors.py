"""Dramatiq actors. Messages carry ids only: ``(post_id, token)``.

The actor is declared on a broker given to ``declare`` (``workers.broker`` does
it when it sets one up), never at import: declared without one, Dramatiq would
make a RabbitMQ broker of its own for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import dramatiq
from dramatiq.middleware import TimeLimit

from service.config import Config
from workers import delivery, sending, webhooks

DELIVERY_QUEUE = "deliveries"

_actor: dramatiq.Actor | None = None


def deliver_post(post_id: str, token: str) -> None:
    """Delivers ``post_id`` if ``token`` is still its job token (else drops the message)."""
    delivery.deliver(post_id, token)


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    """Declares ``deliver_post`` on ``broker``, which ``enqueue`` sends to from now
    on, and the webhooks' ``send_webhook`` (workers.webhooks) beside it."""
    global _actor
    webhooks.declare(broker)
    _actor = dramatiq.actor(
        broker=broker,
        queue_name=DELIVERY_QUEUE,
        actor_name="deliver_post",
        time_limit=15 * 60_000,
    )(deliver_post)
    return _actor


def _declared() -> dramatiq.Actor:
    if _actor is None:
        raise RuntimeError("no broker yet: call workers.broker.setup() or use() first")
    return _actor


def configure(config: Config, broker: dramatiq.Broker) -> None:
    """Sets the delivery time limit, and makes sure something enforces it.

    Dramatiq starts its time-limit watcher when a ``dramatiq`` process boots; a
    worker running inside the server never boots that way, so it is started
    here (once per broker). A delivery past the limit is interrupted with a
    BaseException that delivery records as a crash.
    """
    _declared().options["time_limit"] = int(config.delivery_time_limit * 1000)
    for middleware in broker.middleware:
        if not isinstance(middleware, TimeLimit):
            continue
        manager = middleware.manager  # a thread, unless under gevent (not used here)
        if isinstance(manager, threading.Thread) and manager.ident is None:
            manager.start()


def enqueue(post_id: str, token: str) -> None:
    """Sends the delivery message of a committed job."""
    _declared().send(post_id, token)


def enqueue_all(jobs: Iterable[tuple[str, str]]) -> None:
    """Sends the delivery messages of committed ``(post_id, token)`` jobs, in one
    batch; raises the first failure, after which some may not have been sent
    (their posts stay PENDING: the sweeper sends them again)."""
    sending.send_all(_declared(), jobs)
