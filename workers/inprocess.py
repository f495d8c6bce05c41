"""A server process's delivery side, wired in this one place.

``wire(config)`` points the process at the configured broker and returns what
``service.server.create_server`` takes: the enqueue callable and, when the
worker runs in the server, an ``InProcessDelivery``. ``python -m service`` and
the tests' server fixture use it, so that ``service/`` never imports ``workers/``.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from service import db
from service import webhooks as service_webhooks
from service.config import Config
from workers import actors, boot, scheduler, webhooks
from workers import broker as workers_broker


class InProcessDelivery:
    """A Dramatiq worker, dispatcher and sweeper inside the server process.

    Always on the embedded default (in-memory broker); on a real broker when
    POSTS_INPROCESS_WORKER is set.
    """

    def __init__(self, config: Config, broker: dramatiq.Broker):
        self._embedded = config.embedded
        self._broker = broker
        self._scheduler = boot.boot(config, broker)
        self._webhooks = webhooks.boot(config)
        self._worker = dramatiq.Worker(
            broker, queues={actors.DELIVERY_QUEUE}, worker_threads=config.worker_threads,
            worker_timeout=100,
        )  # fmt: skip
        # Webhooks on threads of their own: a slow subscriber never holds a post.
        self._webhook_worker = webhooks.worker(broker, config)

    def start(self) -> None:
        if self._embedded:
            # The in-memory broker lost every message when the last process stopped.
            for post_id, token in scheduler.recover_after_restart(db.utcnow()):
                actors.enqueue(post_id, token)
            with db.connection():
                service_webhooks.release_all(db.utcnow())
        self._worker.start()
        self._webhook_worker.start()
        self._scheduler.start()
        self._webhooks.start()

    def stop(self) -> None:
        self._webhooks.stop()
        self._scheduler.stop()
        self._webhook_worker.stop()
        self._worker.stop()
        if self._embedded:
            self._broker.flush_all()


def wire(config: Config) -> tuple[Callable[[str, str], None], InProcessDelivery | None]:
    """Points this server process at ``config``'s broker; returns the enqueue
    callable and, when the worker runs in this process, its InProcessDelivery."""
    broker = workers_broker.use(config.broker_url)
    in_process = config.embedded or config.inprocess_worker
    return actors.enqueue, InProcessDelivery(config, broker) if in_process else None
