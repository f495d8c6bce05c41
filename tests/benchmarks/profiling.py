"""py-spy, attached to a benchmark's server while it is measured (``--profile DIR``).

py-spy is not a dependency of the project: ``.venv/bin/pip install py-spy``
first (it needs ptrace rights over the server: root, or
kernel.yama.ptrace_scope=0). ``record`` samples every thread of the process,
waiting ones too (``--idle``), as collapsed stacks; ``hot_spots`` reads them
back and answers where the request and delivery threads spent their wall time.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys

#: Library frames worth naming beside the service's own (what they mean, for the reader).
LIBRARY_FRAMES = {
    "SqliteDatabase.begin": "BEGIN IMMEDIATE: waiting for SQLite's write lock",
    "Database.connect": "opening a database connection (under peewee's lock)",
    "Database.close": "closing a database connection (under peewee's lock)",
    "Context.sql": "peewee building SQL text",
    "Database._execute_cursor": "the database running statements",
    "create_default_context": "ssl: a new SSL context (a new httpx.Client)",
    "Client.send": "httpx sending",
    "encode_post": "protobuf encoding",
}
#: The service's outermost frames: every sample of their threads is under them.
WRAPPERS = {
    "PostServiceInterceptor.intercept_service.<locals>.guarded",
    "deliver_post",
    "deliver",
    "Scheduler.tick",
    "Scheduler._run",
}
#: Frames that mark a thread doing a request's or a delivery's work.
WORK_ROOTS = ("_unary_response_in_pool", "WorkerThread.process_message", "Scheduler.tick")


def available() -> str | None:
    return shutil.which("py-spy") or (
        os.path.join(os.path.dirname(sys.executable), "py-spy")
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), "py-spy"))
        else None
    )


def record(pid: int, seconds: float | None, out: str) -> subprocess.Popen | None:
    """Starts sampling ``pid`` for ``seconds`` (None: until ``stop``) into ``out``
    (collapsed stacks)."""
    binary = available()
    if binary is None:
        print("profiling: py-spy is not installed (.venv/bin/pip install py-spy)", file=sys.stderr)
        return None
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--idle",
            "--format",
            "raw",
            "--output",
            out,
            "--nonblocking",
        ]
        + (["--duration", str(max(1, round(seconds)))] if seconds else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(spy: subprocess.Popen | None) -> None:
    """Ends a recording started without a duration (py-spy writes its file on SIGINT)."""
    if spy is None:
        return
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()


def _name(frame: str) -> str:
    return re.sub(r" \(.*\)$", "", frame)


def hot_spots(path: str, top: int = 8) -> list[tuple[float, str]]:
    """The frames under which work threads spent the most wall time (inclusive %, of all
    work-thread samples): the service's own functions and LIBRARY_FRAMES."""
    inclusive: collections.Counter = collections.Counter()
    total = 0
    try:
        with open(path) as stacks:
            lines = stacks.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(root in f for f in frames for root in WORK_ROOTS):
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in frames:
            name = _name(frame)
            own = "service/" in frame or "workers/" in frame
            if (own or name in LIBRARY_FRAMES) and name not in seen and name not in WRAPPERS:
                seen.add(name)
                inclusive[name] += n
    if not total:
        return []
    return [
        (
            100 * n / total,
            f"{name}" + (f" ({LIBRARY_FRAMES[name]})" if name in LIBRARY_FRAMES else ""),
        )
        for name, n in inclusive.most_common(top)
    ]


def describe(path: str, top: int = 8) -> str:
    spots = hot_spots(path, top)
    if not spots:
        return f"(no samples in {path})"
    return "; ".join(f"{pct:.0f}% {name}" for pct, name in spots)
