"""Service processes for tests that kill and restart them: servers and workers."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: POSTS_EGRESS_ALLOW for service processes whose accounts and media are the fakes
#: (tests/fakes), which listen on 127.0.0.1: the rest of loopback stays refused.
FAKES_EGRESS_ALLOW = "127.0.0.1/32"


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python <args>`` in the repository with the given POSTS_* environment, to completion."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: ``provision_tenant``'s commands, each through ``service.cli.main`` as
#: ``python -m service`` runs it, in one interpreter (one start-up, not four).
_PROVISION = """
import contextlib, io, json, sys
from service.cli import main
from workers.inprocess import wire

name, options, migrate = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "migrate"

def cli(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args), wire=wire)
    if code:
        sys.exit(f"{' '.join(args[:3])} exited with {code}")
    return out.getvalue().strip()

if migrate:
    cli("migrate")
workspace = cli("admin", "workspace", "create", name)
key = cli("admin", "key", "create", "--workspace", workspace)
account = cli("admin", "account", "create", "--workspace", workspace, "--handle", name, *options)
print(json.dumps([workspace, key, account]))
"""


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python -m service <args>`` with the given POSTS_* environment, to completion."""
    return run_python(env, "-m", "service", *args)


def provision_tenant(env: dict[str, str], name: str, *account: str, migrate: bool = False):
    """A workspace ``name`` with a key and an account, made through the command
    line's commands as an operator would (``admin workspace create``, ``key
    create``, ``account create``; ``migrate`` first when asked); a
    ``tests.support.Tenant``. ``account``: the ``account create`` options after
    the workspace and handle (default: a sandbox X account)."""
    from tests.support import Tenant

    options = account or ("--platform", "x", "--sandbox")
    done = run_python(env, "-c", _PROVISION, name, json.dumps(options), "migrate" * migrate)
    assert done.returncode == 0, done.stderr
    workspace, key, account_id = json.loads(done.stdout)
    return Tenant(workspace, key, account_id)


def provision_webhook_tenant(
    env: dict[str, str], name: str, hook_url: str, token: str, migrate: bool = False
):
    """``provision_tenant`` with a webhook account posting to ``hook_url``."""
    return provision_tenant(
        env,
        name,
        "--platform",
        "webhook",
        "--base-url",
        hook_url,
        "--token",
        token,
        migrate=migrate,
    )


def status_field(pid: int, field: str) -> int | None:
    """A number of /proc/<pid>/status (VmRSS in KiB, Threads); None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _ephemeral_ports() -> range:
    """The ports the kernel picks for outgoing connections (and for bind to port 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low, high = (int(n) for n in ports.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


#: Where ``free_port`` looks: below the ephemeral range, so that no outgoing
#: connection takes a server's port while it is down for a restart (RabbitMQ's
#: relaunch once failed with ``dist_port_already_used`` for that reason).
_PORTS = range(20000, min(_ephemeral_ports().start, 32768))
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on right now, outside the ephemeral range
    and never handed out before in this process."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_PORTS}")


class Process:
    """One ``python -m <module> …`` child with the given POSTS_* environment."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: str):
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL, the whole process group (Dramatiq forks), and reap it."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM to the whole process group, without waiting for it to stop."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL when it does not stop in time."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode


class ServerProcess(Process):
    """``python -m service serve`` on a fixed loopback port."""

    def __init__(
        self, env: dict[str, str], log_path: str, port: int | None = None, processes: int = 1
    ):
        self.port = port or free_port()
        args = ["-m", "service", "serve"] + (
            ["--processes", str(processes)] if processes > 1 else []
        )
        super().__init__(args, {**env, "POSTS_LISTEN": f"127.0.0.1:{self.port}"}, log_path)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Polls the health service until it answers SERVING (or the deadline passes)."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.popen.returncode}; see {self.log_path}"
                    )
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"server on {self.address} not serving after {timeout}s")


class WorkerProcess(Process):
    """``python -m workers`` (Dramatiq worker processes, each dispatching and sweeping)."""

    #: What each Dramatiq worker process logs once its threads, dispatcher and sweeper run.
    READY = "Worker process is ready for action."

    def __init__(self, env: dict[str, str], log_path: str, processes: int = 1, threads: int = 4):
        super().__init__(
            ["-m", "workers", "--processes", str(processes), "--threads", str(threads)],
            env,
            log_path,
        )
        self.processes = processes
        self._log_from = 0

    def start(self) -> WorkerProcess:
        # The log is appended to across restarts: readiness counts from here.
        self._log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        return super().start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Polls the log until every worker process of this start has booted (or
        the deadline passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"workers exited ({self.popen.returncode}); see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(self._log_from)
                if log.read().count(self.READY.encode()) >= self.processes:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"workers not ready after {timeout}s; see {self.log_path}")
