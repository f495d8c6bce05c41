"""What the benchmarks share: scratch databases, child processes, statistics, tables.

The benchmark process itself only orchestrates (and, where a benchmark says so,
reads or writes the database directly); servers, workers, load generators and
baselines each run in a child process of their own, so that none shares a GIL
with another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Self

import service  # noqa: F401  (puts generated/ on the import path)
from tests.processes import FAKES_EGRESS_ALLOW, ROOT, Process, ServerProcess

SECRET_KEY = "bench-secret-key-0123456789abcdef-0123456789abcdef"
#: The text of every benchmark post: a typical tweet's length.
TEXT = (
    "Benchmark post: our spring release is live. New dashboards, faster exports and a dark "
    "mode you asked for. Details in the changelog."
)


# ------------------------------------------------------------------ statistics


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values) -> dict:
    values = list(values)
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": sum(values) / len(values) if values else float("nan"),
    }


def ms(seconds: float) -> str:
    """Seconds as milliseconds, to a sensible precision."""
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def ratio(value: float, base: float) -> str:
    if not base or math.isnan(value) or math.isnan(base):
        return "n/a"
    share = value / base
    return f"{share:.3f}×" if share < 0.1 else f"{share:.2f}×"


def against_target(now: str, target: str, reached: bool) -> str:
    """A figure beside its target, in words: "now 0.29×, target ≥ 0.5×: not yet".
    A target not reached is work ahead, not a failed run."""
    return f"now {now}, target {target}: " + ("reached" if reached else "not yet")


# --------------------------------------------------------------------- memory


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set size) of a live process, in KiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(k) for k in children.read().split()]
            except FileNotFoundError:
                continue
            found.extend(kids)
            queue.extend(kids)
    return found


def peak_rss_tree(pid: int) -> int | None:
    """The largest VmHWM among ``pid`` and its descendants (Dramatiq forks its workers)."""
    peaks = [p for p in (peak_rss_kib(q) for q in [pid, *descendants(pid)]) if p]
    return max(peaks) if peaks else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants, children that have
    exited and been waited for included (a PostgreSQL's backends, Dramatiq's
    worker processes); NaN once ``pid`` is gone."""

    def used(process: int) -> float:
        try:
            with open(f"/proc/{process}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            return 0.0
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    if not os.path.exists(f"/proc/{pid}"):
        return float("nan")
    return used(pid) + sum(used(child) for child in descendants(pid))


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


# --------------------------------------------------------------------- output


def render(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(r):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def busy_neighbours(own: set[int] | None = None, threshold: float = 5.0) -> list[str]:
    """Other processes using at least ``threshold``% CPU right now (ps), for the record."""
    own = own or set()
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines()[1:]:
        pid, cpu, comm = line.split(None, 2)
        if int(pid) not in own and int(pid) != os.getpid() and float(cpu) >= threshold:
            found.append(f"{comm.strip()}({cpu}%)")
    return found[:5]


def git_commit() -> str:
    """``git rev-parse --short HEAD``, with "+dirty" when the tree differs from it
    (changed, staged or untracked files); "?" outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if git("status", "--porcelain"):
            commit += "+dirty"
    return commit


def header(title: str) -> float:
    """Prints a benchmark's heading: what, when, with which command, at which commit,
    on what machine; returns t0. Each database the run uses adds its own line
    (``describe_database``) once it is open."""
    command = "python -m " + " ".join(shlex.quote(a) for a in [_module_name(), *sys.argv[1:]])
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"\n### {title}\n")
    print(f"- date: {now}; command: `{command}`; commit {git_commit()}")
    print(
        f"- machine: {cpus} CPUs"
        + (f" ({usable} usable by this process)" if usable != cpus else "")
        + f", Python {platform.python_version()} ({platform.python_implementation()}), "
        f"load average at start {loadavg()}"
        + (f"; busy neighbours: {', '.join(busy_neighbours())}" if busy_neighbours() else "")
    )
    settings = service_settings()
    if settings:
        print(f"- service settings from the environment: {settings}")
    sys.stdout.flush()
    return time.monotonic()


def service_settings() -> str:
    """The POSTS_* variables this run's environment sets for every process it
    starts (POSTS_GROUP_COMMIT=1, say), URLs and secrets left out."""
    hidden = ("POSTS_DATABASE_URL", "POSTS_BROKER_URL", "POSTS_SECRET_KEY")
    return ", ".join(
        f"{name}={value}"
        for name, value in sorted(os.environ.items())
        if name.startswith("POSTS_") and name not in hidden
    )


#: SQLite's ``PRAGMA synchronous`` values.
_SQLITE_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def database_settings() -> dict:
    """What the database ``service.db`` points at really runs with, read now
    through one of the service's own pooled connections (the connection set-up
    the server uses, ``service.db.init``): SQLite's journal_mode and synchronous
    pragmas, or PostgreSQL's fsync, synchronous_commit and full_page_writes
    (``SHOW``, so whatever the server, database or role sets), and whether a
    commit is synced to disk before it returns."""
    from service import db

    with db.connection():
        if db.is_sqlite():
            import sqlite3

            journal = db.database.execute_sql("PRAGMA journal_mode").fetchone()[0].lower()
            level = db.database.execute_sql("PRAGMA synchronous").fetchone()[0]
            synchronous = _SQLITE_SYNCHRONOUS.get(level, str(level))
            # WAL with synchronous=NORMAL syncs only at checkpoints: the last commits
            # can roll back after a power loss (SQLite's documentation of the pragma).
            durable = synchronous in ("FULL", "EXTRA") and journal not in ("off", "memory")
            return {
                "engine": f"SQLite {sqlite3.sqlite_version}",
                "journal_mode": journal,
                "synchronous": synchronous,
                "durable": durable,
            }
        shown = {
            name: db.database.execute_sql(f"SHOW {name}").fetchone()[0]
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        }
    durable = (
        shown["fsync"] == "on"
        and shown["full_page_writes"] == "on"
        and shown["synchronous_commit"] != "off"
    )
    version = shown.pop("server_version").split()[0]
    return {"engine": f"PostgreSQL {version}", **shown, "durable": durable}


def broker_settings(url: str) -> str:
    """The broker as configured, and for Redis its persistence (CONFIG GET, read now)."""
    if not url:
        return "in-memory StubBroker inside the server process"
    scheme = url.partition("://")[0]
    if scheme != "redis":
        return scheme
    import redis

    try:
        with contextlib.closing(redis.Redis.from_url(url, socket_timeout=5)) as client:
            version = client.info("server").get("redis_version", "?")
            config = client.config_get("appendonly")
            config.update(client.config_get("appendfsync"))
            config.update(client.config_get("save"))
    except redis.RedisError as error:
        return f"Redis (persistence settings not readable: {error})"
    save = config.get("save") or "''"
    return (
        f"Redis {version}: appendonly={config.get('appendonly', '?')}, "
        f"appendfsync={config.get('appendfsync', '?')}, save={save}"
    )


def filesystem(path: str) -> str:
    """The type and device of the file system holding ``path`` (/proc/mounts)."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, kind = line.split()[:3]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, kind, device)
    return f"{best[1]} ({best[2]})"


def describe_database(
    scratch: Scratch, label: str = "", origin: str = "", data_dir: str = ""
) -> dict:
    """Prints the header line of the database (and broker) ``scratch`` uses, from
    what they report now; returns the database's settings. ``data_dir``: where a
    PostgreSQL started for the run keeps its files (SQLite's is the scratch's)."""
    settings = database_settings()
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k not in ("engine", "durable"))
    if not scratch.external:
        data_dir = scratch.dir
    if data_dir:
        shown += f"; files on {filesystem(data_dir)}"
    durable = (
        "commits durable (synced to disk before they return)"
        if settings["durable"]
        else "commits NOT durable (not synced to disk before they return)"
    )
    where = f" [{label}]" if label else ""
    print(
        f"- database{where}: {settings['engine']}{origin and f' ({origin})'}: {shown}; "
        f"{durable}; read at run time through the service's connection"
    )
    print(f"- broker{where}: {broker_settings(scratch.env['POSTS_BROKER_URL'])}")
    sys.stdout.flush()
    return settings


def footer(t0: float) -> None:
    print(f"- took {time.monotonic() - t0:.0f} s; load average at end {loadavg()}")
    sys.stdout.flush()


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name.removesuffix(".__main__") if spec else sys.argv[0]


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------- scratch


@dataclasses.dataclass
class Tenant:
    workspace_id: str
    key: str
    account_id: str


class Scratch:
    """A fresh service environment: a temporary var dir with its own SQLite file
    (or, with ``external``, the POSTS_DATABASE_URL / POSTS_BROKER_URL of the
    environment), a fixed secret, and the benchmark process's connection to it."""

    def __init__(self, name: str, external: bool = False):
        self.dir = tempfile.mkdtemp(prefix=f"posts-bench-{name}-")
        self.external = external
        if external:
            database_url = os.environ.get("POSTS_DATABASE_URL", "")
            broker_url = os.environ.get("POSTS_BROKER_URL", "")
            if not database_url.startswith("postgres") or not broker_url:
                raise SystemExit(
                    "--external needs POSTS_DATABASE_URL=postgresql://… and "
                    "POSTS_BROKER_URL=redis://… in the environment"
                )
        else:
            database_url = f"sqlite:///{self.dir}/posts.db"
            broker_url = ""
        self.env = {
            "POSTS_VAR_DIR": self.dir,
            "POSTS_DATABASE_URL": database_url,
            "POSTS_BROKER_URL": broker_url,
            "POSTS_SECRET_KEY": SECRET_KEY,
            "POSTS_INPROCESS_WORKER": "",
            "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,  # the loopback sinks and fakes
        }
        self.config = None

    def open(self) -> Scratch:
        """Points this process at the database and migrates it."""
        from service import crypto, db, migrations
        from service.config import Config

        if db.database.obj is not None and not db.database.is_closed():
            db.database.close()
        self.config = Config.from_env(self.env)
        db.init(self.config)
        crypto.configure(self.config)
        migrations.migrate()
        return self

    def use(self) -> Scratch:
        """Points this process at this scratch's database again (after another's)."""
        from service import crypto, db

        if db.database.obj is not None and not db.database.is_closed():
            db.database.close()
        db.init(self.config)
        crypto.configure(self.config)
        return self

    def tenant(self, name: str = "bench", platform: str = "x", **account) -> Tenant:
        """A workspace, a key granted to it, and an account (sandbox unless told)."""
        from service import admin

        workspace_id = admin.create_workspace(name)
        key = admin.create_api_key([workspace_id])
        account.setdefault("sandbox", True)
        account_id = admin.create_account(workspace_id, platform, handle=name, **account)
        return Tenant(workspace_id, key, account_id)

    def account(self, tenant: Tenant, platform: str, handle: str, **options) -> str:
        from service import admin

        options.setdefault("sandbox", True)
        return admin.create_account(tenant.workspace_id, platform, handle=handle, **options)

    def log(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.log")

    def close(self, keep: bool = False) -> None:
        from service import db

        with contextlib.suppress(Exception):
            if not db.database.is_closed():
                db.database.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ children


class Children:
    """Child processes stopped (SIGTERM, then SIGKILL) however the benchmark ends."""

    def __init__(self):
        self._all: list[Process] = []

    def add(self, process: Process) -> Process:
        self._all.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._all):
            with contextlib.suppress(Exception):
                process.stop(timeout=15)
        self._all.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def start_server(
    children: Children,
    scratch: Scratch,
    extra: dict | None = None,
    name: str = "server",
    processes: int = 1,
) -> ServerProcess:
    """``python -m service serve`` on a free port, waited for until SERVING; with
    ``processes`` > 1 (``serve --processes``), until each of them has logged that
    it serves (the health check reaches only the one its connection lands on)."""
    server = children.add(
        ServerProcess({**scratch.env, **(extra or {})}, scratch.log(name), processes=processes)
    )
    server.start()
    server.wait_serving(timeout=120)
    deadline = time.monotonic() + 120
    while processes > 1:
        with open(server.log_path) as log:
            if log.read().count(f"serving posts.v1.PostService on {server.address}") >= processes:
                break
        if time.monotonic() > deadline or server.popen.poll() is not None:
            raise RuntimeError(f"not all {processes} server processes serve; see {server.log_path}")
        time.sleep(0.1)
    return server


def start_echo(children: Children, scratch: Scratch, extra: dict | None = None) -> ServerProcess:
    """The bare echo server (tests.benchmarks.echo_server), run the same way."""
    echo = ServerProcess({**scratch.env, **(extra or {})}, scratch.log("echo"))
    echo.args = ["-m", "tests.benchmarks.echo_server"]
    children.add(echo).start()
    echo.wait_serving(timeout=60)
    return echo


@dataclasses.dataclass
class Backends:
    """What ``external_backends`` set up: where the database came from, the data
    directory and process ids of the servers it started, notes for the report."""

    origin: str
    data_dir: str = ""
    pids: dict[str, int] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)


def external_backends(stack: contextlib.ExitStack, fast_postgres: bool, who: str) -> Backends:
    """Points POSTS_DATABASE_URL and POSTS_BROKER_URL at a PostgreSQL and a Redis:
    the ones the environment names, or else servers started for the run in
    temporary directories (tests.backends), stopped with ``stack``; the
    PostgreSQL durable unless ``fast_postgres``. The environment is put back
    with ``stack`` too: a later benchmark in the same process must not find
    the URLs of servers stopped since."""
    from tests.backends import PostgresServer, RedisServer

    saved = {name: os.environ.get(name) for name in ("POSTS_DATABASE_URL", "POSTS_BROKER_URL")}

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    stack.callback(restore)
    if os.environ.get("POSTS_DATABASE_URL"):
        found = Backends("from POSTS_DATABASE_URL")
        if fast_postgres:
            note(f"{who}: --fast-postgres has no effect on a server given by URL")
    else:
        postgres = stack.enter_context(PostgresServer(durable=not fast_postgres))
        os.environ["POSTS_DATABASE_URL"] = postgres.create_database("posts_bench")
        found = Backends(
            "started for the run" + (", --fast-postgres" if fast_postgres else ""),
            str(postgres.data),
            {"PostgreSQL": postgres.process.pid},
        )
    if not os.environ.get("POSTS_BROKER_URL"):
        redis = stack.enter_context(RedisServer())
        os.environ["POSTS_BROKER_URL"] = redis.url
        found.pids["Redis"] = redis.process.pid
        found.notes.append("Redis started for the run (tests.backends)")
    return found


def run_child(module: str, args: list[str], env: dict | None = None, timeout: float = 900) -> dict:
    """Runs ``python -m module args`` to the end; returns the JSON of its last stdout line."""
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])
