"""Event webhooks: subscriptions and the outbox their deliveries are sent from."""

from __future__ import annotations

from service.models import PostEvent


def write_outbox(event: PostEvent) -> None:
    """Writes one outbox row per subscription of the event's workspace that
    wants it, in the event's transaction."""

