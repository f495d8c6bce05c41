"""Runs every benchmark in turn (``make bench``), each printing Markdown ready to paste.

    python -m tests.benchmarks [--quick] [--million] [--external] [--fast-postgres]
                               [--commits] [--profile DIR]
                               [--only rpc,delivery,scheduling,scale,rules,scaleout] [--keep]

--quick     shorter runs: RPC 1+4 s per run, 300 posts per delivery batch, 1,000 posts
            due over 15 s, 100 calls per RPC and size, 3 rule checks per size, 600
            posts per scale-out run
--million   the scale benchmark adds its 1,000,000-post run (several more minutes)
--external  the delivery benchmark also runs on PostgreSQL + Redis, from
            POSTS_DATABASE_URL and POSTS_BROKER_URL in the environment, or
            else on a PostgreSQL (fsync, synchronous_commit, full_page_writes
            on) and a Redis it starts for the run; and the scale-out benchmark
            (1, 2, 4 worker and server processes) runs, on the same kind of servers
            (it always does when named in --only)
--fast-postgres  with --external (or --only scaleout), the PostgreSQL started for
            the run has fsync, synchronous_commit and full_page_writes off (not durable)
--commits   the delivery benchmark's embedded rows run with metrics on and print the
            writes each commit carried and the commits a delivered post cost
--profile   attach py-spy to the service during the RPC and delivery runs
            (pip install py-spy first); stacks go to DIR, a summary is printed
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

BENCHMARKS = ("rpc", "delivery", "scheduling", "scale", "rules", "scaleout")
#: Run by default only with --external: they need PostgreSQL + Redis.
EXTERNAL_ONLY = ("scaleout",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="shorter and smaller runs")
    parser.add_argument("--million", action="store_true", help="scale: add 1,000,000 posts")
    parser.add_argument(
        "--external",
        action="store_true",
        help="delivery: also on PostgreSQL + Redis (from the environment); scaleout too",
    )
    parser.add_argument(
        "--fast-postgres",
        action="store_true",
        help="delivery --external, scaleout: PostgreSQL without fsync (not durable)",
    )
    parser.add_argument(
        "--commits",
        action="store_true",
        help="delivery: writes per commit and commits per delivered post (metrics on)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default="",
        help="py-spy the service during the RPC and delivery runs",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated, among {', '.join(BENCHMARKS)} (default: all; "
        f"{', '.join(EXTERNAL_ONLY)} only with --external)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or [
        name for name in BENCHMARKS if args.external or name not in EXTERNAL_ONLY
    ]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.monotonic()
    print("## Benchmarks")
    failed = []
    for name in chosen:
        module = importlib.import_module(f"tests.benchmarks.{name}")
        options = ["--quick"] * args.quick + ["--keep"] * args.keep
        if name == "scale" and args.million:
            options.append("--million")
        if name == "delivery" and args.external:
            options.append("--external")
        if name == "delivery" and args.commits:
            options.append("--commits")
        if name in ("delivery", "scaleout") and args.fast_postgres:
            options.append("--fast-postgres")
        if name in ("rpc", "delivery") and args.profile:
            options += ["--profile", args.profile]
        try:
            module.main(options)
        except Exception:  # noqa: BLE001  (one benchmark failing must not stop the others)
            failed.append(name)
            print(f"\n**{name} failed:**\n\n```\n{traceback.format_exc()}```")
        sys.stdout.flush()
    print(
        f"\nAll benchmarks took {(time.monotonic() - started) / 60:.1f} min"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + "."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
