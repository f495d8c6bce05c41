"""Sending delivery messages: one ``enqueue`` each, or pipelined ``enqueue_all``.

A client as the server makes one (``workers.broker.make_broker``) sends
``--count`` delivery messages to a Redis started for the run (tests.backends,
no persistence), or to ``--broker-url``: one by one, in batches of the
scheduler's size (workers.scheduler.BATCH), and in one batch; the modes
alternate, ``--rounds`` times, the queue emptied after each. Printed: the best
and median seconds per mode, messages per second, and the speed-up over one
by one; and this process's CPU seconds per mode (less sensitive than the
wall clock to other load on the machine).

    python -m tests.benchmarks.broker_send [--count 10000] [--rounds 3] [--broker-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import dramatiq

from tests.backends import RedisServer
from tests.benchmarks.common import broker_settings, footer, header


def messages(count: int) -> list[dramatiq.Message]:
    from workers.actors import DELIVERY_QUEUE

    return [
        dramatiq.Message(
            queue_name=DELIVERY_QUEUE,
            actor_name="deliver_post",
            args=(f"pst_{n:020d}", "tok_0123456789abcdef"),
            kwargs={},
            options={},
        )
        for n in range(count)
    ]


def one_by_one(client, batch: list[dramatiq.Message]) -> None:
    for message in batch:
        client.enqueue(message)


def in_batches(size: int):
    def send(client, batch: list[dramatiq.Message]) -> None:
        for start in range(0, len(batch), size):
            client.enqueue_all(batch[start : start + size])

    return send


def run(url: str, count: int, rounds: int) -> None:
    from workers.actors import DELIVERY_QUEUE
    from workers.broker import make_broker
    from workers.scheduler import BATCH

    modes = {
        "one by one (enqueue)": one_by_one,
        f"pipelined, batches of {BATCH}": in_batches(BATCH),
        f"pipelined, one batch of {count:,}": in_batches(count),
    }
    client = make_broker(url, worker_process=False)
    client.declare_queue(DELIVERY_QUEUE)
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        client.enqueue_all(messages(10))  # loads the script; learns Lua's stack size
        client.flush(DELIVERY_QUEUE)
        for _ in range(rounds):
            for mode, send in modes.items():
                batch = messages(count)
                start, cpu_start = time.perf_counter(), time.process_time()
                send(client, batch)
                seconds[mode].append(time.perf_counter() - start)
                cpu[mode].append(time.process_time() - cpu_start)
                client.flush(DELIVERY_QUEUE)
    finally:
        client.close()
    base = min(seconds["one by one (enqueue)"])
    print(f"{count:,} delivery messages to {url.split('://')[0]}, {rounds} rounds alternating\n")
    print("| mode | best s | median s | messages/s (best) | × one by one | client CPU s (median) |")
    print("|---|---|---|---|---|---|")
    for mode, times in seconds.items():
        best = min(times)
        print(
            f"| {mode} | {best:.3f} | {statistics.median(times):.3f} | "
            f"{count / best:,.0f} | {base / best:.1f}× | {statistics.median(cpu[mode]):.3f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker-url", default="", help="else a Redis started for the run")
    args = parser.parse_args(argv)
    t0 = header("Sending delivery messages to Redis: one by one, or pipelined")
    with contextlib.ExitStack() as stack:
        url = args.broker_url or stack.enter_context(RedisServer()).url
        print(f"- broker: {broker_settings(url)}\n")
        run(url, args.count, args.rounds)
    footer(t0)


if __name__ == "__main__":
    main()
