"""A server process's delivery side, wired in this one place.

``wire(config)`` points the process at the configured broker and returns what
``service.server.create_server`` takes: the enqueue callable and, when the
worker runs in the server, an ``InProcessDelivery``. ``python -m service`` and
the tests' server fixture use it, so that ``service/`` never imports ``workers/``.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
from collections.abc import Callable

import dramatiq

from service import db, logs
from service import webhooks as service_webhooks
from service.config import Config, ConfigError
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
        # The embedded worker takes every PROCESSING post for its own at start:
        # a second one on the same database would take the first one's too.
        self._lock = DatabaseLock.take(config) if config.embedded else None
        try:
            self._setup(config, broker)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _setup(self, config: Config, broker: dramatiq.Broker) -> None:
        self._scheduler = boot.boot(config, broker)
        self._webhooks = webhooks.boot(config)
        self._worker = dramatiq.Worker(
            broker,
            queues={actors.DELIVERY_QUEUE},
            worker_threads=config.worker_threads,
            worker_timeout=100,
        )
        # Webhooks on threads of their own: a slow subscriber never holds a post.
        self._webhook_worker = webhooks.worker(broker, config)

    def start(self) -> None:
        if self._embedded:
            # The in-memory broker lost every message when the last process stopped.
            actors.enqueue_all(scheduler.recover_after_restart(db.utcnow()))
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
        if self._lock is not None:
            self._lock.release()


class DatabaseLock:
    """The embedded worker's exclusive hold on its database, released by ``release``
    or by the process's death, however it dies.

    On SQLite an flock on ``<database>.lock`` beside the file, which names the
    holder's pid; on PostgreSQL (without a broker) a session advisory lock, on a
    connection of its own held open while the server runs.
    """

    #: The advisory lock's key on PostgreSQL (``migrations`` takes 4242).
    ADVISORY_KEY = 4243

    def __init__(self, release: Callable[[], None]):
        self._release: Callable[[], None] | None = release

    @classmethod
    def take(cls, config: Config) -> DatabaseLock:
        """The lock on ``config``'s database; ConfigError when another process holds it."""
        path = db.sqlite_path(config.database_url)
        return cls._advisory(config.database_url) if path is None else cls._file(path)

    @classmethod
    def _file(cls, database: pathlib.Path) -> DatabaseLock:
        database.parent.mkdir(parents=True, exist_ok=True)
        path = f"{database}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{database} is in use by another server (pid {holder}, holding {path}): the"
                " embedded default runs one server per database; stop that one, or use"
                " PostgreSQL and POSTS_BROKER_URL for several"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        return cls(release)

    @classmethod
    def _advisory(cls, url: str) -> DatabaseLock:
        import psycopg

        connection = psycopg.connect(url, autocommit=True)
        try:
            [(held,)] = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (cls.ADVISORY_KEY,)
            ).fetchall()
        except BaseException:
            connection.close()
            raise
        if not held:
            connection.close()
            raise ConfigError(
                f"{logs.redact(url)} is in use by another server with its worker inside (no"
                " POSTS_BROKER_URL): one such server per database; stop that one, or set"
                " POSTS_BROKER_URL and run workers for several"
            )
        return cls(connection.close)

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


def wire(config: Config) -> tuple[Callable[[str, str], None], InProcessDelivery | None]:
    """Points this server process at ``config``'s broker; returns the enqueue
    callable and, when the worker runs in this process, its InProcessDelivery."""
    broker = workers_broker.use(config.broker_url)
    in_process = config.embedded or config.inprocess_worker
    return actors.enqueue, InProcessDelivery(config, broker) if in_process else None
