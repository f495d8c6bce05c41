"""Dramatiq middleware: one database connection per message, and a worker process's boot."""

from __future__ import annotations

import dramatiq

from service import db
from service.config import Config
from workers import boot


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


class WorkerBoot(dramatiq.Middleware):
    """Sets up a ``dramatiq`` worker process from the environment, and runs its
    dispatcher and sweeper beside the worker threads.

    Only on a real broker: on the embedded default the server does all of it.
    """

    def __init__(self):
        self._scheduler = None

    def after_worker_boot(self, broker, worker):
        self._scheduler = boot.boot(Config.from_env(), broker)
        self._scheduler.start()

    def before_worker_shutdown(self, broker, worker):
        if self._scheduler is not None:
            self._scheduler.stop()
