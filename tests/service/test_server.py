"""The server process: reflection and health without a key, and SIGTERM drains."""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.processes import ROOT, ServerProcess
from tests.processes import run_cli as run
from tests.support import wait_for

SECRET_KEY = "server-secret-key-0123456789abcdef-0123456789"


@pytest.fixture
def env(tmp_path):
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
    }
    assert run(env, "migrate").returncode == 0
    return env


def test_reflection_and_health_need_no_key(env, tmp_path):
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    try:
        server.wait_serving()
        grpcurl = os.path.join(ROOT, ".venv", "bin", "grpcurl")
        listed = subprocess.run([grpcurl, "-plaintext", server.address, "list"],
                                capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        described = subprocess.run(
            [grpcurl, "-plaintext", server.address, "describe", "posts.v1.PostService"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="posts.v1.PostService"), timeout=5
            )
    finally:
        server.stop()
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {
        "posts.v1.PostService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
    }  # fmt: skip
    assert "rpc UpdatePost" in described.stdout
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_and_exits_cleanly(env, tmp_path):
    log = tmp_path / "server.log"
    server = ServerProcess(env, str(log)).start()
    server.wait_serving()
    assert server.stop(timeout=30) == 0
    text = log.read_text()
    assert "draining" in text and "Worker has been shut down" in text


def test_serve_processes_share_one_port_and_stop_together(env, tmp_path, redis_server):
    # Given two server processes on one port (they need a broker: no embedded worker each)
    env = {**env, "POSTS_BROKER_URL": redis_server.url}
    server = ServerProcess(env, str(tmp_path / "server.log"), processes=2).start()
    try:
        server.wait_serving()
        # (spawn may add a resource tracker beside the two servers)
        children = wait_for(lambda: _children(server.popen.pid) if
                            len(_children(server.popen.pid)) >= 2 else None)  # fmt: skip
        # When each answers on the shared port (SO_REUSEPORT spreads new connections)
        for _ in range(4):
            with grpc.insecure_channel(server.address) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        code = server.stop(timeout=30)
    # Then SIGTERM drains them all and the parent exits cleanly
    assert code == 0
    names = {pid: _command(pid) for pid in children}
    # (spawn's resource tracker notices its parent gone a moment later)
    wait_for(lambda: not [pid for pid in children if _running(pid)], timeout=10,
             message=f"the children {names} to exit")  # fmt: skip


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode()[-80:]
    except OSError:
        return "(gone)"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper here)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
