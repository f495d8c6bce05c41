"""The Dramatiq baselines: a bare no-op actor on the service's kind of broker.

One process holds the sender, the broker and a ``dramatiq.Worker`` with the
given thread count: on the embedded default an in-memory StubBroker (as the
service's server does), with ``--broker-url redis://…`` a RedisBroker on a
queue of its own. Dramatiq's default middleware, nothing of the service's.

``throughput``: sends ``--count`` messages ``(post_id, token)`` as fast as it
can while the worker runs; reports messages run per second, from the first
send to the last run.

``schedule``: the scheduling benchmark's schedule (``--count`` due times spread
over ``--window`` seconds, ``--lead`` seconds from now), sent by a poll loop
every ``--interval`` seconds like the service's dispatcher; reports how late
each message ran after its due time.

Prints one JSON line.

    python -m tests.benchmarks.dramatiq_baseline throughput --count 2000 --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker

from tests.benchmarks.common import peak_rss_kib, summary

POST_ID = "pst_01KB0000000000000000000000"
TOKEN = "0123456789abcdef"


def make_broker(url: str):
    if not url:
        return StubBroker()
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url)


def throughput(args) -> dict:
    broker = make_broker(args.broker_url)
    dramatiq.set_broker(broker)
    queue = f"bench-noop-{os.getpid()}"
    lock = threading.Lock()
    state = {"ran": 0, "last": 0.0}
    done = threading.Event()

    def noop(post_id: str, token: str) -> None:
        with lock:
            state["ran"] += 1
            if state["ran"] >= args.count:
                state["last"] = time.perf_counter()
                done.set()

    actor = dramatiq.actor(noop, broker=broker, queue_name=queue, actor_name=queue)
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=100)
    worker.start()
    try:
        first = time.perf_counter()
        for _ in range(args.count):
            actor.send(POST_ID, TOKEN)
        sent = time.perf_counter()
        finished = done.wait(args.timeout)
    finally:
        worker.stop()
        if args.broker_url:
            broker.flush(queue)
        broker.close()
    seconds = (state["last"] if finished else time.perf_counter()) - first
    return {
        "count": args.count,
        "ran": state["ran"],
        "seconds": seconds,
        "send_seconds": sent - first,
        "rate": state["ran"] / seconds if seconds else 0.0,
        "peak_rss_kib": peak_rss_kib(os.getpid()),
    }


def schedule(args) -> dict:
    broker = make_broker(args.broker_url)
    dramatiq.set_broker(broker)
    queue = f"bench-noop-{os.getpid()}"
    lock = threading.Lock()
    lateness: list[float] = []
    done = threading.Event()
    start = time.time() + args.lead
    due = [start + args.window * (i + 0.5) / args.count for i in range(args.count)]

    def noop(due_at: float) -> None:
        late = time.time() - due_at
        with lock:
            lateness.append(late)
            if len(lateness) >= args.count:
                done.set()

    actor = dramatiq.actor(noop, broker=broker, queue_name=queue, actor_name=queue)
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=100)
    worker.start()
    stop = threading.Event()

    def poll() -> None:
        sent = 0
        while not stop.is_set() and sent < len(due):
            now = time.time()
            while sent < len(due) and due[sent] <= now:
                actor.send(due[sent])
                sent += 1
            stop.wait(args.interval)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        done.wait(args.lead + args.window + args.timeout)
    finally:
        stop.set()
        poller.join(5)
        worker.stop()
        if args.broker_url:
            broker.flush(queue)
        broker.close()
    return {
        "count": args.count,
        "ran": len(lateness),
        "lateness": summary(lateness),
        "peak_rss_kib": peak_rss_kib(os.getpid()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["throughput", "schedule"])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--broker-url", default="")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--lead", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)
    result = throughput(args) if args.mode == "throughput" else schedule(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
