"""The server process: reflection and health without a key, and SIGTERM drains."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fakes.mastodon import FakeMastodon
from tests.processes import FAKES_EGRESS_ALLOW, ROOT, ServerProcess, provision_tenant
from tests.processes import run_cli as run
from tests.support import Api, wait_for

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

SECRET_KEY = "server-secret-key-0123456789abcdef-0123456789"


@pytest.fixture
def env(tmp_path):
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
    }
    assert run(env, "migrate").returncode == 0
    return env


def test_reflection_and_health_need_no_key(env, tmp_path):
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    try:
        server.wait_serving()
        grpcurl = os.path.join(ROOT, ".venv", "bin", "grpcurl")
        listed = subprocess.run(
            [grpcurl, "-plaintext", server.address, "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        described = subprocess.run(
            [grpcurl, "-plaintext", server.address, "describe", "posts.v1.PostService"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="posts.v1.PostService"), timeout=5
            )
    finally:
        server.stop()
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {
        "posts.v1.PostService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert "rpc UpdatePost" in described.stdout
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_clean_start_and_stop_log_no_warning(env, tmp_path):
    # The in-process worker runs two Dramatiq workers (deliveries, webhooks) on one
    # broker, which warns at the second's middleware unless told it is expected.
    log = tmp_path / "server.log"
    server = ServerProcess(env, str(log)).start()
    try:
        server.wait_serving()
    finally:
        assert server.stop() == 0
    text = log.read_text()
    assert "serving posts.v1.PostService on" in text
    assert [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line] == []
    # "stopped" is said last, once the worker inside has shut down too
    lines = text.splitlines()
    assert lines[-1].endswith(" stopped"), lines[-3:]
    assert any("Worker has been shut down" in line for line in lines[:-1]), lines[-5:]


def test_sigterm_drains_an_rpc_and_a_delivery_in_flight_and_exits_cleanly(
    env, tmp_path, postgres_server
):
    import psycopg

    # On PostgreSQL, where the test can see the slow RPC waiting inside the
    # server (on a row lock the test holds); no broker: the embedded worker
    mastodon = FakeMastodon(token="m-token", username="drain").start()
    database = f"drain_{uuid.uuid4().hex[:16]}"
    env = {**env, "POSTS_DATABASE_URL": postgres_server.create_database(database)}
    assert run(env, "migrate").returncode == 0
    workspace = _created(run(env, "admin", "workspace", "create", "drain"))
    key = _created(run(env, "admin", "key", "create", "--workspace", workspace))
    account = _created(
        run(
            env,
            "admin",
            "account",
            "create",
            "--workspace",
            workspace,
            "--platform",
            "mastodon",
            "--handle",
            "drain",
            "--base-url",
            mastodon.base_url,
            "--token",
            "m-token",
        )
    )
    metadata = (("authorization", f"Bearer {key}"),)
    log = tmp_path / "server.log"
    row_lock = psycopg.connect(env["POSTS_DATABASE_URL"])  # its transaction holds the lock
    server = ServerProcess(env, str(log)).start()

    def lock_waits() -> int:
        [(waiting,)] = postgres_server.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'",
            database,
        )
        return waiting

    try:
        server.wait_serving()
        with grpc.insecure_channel(server.address) as channel:
            stub = posts_pb2_grpc.PostServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)

            def create(text: str, status) -> posts_pb2.Post:
                request = posts_pb2.CreatePostRequest(
                    account_id=account,
                    post_type=posts_pb2.POST_TYPE_POST,
                    text=text,
                    status=status,
                )
                return stub.CreatePost(request, metadata=metadata, timeout=10).post

            def draining() -> bool:
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.RpcError:
                    return True  # no longer taking calls
                return answer.status != health_pb2.HealthCheckResponse.SERVING

            # Given a delivery in flight: its send held at the network
            draft = create("draft", posts_pb2.STATUS_CHANGE_DRAFT)
            mastodon.hold(timeout=30)
            sent = create("delivered while draining", posts_pb2.STATUS_CHANGE_PUBLISH)
            wait_for(lambda: mastodon.in_flight, message="the delivery's send to arrive")
            # And a slow RPC in flight: an edit waiting for a row lock the test holds
            row_lock.execute("SELECT id FROM post WHERE id = %s FOR UPDATE", (draft.post_id,))
            edit = stub.UpdatePost.future(
                posts_pb2.UpdatePostRequest(post_id=draft.post_id, text="edited while draining"),
                metadata=metadata,
                timeout=30,
            )
            wait_for(lock_waits, message="the UpdatePost to wait for the row lock")

            # When SIGTERM arrives, and the drain has begun with both still held
            server.terminate()
            wait_for(draining, message="health to stop answering SERVING")
            assert mastodon.in_flight and not edit.done()
            # Then the RPC, let go, answers OK
            row_lock.commit()
            edited = edit.result(timeout=30).post
        # And once the worker is stopping (after the RPCs), its send, let go, finishes
        wait_for(lambda: "Shutting down" in log.read_text(), message="the worker to stop")
        assert mastodon.in_flight
        mastodon.release()
        code = server.popen.wait(timeout=30)
    finally:
        row_lock.close()
        mastodon.release()
        server.stop()
        mastodon.stop()
    assert edited.text == "edited while draining"
    # And the worker finished its delivery before the process exited 0
    assert code == 0
    [(status,)] = postgres_server.execute(
        f"SELECT status FROM post WHERE id = '{sent.post_id}'", database
    )
    assert status == "published"
    with mastodon.lock:
        assert [entry["text"] for entry in mastodon.live] == ["delivered while draining"]
    text = log.read_text()
    assert "draining" in text and "Worker has been shut down" in text


def test_serve_processes_share_one_port_and_stop_together(env, tmp_path, redis_server):
    # Given two server processes on one port (they need a broker: no embedded worker each)
    env = {**env, "POSTS_BROKER_URL": redis_server.url}
    server = ServerProcess(env, str(tmp_path / "server.log"), processes=2).start()
    try:
        server.wait_serving()
        # (spawn may add a resource tracker beside the two servers)
        children = wait_for(
            lambda: _children(server.popen.pid) if len(_children(server.popen.pid)) >= 2 else None
        )
        # When health is checked on fresh connections (SO_REUSEPORT spreads new
        # connections over the listening processes) until two processes answered
        answered: dict[int, int] = {}  # pid -> SERVING answers

        def two_answered() -> bool:
            pid, status = _health_check(server.address)
            assert status == health_pb2.HealthCheckResponse.SERVING, (pid, status)
            answered[pid] = answered.get(pid, 0) + 1
            return len(answered) >= 2

        try:
            wait_for(
                two_answered, timeout=30, interval=0.05, message="a second server process to answer"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; answers by pid: {answered}") from None
        children = _children(server.popen.pid)
        text = (tmp_path / "server.log").read_text()
    finally:
        code = server.stop(timeout=30)
    # And the parent logged its start: how many processes (their pids), where, on what
    started = re.search(
        r"serving posts\.v1\.PostService with 2 processes on (\S+) \(pids (\d+),"
        r" (\d+); database (\S+), broker (\S+)\)",
        text,
    )
    assert started, text
    assert started.group(1) == server.address
    assert {int(started.group(2)), int(started.group(3))} == set(answered)
    assert started.group(4, 5) == (env["POSTS_DATABASE_URL"], redis_server.url)
    # Then two distinct server processes answered, both children of the started one
    assert len(answered) >= 2 and os.getpid() not in answered, answered
    assert set(answered) <= set(children), (answered, children)
    # And SIGTERM drains them all and the parent exits cleanly
    assert code == 0
    names = {pid: _command(pid) for pid in children}
    # (spawn's resource tracker notices its parent gone a moment later)
    wait_for(
        lambda: not [pid for pid in children if _running(pid)],
        timeout=10,
        message=f"the children {names} to exit",
    )
    # And its stop, with each child's exit code
    stopped = (tmp_path / "server.log").read_text()
    assert "signal 15: draining the 2 server processes" in stopped
    assert "stopped: the 2 server processes exited (codes 0, 0)" in stopped


def _created(result: subprocess.CompletedProcess) -> str:
    """The id an admin ``create`` printed."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _health_check(address: str) -> tuple[int, int]:
    """One health check on a new connection: (the answering process's id, the status)."""
    from service.interceptors import PID_METADATA

    # A channel of its own subchannels, or it would reuse an earlier connection
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(address, options=options) as channel:
        answer, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(dict(call.initial_metadata())[PID_METADATA]), answer.status


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


def _refused(process: ServerProcess, timeout: float = 30.0) -> str:
    """What a server process that must refuse to start wrote, once it exited 2."""
    try:
        code = process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.stop()
        raise AssertionError(f"{process.args} kept running on {process.address}") from None
    with open(process.log_path) as log:
        text = log.read()
    assert code == 2, text
    assert "Traceback" not in text, text
    return text


def test_a_second_server_on_the_same_port_is_refused_in_one_line(env, tmp_path):
    # Given a server on a port
    first = ServerProcess(env, str(tmp_path / "first.log")).start()
    try:
        first.wait_serving()
        # When a second one, on a database of its own, starts on the same port
        other = {
            **env,
            "POSTS_VAR_DIR": str(tmp_path / "other"),
            "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/other/posts.db",
        }
        assert run(other, "migrate").returncode == 0
        second = ServerProcess(other, str(tmp_path / "second.log"), port=first.port).start()
        # Then it exits 2 saying so in one line, and the first one serves on alone
        text = _refused(second)
        assert text.splitlines() == [
            (
                f"error: cannot listen on {first.address}: address already in use (another server"
                " runs there; set POSTS_LISTEN to another port, or stop it)"
            )
        ]
        with grpc.insecure_channel(first.address) as channel:
            assert (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=5)
                .status
                == health_pb2.HealthCheckResponse.SERVING
            )
    finally:
        assert first.stop() == 0


def test_a_second_embedded_server_on_the_same_database_is_refused_until_the_first_stops(
    env, tmp_path
):
    # Given an embedded server (its worker inside) on a database
    first = ServerProcess(env, str(tmp_path / "first.log")).start()
    try:
        first.wait_serving()
        # When a second one starts on the same database, on another port
        second = ServerProcess(env, str(tmp_path / "second.log")).start()
        # Then it exits 2, naming the database and the first one's pid
        database = env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")
        assert _refused(second).splitlines() == [
            (
                f"error: {database} is in use by another server (pid {first.popen.pid}, holding"
                f" {database}.lock): the embedded default runs one server per database; stop that"
                " one, or use PostgreSQL and POSTS_BROKER_URL for several"
            )
        ]
    finally:
        assert first.stop() == 0
    # And once the first has stopped, (even killed) the database is free again
    third = ServerProcess(env, str(tmp_path / "third.log")).start()
    try:
        third.wait_serving()
        third.kill()
        fourth = ServerProcess(env, str(tmp_path / "fourth.log")).start()
        fourth.wait_serving()
    finally:
        fourth.stop()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_embedded_worker_holds_its_database_alone(database, tmp_path, request):
    from service.config import Config, ConfigError
    from workers.inprocess import DatabaseLock

    env = {"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": SECRET_KEY}
    if database == "postgresql":
        postgres = request.getfixturevalue("postgres_server")
        env["POSTS_DATABASE_URL"] = postgres.create_database(f"lock_{uuid.uuid4().hex[:12]}")
    config = Config.from_env(env)
    assert config.embedded
    # Given one embedded worker's lock on the database
    first = DatabaseLock.take(config)
    try:
        # When another takes it (another process, or another open of it here), it is refused
        with pytest.raises(ConfigError, match="is in use by another server"):
            DatabaseLock.take(config)
    finally:
        first.release()
    # And once released, it can be taken again
    DatabaseLock.take(config).release()


def _embedded_postgres_env(request, tmp_path) -> dict[str, str]:
    """The environment of an embedded server (no broker) on a fresh PostgreSQL database."""
    postgres = request.getfixturevalue("postgres_server")
    return {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": postgres.create_database(f"lock_{uuid.uuid4().hex[:12]}"),
        "POSTS_SECRET_KEY": SECRET_KEY,
    }


def _lock_config(request, tmp_path):
    """An embedded configuration on a fresh PostgreSQL database."""
    from service.config import Config

    return Config.from_env(_embedded_postgres_env(request, tmp_path))


def _on_lock_sessions(url: str, select: str, granted: bool) -> list[tuple]:
    """``select`` over the sessions of ``url``'s database that hold (``granted``) or
    wait for the embedded worker's advisory lock (their ``pid`` in scope)."""
    import psycopg

    from workers.inprocess import DatabaseLock

    with psycopg.connect(url, autocommit=True) as admin:
        return admin.execute(
            f"SELECT {select} FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND granted = %s AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            (DatabaseLock.ADVISORY_KEY, granted),
        ).fetchall()


def _drop_lock_connection(url: str) -> None:
    """Ends the session holding the embedded worker's advisory lock on ``url``'s
    database, as a database restart or a dropped link would."""
    # Waits (up to 5 s) for the session to end: its lock is free on return.
    ended = _on_lock_sessions(url, "pg_terminate_backend(pid, 5000)", granted=True)
    assert ended == [(True,)], ended


def _advisory_waiters(url: str) -> int:
    [(count,)] = _on_lock_sessions(url, "count(*)", granted=False)
    return count


def test_a_postgresql_lock_whose_connection_dropped_is_taken_again(request, tmp_path):
    from service.config import ConfigError
    from workers.inprocess import DatabaseLock

    config = _lock_config(request, tmp_path)
    lost: list[bool] = []
    # Given the embedded worker's lock, whose connection then drops
    first = DatabaseLock.take(config, on_lost=lambda: lost.append(True), check_every=None)
    try:
        _drop_lock_connection(config.database_url)
        # When it is checked before any other server came
        held = first.check()
        # Then it is held again, on a new connection: another server is still refused
        assert held and lost == []
        with pytest.raises(ConfigError, match="is in use by another server"):
            DatabaseLock.take(config, check_every=None)
    finally:
        first.release()


def test_a_postgresql_lock_taken_by_another_server_meanwhile_stops_the_first(request, tmp_path):
    from workers.inprocess import DatabaseLock

    config = _lock_config(request, tmp_path)
    lost: list[bool] = []
    # Given the embedded worker's lock, whose connection drops
    first = DatabaseLock.take(config, on_lost=lambda: lost.append(True), check_every=None)
    _drop_lock_connection(config.database_url)
    # When another server takes the database before the first checks
    second = DatabaseLock.take(config, check_every=None)
    try:
        # Then the first finds it lost, and says so once
        assert first.check() is False
        assert first.check() is False
        assert lost == [True]
    finally:
        second.release()
        first.release()


def test_an_embedded_server_on_postgresql_that_loses_its_database_stops_delivering(
    request, tmp_path
):
    import psycopg

    from workers.inprocess import DatabaseLock

    env = _embedded_postgres_env(request, tmp_path)
    url = env["POSTS_DATABASE_URL"]
    assert run(env, "migrate").returncode == 0
    # Given an embedded server on PostgreSQL (its worker inside, holding the lock)
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    rival = psycopg.connect(url, autocommit=True)
    try:
        server.wait_serving()
        # When another server waits for the lock, and the first's connection drops
        # (the waiter is granted the lock at once, before the first can take it back)
        queued = threading.Thread(
            target=rival.execute, args=("SELECT pg_advisory_lock(%s)", (DatabaseLock.ADVISORY_KEY,))
        )
        queued.start()
        wait_for(lambda: _advisory_waiters(url) == 1)
        _drop_lock_connection(url)
        queued.join(timeout=10)
        assert not queued.is_alive()

        # Then, at its next check, it stops its worker and says so, and still serves
        def said_so() -> bool:
            with open(server.log_path) as log:
                text = log.read()
            return "Worker has been shut down" in text and "delivery stopped in this server" in text

        wait_for(said_so, timeout=3 * DatabaseLock.CHECK_EVERY + 10)
        with grpc.insecure_channel(server.address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        rival.close()
        assert server.stop() == 0


def test_an_embedded_server_on_postgresql_leaves_posts_with_live_leases_to_the_sweeper(
    request, tmp_path
):
    import psycopg

    env = _embedded_postgres_env(request, tmp_path)
    url = env["POSTS_DATABASE_URL"]
    tenant = provision_tenant(env, "restart", migrate=True)
    # Given two posts some worker was delivering: one lease run out, one live
    # (its server may have lost its lock and still be running)
    first = ServerProcess(env, str(tmp_path / "first.log")).start()
    try:
        first.wait_serving()
        with grpc.insecure_channel(first.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            expired, live = (api.create(tenant, text=text).post_id for text in ("old", "new"))
    finally:
        assert first.stop() == 0
    now_us = int(time.time() * 1e6)
    with psycopg.connect(url, autocommit=True) as conn:
        for post_id, lease_us in ((expired, now_us - 1_000_000), (live, now_us + 3_600_000_000)):
            conn.execute(
                "UPDATE post SET status = 'processing', job_token = %s, attempts = 1,"
                " lease_expires_at = %s WHERE id = %s",
                (f"token-{post_id[-8:]}", lease_us, post_id),
            )
    # When a server starts on the database
    second = ServerProcess(env, str(tmp_path / "second.log")).start()
    try:
        second.wait_serving()
        with grpc.insecure_channel(second.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            # Then it takes over the one whose lease ran out, and delivers it
            api.wait_published(tenant, expired)
        # And leaves the live one as it was, to the sweeper once its lease ends
        with psycopg.connect(url, autocommit=True) as conn:
            [row] = conn.execute(
                "SELECT status, job_token FROM post WHERE id = %s", (live,)
            ).fetchall()
        assert row == ("processing", f"token-{live[-8:]}")
    finally:
        assert second.stop() == 0
