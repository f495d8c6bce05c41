"""Benchmark 1: RPC throughput and latency, next to a bare echo gRPC server.

The service (``python -m service serve`` on the embedded default, a fresh
SQLite file, the in-process worker idle) and the echo server
(tests.benchmarks.echo_server: same service, same thread pool, canned answers)
run as child processes; the closed-loop load generator (tests.benchmarks.loadgen)
runs in a third, with the same concurrency against both, one RPC at a time,
echo then service, back to back.

- GetPostStatus: reads of a pool of scheduled posts (made through CreatePost);
- UpdatePost: a reschedule of a scheduled post (each caller its own posts);
- CreatePost: a scheduled tweet, a day ahead.

Targets (PRODUCT.md section 8): GetPostStatus >= 0.8x echo, UpdatePost >= 0.5x.

    python -m tests.benchmarks.rpc [--quick] [--concurrency 8] [--duration 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time

import grpc

from tests.benchmarks import profiling
from tests.benchmarks.common import (
    TEXT,
    Children,
    Scratch,
    cpu_seconds,
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

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

RPCS = ("GetPostStatus", "UpdatePost", "CreatePost")
TARGETS = {"GetPostStatus": 0.8, "UpdatePost": 0.5}


def make_scheduled_posts(address: str, tenant, count: int) -> list[str]:
    """``count`` scheduled tweets a day ahead, made through CreatePost; their ids."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    metadata = (("authorization", f"Bearer {tenant.key}"),)
    ids = []
    with grpc.insecure_channel(address) as channel:
        stub = posts_pb2_grpc.PostServiceStub(channel)
        for _ in range(count):
            request = pb.CreatePostRequest(
                workspace_id=tenant.workspace_id, account_id=tenant.account_id,
                post_type=pb.POST_TYPE_TWEET, text=TEXT, status=pb.STATUS_CHANGE_SCHEDULED,
            )  # fmt: skip
            request.scheduled_at.FromDatetime(when)
            ids.append(stub.CreatePost(request, metadata=metadata, timeout=30).post.post_id)
    return ids


def run(args) -> dict:
    t0 = header(f"1. RPC throughput and latency (closed loop, concurrency {args.concurrency})")
    scratch = Scratch("rpc").open()
    tenant = scratch.tenant()
    results: dict[tuple[str, str], dict] = {}
    with Children() as children:
        server = start_server(children, scratch)
        echo = start_echo(children, scratch)
        note(f"rpc: service on {server.address}, echo on {echo.address}")
        ids = make_scheduled_posts(server.address, tenant, args.posts)
        ids_file = os.path.join(scratch.dir, "posts.json")
        with open(ids_file, "w") as out:
            json.dump(ids, out)
        for rpc in RPCS:
            for target, process in (("echo", echo), ("service", server)):
                note(f"rpc: {rpc} against {target} for {args.warmup}+{args.duration} s")
                spy = None
                if args.profile and target == "service":
                    spy = profiling.record(process.popen.pid, args.warmup + args.duration,
                                           os.path.join(args.profile, f"rpc-{rpc}.txt"))
                cpu0, wall0 = cpu_seconds(process.popen.pid), time.monotonic()
                results[rpc, target] = run_child("tests.benchmarks.loadgen", [
                    "--address", process.address, "--key", tenant.key,
                    "--workspace", tenant.workspace_id, "--account", tenant.account_id,
                    "--rpc", rpc, "--posts", ids_file, "--concurrency", args.concurrency,
                    "--warmup", args.warmup, "--duration", args.duration,
                ])  # fmt: skip
                results[rpc, target]["server_cpu"] = (
                    cpu_seconds(process.popen.pid) - cpu0
                ) / (time.monotonic() - wall0)
                if spy:
                    spy.wait(timeout=60)
        server_peak = peak_rss_kib(server.popen.pid)
        echo_peak = peak_rss_kib(echo.popen.pid)
    scratch.close(keep=args.keep)

    rows = []
    for rpc in RPCS:
        s, e = results[rpc, "service"], results[rpc, "echo"]
        target = TARGETS.get(rpc)
        met = "" if target is None else (
            f"≥ {target}× " + ("met" if s["qps"] >= target * e["qps"] else "NOT met")
        )  # fmt: skip
        rows.append([
            rpc, f"{s['qps']:.0f}", f"{e['qps']:.0f}", ratio(s["qps"], e["qps"]), met or "-",
            ms(s["p50"]), ms(s["p99"]), ms(e["p50"]), ms(e["p99"]),
            f"{s['answer_bytes']}/{e['answer_bytes']}",
            f"{s['errors']}/{e['errors']}",
        ])  # fmt: skip
    print()
    print(render(
        ["RPC", "service QPS", "echo QPS", "ratio", "target", "service p50 ms",
         "service p99 ms", "echo p50 ms", "echo p99 ms", "answer bytes svc/echo",
         "errors svc/echo"], rows,
    ))  # fmt: skip
    print()
    def cpu(key: str) -> str:
        return ", ".join(
            f"{rpc} {results[rpc, 'service'][key]:.2f}/{results[rpc, 'echo'][key]:.2f}"
            for rpc in RPCS
        )

    print(f"- load generator: grpc.aio, {args.concurrency} callers, {args.warmup} s warm-up + "
          f"{args.duration} s measured per run, in its own process")
    print(f"- CPU seconds per wall second, service/echo: server {cpu('server_cpu')}; "
          f"load generator {cpu('client_cpu')} (1.00 = one core busy)")
    if args.profile:
        for rpc in RPCS:
            path = os.path.join(args.profile, f"rpc-{rpc}.txt")
            print(f"- py-spy, {rpc}, share of request-thread wall time: "
                  f"{profiling.describe(path)}")
    errors = {k: v["error_kinds"] for k, v in results.items() if v["errors"]}
    if errors:
        print(f"- errors: {errors}")
    print(f"- peak RSS (VmHWM): service {mib(server_peak)} (with its idle embedded worker), "
          f"echo {mib(echo_peak)}, load generator "
          f"{mib(max(r['client_peak_rss_kib'] or 0 for r in results.values()))}")
    footer(t0)
    return {"results": {f"{k[0]}/{k[1]}": v for k, v in results.items()}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="shorter runs (1 + 4 s per RPC)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=None, help="measured seconds per run (10)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per run (2)")
    p.add_argument("--posts", type=int, default=256, help="scheduled posts to read/reschedule")
    p.add_argument("--keep", action="store_true", help="keep the scratch directories")
    p.add_argument("--profile", metavar="DIR", default="",
                   help="attach py-spy to the service during each run; stacks go to DIR")


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
