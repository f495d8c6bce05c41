"""Holds ``--count`` idle WatchPostEvents streams open on a server, in a process
of its own (grpc.aio, one thread), until SIGTERM.

Each stream replays its workspace from the start (``after_event_id`` 0): a
workspace with one event makes each stream receive exactly one, which proves
the server registered it. Prints ``{"ready": N}`` once every stream has had
its event, then stays idle.

    python -m tests.benchmarks.watchers --address 127.0.0.1:50051 --key KEY --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import grpc

import service  # noqa: F401  (puts generated/ on the import path)

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc


async def hold(address: str, key: str, count: int, channels: int) -> None:
    opened = [grpc.aio.insecure_channel(address) for _ in range(channels)]
    metadata = (("authorization", f"Bearer {key}"),)
    first = asyncio.Semaphore(0)
    failures: list[BaseException] = []

    async def watch(n: int) -> None:
        stub = posts_pb2_grpc.PostServiceStub(opened[n % channels])
        call = stub.WatchPostEvents(pb.WatchPostEventsRequest(after_event_id=0), metadata=metadata)
        try:
            async for _ in call:
                first.release()
        except grpc.aio.AioRpcError as error:
            failures.append(error)
            first.release()

    tasks = [asyncio.ensure_future(watch(n)) for n in range(count)]
    for _ in range(count):
        await first.acquire()
    print(json.dumps({"ready": count - len(failures), "failures": len(failures)}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in opened:
        await channel.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=10)
    args = parser.parse_args(argv)
    asyncio.run(hold(args.address, args.key, args.count, args.channels))


if __name__ == "__main__":
    main()
