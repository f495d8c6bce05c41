"""A closed-loop gRPC load generator, run in a process of its own (grpc.aio).

``--concurrency`` callers each send one request, wait for its answer and send
the next, for ``--warmup`` + ``--duration`` seconds (only calls that start after
the warm-up and end before the deadline are counted), or until ``--count``
calls have been made. Prints one JSON line: calls, errors, QPS, latency
percentiles (seconds), the answer size, and how busy the generator itself was
(``client_cpu``: CPU seconds per wall second; near 1.0 means the generator,
not the server, is the limit).

``--channels K`` spreads the callers over K channels, each its own TCP
connection (caller i on channel i mod K): the server processes of ``serve
--processes`` share one port, and the kernel hands each connection, not each
call, to one of them.

    python -m tests.benchmarks.loadgen --address 127.0.0.1:50051 --key KEY \
        --workspace wks_… --account acc_… --rpc GetPostStatus --posts ids.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import resource
import sys
import time

import grpc
from google.protobuf import timestamp_pb2

import service  # noqa: F401  (puts generated/ on the import path)
from tests.benchmarks.common import TEXT, peak_rss_kib, percentile

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

STATUS = {
    "scheduled": pb.STATUS_CHANGE_SCHEDULED,
    "publish": pb.STATUS_CHANGE_PUBLISH,
    "draft": pb.STATUS_CHANGE_DRAFT,
}
POST_TYPE = {"tweet": pb.POST_TYPE_TWEET, "post": pb.POST_TYPE_POST}


def _stamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


class Requests:
    """Builds caller ``i``'s ``k``-th request for one RPC."""

    def __init__(self, args, post_ids: list[str]):
        self.args = args
        self.ids = post_ids
        self.later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        self.conc = args.concurrency

    def GetPostStatus(self, i: int, k: int):
        post_id = self.ids[(i + k * self.conc) % len(self.ids)]
        return pb.GetPostStatusRequest(workspace_id=self.args.workspace, post_id=post_id)

    def UpdatePost(self, i: int, k: int):
        # Caller i owns posts i, i+conc, …: a reschedule of a scheduled post, never
        # racing another caller for the same row.
        own = self.ids[i :: self.conc] or self.ids
        post_id = own[k % len(own)]
        when = self.later + dt.timedelta(seconds=(k % 3600) + 1, milliseconds=i)
        return pb.UpdatePostRequest(
            workspace_id=self.args.workspace, post_id=post_id, scheduled_at=_stamp(when)
        )

    def CreatePost(self, i: int, k: int):
        request = pb.CreatePostRequest(
            workspace_id=self.args.workspace,
            account_id=self.args.account,
            post_type=POST_TYPE[self.args.post_type],
            text=TEXT,
            status=STATUS[self.args.status],
        )
        if self.args.status == "scheduled":
            request.scheduled_at.CopyFrom(_stamp(self.later))
        return request

    def ListPosts(self, i: int, k: int):
        return pb.ListPostsRequest(workspace_id=self.args.workspace, page_size=50)


async def run(args, post_ids: list[str]) -> dict:
    requests = Requests(args, post_ids)
    make = getattr(requests, args.rpc)
    metadata = (("authorization", f"Bearer {args.key}"),)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sizes: list[int] = []
    issued = 0
    # A local subchannel pool each: channels to one address would share a connection.
    options = [("grpc.use_local_subchannel_pool", 1)] if args.channels > 1 else []
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(args.address, options))
            for _ in range(max(1, args.channels))
        ]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        methods = [getattr(posts_pb2_grpc.PostServiceStub(c), args.rpc) for c in channels]
        start = time.perf_counter()
        measure_from = start + args.warmup
        end = measure_from + args.duration

        async def caller(i: int) -> None:
            nonlocal issued
            method = methods[i % len(methods)]
            k = 0
            while True:
                if args.count:
                    if issued >= args.count:
                        return
                    issued += 1
                elif time.perf_counter() >= end:
                    return
                request = make(i, k)
                k += 1
                t0 = time.perf_counter()
                try:
                    answer = await method(request, metadata=metadata, timeout=60)
                except grpc.aio.AioRpcError as error:
                    name = f"{error.code().name}: {(error.details() or '')[:80]}"
                    errors[name] = errors.get(name, 0) + 1
                    continue
                t1 = time.perf_counter()
                if args.count or (t0 >= measure_from and t1 <= end):
                    latencies.append(t1 - t0)
                if len(sizes) < 8:
                    sizes.append(answer.ByteSize())

        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(args.concurrency)))
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    seconds = wall if args.count else args.duration
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "rpc": args.rpc,
        "concurrency": args.concurrency,
        "channels": max(1, args.channels),
        "calls": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": seconds,
        "qps": len(latencies) / seconds if seconds else 0.0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "mean": sum(latencies) / len(latencies) if latencies else float("nan"),
        "answer_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
        "client_cpu": cpu / wall if wall else 0.0,
        "client_peak_rss_kib": peak_rss_kib(__import__("os").getpid()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--workspace", default="")
    parser.add_argument("--account", default="")
    parser.add_argument(
        "--rpc", required=True, choices=["GetPostStatus", "UpdatePost", "CreatePost", "ListPosts"]
    )
    parser.add_argument("--posts", help="a JSON file: the post ids to read or reschedule")
    parser.add_argument("--status", default="scheduled", choices=sorted(STATUS))
    parser.add_argument("--post-type", default="tweet", choices=sorted(POST_TYPE))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--channels", type=int, default=1, help="connections to spread the callers over"
    )
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=0, help="make this many calls, then stop")
    args = parser.parse_args(argv)
    if args.count:
        args.warmup = 0.0
    post_ids = []
    if args.posts:
        with open(args.posts) as ids:
            post_ids = json.load(ids)
    result = asyncio.run(run(args, post_ids))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
