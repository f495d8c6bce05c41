"""The Dramatiq broker, set up explicitly: importing a module builds none.

A ``dramatiq`` worker process calls ``setup`` (``dramatiq workers.broker:setup``,
which ``python -m workers`` runs); a server calls ``use``. Both declare the
actors on the broker they set. No POSTS_BROKER_URL means the embedded default:
an in-memory broker whose worker runs inside the server process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import dramatiq
import dramatiq.errors
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis
from dramatiq.middleware import Retries, default_middleware

from service import admin, crypto, db, logs, metrics
from service.config import Config
from workers import actors
from workers.middleware import DatabaseConnection, QueueLag, WorkerBoot

log = logging.getLogger(__name__)


def make_broker(url: str, worker_process: bool) -> dramatiq.Broker:
    """A broker for ``url`` (redis://, amqp://, or '' for in-memory).

    Dramatiq's Retries middleware is left out: it re-sends the same message,
    while delivery keeps its retries in the database. ``worker_process``: this
    is a ``dramatiq`` worker process, which sets itself up when it boots.
    """
    middleware = [m() for m in default_middleware if m is not Retries]
    middleware += [DatabaseConnection(), QueueLag()]
    if worker_process:
        middleware.append(WorkerBoot())
        # Dramatiq's own (lower-case) name, set from POSTS_METRICS_LISTEN (see workers.__main__).
        if os.environ.get("dramatiq_prom_db"):  # noqa: SIM112
            from dramatiq.middleware.prometheus import Prometheus

            middleware.append(Prometheus())
            metrics.start()
    if not url:
        return _InMemoryBroker(middleware=middleware)
    if url.startswith("redis://"):
        import redis.exceptions
        from dramatiq.brokers.redis import RedisBroker

        # Redis's client errors reach an enqueue unwrapped.
        logs.expect_outages(dramatiq.errors.BrokerConnectionError, redis.exceptions.ConnectionError)
        return _logged(RedisBroker, _Pipelined)(url=url, middleware=middleware)
    import pika.exceptions
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    logs.expect_outages(dramatiq.errors.BrokerConnectionError, pika.exceptions.AMQPConnectionError)
    return _logged(RabbitmqBroker, _Batched)(url=url, middleware=middleware)


def check(config: Config) -> None:
    """What a worker process needs before it starts, or a ConfigError saying what
    is missing: a broker (without one the server delivers, and nothing would
    ever reach this worker), the current schema and the database's secret key."""
    config.require_broker("python -m workers")
    db.init(config)
    crypto.configure(config)
    admin.check_database(config)


def setup() -> dramatiq.Broker:
    """Sets this ``dramatiq`` worker process's broker, for POSTS_BROKER_URL: what
    ``dramatiq workers.broker:setup`` calls before it starts the worker."""
    config = Config.from_env()
    logs.use_format(config.log_format)  # Dramatiq has set this process's logging up
    config.require_broker("dramatiq workers.broker:setup")
    return _set(make_broker(config.broker_url, worker_process=True))


@functools.cache
def _logged(broker_class: type[dramatiq.Broker], batch: type) -> Callable[..., dramatiq.Broker]:
    """``broker_class`` sending batches with ``batch`` (a mixin of this module),
    and logging when this process's consumers reach the broker, lose it and
    reach it again (Dramatiq's consumers reconnect by themselves, and say only
    that they failed)."""
    return type(f"Logged{broker_class.__name__}", (_ConnectionLog, batch, broker_class), {})


# For the type checker the mixins are brokers; at run time their bases come from _logged.
if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker as _RedisBase

    _Broker = dramatiq.Broker
else:
    _Broker = _RedisBase = object


class _Batched(_Broker):
    """A broker mixin: ``enqueue_all``, every broker's batch send (workers.actors.Batching).

    Here a loop of ``enqueue``, the cheapest on the in-memory broker and on
    RabbitMQ: its publishes go out on the thread's one channel without waiting
    for an answer (Dramatiq leaves publisher confirms off), and each keeps
    Dramatiq's reconnect-and-retry.
    """

    def enqueue_all(self, messages: Sequence[dramatiq.Message]) -> None:
        """Sends each of ``messages`` as ``enqueue`` does (its middleware hooks
        too). The first failure is raised, and the messages after it are not
        sent: a committed job whose message is missing stays PENDING, and the
        sweeper sends it again (workers.scheduler)."""
        for message in messages:
            self.enqueue(message)


class _InMemoryBroker(_Batched, StubBroker):
    """Dramatiq's in-memory broker, with ``enqueue_all``."""


class _Pipelined(_RedisBase):
    """A RedisBroker mixin: ``enqueue_all`` in one pipeline, one round trip.

    Each message goes through the same Lua script, with the same arguments, as
    ``RedisBroker.enqueue`` (and ``_dispatch``) give it in the pinned Dramatiq,
    and the middleware sees each one as there: ``before_enqueue`` before the
    pipeline is sent, ``after_enqueue`` once Redis has stored it.
    """

    def enqueue_all(self, messages: Sequence[dramatiq.Message]) -> None:
        """Sends ``messages`` together. If Redis refuses some, those get no
        ``after_enqueue`` and the first refusal is raised; if the connection
        fails, none do and its error is raised: either way the jobs of the
        messages Redis did not store stay PENDING for the sweeper."""
        from redis.exceptions import NoScriptError

        ready = []
        for message in messages:
            # Each copy its own id in Redis, as RedisBroker.enqueue gives it.
            message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
            self.logger.debug(
                "Enqueueing message %r on queue %r.", message.message_id, message.queue_name
            )
            self.emit_before("enqueue", message, None)
            ready.append(message)
        refused = self._send_pipeline(ready)
        unknown_script = [message for message, error in refused if isinstance(error, NoScriptError)]
        if unknown_script:
            # Redis lost its scripts (a restart): none of these ran. Load it, send them again.
            self.client.script_load(self.scripts["dispatch"].script)
            refused = [
                (message, error)
                for message, error in refused
                if not isinstance(error, NoScriptError)
            ] + self._send_pipeline(unknown_script)
        not_stored = {id(message) for message, _ in refused}
        for message in ready:
            if id(message) not in not_stored:
                self.emit_after("enqueue", message, None)
        if refused:
            raise refused[0][1]

    def _send_pipeline(
        self, messages: list[dramatiq.Message]
    ) -> list[tuple[dramatiq.Message, Exception]]:
        """One round trip for ``messages``; those Redis refused, with its error."""
        if not messages:
            return []
        script = self.scripts["dispatch"]
        now = current_millis()
        unpack_size = self._max_unpack_size()
        with self.client.pipeline(transaction=False) as pipeline:
            for message in messages:
                pipeline.evalsha(
                    script.sha,
                    1,
                    self.namespace,
                    "enqueue",
                    now,
                    message.queue_name,
                    self.broker_id,
                    self.heartbeat_timeout,
                    self.dead_message_ttl,
                    self._should_do_maintenance("enqueue"),
                    unpack_size,
                    message.options["redis_message_id"],
                    message.encode(),
                )
            answers = pipeline.execute(raise_on_error=False)
        return [
            (message, answer)
            for message, answer in zip(messages, answers, strict=True)
            if isinstance(answer, Exception)
        ]


class _ConnectionLog(_Broker):
    """A broker mixin: one line when this process first fetches from or sends
    to the broker, one when it loses it, one when it reaches it again; never one
    per consumer thread or per retry."""

    def __init__(self, *args, url: str, **kwargs):
        # The next class is RedisBroker or RabbitmqBroker, which take a url.
        super().__init__(*args, url=url, **kwargs)  # type: ignore[call-arg]
        self._where = logs.redact(url)
        self._link_lock = threading.Lock()
        self._connected = False
        self._lost_at: float | None = None
        #: How many times the broker was lost: a consumer made before the last
        #: loss proves nothing by returning (it may answer from what it prefetched).
        self._losses = 0
        #: Whether this process consumes: then only a consumer's fetch tells the
        #: broker is back (a send may go out on a pooled connection of a broker
        #: still shutting down); a server, which only sends, has its sends.
        self._consuming = False

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000):
        self._consuming = True
        losses = self._losses
        try:
            consumer = super().consume(queue_name, prefetch=prefetch, timeout=timeout)
        except dramatiq.errors.BrokerConnectionError as error:
            self._lost(error)
            raise
        return _WatchedConsumer(consumer, self, losses)

    def enqueue(self, message, *, delay=None):
        with self._sending():
            return super().enqueue(message, delay=delay)

    def enqueue_all(self, messages: Sequence[dramatiq.Message]) -> None:
        if not messages:
            return
        with self._sending():
            super().enqueue_all(messages)  # type: ignore[misc]  # _Batched or _Pipelined's

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if logs.outage(error) is not None:
                self._lost(error)
            raise
        if not self._consuming:
            self._reached()

    def _lost(self, error: BaseException) -> None:
        with self._link_lock:
            if self._lost_at is not None:
                return
            self._lost_at = time.monotonic()
            self._losses += 1
            was = "lost the broker" if self._connected else "cannot reach the broker"
        log.warning(
            "%s %s (%s); its consumers retry every few seconds",
            was,
            self._where,
            logs.describe(logs.outage(error) or error),
        )

    def _reached(self, losses: int | None = None) -> None:
        """The broker answered (``losses``: a consumer's, made after that many losses)."""
        if self._connected and self._lost_at is None:
            return
        with self._link_lock:
            if self._connected and self._lost_at is None:
                return
            if losses is not None and losses != self._losses:
                return
            lost_at, self._lost_at = self._lost_at, None
            again, self._connected = self._connected, True
        if again and lost_at is not None:  # again: it was lost, so lost_at is set
            log.info(
                "reconnected to the broker %s after %.1f s", self._where, time.monotonic() - lost_at
            )
        else:
            log.info("connected to the broker %s", self._where)


class _WatchedConsumer(dramatiq.Consumer):
    """A consumer that tells its broker's ``_ConnectionLog`` how each fetch went."""

    def __init__(self, consumer: dramatiq.Consumer, link: _ConnectionLog, losses: int):
        self._consumer = consumer
        self._link = link
        self._losses = losses

    def __next__(self):
        try:
            message = next(self._consumer)
        except dramatiq.errors.BrokerConnectionError as error:
            self._link._lost(error)
            raise
        self._link._reached(self._losses)
        return message

    def ack(self, message) -> None:
        self._consumer.ack(message)

    def nack(self, message) -> None:
        self._consumer.nack(message)

    def requeue(self, messages) -> None:
        self._consumer.requeue(messages)

    def close(self) -> None:
        self._consumer.close()

    def __getattr__(self, name: str):
        return getattr(self._consumer, name)


def use(url: str) -> dramatiq.Broker:
    """Points this process (a server) at the broker for ``url``, and closes the
    one it used before; a no-op when it already uses that broker."""
    global _server_url
    if url == _server_url and _current is not None:
        return _current
    old = _current
    broker = _set(make_broker(url, worker_process=False))
    _server_url = url
    if old is not None:
        old.close()
    return broker


def _set(broker: dramatiq.Broker) -> dramatiq.Broker:
    global _current
    actors.declare(broker)
    dramatiq.set_broker(broker)
    _current = broker
    return broker


#: The broker ``setup`` or ``use`` set (None before either), and the URL ``use`` was given.
_current: dramatiq.Broker | None = None
_server_url: str | None = None
