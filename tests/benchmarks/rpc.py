"""Benchmark 1: RPC throughput and latency, next to a bare echo gRPC server.

The service (``python -m service serve`` on the embedded default, a fresh
SQLite file, the in-process worker idle) and the echo server
(tests.benchmarks.echo_server: same service, same thread pool, canned answers)
run as child processes; the closed-loop load generator (tests.benchmarks.loadgen)
runs in a third, with the same concurrency against both, one RPC at a time,
echo then service, back to back.

- GetPostStatus, cached answer: reads of a pool of ``--posts`` scheduled posts
  (made through CreatePost), fewer than the service's answer cache holds and
  unchanged while read: after the first read of each, every answer comes
  from the cache (service.servicer: an LRU of encoded answers per post
  version), the best case;
- GetPostStatus, answer not cached: the same load over ``--cold-posts``
  scheduled posts (by default twice the cache's size, read from
  service.servicer at run time; inserted through tests.benchmarks.seed), read
  in turn, so a post comes round again only after every other one: the LRU
  has dropped its answer by then, and each call reads and encodes the post;
- UpdatePost: a reschedule of a scheduled post (each caller its own posts);
- CreatePost: a scheduled tweet, a day ahead;
- both GetPostStatus rows again with ``--in-flight`` callers (32 by default),
  beside an echo run with as many: the same reads, more of them waiting on
  the server at once.

Then, with ``--watchers`` (1,000 by default) idle WatchPostEvents streams held
open on the service by another process (tests.benchmarks.watchers), the
cached GetPostStatus and UpdatePost runs again: unary throughput beside the
same rows without them, and the service's memory per open stream (its RSS
growth over the streams, divided by their number) and thread count.

Targets: GetPostStatus at least 0.8x echo under both load shapes, UpdatePost
at least 0.5x.

    python -m tests.benchmarks.rpc [--quick] [--concurrency 8] [--in-flight 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import re
import time

import grpc

from tests.benchmarks import profiling
from tests.benchmarks.common import (
    TEXT,
    Children,
    Scratch,
    against_target,
    cpu_seconds,
    describe_database,
    footer,
    header,
    mib,
    ms,
    note,
    peak_rss_kib,
    ratio,
    render,
    run_child,
    start_echo,
    start_server,
)
from tests.processes import status_field

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

#: Each run: its row's name, the RPC, and which pool of posts it uses.
RUNS = (
    ("GetPostStatus (cached answer)", "GetPostStatus", "posts"),
    ("GetPostStatus (answer not cached)", "GetPostStatus", "cold"),
    ("UpdatePost", "UpdatePost", "posts"),
    ("CreatePost", "CreatePost", "posts"),
)
#: The runs made again with ``--in-flight`` callers, their rows named with it.
IN_FLIGHT_RUNS = ("GetPostStatus (cached answer)", "GetPostStatus (answer not cached)")
TARGETS = {"GetPostStatus": 0.8, "UpdatePost": 0.5, "CreatePost": 0.5}
#: The rows run again with idle watchers open.
WATCHED_RUNS = ("GetPostStatus (cached answer)", "UpdatePost")


def hold_watchers(children: Children, scratch: Scratch, address: str, count: int):
    """``count`` idle streams on ``address`` from a child process, once each is
    registered (each replays its workspace's one event)."""
    from tests.processes import Process

    tenant = scratch.tenant("watched")
    with grpc.insecure_channel(address) as channel:
        request = pb.CreatePostRequest(
            workspace_id=tenant.workspace_id,
            account_id=tenant.account_id,
            text="the one event",
            post_type=pb.POST_TYPE_TWEET,
            status=pb.STATUS_CHANGE_DRAFT,
        )
        posts_pb2_grpc.PostServiceStub(channel).CreatePost(
            request, metadata=(("authorization", f"Bearer {tenant.key}"),), timeout=30
        )
    log_path = scratch.log("watchers")
    holder = children.add(
        Process(
            [
                "-m",
                "tests.benchmarks.watchers",
                "--address",
                address,
                "--key",
                tenant.key,
                "--count",
                str(count),
            ],
            scratch.env,
            log_path,
        )
    )
    holder.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log_path) as log:
            for line in log:
                if line.startswith('{"ready"'):
                    ready = json.loads(line)
                    if ready["failures"]:
                        raise RuntimeError(f"watchers: {ready}; see {log_path}")
                    return holder
        if holder.popen.poll() is not None:
            raise RuntimeError(f"watchers exited; see {log_path}")
        time.sleep(0.1)
    raise TimeoutError(f"{count} watchers not ready; see {log_path}")


def answer_cache_size() -> int:
    """How many encoded GetPostStatus answers the service keeps: the servicer's
    default, which the server uses (service.server builds it without one)."""
    from service.servicer import PostServicer

    return inspect.signature(PostServicer).parameters["cached_answers"].default


def seed_scheduled_posts(tenant, count: int) -> list[str]:
    """``count`` scheduled tweets a day ahead, inserted straight into the database
    (the rows CreatePost writes: tests.benchmarks.seed); their ids, in insertion order."""
    from tests.benchmarks import seed

    now = time.time()
    batch = seed.Batch(tenant.workspace_id, tenant.account_id, per_transaction=count + 1)
    ids = [
        batch.add("scheduled", seed.micros(now), scheduled_us=seed.micros(now + 86_400))
        for _ in range(count)
    ]
    batch.flush()
    return ids


def make_scheduled_posts(address: str, tenant, count: int) -> list[str]:
    """``count`` scheduled tweets a day ahead, made through CreatePost; their ids."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    metadata = (("authorization", f"Bearer {tenant.key}"),)
    ids = []
    with grpc.insecure_channel(address) as channel:
        stub = posts_pb2_grpc.PostServiceStub(channel)
        for _ in range(count):
            request = pb.CreatePostRequest(
                workspace_id=tenant.workspace_id,
                account_id=tenant.account_id,
                post_type=pb.POST_TYPE_TWEET,
                text=TEXT,
                status=pb.STATUS_CHANGE_SCHEDULED,
            )
            request.scheduled_at.FromDatetime(when)
            ids.append(stub.CreatePost(request, metadata=metadata, timeout=30).post.post_id)
    return ids


def profile_path(directory: str, name: str) -> str:
    """Where py-spy's stacks of the service during row ``name`` go."""
    return os.path.join(directory, f"rpc-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}.txt")


def run(args) -> dict:  # noqa: C901 - one benchmark, measured then reported, read top down
    t0 = header(
        f"1. RPC throughput and latency (closed loop, concurrency {args.concurrency}"
        + (f"; the reads also {args.in_flight} in flight" if args.in_flight else "")
        + ")"
    )
    scratch = Scratch("rpc").open()
    describe_database(scratch)
    tenant = scratch.tenant()
    cache = answer_cache_size()
    cold_posts = args.cold_posts or 2 * cache
    # A row is named for what its pool of posts makes of the cache (see the notes printed).
    renamed = {
        "posts": "GetPostStatus (answers partly cached)" if args.posts > cache else None,
        "cold": "GetPostStatus (answers may be cached)" if cold_posts - 1 <= cache else None,
    }
    named = [
        ((renamed[pool] if rpc == "GetPostStatus" else None) or name, rpc, pool)
        for name, rpc, pool in RUNS
    ]
    get_name = {pool: name for name, rpc, pool in named if rpc == "GetPostStatus"}
    # Each run: its row's name, the RPC, its pool of posts, and how many callers.
    runs = [(name, rpc, pool, args.concurrency) for name, rpc, pool in named]
    if args.in_flight:
        # Right after the same reads with --concurrency callers, before any write.
        last = max(i for i, (base, _, _) in enumerate(RUNS) if base in IN_FLIGHT_RUNS)
        runs[last + 1 : last + 1] = [
            (f"{name}, {args.in_flight} in flight", rpc, pool, args.in_flight)
            for (name, rpc, pool), (base, _, _) in zip(named, RUNS, strict=True)
            if base in IN_FLIGHT_RUNS
        ]
    results: dict[tuple[str, str], dict] = {}
    with Children() as children:
        server = start_server(children, scratch)
        echo = start_echo(children, scratch)
        note(f"rpc: service on {server.address}, echo on {echo.address}")
        pools = {
            "posts": make_scheduled_posts(server.address, tenant, args.posts),
            "cold": seed_scheduled_posts(tenant, cold_posts),
        }
        files = {}
        for pool, ids in pools.items():
            files[pool] = os.path.join(scratch.dir, f"{pool}.json")
            with open(files[pool], "w") as out:
                json.dump(ids, out)
        for name, rpc, pool, callers in runs:
            for target, process in (("echo", echo), ("service", server)):
                note(f"rpc: {name} against {target} for {args.warmup}+{args.duration} s")
                spy = None
                if args.profile and target == "service":
                    spy = profiling.record(
                        process.popen.pid,
                        args.warmup + args.duration,
                        profile_path(args.profile, name),
                    )
                cpu0, wall0 = cpu_seconds(process.popen.pid), time.monotonic()
                # Laid out by hand: flags beside their values.
                # fmt: off
                results[name, target] = run_child("tests.benchmarks.loadgen", [
                    "--address", process.address, "--key", tenant.key,
                    "--workspace", tenant.workspace_id, "--account", tenant.account_id,
                    "--rpc", rpc, "--posts", files[pool], "--concurrency", callers,
                    "--warmup", args.warmup, "--duration", args.duration,
                ])
                # fmt: on
                results[name, target]["server_cpu"] = (cpu_seconds(process.popen.pid) - cpu0) / (
                    time.monotonic() - wall0
                )
                if spy:
                    spy.wait(timeout=60)
        watched = {}
        if args.watchers:
            pid = server.popen.pid
            rss0, threads0 = status_field(pid, "VmRSS"), status_field(pid, "Threads")
            note(f"rpc: opening {args.watchers} idle WatchPostEvents streams")
            holder = hold_watchers(children, scratch, server.address, args.watchers)
            time.sleep(1)  # settle before reading the resident set
            rss1, threads1 = status_field(pid, "VmRSS"), status_field(pid, "Threads")
            watched["memory"] = (rss0, rss1, threads0, threads1)
            for name, rpc, pool, _ in runs:
                if name not in WATCHED_RUNS:
                    continue
                note(f"rpc: {name} against service with {args.watchers} watchers")
                # Laid out by hand: flags beside their values.
                # fmt: off
                watched[name] = run_child("tests.benchmarks.loadgen", [
                    "--address", server.address, "--key", tenant.key,
                    "--workspace", tenant.workspace_id, "--account", tenant.account_id,
                    "--rpc", rpc, "--posts", files[pool], "--concurrency", args.concurrency,
                    "--warmup", args.warmup, "--duration", args.duration,
                ])
                # fmt: on
            watched["threads_after"] = status_field(pid, "Threads")
            holder.stop(timeout=15)
        server_peak = peak_rss_kib(server.popen.pid)
        echo_peak = peak_rss_kib(echo.popen.pid)
    scratch.close(keep=args.keep)

    rows = []
    for name, rpc, _, _ in runs:
        s, e = results[name, "service"], results[name, "echo"]
        target = TARGETS.get(rpc)
        versus = (
            "-"
            if target is None
            else against_target(
                ratio(s["qps"], e["qps"]), f"≥ {target}×", s["qps"] >= target * e["qps"]
            )
        )
        rows.append(
            [
                name,
                f"{s['qps']:.0f}",
                f"{e['qps']:.0f}",
                ratio(s["qps"], e["qps"]),
                versus,
                ms(s["p50"]),
                ms(s["p99"]),
                ms(e["p50"]),
                ms(e["p99"]),
                f"{s['answer_bytes']}/{e['answer_bytes']}",
                f"{s['errors']}/{e['errors']}",
            ]
        )
    print()
    print(
        render(
            [
                "RPC",
                "service QPS",
                "echo QPS",
                "ratio",
                "target (service/echo)",
                "service p50 ms",
                "service p99 ms",
                "echo p50 ms",
                "echo p99 ms",
                "answer bytes svc/echo",
                "errors svc/echo",
            ],
            rows,
        )
    )
    print()

    def cpu(key: str) -> str:
        return ", ".join(
            f"{name} {results[name, 'service'][key]:.2f}/{results[name, 'echo'][key]:.2f}"
            for name, *_ in runs
        )

    cached = results[get_name["posts"], "service"]
    cold = results[get_name["cold"], "service"]
    print(
        f"- load generator: grpc.aio, {args.concurrency} callers"
        + (f" ({args.in_flight} on the rows that say so)" if args.in_flight else "")
        + f", {args.warmup} s warm-up + "
        f"{args.duration} s measured per run, in its own process; the echo run comes right "
        "before the service's for each row"
    )
    print(
        f"- {get_name['posts']}: {len(pools['posts'])} posts made through "
        f"CreatePost, each read about {cached['calls'] / len(pools['posts']):.0f} times in "
        f"the measured seconds; the service keeps {cache:,} encoded answers "
        "(an LRU per post version), so "
        + (
            "after each post's first read every answer is a cache hit: the best case"
            if len(pools["posts"]) <= cache
            else "WARNING: more posts than it keeps, not every answer is a cache hit"
        )
    )
    print(
        f"- {get_name['cold']}: {cold_posts:,} posts inserted through "
        f"tests.benchmarks.seed, read in turn ({cold['calls'] / cold_posts:.2f} reads per "
        f"post in the measured seconds): a post comes round again only after the "
        f"{cold_posts - 1:,} others, "
        + (
            "more than the " + f"{cache:,} answers the cache keeps, so each call misses the "
            "cache, reads the post from the database and encodes it (the database pages "
            "themselves stay in memory)"
            if cold_posts - 1 > cache
            else f"WARNING: not more than the {cache:,} answers the cache keeps, so answers "
            "may come from the cache"
        )
    )
    print(
        f"- CPU seconds per wall second, service/echo: server {cpu('server_cpu')}; "
        f"load generator {cpu('client_cpu')} (1.00 = one core busy)"
    )
    if args.profile:
        for name, *_ in runs:
            path = profile_path(args.profile, name)
            print(
                f"- py-spy, {name}, share of request-thread wall time: {profiling.describe(path)}"
            )
    errors = {k: v["error_kinds"] for k, v in results.items() if v["errors"]}
    if errors:
        print(f"- errors: {errors}")
    print(
        f"- peak RSS (VmHWM): service {mib(server_peak)} (with its idle embedded worker), "
        f"echo {mib(echo_peak)}, load generator "
        f"{mib(max(r['client_peak_rss_kib'] or 0 for r in results.values()))}"
    )
    if watched:
        rss0, rss1, threads0, threads1 = watched["memory"]
        print()
        print(
            render(
                [
                    "RPC",
                    "service QPS",
                    f"with {args.watchers:,} idle watchers",
                    "ratio",
                    "p50 ms without/with",
                    "p99 ms without/with",
                    "errors with",
                ],
                [
                    [
                        name,
                        f"{results[name, 'service']['qps']:.0f}",
                        f"{watched[name]['qps']:.0f}",
                        ratio(watched[name]["qps"], results[name, "service"]["qps"]),
                        f"{ms(results[name, 'service']['p50'])}/{ms(watched[name]['p50'])}",
                        f"{ms(results[name, 'service']['p99'])}/{ms(watched[name]['p99'])}",
                        str(watched[name]["errors"]),
                    ]
                    for name in WATCHED_RUNS
                    if name in watched
                ],
            )
        )
        print()
        print(
            f"- {args.watchers:,} idle WatchPostEvents streams (tests.benchmarks.watchers, "
            f"another process, 10 channels): service RSS {mib(rss0)} -> {mib(rss1)}, "
            f"{(rss1 - rss0) / args.watchers:.1f} KiB per stream; service threads "
            f"{threads0} -> {threads1} (with the streams), {watched['threads_after']} after "
            "the runs"
        )
    footer(t0)
    return {
        "results": {f"{k[0]}/{k[1]}": v for k, v in results.items()},
        "watched": {k: v for k, v in watched.items() if k != "memory"},
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="shorter runs (1 + 4 s per RPC)")
    p.add_argument("--concurrency", type=int, default=8, help="callers of every row (8)")
    p.add_argument(
        "--in-flight",
        type=int,
        default=32,
        help="callers of the GetPostStatus rows made again, each beside its own echo run "
        "with as many (32; 0: none)",
    )
    p.add_argument("--duration", type=float, default=None, help="measured seconds per run (10)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per run (2)")
    p.add_argument(
        "--posts",
        type=int,
        default=256,
        help="scheduled posts to read (answers cached) and reschedule",
    )
    p.add_argument(
        "--cold-posts",
        type=int,
        default=0,
        help="scheduled posts read in turn for the uncached GetPostStatus row "
        "(default: twice the service's answer cache)",
    )
    p.add_argument(
        "--watchers",
        type=int,
        default=1000,
        help="idle WatchPostEvents streams for the runs with watchers (0: none)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch directories")
    p.add_argument(
        "--profile",
        metavar="DIR",
        default="",
        help="attach py-spy to the service during each run; stacks go to DIR",
    )


def defaults(args) -> None:
    if args.duration is None:
        args.duration = 4.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    defaults(args)
    run(args)


if __name__ == "__main__":
    main()
