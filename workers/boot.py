"""The one boot sequence of every process that delivers: a ``dramatiq`` worker
process (``middleware.WorkerBoot``) and a server running its worker in process
(``inprocess.InProcessDelivery``)."""

from __future__ import annotations

import dramatiq

from service import admin, crypto, db, logs
from service.config import Config
from workers import actors, delivery, queue_depth, scheduler


def boot(config: Config, broker: dramatiq.Broker) -> scheduler.Scheduler:
    """Sets this process up to deliver from ``broker`` (database, keys, delivery
    settings, the actor's time limit); returns its dispatcher and sweeper, not started.
    Raises ConfigError when the schema is behind or the secret key is not the database's."""
    logs.quiet()
    db.init(config)
    crypto.configure(config)
    admin.check_database(config)
    delivery.configure(config)
    actors.configure(config, broker)
    # The in-memory queue is lost only with the process, and the server recovers
    # that when it starts: only a real broker's queue needs watching.
    depth = None if config.embedded else queue_depth.probe(broker, actors.DELIVERY_QUEUE)
    return scheduler.Scheduler(
        actors.enqueue_all,
        config.dispatch_interval,
        requeue_after=config.requeue_after,
        sweep_every=config.sweep_interval,
        queue_depth=depth,
        event_retention=config.event_retention_days * 86400,
    )
