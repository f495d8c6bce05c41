"""Prometheus metrics, served on POSTS_METRICS_LISTEN (unset: off).

Every process records into prometheus-client's multiprocess files, so that one
endpoint adds up a whole group of processes:

- ``serve`` (one process, with or without the embedded worker) and ``serve
  --processes N`` (the parent serves the endpoint, its children record);
- ``python -m workers``: Dramatiq's own Prometheus middleware serves the
  endpoint from its exposition process (its ``dramatiq_*`` metrics), and ours
  are in the same files.

The process at the top of a group calls ``prepare`` (a fresh directory, named
in the environment its children inherit) before anything imports
prometheus_client, whose value class is chosen at import. Each recording
process calls ``start``; until then (or with metrics off) recording does nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds: RPCs and deliveries (a delivery waits on a network).
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
#: Writes that shared one commit (service.db.GroupCommit).
GROUP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
#: Seconds late: the dispatcher's interval and the queue's wait, up to an outage.
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

_metrics: dict[str, Any] | None = None


def prepare() -> str:
    """Makes this process group's metrics directory (once) and names it in the
    environment; its path. Removed when this process exits."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="posts-metrics-")
        os.environ[MULTIPROC_ENV] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def start() -> None:
    """Creates this process's metrics; recording works from here on."""
    global _metrics
    if _metrics is not None:
        return
    prepare()
    import prometheus_client as prom

    def counter(name: str, doc: str, *labels: str):
        return prom.Counter(name, doc, labels, registry=None)

    def histogram(name: str, doc: str, buckets, *labels: str):
        return prom.Histogram(name, doc, labels, buckets=buckets, registry=None)

    # Laid out by hand, as a table: one metric per entry.
    # fmt: off
    _metrics = {
        "rpcs": counter("posts_rpc_requests", "PostService calls by method and status code.",
                        "method", "code"),
        "rpc_seconds": histogram("posts_rpc_duration_seconds", "PostService call latency.",
                                 RPC_BUCKETS, "method"),
        "transitions": counter("posts_transitions", "Committed lifecycle events, by event and "
                               "the status after it.", "event", "status"),
        "deliveries": counter("posts_deliveries", "Delivery attempts ended, by network and "
                              "outcome.", "network", "outcome"),
        "delivery_seconds": histogram("posts_delivery_duration_seconds", "From a delivery's "
                                      "claim to its end, by network.", DELIVERY_BUCKETS,
                                      "network"),
        "lateness": histogram("posts_schedule_lateness_seconds", "From when a post was due "
                              "(its scheduled time, or when it was queued) to its claim.",
                              LATENESS_BUCKETS),
        "queue_lag": histogram("posts_queue_lag_seconds", "From a message's enqueue to a "
                               "worker taking it, by queue.", LATENESS_BUCKETS, "queue"),
        "takeovers": counter("posts_lease_takeovers", "Deliveries taken over after their "
                             "worker's lease expired."),
        "stale": counter("posts_stale_messages_dropped", "Delivery messages dropped: their job "
                         "token was no longer the post's."),
        "webhooks": counter("posts_event_webhook_deliveries", "Event webhook sends, by "
                            "outcome.", "outcome"),
        "group_commits": histogram("posts_group_commit_writes", "SQLite: how many writes "
                                   "each commit of the group commit carried.", GROUP_BUCKETS),
    }
    # fmt: on


def enabled() -> bool:
    return _metrics is not None


def expose(listen: str):
    """Serves the group's metrics on ``listen`` (host:port) from a thread; the server."""
    import prometheus_client as prom
    from prometheus_client import multiprocess

    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=prepare())
    host, port = address(listen)
    server, _ = prom.start_http_server(port, addr=host, registry=registry)
    return server


def address(listen: str) -> tuple[str, int]:
    """POSTS_METRICS_LISTEN's host (every interface when empty) and port."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


# -- recording (each a no-op while metrics are off) ------------------------------


def rpc(method: str, code: str, seconds: float) -> None:
    if _metrics is not None:
        _metrics["rpcs"].labels(method, code).inc()
        _metrics["rpc_seconds"].labels(method).observe(seconds)


def transition(event: str, status: str) -> None:
    if _metrics is not None:
        _metrics["transitions"].labels(event, status).inc()


def delivery(network: str, outcome: str, seconds: float | None) -> None:
    if _metrics is not None:
        _metrics["deliveries"].labels(network, outcome).inc()
        if seconds is not None:
            _metrics["delivery_seconds"].labels(network).observe(seconds)


def lateness(seconds: float) -> None:
    if _metrics is not None:
        _metrics["lateness"].observe(max(seconds, 0.0))


def queue_lag(queue: str, seconds: float) -> None:
    if _metrics is not None:
        _metrics["queue_lag"].labels(queue).observe(max(seconds, 0.0))


def takeover() -> None:
    if _metrics is not None:
        _metrics["takeovers"].inc()


def stale_message() -> None:
    if _metrics is not None:
        _metrics["stale"].inc()


def webhook_delivery(outcome: str) -> None:
    if _metrics is not None:
        _metrics["webhooks"].labels(outcome).inc()


def group_commit(writes: int) -> None:
    if _metrics is not None:
        _metrics["group_commits"].observe(writes)
