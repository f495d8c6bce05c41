"""Dramatiq actors. Messages carry ids only: ``(post_id, token)``."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import TimeLimit

import workers.broker  # noqa: F401  (sets the broker before any actor is declared)
from service.config import Config
from workers import delivery

DELIVERY_QUEUE = "deliveries"


@dramatiq.actor(queue_name=DELIVERY_QUEUE, actor_name="deliver_post", time_limit=15 * 60_000)
def deliver_post(post_id: str, token: str) -> None:
    """Delivers ``post_id`` if ``token`` is still its job token (else drops the message)."""
    delivery.deliver(post_id, token)


def configure(config: Config, broker: dramatiq.Broker) -> None:
    """Sets the delivery time limit, and makes sure something enforces it.

    Dramatiq starts its time-limit watcher when a ``dramatiq`` process boots; a
    worker running inside the server never boots that way, so it is started
    here (once per broker). A delivery past the limit is interrupted with a
    BaseException that delivery records as a crash.
    """
    deliver_post.options["time_limit"] = int(config.delivery_time_limit * 1000)
    for middleware in broker.middleware:
        if isinstance(middleware, TimeLimit) and middleware.manager.ident is None:
            middleware.manager.start()


def enqueue(post_id: str, token: str) -> None:
    """Sends the delivery message of a committed job."""
    deliver_post.send(post_id, token)
