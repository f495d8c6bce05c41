"""A server process's delivery side, wired in this one place.

``wire(config)`` points the process at the configured broker and returns what
``service.server.create_server`` takes: the enqueue callable and, when the
worker runs in the server, an ``InProcessDelivery``. ``python -m service`` and
the tests' server fixture use it, so that ``service/`` never imports ``workers/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pathlib
import threading
from collections.abc import Callable

import dramatiq

from service import db, logs
from service import webhooks as service_webhooks
from service.config import Config, ConfigError
from workers import actors, boot, scheduler, webhooks
from workers import broker as workers_broker

log = logging.getLogger(__name__)


class InProcessDelivery:
    """A Dramatiq worker, dispatcher and sweeper inside the server process.

    Always on the embedded default (in-memory broker); on a real broker when
    POSTS_INPROCESS_WORKER is set.
    """

    def __init__(self, config: Config, broker: dramatiq.Broker):
        self._embedded = config.embedded
        self._broker = broker
        self._delivering = True  # until stopped, or the database lock is lost
        self._running = False
        self._turn = threading.Lock()  # start, stop and a lost lock, one at a time
        # The embedded worker takes every PROCESSING post for its own at start:
        # a second one on the same database would take the first one's too.
        self._lock = DatabaseLock.take(config, on_lost=self._lost) if config.embedded else None
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
        with self._turn:
            if self._delivering:
                self._start()
                self._running = True

    def _start(self) -> None:
        if self._embedded:
            # The in-memory broker lost every message when the last process stopped.
            leases_may_live = self._lock is not None and not self._lock.ends_with_process
            actors.enqueue_all(scheduler.recover_after_restart(db.utcnow(), leases_may_live))
            with db.connection():
                service_webhooks.release_all(db.utcnow())
        self._worker.start()
        self._webhook_worker.start()
        self._scheduler.start()
        self._webhooks.start()

    def stop(self) -> None:
        self._stop_delivering()
        if self._embedded:
            self._broker.flush_all()
        if self._lock is not None:
            self._lock.release()

    def _stop_delivering(self) -> bool:
        """Stops the worker, the dispatchers and the sweeper (their current jobs
        end first); whether it was this call that stopped delivery."""
        with self._turn:
            was, self._delivering = self._delivering, False
            if self._running:
                self._running = False
                self._webhooks.stop()
                self._scheduler.stop()
                self._webhook_worker.stop()
                self._worker.stop()
        return was

    def _lost(self) -> None:
        """Another server took the database (DatabaseLock): it delivers from now on."""
        if self._stop_delivering():
            log.error(
                "delivery stopped in this server: another one delivers from its database now;"
                " restart this one once the other has stopped"
            )


class DatabaseLock:
    """The embedded worker's exclusive hold on its database, released by ``release``
    or by the process's death, however it dies.

    On SQLite an flock on ``<database>.lock`` beside the file, which names the
    holder's pid; on PostgreSQL (without a broker) a session advisory lock, on a
    connection of its own held open while the server runs.

    A session lock ends with its connection (a database restart, a dropped
    link), and another server could then take the database. So on PostgreSQL
    a thread checks the connection every ``CHECK_EVERY`` seconds (``check``):
    when it is gone, it takes the lock again on a new one; if another server
    holds it by then, ``on_lost`` is called, once, and this one must stop
    delivering.
    """

    #: The advisory lock's key on PostgreSQL (``migrations`` takes 4242).
    ADVISORY_KEY = 4243
    #: Seconds between two checks of the PostgreSQL lock's connection.
    CHECK_EVERY = 2.0
    #: Whether the lock is held until its process ends (an flock), so that holding
    #: it proves no earlier holder still runs.
    ends_with_process = True

    def __init__(self, release: Callable[[], None]):
        self._release: Callable[[], None] | None = release

    @classmethod
    def take(
        cls,
        config: Config,
        on_lost: Callable[[], None] | None = None,
        check_every: float | None = CHECK_EVERY,
    ) -> DatabaseLock:
        """The lock on ``config``'s database; ConfigError when another process holds
        it. ``on_lost`` and ``check_every`` (None: no thread, ``check`` by hand):
        see the class."""
        path = db.sqlite_path(config.database_url)
        if path is None:
            return AdvisoryLock(config.database_url, on_lost, check_every)
        return cls._file(path)

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

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class AdvisoryLock(DatabaseLock):
    """PostgreSQL's session advisory lock, kept while its connection lives."""

    ends_with_process = False

    def __init__(
        self, url: str, on_lost: Callable[[], None] | None, check_every: float | None
    ) -> None:
        super().__init__(self._close)
        self._url = url
        self._on_lost = on_lost
        self._guard = threading.Lock()  # one check at a time, and none after release
        self._stopped = threading.Event()
        self._connection = self._connect(refuse=True)
        if check_every is not None:
            threading.Thread(
                target=self._watch, args=(check_every,), name="database-lock", daemon=True
            ).start()

    def _connect(self, refuse: bool):
        """A new connection holding the lock; None when another holds it (or a
        ConfigError with ``refuse``)."""
        import psycopg

        # A bounded wait: a check that hangs would hold up the server's stop.
        connection = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=5,
            # A link gone silent fails a check within seconds, not the kernel's minutes.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=10_000,
        )
        try:
            [(held,)] = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (self.ADVISORY_KEY,)
            ).fetchall()
        except BaseException:
            connection.close()
            raise
        if held:
            return connection
        connection.close()
        if not refuse:
            return None
        raise ConfigError(
            f"{logs.redact(self._url)} is in use by another server with its worker inside (no"
            " POSTS_BROKER_URL): one such server per database; stop that one, or set"
            " POSTS_BROKER_URL and run workers for several"
        )

    def check(self) -> bool:
        """Whether the lock is held, taken again on a new connection if the old
        one is gone; calls ``on_lost`` (once) when another server took it."""
        import psycopg

        with self._guard:
            if self._connection is None:
                return False
            try:
                self._connection.execute("SELECT 1")
                return True
            except psycopg.Error:
                pass
            with contextlib.suppress(Exception):
                self._connection.close()
            try:
                connection = self._connect(refuse=False)
            except psycopg.Error as error:
                # Out of reach from here: tried again at the next check. Another
                # server cannot take the lock meanwhile, unless the database
                # refuses only new connections from this one.
                log.warning("database lock: its connection is gone, not yet back: %s", error)
                return True
            if connection is not None:
                self._connection = connection
                log.warning("database lock: its connection was lost; held again")
                return True
            self._connection = None
        log.error("database lock: its connection was lost and another server took the database")
        if self._on_lost is not None:
            self._on_lost()
        return False

    def _watch(self, every: float) -> None:
        while not self._stopped.wait(every):
            try:
                if not self.check():
                    return
            except Exception:
                log.exception("database lock: the check failed; trying again")

    def _close(self) -> None:
        self._stopped.set()
        with self._guard:
            connection, self._connection = self._connection, None
        if connection is not None:
            # Unlocked before closing: the session's own end frees it only once its
            # backend has gone, a moment after the close returns.
            with contextlib.suppress(Exception):
                connection.execute("SELECT pg_advisory_unlock(%s)", (self.ADVISORY_KEY,))
            connection.close()


def wire(config: Config) -> tuple[Callable[[str, str], None], InProcessDelivery | None]:
    """Points this server process at ``config``'s broker; returns the enqueue
    callable and, when the worker runs in this process, its InProcessDelivery."""
    broker = workers_broker.use(config.broker_url)
    in_process = config.embedded or config.inprocess_worker
    return actors.enqueue, InProcessDelivery(config, broker) if in_process else None
