"""Benchmark 3: scheduling precision of posts due within the same minute.

With the server running (embedded default: dispatcher, sweeper and worker in
the server process, a sandbox X account), ``--posts`` SCHEDULED posts are
inserted straight into the database through the service's models (as
CreatePost makes them: a job token, one item, a 'create' event), due over
``--window`` seconds starting ``--lead`` seconds after the insert began, spread
evenly. Then it waits until every one is PUBLISHED (or ``--timeout`` seconds
after the last is due), and measures each post's lateness after its
scheduled_at: to the dispatcher's move to PENDING (its 'due' event), to its
claim by a worker ('claim' event) and to its publication (Post.published_at).

Baseline: the same schedule through a bare poll loop (every
POSTS_DISPATCH_INTERVAL seconds) sending to a no-op Dramatiq actor on a
StubBroker with the same thread count (tests.benchmarks.dramatiq_baseline);
its lateness is what polling and Dramatiq alone cost.

Target: p99 at most 1 s, to the claim and to publication.

    python -m tests.benchmarks.scheduling [--quick] [--posts 10000] [--window 60]
"""

from __future__ import annotations

import argparse
import time

from tests.benchmarks.common import (
    Children,
    Scratch,
    against_target,
    describe_database,
    footer,
    header,
    mib,
    note,
    peak_rss_kib,
    render,
    run_child,
    start_server,
    summary,
)


def lateness_rows(scheduled: dict[str, int]) -> dict[str, list[float]]:
    """Each post's lateness (seconds) to its first 'due' and 'claim' event and to publication;
    inf where it never happened."""
    from peewee import fn

    from service import db
    from service.models import Post, PostEvent

    found: dict[str, dict[str, int]] = {"due": {}, "claim": {}, "publish": {}}
    with db.connection():
        for cause in ("due", "claim"):
            query = (
                PostEvent.select(PostEvent.post, fn.MIN(PostEvent.at).alias("first"))
                .where(PostEvent.cause == cause)
                .group_by(PostEvent.post)
                .tuples()
            )
            for post_id, first in query:
                found[cause][post_id] = _micros(first)
        for post_id, published in (
            Post.select(Post.id, Post.published_at).where(Post.published_at.is_null(False)).tuples()
        ):
            found["publish"][post_id] = _micros(published)
    inf = float("inf")
    return {
        what: [
            (at[post_id] - due) / 1e6 if post_id in at else inf
            for post_id, due in scheduled.items()
        ]
        for what, at in found.items()
    }


def _micros(value) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1e6)


def seconds(value: float, cap: float) -> str:
    if value == float("inf"):
        return f"> {cap:.0f}"
    return f"{value:.3f}"


def run(args) -> None:
    from service import db
    from service.models import Post
    from tests.benchmarks import seed

    t0 = header(f"3. Scheduling precision ({args.posts} posts due within {args.window:g} s)")
    scratch = Scratch("scheduling").open()
    describe_database(scratch)
    tenant = scratch.tenant("bench-scheduling")
    interval = scratch.config.dispatch_interval
    threads = scratch.config.worker_threads
    with Children() as children:
        server = start_server(children, scratch)
        started = time.time()
        first_due = started + args.lead
        batch = seed.Batch(tenant.workspace_id, tenant.account_id, per_transaction=args.posts)
        scheduled: dict[str, int] = {}
        now_us = seed.micros(started)
        for i in range(args.posts):
            due = seed.micros(first_due + args.window * (i + 0.5) / args.posts)
            scheduled[batch.add("scheduled", now_us, scheduled_us=due)] = due
        batch.flush()
        inserted = time.time()
        note(
            f"scheduling: inserted {args.posts} posts in {inserted - started:.1f} s; "
            f"due from {first_due - inserted:.1f} s from now over {args.window:g} s"
        )
        if inserted >= first_due:
            note("scheduling: WARNING the insert ended after the first due time: raise --lead")
        deadline = first_due + args.window + args.timeout
        published = 0
        while time.time() < deadline:
            time.sleep(1.0)
            with db.connection():
                published = Post.select().where(Post.status == "published").count()
            if published >= args.posts:
                break
        waited = time.time() - first_due - args.window
        server_peak = peak_rss_kib(server.popen.pid)
    late = lateness_rows(scheduled)
    scratch.close(keep=args.keep)
    note(f"scheduling: baseline (poll every {interval} s + no-op actor, {threads} threads)")
    baseline = run_child(
        "tests.benchmarks.dramatiq_baseline",
        [
            "schedule",
            "--count",
            args.posts,
            "--window",
            args.window,
            "--lead",
            2,
            "--interval",
            interval,
            "--threads",
            threads,
        ],
    )

    cap = args.window + waited
    rows = []
    for what, label in (
        ("due", "service: dispatcher moves it to PENDING"),
        ("claim", "service: a worker claims it"),
        ("publish", "service: published"),
    ):
        s = summary(late[what])
        over = sum(1 for v in late[what] if v > 1.0)
        target = (
            "-"
            if what == "due"
            else against_target(f"p99 {seconds(s['p99'], cap)} s", "p99 ≤ 1 s", s["p99"] <= 1.0)
        )
        missing = sum(1 for v in late[what] if v == float("inf"))
        rows.append(
            [
                label,
                seconds(s["p50"], cap),
                seconds(s["p99"], cap),
                seconds(s["max"], cap),
                f"{over}" + (f" ({missing} never)" if missing else ""),
                target,
            ]
        )
    b = baseline["lateness"]
    rows.append(
        [
            f"baseline: poll every {interval:g} s → no-op actor runs",
            f"{b['p50']:.3f}",
            f"{b['p99']:.3f}",
            f"{b['max']:.3f}",
            str(baseline["count"] - baseline["ran"]) + " never"
            if baseline["ran"] < baseline["count"]
            else "0",
            "-",
        ]
    )
    print()
    print(render(["lateness after scheduled_at (s)", "p50", "p99", "max", "> 1 s", "target"], rows))
    print()
    print(
        f"- {published}/{args.posts} published; waited {waited:.0f} s after the last was due; "
        f"dispatcher every {interval:g} s, {threads} worker threads; the posts were inserted "
        f"in {inserted - started:.1f} s with the server running"
    )
    print(
        f"- peak RSS (VmHWM): server {mib(server_peak)} (dispatcher and worker inside), "
        f"baseline {mib(baseline['peak_rss_kib'])}"
    )
    footer(t0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 posts over 15 s")
    p.add_argument("--posts", type=int, default=None, help="posts to schedule (10000)")
    p.add_argument("--window", type=float, default=None, help="seconds they are due over (60)")
    p.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from the insert's start to the first due time (15)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for publication after the last is due",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return p


def defaults(args) -> None:
    if args.posts is None:
        args.posts = 1000 if args.quick else 10_000
    if args.window is None:
        args.window = 15.0 if args.quick else 60.0
    if args.lead is None:
        args.lead = 5.0 if args.quick else 15.0


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    defaults(args)
    run(args)


if __name__ == "__main__":
    main()
