"""Real PostgreSQL, Redis and RabbitMQ servers for the tests, started and stopped by them.

Each class starts one server from the Debian packages (``make test`` installs
them) in a temporary directory, listening on a free port on 127.0.0.1 only,
waits until it answers a real client (with a deadline), and stops it. They are
context managers, and every started server is also stopped at interpreter exit;
the server processes get a parent-death signal, so even a killed test process
does not leave them behind.

PostgreSQL runs its postmaster in the foreground as a child of the test process
(what ``pg_ctl start`` would run detached), so it can be stopped and restarted
like the others, and dies with the test process.

Call ``restart()`` from the thread that called ``start()`` (the main thread under
pytest): the parent-death signal follows the thread that started the process.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import logging
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.processes import free_port

START_TIMEOUT = 120.0  # seconds; RabbitMQ takes 5-15 s to boot here, 30 s on a busy machine
STOP_TIMEOUT = 30.0

_running: set[_Server] = set()

_SETPRIV = shutil.which("setpriv")  # util-linux, on every Debian


def _as(args: list, death_signal: int | None = None, user: str | None = None) -> list[str]:
    """``args`` run as ``user`` (None: as we are), killed by ``death_signal`` when
    the thread that started it ends. setpriv sets the parent-death signal after
    switching user (a switch would clear it), then execs: the pid stays the same."""
    args = [str(arg) for arg in args]
    if _SETPRIV is None:
        if user:
            return ["runuser", "-u", user, "--", *args]
        return args
    wrapper = [_SETPRIV]
    if user:
        wrapper += [f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    if death_signal:
        wrapper += ["--pdeathsig", signal.Signals(death_signal).name]
    return [*wrapper, "--", *args]


def _tail(path: pathlib.Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(
    ready, what: str, process: subprocess.Popen, log: pathlib.Path, timeout: float = START_TIMEOUT
) -> None:
    """Polls ``ready()`` (True, or raises) until it succeeds, the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if ready():
                return
        except Exception as error:  # noqa: BLE001  (not up yet: any client error)
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s ({last!r}):\n{_tail(log)}")


@contextlib.contextmanager
def _quiet(logger: str):
    """Silences ``logger`` (pika logs every refused connection and missing queue)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Server:
    """Shared life cycle: a temporary directory, one main process, start/stop/restart."""

    name = "server"

    def __init__(self):
        self.port = free_port()
        self.dir: pathlib.Path | None = None
        self.process: subprocess.Popen | None = None
        self.log = pathlib.Path(os.devnull)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Starts the server and waits until it answers; cleans up if it cannot."""
        _running.add(self)
        try:
            if self.dir is None:
                self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"posts-{self.name}-"))
                self.log = self.dir / f"{self.name}.log"
                self._prepare()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Stops the server and starts it again on the same port with the same data."""
        self._halt()
        self._launch()

    def stop(self) -> None:
        """Stops the server (if running) and removes its directory."""
        try:
            self._halt()
        finally:
            _running.discard(self)
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # subclasses -------------------------------------------------------------
    def _prepare(self) -> None:
        """Once, in the fresh directory: initialise what the server needs."""

    def _launch(self) -> None:
        raise NotImplementedError

    def _halt(self) -> None:
        self._terminate(self.process, signal.SIGTERM)
        self.process = None

    @staticmethod
    def _terminate(process: subprocess.Popen | None, sig: int, group: bool = False) -> None:
        """Sends ``sig`` and waits; SIGKILL (the whole group when ``group``) if it lingers."""
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if group else os.kill)(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        if group:  # whatever the leader left behind in its session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.wait(STOP_TIMEOUT)

    def _popen(
        self, args, *, death_signal=signal.SIGKILL, user=None, new_session=False, env=None
    ) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            return subprocess.Popen(
                _as(args, death_signal, user),
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )


# ------------------------------------------------------------------ PostgreSQL


def _postgres_bindir() -> pathlib.Path:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(re.sub(r"\D", "", p) or 0),
        reverse=True,
    )
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "initdb").exists():
            return pathlib.Path(candidate)
    raise RuntimeError("PostgreSQL server binaries (initdb) not found: run `make test-deps`")


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster: trust auth on loopback.

    By default (the tests) it trades durability for speed: fsync,
    synchronous_commit and full_page_writes off, so a commit is not on disk
    when it returns. ``durable=True`` (the benchmarks) leaves all three on,
    PostgreSQL's own defaults.
    """

    name = "postgres"

    def __init__(self, durable: bool = False):
        super().__init__()
        self.durable = durable
        self.bindir = _postgres_bindir()
        # initdb and postgres refuse to run as root.
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def data(self) -> pathlib.Path:
        return self.dir / "data"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The maintenance database ``postgres``."""
        return self.url_for("postgres")

    def _prepare(self) -> None:
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        initdb = subprocess.run(
            _as(
                [
                    self.bindir / "initdb",
                    "-D",
                    self.data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
                + ([] if self.durable else ["--no-sync"]),
                user=self.user,
            ),
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        durability = "on" if self.durable else "off"
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": durability,
            "synchronous_commit": durability,
            "full_page_writes": durability,
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _launch(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: it ends sessions and stops cleanly.
        self.process = self._popen(
            [self.bindir / "postgres", "-D", self.data], death_signal=signal.SIGINT, user=self.user
        )
        _wait_until(self._answers, "PostgreSQL", self.process, self.log)

    def _halt(self) -> None:
        self._terminate(self.process, signal.SIGINT)
        self.process = None

    def _answers(self) -> bool:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Runs one statement (autocommit) and returns its rows, if any."""
        import psycopg

        with psycopg.connect(self.url_for(database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Creates an empty database; returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)


# ----------------------------------------------------------------------- Redis


class RedisServer(_Server):
    """redis-server without persistence: a restart loses every key."""

    name = "redis"

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, database: int) -> str:
        """The URL of one of the server's numbered databases (queues kept apart)."""
        return f"redis://127.0.0.1:{self.port}/{database}"

    def _launch(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run `make test-deps`")
        self.process = self._popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ]
        )
        _wait_until(self.ping, "Redis", self.process, self.log)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def ping(self) -> bool:
        with contextlib.closing(self.client()) as client:
            return bool(client.ping())

    def flush(self) -> None:
        """Drops every key (Dramatiq's queues included)."""
        with contextlib.closing(self.client()) as client:
            client.flushall()


# -------------------------------------------------------------------- RabbitMQ


def _rabbit_script(name: str) -> str:
    # /usr/sbin/rabbitmq-server re-runs itself through ``su rabbitmq`` when
    # root, which drops our environment; the scripts behind it take it as is.
    direct = pathlib.Path("/usr/lib/rabbitmq/bin") / name
    if direct.exists():
        return str(direct)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make test-deps`")
    return found


class RabbitServer(_Server):
    """rabbitmq-server as its own node, with its own epmd, all on loopback.

    The default ``guest`` user may only connect from loopback, which is where we are.
    """

    name = "rabbitmq"

    def __init__(self):
        super().__init__()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"rabbit-{self.port}@localhost"
        self.epmd: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_for("/")

    def url_for(self, vhost: str) -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of this node's server and of ``rabbitmqctl`` for it."""
        d = self.dir
        return {
            **os.environ,
            "HOME": str(d),  # where the Erlang cookie is made and read
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": os.devnull,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _prepare(self) -> None:
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "disk_free_limit.absolute = 1MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")

    def _launch(self) -> None:
        env = self.env
        if self.epmd is None or self.epmd.poll() is not None:
            binary = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
            self.epmd = self._popen([binary, "-port", str(self.epmd_port)], env=env)
            _wait_until(lambda: _port_open(self.epmd_port), "epmd", self.epmd, self.log)
        # The script stops the node on SIGTERM; a session lets stop() reap it all.
        self.process = self._popen(
            [_rabbit_script("rabbitmq-server")],
            env=env,
            death_signal=signal.SIGTERM,
            new_session=True,
        )
        _wait_until(self._answers, "RabbitMQ", self.process, self.log)

    def _halt(self) -> None:
        self._terminate(self.process, signal.SIGTERM, group=True)
        self.process = None

    def stop(self) -> None:
        try:
            self._halt()
        finally:
            self._terminate(self.epmd, signal.SIGTERM)
            self.epmd = None
            super().stop()

    def _connect(self, vhost: str = "/"):
        import pika

        parameters = pika.URLParameters(self.url_for(vhost))
        parameters.connection_attempts = 1
        parameters.socket_timeout = 2
        parameters.blocked_connection_timeout = 5
        return pika.BlockingConnection(parameters)

    def _answers(self) -> bool:
        # The port opens late in the boot; until then pika would log every refusal.
        if not _port_open(self.port):
            return False
        with _quiet("pika"):
            self._connect().close()
        return True

    def ctl(self, *args: str) -> str:
        """Runs ``rabbitmqctl -n <node> …`` against this node; returns its output."""
        done = subprocess.run(
            [_rabbit_script("rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def add_vhost(self, vhost: str) -> str:
        """A new virtual host that ``guest`` may use; returns its URL (takes ~3 s)."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.url_for(vhost)

    def purge(self, *queues: str, vhost: str = "/") -> int:
        """Empties the named queues (those that exist); returns how many messages went."""
        import pika.exceptions

        removed = 0
        with _quiet("pika"), contextlib.closing(self._connect(vhost)) as connection:
            for queue in queues:
                channel = connection.channel()
                try:
                    removed += channel.queue_purge(queue).method.message_count
                except pika.exceptions.ChannelClosedByBroker as error:
                    if error.reply_code != 404:  # NOT_FOUND: never declared, nothing to purge
                        raise
                    continue
                channel.close()
        return removed

    def message_count(self, queue: str, vhost: str = "/") -> int:
        """Messages ready in ``queue`` (0 when it does not exist)."""
        import pika.exceptions

        with _quiet("pika"), contextlib.closing(self._connect(vhost)) as connection:
            channel = connection.channel()
            try:
                return channel.queue_declare(queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker as error:
                if error.reply_code == 404:
                    return 0
                raise


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()
