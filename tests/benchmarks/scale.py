"""Benchmark 4: latency with 1,000 and 100,000 posts in the database (1,000,000 with --million).

For each size, a fresh SQLite file gets that many posts of one workspace,
bulk-inserted through the service's models (tests.benchmarks.seed: one item and
one event each; 80 % published, 10 % scheduled in the next 30 days, 5 % drafts,
3 % cancelled (a third of them deleted), 2 % failed). Then, with the server
running (``python -m service serve``, embedded default), one caller at a time
from this process measures GetPostStatus (random posts), ListPosts (the first
page, and a deep page 90 % of the way down through a page token), UpdatePost
(a reschedule of a random scheduled post) and CreatePost (a scheduled tweet).
With the server stopped, this process times dispatcher ticks
(``workers.scheduler.dispatch_due``: idle, and moving 10 due posts) and
sweeper ticks (``workers.scheduler.sweep``). The same operations' query plans
(EXPLAIN QUERY PLAN of the SQL they actually send) are printed for the
largest size.

The figures are side by side per size; the baseline is the smallest size. An
operation whose p50 more than doubles (and grows by more than 0.5 ms) from the
smallest to the largest size is flagged NOT FLAT.

    python -m tests.benchmarks.scale [--quick] [--million] [--sizes 1000,100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import random
import time

import grpc

from tests.benchmarks.common import (
    TEXT,
    Children,
    Scratch,
    describe_database,
    footer,
    header,
    mib,
    ms,
    note,
    peak_rss_kib,
    render,
    start_server,
    summary,
)

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

OPERATIONS = [
    "GetPostStatus",
    "ListPosts first page",
    "ListPosts deep page (90 %)",
    "UpdatePost",
    "CreatePost",
    "dispatch_due (idle)",
    "dispatch_due (10 due)",
    "sweep (idle)",
]
DUE_PER_TICK = 10


def seed_posts(scratch: Scratch, tenant, size: int) -> dict:
    """Bulk-inserts ``size`` posts; returns samples of ids and the deep page's cursor."""
    from tests.benchmarks import seed

    rng = random.Random(size)
    now_us = seed.micros(time.time())
    batch = seed.Batch(tenant.workspace_id, tenant.account_id)
    sample, scheduled = [], []
    listed = []  # (created_us, id) of the posts ListPosts shows, oldest first
    day = 86_400_000_000
    for i in range(size):
        created = now_us - (size - i) * 1000 - 3_600_000_000
        kind = i % 100
        deleted = None
        if kind < 80:
            post_id = batch.add(
                "published",
                created,
                scheduled_us=created + 30_000_000,
                published_us=created + 31_000_000,
            )
        elif kind < 90:
            post_id = batch.add(
                "scheduled", created, scheduled_us=now_us + day + rng.randrange(29 * day)
            )
            scheduled.append(post_id)
        elif kind < 95:
            post_id = batch.add("draft", created)
        elif kind < 98:
            deleted = created + 5_000_000 if kind == 97 else None
            post_id = batch.add("cancelled", created, deleted_us=deleted)
        else:
            post_id = batch.add("failed", created)
        if deleted is None:
            listed.append((created, post_id))
        if rng.random() < 5000 / size:
            sample.append(post_id)
    batch.flush()
    depth = int(len(listed) * 0.9)  # newest first: 90 % of the way down
    cursor = listed[len(listed) - 1 - depth]
    rng.shuffle(scheduled)
    return {"sample": sample, "scheduled": scheduled, "cursor": cursor, "seconds": batch.seconds}


def page_token(workspace_id: str, cursor: tuple[int, str]) -> str:
    """A ListPosts page token continuing after ``cursor`` (the service's own format:
    service.posts.Posts.list, signed with the service's key)."""
    from service import crypto

    scope = hashlib.sha256(json.dumps([workspace_id, [], "", "", False]).encode()).hexdigest()[:16]
    return crypto.keyring().sign(json.dumps([scope, cursor[0], cursor[1]]).encode())


def timed(fn, i: int) -> float:
    t0 = time.perf_counter()
    fn(i)
    return time.perf_counter() - t0


class RpcProbe:
    """One caller's RPCs against the server of one size, each a callable of the call number."""

    def __init__(self, address: str, tenant, seeded: dict):
        self.channel = grpc.insecure_channel(address)
        stub = posts_pb2_grpc.PostServiceStub(self.channel)
        md = (("authorization", f"Bearer {tenant.key}"),)
        ws = tenant.workspace_id
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        rng = random.Random(7)
        token = page_token(ws, seeded["cursor"])
        deep = stub.ListPosts(
            pb.ListPostsRequest(workspace_id=ws, page_token=token), metadata=md, timeout=60
        )
        if len(deep.posts) != 50 or (
            deep.posts[0].create_time.ToMicroseconds() > seeded["cursor"][0]
        ):
            raise RuntimeError(
                "the deep page token did not land where it should: "
                "has the page token format changed?"
            )

        def get(i):
            post_id = rng.choice(seeded["sample"])
            stub.GetPostStatus(
                pb.GetPostStatusRequest(workspace_id=ws, post_id=post_id), metadata=md, timeout=60
            )

        def first_page(i):
            stub.ListPosts(pb.ListPostsRequest(workspace_id=ws), metadata=md, timeout=60)

        def deep_page(i):
            stub.ListPosts(
                pb.ListPostsRequest(workspace_id=ws, page_token=token), metadata=md, timeout=60
            )

        def update(i):
            request = pb.UpdatePostRequest(workspace_id=ws, post_id=rng.choice(seeded["scheduled"]))
            request.scheduled_at.FromDatetime(later + dt.timedelta(seconds=i))
            stub.UpdatePost(request, metadata=md, timeout=60)

        def create(i):
            request = pb.CreatePostRequest(
                workspace_id=ws,
                account_id=tenant.account_id,
                post_type=pb.POST_TYPE_TWEET,
                text=TEXT,
                status=pb.STATUS_CHANGE_SCHEDULED,
            )
            request.scheduled_at.FromDatetime(later)
            stub.CreatePost(request, metadata=md, timeout=60)

        self.ops = {
            "GetPostStatus": get,
            "ListPosts first page": first_page,
            "ListPosts deep page (90 %)": deep_page,
            "UpdatePost": update,
            "CreatePost": create,
        }

    def close(self) -> None:
        self.channel.close()


def tick_ops(seeded: dict) -> dict:
    """The dispatcher and sweeper ticks, timed in this process on the current database."""
    from service import db
    from service.models import Post
    from workers import scheduler

    def idle_dispatch(i):
        with db.connection():
            jobs = scheduler.dispatch_due(db.utcnow())
        assert not jobs, "nothing should be due"

    def idle_sweep(i):
        with db.connection():
            scheduler.sweep(db.utcnow(), 300.0)

    unused = seeded["scheduled"][-DUE_PER_TICK * 100 :]

    def due_dispatch(i) -> float:
        # Makes DUE_PER_TICK scheduled posts due (untimed), then times one tick.
        chosen = unused[i * DUE_PER_TICK : (i + 1) * DUE_PER_TICK]
        past = db.utcnow() - dt.timedelta(seconds=1)
        with db.connection(), db.write():
            Post.update(scheduled_at=past).where(Post.id.in_(chosen)).execute()
        t0 = time.perf_counter()
        with db.connection():
            jobs = scheduler.dispatch_due(db.utcnow())
        took = time.perf_counter() - t0
        assert len(jobs) == len(chosen), f"moved {len(jobs)} posts, not {len(chosen)}"
        return took

    return {
        "dispatch_due (idle)": idle_dispatch,
        "sweep (idle)": idle_sweep,
        "dispatch_due (10 due)": due_dispatch,
    }


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.queries: list[tuple[str, tuple]] = []

    def emit(self, record):
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            self.queries.append(record.msg)


def query_plans(tenant, seeded: dict) -> list[list[str]]:
    """The SQL each operation sends (captured from peewee's log), with SQLite's plan."""
    from service import crypto, db
    from service.posts import ListQuery, Posts
    from workers import scheduler

    posts = Posts(crypto.keyring(), lambda *a: None)
    token = page_token(tenant.workspace_id, seeded["cursor"])
    operations = {
        "GetPostStatus": lambda: posts.get(tenant.workspace_id, seeded["sample"][0]),
        "ListPosts first page": lambda: posts.list(tenant.workspace_id, ListQuery()),
        "ListPosts deep page": lambda: posts.list(tenant.workspace_id, ListQuery(page_token=token)),
        "dispatch_due": lambda: scheduler.dispatch_due(db.utcnow()),
        "sweep": lambda: scheduler.sweep(db.utcnow(), 300.0),
    }
    logger = logging.getLogger("peewee")
    rows = []
    for name, operation in operations.items():
        capture = _Capture()
        logger.addHandler(capture)
        old = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            with db.connection():
                operation()
        finally:
            logger.removeHandler(capture)
            logger.setLevel(old)
        with db.connection():
            for sql, params in capture.queries:
                if not sql.lstrip().upper().startswith("SELECT"):
                    continue
                plan = db.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
                steps = "; ".join(row[-1] for row in plan)
                table = sql.split(" FROM ", 1)[1].split()[0].strip('"') if " FROM " in sql else ""
                flag = "SCAN" if any(row[-1].startswith("SCAN") for row in plan) else "index"
                rows.append([name, table, flag, steps])
    return rows


def measure(args, sizes: list[dict]) -> None:
    """Every size's operations, in interleaved rounds (size A, size B, …, again), so that a
    change in the machine's background load hits every size alike."""
    rounds = args.rounds
    with Children() as children:
        for entry in sizes:
            started = time.perf_counter()
            entry["server"] = start_server(children, entry["scratch"], name="server")
            entry["startup"] = time.perf_counter() - started
            entry["probe"] = RpcProbe(entry["server"].address, entry["tenant"], entry["seeded"])
            entry["ops"] = {op: [] for op in OPERATIONS}
        note(f"scale: {args.calls} calls per RPC and size, in {rounds} interleaved rounds")
        for r in range(rounds):
            for entry in sizes:
                for op, fn in entry["probe"].ops.items():
                    if r == 0:
                        for i in range(10):  # warm-up
                            fn(-1 - i)
                    share = range(r * args.calls // rounds, (r + 1) * args.calls // rounds)
                    entry["ops"][op] += [timed(fn, i) for i in share]
        for entry in sizes:
            entry["probe"].close()
            entry["server_peak"] = peak_rss_kib(entry["server"].popen.pid)
    note(f"scale: {args.ticks} dispatcher and sweeper ticks per size, servers stopped")
    due_ticks = min(20, min(len(e["seeded"]["scheduled"]) for e in sizes) // DUE_PER_TICK)
    for r in range(rounds):
        for entry in sizes:
            entry["scratch"].use()
            ticks = tick_ops(entry["seeded"])
            share = range(r * args.ticks // rounds, (r + 1) * args.ticks // rounds)
            for op in ("dispatch_due (idle)", "sweep (idle)"):
                entry["ops"][op] += [timed(ticks[op], i) for i in share]
            due_share = range(r * due_ticks // rounds, (r + 1) * due_ticks // rounds)
            entry["ops"]["dispatch_due (10 due)"] += [
                ticks["dispatch_due (10 due)"](i) for i in due_share
            ]


def run(args) -> list[dict]:
    sizes = args.sizes
    t0 = header(
        "4. Scale: latency with " + ", ".join(f"{s:,}" for s in sizes) + " posts in the database"
    )
    entries = []
    try:
        for size in sizes:
            scratch = Scratch(f"scale-{size}").open()
            if not entries:  # every size's database is set up the same way
                describe_database(scratch)
            tenant = scratch.tenant("bench-scale")
            note(f"scale: seeding {size:,} posts")
            seeded = seed_posts(scratch, tenant, size)
            note(f"scale: seeded {size:,} posts in {seeded['seconds']:.1f} s")
            entries.append(
                {
                    "size": size,
                    "scratch": scratch,
                    "tenant": tenant,
                    "seeded": seeded,
                    "seed_seconds": seeded["seconds"],
                }
            )
        measure(args, entries)
        largest = entries[-1]
        largest["scratch"].use()
        largest["plans"] = query_plans(largest["tenant"], largest["seeded"])
        for entry in entries:
            folder = entry["scratch"].dir
            entry["db_bytes"] = sum(
                os.path.getsize(os.path.join(folder, f))
                for f in os.listdir(folder)
                if f.startswith("posts.db")
            )
    finally:
        for entry in entries:
            entry["scratch"].close(keep=args.keep)
    results = entries
    small, large = results[0], results[-1]
    headers = ["operation"]
    for r in results:
        headers += [f"{r['size']:,} p50 ms", f"{r['size']:,} p99 ms"]
    headers += [f"p50 {large['size']:,}/{small['size']:,}", "flat?"]
    rows = []
    not_flat = []
    for op in OPERATIONS:
        row = [op]
        for r in results:
            s = summary(r["ops"][op])
            row += [ms(s["p50"]), ms(s["p99"])]
        a, b = summary(small["ops"][op])["p50"], summary(large["ops"][op])["p50"]
        flat = not (b > 2 * a and b - a > 0.0005)
        if not flat:
            not_flat.append(op)
        row += [f"{b / a:.2f}×", "flat" if flat else "NOT FLAT"]
        rows.append(row)
    print()
    print(render(headers, rows))
    print()
    print(
        f"- {args.calls} calls per RPC and size, one at a time, after 10 warm-up calls; "
        f"{args.ticks} idle ticks and {len(large['ops']['dispatch_due (10 due)'])} ticks "
        f"moving 10 due posts per size; sizes interleaved in {args.rounds} rounds"
    )
    for r in results:
        print(
            f"- {r['size']:,} posts: seeded in {r['seed_seconds']:.1f} s, database "
            f"{r['db_bytes'] / 2**20:.0f} MiB, server start-up (to SERVING) "
            f"{r['startup']:.1f} s, server peak RSS (VmHWM) {mib(r['server_peak'])}"
        )
    print(
        f"\nQuery plans at {large['size']:,} posts (SQLite EXPLAIN QUERY PLAN; "
        "SCAN = walks a whole table or index):\n"
    )
    print(render(["operation", "table", "kind", "plan"], large["plans"]))
    print()
    for name, table, _, plan in large["plans"]:
        searched_on = plan.partition(" (")[2]  # "workspace_id=?)", "… AND (created_at,id)<(?,?))"
        if name == "ListPosts deep page" and table == "post" and "created_at" not in searched_on:
            print(
                "- ListPosts deep page: the index is searched on workspace_id alone, not on "
                "the page token's (created_at, id): each page walks every newer post first"
            )
    print("- not flat: " + (", ".join(not_flat) if not_flat else "none"))
    footer(t0)
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer calls and ticks (100 / 50)")
    p.add_argument("--million", action="store_true", help="add the 1,000,000-post run")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma-separated sizes (default 1000,100000; --million adds 1000000)",
    )
    p.add_argument("--calls", type=int, default=None, help="calls per RPC and size (300)")
    p.add_argument("--ticks", type=int, default=None, help="idle ticks per size (200)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the sizes (5)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directories")
    return p


def defaults(args) -> None:
    if args.sizes is None:
        args.sizes = [1000, 100_000] + ([1_000_000] if args.million else [])
    elif isinstance(args.sizes, str):
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    if args.calls is None:
        args.calls = 100 if args.quick else 300
    if args.ticks is None:
        args.ticks = 50 if args.quick else 200


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    defaults(args)
    run(args)


if __name__ == "__main__":
    main()
