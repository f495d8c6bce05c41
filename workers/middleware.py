"""Dramatiq middleware: one database connection per message, and a worker process's boot."""

from __future__ import annotations

import time

import dramatiq
from dramatiq.common import q_name

from service import db, metrics
from service.config import Config
from workers import boot, webhooks


class DatabaseConnection(dramatiq.Middleware):
    """Opens the database connection a message needs and closes it after.

    Worker threads live for the whole process: without this they would each
    hold a connection for ever.
    """

    def before_process_message(self, broker, message):
        db.database.connect(reuse_if_open=True)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if not db.database.is_closed():
            db.database.close()

    after_skip_message = after_process_message


class QueueLag(dramatiq.Middleware):
    """Measures how long each message waited in its queue (a metric)."""

    def before_process_message(self, broker, message):
        if metrics.enabled():
            waited = time.time() - message.message_timestamp / 1000
            metrics.queue_lag(q_name(message.queue_name), waited)


class WorkerBoot(dramatiq.Middleware):
    """Sets up a ``dramatiq`` worker process from the environment, and runs its
    dispatcher and sweeper, and the webhook dispatcher, beside the worker threads.

    The webhook queue gets worker threads of its own (workers.webhooks.worker,
    POSTS_WEBHOOK_THREADS), so a slow subscriber never holds a post's delivery:
    the process's main worker leaves that queue to them. A process started with
    ``--queues webhooks`` alone consumes it on its main threads.

    Only on a real broker: on the embedded default the server does all of it.
    """

    def __init__(self):
        self._scheduler = None
        self._dispatcher = None
        self._webhook_worker = None
        self._own_webhook_threads = False

    def before_worker_boot(self, broker, worker):
        if getattr(worker, "posts_webhooks", False):
            return
        queues = set(worker.consumer_whitelist or broker.get_declared_queues())
        others = {queue for queue in queues if q_name(queue) != webhooks.WEBHOOK_QUEUE}
        if others and others != queues:
            worker.consumer_whitelist = others
            self._own_webhook_threads = True

    def after_worker_boot(self, broker, worker):
        if getattr(worker, "posts_webhooks", False):
            return
        config = Config.from_env()
        self._scheduler = boot.boot(config, broker)
        self._scheduler.start()
        self._dispatcher = webhooks.boot(config)
        self._dispatcher.start()
        if self._own_webhook_threads:
            self._webhook_worker = webhooks.worker(broker, config)
            self._webhook_worker.start()

    def before_worker_shutdown(self, broker, worker):
        if getattr(worker, "posts_webhooks", False):
            return
        if self._dispatcher is not None:
            self._dispatcher.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._webhook_worker is not None:
            self._webhook_worker.stop(timeout=30_000)
