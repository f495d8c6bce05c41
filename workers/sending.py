"""Sending several messages of one actor at once, after the commit that made them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, cast

import dramatiq


class Batching(Protocol):
    """A broker that sends several messages at once: every broker
    ``workers.broker.make_broker`` makes (over Redis, in one round trip).
    Without a delay: a delayed message goes through ``enqueue``."""

    def enqueue_all(self, messages: Sequence[dramatiq.Message]) -> None: ...


def send_all(actor: dramatiq.Actor, calls: Iterable[tuple]) -> None:
    """Sends ``actor`` one message per tuple of arguments in ``calls``, in one
    batch: the messages ``actor.send`` would send, each through the broker's
    middleware. Raises the first failure, after which some may not have been sent."""
    messages = [actor.message(*args) for args in calls]
    if messages:
        cast(Batching, actor.broker).enqueue_all(messages)
