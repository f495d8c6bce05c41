"""Dramatiq actors. Messages carry ids only: ``(post_id, token)``."""

from __future__ import annotations

import dramatiq

import workers.broker  # noqa: F401  (sets the broker before any actor is declared)
from workers import delivery

DELIVERY_QUEUE = "deliveries"


@dramatiq.actor(queue_name=DELIVERY_QUEUE, actor_name="deliver_post", time_limit=15 * 60_000)
def deliver_post(post_id: str, token: str) -> None:
    """Delivers ``post_id`` if ``token`` is still its job token (else drops the message)."""
    delivery.deliver(post_id, token)


def enqueue(post_id: str, token: str) -> None:
    """Sends the delivery message of a committed job."""
    deliver_post.send(post_id, token)
