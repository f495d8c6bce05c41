"""Sending event webhooks: the outbox's dispatcher and the ``send_webhook`` actor.

The dispatcher (a thread beside the post dispatcher, in every process that
delivers) claims the due outbox rows (service.webhooks.claim_due: only the
oldest row of each subscription and post, so a post's events reach a
subscriber in order; a new token and a lease each) and sends one message per
row, ``(delivery_id, token)``, to the ``webhooks`` queue. The actor starts the
send only while that token still holds the row, signs the body with the
subscription's secret, POSTs it through the egress guard within
POSTS_WEBHOOK_TIMEOUT, and records the result (service.webhooks.record): a 2xx
delivers the row; anything else retries it after a backoff, until the retry
window has passed since its first try, which disables the subscription.

A sender killed mid-send leaves its row claimed: the lease expires, the
dispatcher claims it again and it is sent again (at least once: receivers
dedupe by event id). The queue has worker threads of its own (``worker``), so
a slow subscriber never holds a post's delivery.

Each request::

    POST <url>
    Content-Type: application/json
    X-Posts-Event-Id: <event id>
    X-Posts-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

    {"id": "<event id>", "type": "post.published", "createTime": "<RFC 3339>",
     "data": {"event": <the posts.v1.PostEvent as proto JSON>}}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from http import HTTPStatus

import dramatiq
import httpx
from google.protobuf import json_format

from service import db, events, metrics, webhooks
from service.config import Config
from workers import sending
from workers.adapters import http
from workers.adapters.base import DeliveryError

log = logging.getLogger(__name__)

WEBHOOK_QUEUE = "webhooks"
SIGNATURE_HEADER = "X-Posts-Signature"
EVENT_ID_HEADER = "X-Posts-Event-Id"
BATCH = 500

_policy = webhooks.Policy()
_timeout = Config.webhook_timeout
_actor: dramatiq.Actor | None = None


def configure(config: Config) -> None:
    """Sets the lease, backoff, retry window and request deadline sends use."""
    global _policy, _timeout
    _policy = webhooks.Policy(
        config.lease_seconds, config.webhook_retry_base, config.webhook_retry_window
    )
    # A send must end well within the lease its start took, or another sender
    # could claim the row while it is still out.
    _timeout = min(config.webhook_timeout, config.lease_seconds / 2)


def policy() -> webhooks.Policy:
    return _policy


# ---------------------------------------------------------------- the request


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def encode_body(event) -> bytes:
    """The exact bytes POSTed (and signed) for a posts.v1.PostEvent."""
    payload = {
        "id": str(event.event_id),
        "type": events.WEBHOOK_NAMES.get(event.type, "post.unknown"),
        "createTime": event.create_time.ToJsonString(),
        "data": {"event": json_format.MessageToDict(event)},
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 256


def _client(url: str) -> httpx.Client:
    """One client per subscriber URL, kept (a new one costs an SSL context)."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            if len(_clients) >= _MAX_CLIENTS:
                for old in _clients.values():
                    old.close()
                _clients.clear()
            client = _clients[url] = http.client(url)
        return client


def post(url: str, secret: str, body: bytes, event_id: int, now: float) -> str | None:
    """POSTs one signed body; None when a 2xx answered, else a short summary of
    what went wrong (never the answer's body)."""
    headers = {
        "content-type": "application/json",
        EVENT_ID_HEADER: str(event_id),
        SIGNATURE_HEADER: f"t={int(now)},v1={sign(secret, int(now), body)}",
    }
    try:
        # The absolute URL, not a path under a base: httpx would add a trailing slash.
        response = http.answer(
            _client(url), "POST", url, within=_timeout, content=body, headers=headers
        )
    except DeliveryError as exc:  # refused by the egress guard, no connection, no answer
        return f"{exc.code}: {exc.message}"
    if response.is_success:
        return None
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {response.status_code} {phrase}".strip()


# ---------------------------------------------------------------- the actor


def send(delivery_id: int, token: str) -> None:
    """Sends outbox row ``delivery_id`` if ``token`` still holds it; records the result."""
    with db.connection():
        job = webhooks.start(delivery_id, token, db.utcnow(), _policy)
    if job is None:
        log.info("dropped webhook message %s: token %s no longer holds it", delivery_id, token)
        return
    try:
        error = post(job.url, job.secret, encode_body(job.event), job.event.event_id, time.time())
    except Exception as exc:  # a bug: counted as a failed try, retried like one
        log.exception("webhook send %s failed unexpectedly", delivery_id)
        error = f"internal error ({type(exc).__name__})"
    with db.connection():
        if not webhooks.record(delivery_id, token, error, db.utcnow(), _policy):
            log.warning("webhook row %s was taken over while sending", delivery_id)
    metrics.webhook_delivery("delivered" if error is None else "failed")


def send_webhook(delivery_id: int, token: str) -> None:
    send(delivery_id, token)


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    """Declares ``send_webhook`` on ``broker`` (its own queue, WEBHOOK_QUEUE)."""
    global _actor
    _actor = dramatiq.actor(
        broker=broker,
        queue_name=WEBHOOK_QUEUE,
        actor_name="send_webhook",
        time_limit=120_000,
    )(send_webhook)
    return _actor


def enqueue_all(jobs: list[tuple[int, str]]) -> None:
    """Sends the messages of claimed ``(delivery_id, token)`` outbox rows, in one batch."""
    if _actor is None:
        raise RuntimeError("no broker yet: call workers.broker.setup() or use() first")
    sending.send_all(_actor, jobs)


def worker(broker: dramatiq.Broker, config: Config) -> dramatiq.Worker:
    """A Dramatiq worker consuming the webhook queue alone, on threads of its own."""
    # Each Worker adds its own _WorkerMiddleware when it starts (it consumes the
    # queues declared later, its own only), and the broker warns at the second:
    # expected here, so that one warning is kept out of this broker's log.
    if not any(isinstance(f, _SecondWorkerMiddleware) for f in broker.logger.filters):
        broker.logger.addFilter(_SecondWorkerMiddleware())
    made = dramatiq.Worker(
        broker, queues={WEBHOOK_QUEUE}, worker_threads=config.webhook_threads, worker_timeout=100
    )
    # A mark of ours on Dramatiq's Worker: workers.middleware.WorkerBoot leaves it alone.
    made.posts_webhooks = True  # type: ignore[attr-defined]
    return made


class _SecondWorkerMiddleware(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "_WorkerMiddleware" not in record.getMessage()


# ---------------------------------------------------------------- the dispatcher


class Dispatcher:
    """Claims due outbox rows every ``interval`` seconds and enqueues them, in a thread."""

    def __init__(self, interval: float):
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self, now=None) -> int:
        """One round; how many messages it sent."""
        # PostgreSQL: a body needs its event's public id, given out after commit.
        events.sequence(wait=False)
        with db.connection():
            jobs = webhooks.claim_due(now or db.utcnow(), _policy, BATCH)
        try:
            enqueue_all(jobs)
        except Exception:  # the broker is down: the lease expires, it is claimed again
            log.exception("enqueue of %d webhook rows failed", len(jobs))
        return len(jobs)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.tick()
            except db.UNAVAILABLE:
                log.warning("database unavailable; the webhook dispatcher retries")
                sent = 0
            except Exception:
                log.exception("webhook dispatcher round failed")
                sent = 0
            if sent < BATCH:
                self._stop.wait(self._interval)


def boot(config: Config) -> Dispatcher:
    """Sets this process up to send webhooks (after workers.boot.boot, which
    opens the database and the keyring); its dispatcher, not started."""
    configure(config)
    return Dispatcher(config.dispatch_interval)
