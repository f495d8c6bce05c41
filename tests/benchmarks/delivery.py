"""Benchmark 2: delivery throughput end to end, next to a bare Dramatiq no-op actor.

``--posts`` posts are created with STATUS_CHANGE_PUBLISH through CreatePost by
the load generator (its own process, ``--concurrency`` callers) while the
worker delivers them; the figure is posts PUBLISHED per second, from the first
post's create_time to the last one's publish time (read from the database).
Once through the sandbox adapter (a sandbox X account), once through the
webhook adapter to the local fake consumer (tests.fakes.webhook, in a process
of its own: a signed HTTP POST per post).

Embedded default: ``python -m service serve`` on a fresh SQLite file, the
worker (POSTS_WORKER_THREADS threads, in-memory StubBroker) inside the server
process. Baseline: a bare Dramatiq no-op actor on a StubBroker with a Worker of
the same thread count, in one process (tests.benchmarks.dramatiq_baseline).

``--external``: also on PostgreSQL + Redis, from POSTS_DATABASE_URL and
POSTS_BROKER_URL in the environment, or else started for the run in temporary
directories (tests.backends) (a server, and a ``python -m workers`` process
with the same thread count); the baseline then runs on a RedisBroker. The
PostgreSQL started for the run keeps fsync, synchronous_commit and
full_page_writes on (durable commits); ``--fast-postgres`` turns them off, as
the test suite's server has them. Either way the header prints what the
server reports (``SHOW``), for a server given by URL too.

Target: at least a third of the no-op actor's rate.

``--commits``: the embedded server runs with its metrics on, and each row says
how many writes shared a commit and how many commits a delivered post cost
(its CreatePost, claim and result, and its share of the dispatcher's rounds),
read from ``posts_group_commit_writes`` before and after the row. Off by
default: recording metrics costs the server some CPU.

    python -m tests.benchmarks.delivery [--quick] [--posts 1000] [--external] [--fast-postgres] [--commits]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

from tests.benchmarks import profiling
from tests.benchmarks.common import (
    Children,
    Scratch,
    against_target,
    cpu_seconds,
    describe_database,
    external_backends,
    footer,
    header,
    mib,
    note,
    peak_rss_kib,
    peak_rss_tree,
    ratio,
    render,
    run_child,
    start_server,
)
from tests.processes import ROOT, WorkerProcess, free_port

HOOK_SECRET = "bench-webhook-signing-secret-0123456789"


class Sink:
    """The webhook consumer's process; ``url`` is where it listens."""

    def __init__(self):
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.webhook_sink", HOOK_SECRET],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.url = self.popen.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the webhook sink did not start")

    def stop(self) -> dict:
        self.peak = peak_rss_kib(self.popen.pid)
        self.popen.terminate()
        out, _ = self.popen.communicate(timeout=30)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def epoch_seconds(value) -> float:
    """A UTCTimeField value (datetime, or microseconds since the epoch) as Unix seconds."""
    if value is None:
        return 0.0
    return value / 1e6 if isinstance(value, int) else value.timestamp()


def wait_delivered(mine, count: int, timeout: float, also=lambda: True) -> tuple[int, int]:
    """Polls until ``count`` of the posts ``mine`` selects are PUBLISHED or FAILED
    (and ``also()`` holds), or ``timeout`` seconds pass; their (published, failed)."""
    from service import db
    from service.models import Post

    deadline = time.monotonic() + timeout
    done = failed = 0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        with db.connection():
            done = Post.select().where(mine & (Post.status == "published")).count()
            failed = Post.select().where(mine & (Post.status == "failed")).count()
        if done + failed >= count and also():
            break
    return done, failed


def deliver_batch(args, server, tenant, account_id: str, post_type: str, label: str) -> dict:
    """Creates ``args.posts`` posts to publish now and waits until all are delivered."""
    from peewee import fn

    from service import db
    from service.models import Post

    # Laid out by hand: flags beside their values.
    # fmt: off
    command = [
        sys.executable, "-m", "tests.benchmarks.loadgen", "--address", server.address,
        "--key", tenant.key, "--workspace", tenant.workspace_id, "--account", account_id,
        "--rpc", "CreatePost", "--status", "publish", "--post-type", post_type,
        "--concurrency", str(args.concurrency), "--count", str(args.posts),
    ]
    # fmt: on
    spy = None
    if args.profile:
        spy = profiling.record(
            server.popen.pid, None, os.path.join(args.profile, f"delivery-{label}.txt")
        )
    cpu0, wall0 = cpu_seconds(server.popen.pid), time.monotonic()
    creator = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    mine = Post.account == account_id
    done, failed = wait_delivered(
        mine, args.posts, args.timeout, lambda: creator.poll() is not None
    )
    server_cpu = (cpu_seconds(server.popen.pid) - cpu0) / (time.monotonic() - wall0)
    profiling.stop(spy)
    created = json.loads(creator.communicate(timeout=60)[0].strip().splitlines()[-1])
    with db.connection():
        first_created, last_published = (
            Post.select(fn.MIN(Post.created_at), fn.MAX(Post.published_at))
            .where(mine)
            .scalar(as_tuple=True)
        )
    seconds = epoch_seconds(last_published) - epoch_seconds(first_created)
    return {
        "published": done,
        "failed": failed,
        "seconds": seconds,
        "rate": done / seconds if seconds > 0 else 0.0,
        "create_seconds": created["seconds"],
        "create_rate": created["qps"],
        "create_errors": created["errors"],
        "server_cpu": server_cpu,
    }


def due_batch(args, server, tenant, account_id: str) -> dict:
    """``args.posts`` scheduled posts made due at once, inserted straight into the
    database (tests.benchmarks.seed): delivery alone, no CreatePost calls beside it.
    Rate: published posts over the time from their due time to the last publish."""
    from peewee import fn

    from service import db
    from service.models import Post
    from tests.benchmarks import seed

    batch = seed.Batch(tenant.workspace_id, account_id, per_transaction=args.posts + 1)
    due_us = seed.micros(time.time() + 1.0)
    for _ in range(args.posts):
        batch.add("scheduled", due_us - 1_000_000, scheduled_us=due_us)
    batch.flush()
    cpu0, wall0 = cpu_seconds(server.popen.pid), time.monotonic()
    mine = Post.account == account_id
    done, failed = wait_delivered(mine, args.posts, args.timeout)
    server_cpu = (cpu_seconds(server.popen.pid) - cpu0) / (time.monotonic() - wall0)
    with db.connection():
        last_published = Post.select(fn.MAX(Post.published_at)).where(mine).scalar()
    seconds = epoch_seconds(last_published) - due_us / 1e6
    return {
        "published": done,
        "failed": failed,
        "seconds": seconds,
        "rate": done / seconds if seconds > 0 else 0.0,
        "server_cpu": server_cpu,
    }


def group_commits(listen: str | None, since: tuple | None = None) -> tuple | None:
    """(writes, commits) the server's group commit counted so far, read from its
    metrics on ``listen`` (``posts_group_commit_writes``); the growth since
    ``since`` when given; None without metrics."""
    if listen is None:
        return None
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://{listen}/metrics", timeout=10).text
    found = {"_sum": 0.0, "_count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "posts_group_commit_writes":
            for sample in family.samples:
                suffix = sample.name.removeprefix(family.name)
                if suffix in found:
                    found[suffix] += sample.value
    now = (found["_sum"], found["_count"])
    return now if since is None else (now[0] - since[0], now[1] - since[1])


def run_mode(
    args, external: bool, notes: list[str], origin: str = "", data_dir: str = ""
) -> list[list]:
    scratch = Scratch("delivery-external" if external else "delivery", external).open()
    backend = "PostgreSQL + Redis" if external else "embedded (SQLite + StubBroker)"
    describe_database(scratch, backend, origin, data_dir)
    threads = scratch.config.worker_threads
    tenant = scratch.tenant("bench-delivery")
    rows = []
    sink = Sink()
    try:
        with Children() as children:
            hook_account = scratch.account(
                tenant,
                "webhook",
                "bench-hook",
                base_url=f"{sink.url}/hooks/bench",
                token=HOOK_SECRET,
                sandbox=False,
            )
            note(f"delivery [{backend}]: Dramatiq no-op baseline, {args.baseline_count} messages")
            baseline = run_child(
                "tests.benchmarks.dramatiq_baseline",
                [
                    "throughput",
                    "--count",
                    args.baseline_count,
                    "--threads",
                    threads,
                    "--broker-url",
                    scratch.env["POSTS_BROKER_URL"],
                ],
            )
            metrics = None
            if args.commits and not external:
                metrics = f"127.0.0.1:{free_port()}"
            server = start_server(
                children, scratch, {"POSTS_METRICS_LISTEN": metrics} if metrics else None
            )
            worker = None
            if external:
                worker = children.add(
                    WorkerProcess(scratch.env, scratch.log("worker"), processes=1, threads=threads)
                )
                worker.start()
            results = {}
            for adapter, account_id, post_type in (
                ("sandbox", tenant.account_id, "tweet"),
                ("webhook", hook_account, "post"),
            ):
                note(f"delivery [{backend}]: {args.posts} posts through the {adapter} adapter")
                label = f"{'external' if external else 'embedded'}-{adapter}"
                before = group_commits(metrics)
                results[adapter] = deliver_batch(args, server, tenant, account_id, post_type, label)
                results[adapter]["commits"] = group_commits(metrics, before)
            note(f"delivery [{backend}]: {args.posts} posts due at once, sandbox adapter")
            due_account = scratch.account(tenant, "x", "bench-due")
            before = group_commits(metrics)
            results["due"] = due_batch(args, server, tenant, due_account)
            results["due"]["commits"] = group_commits(metrics, before)
            server_peak = peak_rss_kib(server.popen.pid)
            worker_peak = peak_rss_tree(worker.popen.pid) if worker else None
    finally:
        sink_stats = sink.stop() if sink.popen.poll() is None else {}
        sink.kill()
        scratch.close(keep=args.keep)
    base = baseline["rate"]
    rows.append(
        [
            backend,
            f"no-op actor (baseline, {args.baseline_count} msgs)",
            f"{base:.0f}",
            "1.00×",
            "-",
            f"{baseline['seconds']:.1f}",
            "-",
            mib(baseline["peak_rss_kib"]),
        ]
    )
    for adapter, r in results.items():
        versus = against_target(ratio(r["rate"], base), "≥ 0.33×", r["rate"] >= base / 3)
        lost = args.posts - r["published"] - r["failed"]
        what = (
            "sandbox adapter, posts due at once, no CreatePost beside it"
            if adapter == "due"
            else f"{adapter} adapter"
        )
        rows.append(
            [
                backend,
                f"{what} ({r['published']}/{args.posts} published"
                + (f", {r['failed']} failed" if r["failed"] else "")
                + (f", {lost} not delivered" if lost else "")
                + ")",
                f"{r['rate']:.0f}",
                ratio(r["rate"], base),
                versus,
                f"{r['seconds']:.1f}",
                f"{r['create_rate']:.0f}" if "create_rate" in r else "-",
                f"server {mib(server_peak)}"
                + (f", worker {mib(worker_peak)}" if worker else " (worker inside)"),
            ]
        )
        if adapter == "webhook" and sink_stats:
            rows[-1][1] += f"; consumer saw {sink_stats['requests']} requests"
    for adapter, r in results.items():
        notes.append(
            f"{backend}, {adapter}: server CPU {r['server_cpu']:.2f} s per wall second"
            + (f", {r['create_errors']} CreatePost errors" if r.get("create_errors") else "")
        )
        if r.get("commits"):
            writes, commits = r["commits"]
            notes.append(
                f"{backend}, {adapter}: {writes:.0f} writes in {commits:.0f} commits"
                f" ({writes / max(commits, 1):.2f} a commit), "
                f"{commits / max(r['published'], 1):.2f} commits a delivered post"
            )
        if args.profile and adapter != "due":
            label = f"{'external' if external else 'embedded'}-{adapter}"
            path = os.path.join(args.profile, f"delivery-{label}.txt")
            notes.append(
                f"py-spy on the server process, {backend}, {adapter}: share of "
                f"request/worker-thread wall time: {profiling.describe(path)}"
            )
    return rows


def run(args) -> None:
    t0 = header(
        f"2. Delivery throughput ({args.posts} posts per adapter, "
        f"{args.concurrency} creating callers)"
    )
    notes: list[str] = []
    rows = run_mode(args, external=False, notes=notes)
    if args.external:
        with contextlib.ExitStack() as servers:
            backends = external_backends(servers, args.fast_postgres, "delivery")
            notes += backends.notes
            rows += run_mode(args, True, notes, backends.origin, backends.data_dir)
    print()
    print(
        render(
            [
                "backend",
                "what",
                "posts/s",
                "ratio",
                "target (against the no-op)",
                "seconds",
                "creates/s",
                "peak RSS",
            ],
            rows,
        )
    )
    print()
    print(
        "- posts/s: published posts over the time from the first create_time to the last "
        "publish time (posts due at once: from their due time); creates/s: CreatePost calls "
        "per second while delivering"
    )
    for line in notes:
        print(f"- {line}")
    footer(t0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="300 posts per adapter")
    p.add_argument("--posts", type=int, default=None, help="posts per adapter (1000)")
    p.add_argument(
        "--baseline-count",
        type=int,
        default=None,
        help="no-op messages for the baseline (10 per post)",
    )
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per batch at most")
    p.add_argument(
        "--external",
        action="store_true",
        help="also on PostgreSQL + Redis (POSTS_DATABASE_URL, POSTS_BROKER_URL, "
        "else started for the run)",
    )
    p.add_argument(
        "--fast-postgres",
        action="store_true",
        help="the PostgreSQL started for --external runs with fsync, "
        "synchronous_commit and full_page_writes off (not durable)",
    )
    p.add_argument(
        "--commits",
        action="store_true",
        help="embedded rows: metrics on, and the writes per commit and commits per "
        "delivered post printed (posts_group_commit_writes)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch directories")
    p.add_argument(
        "--profile",
        metavar="DIR",
        default="",
        help="attach py-spy to the server during each batch; stacks go to DIR",
    )
    return p


def defaults(args) -> None:
    if args.posts is None:
        args.posts = 300 if args.quick else 1000
    if args.baseline_count is None:
        args.baseline_count = 10 * args.posts


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    defaults(args)
    run(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
