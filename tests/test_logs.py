"""Logs: POSTS_LOG_FORMAT=json gives one JSON object per line with the context
(request id, workspace, post, job token, network, attempt), and no log line of
a whole run of the scenario tests holds a secret."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import grpc
import pytest

from tests.backends import PostgresServer
from tests.processes import ROOT, ServerProcess, provision_tenant
from tests.support import Api

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

SECRET_KEY = "logs-secret-key-0123456789abcdef-0123456789ab"
#: An API key's secret, as service.auth makes them: its id, a dot, 43 random characters.
API_KEY_SECRET = re.compile(r"key_[0-9A-Z]{26}\.[A-Za-z0-9_-]{40,}")


def json_lines(path: str) -> list[dict]:
    """Every line of a process's log, each parsed as one JSON object."""
    with open(path) as log:
        lines = [line for line in log.read().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


@pytest.mark.timeout(180)
def test_json_lines_carry_the_request_and_the_delivery_they_belong_to(tmp_path):
    with PostgresServer() as postgres:
        env = {
            "POSTS_DATABASE_URL": postgres.create_database("logs"),
            "POSTS_VAR_DIR": str(tmp_path),
            "POSTS_SECRET_KEY": SECRET_KEY,
            "POSTS_LOG_FORMAT": "json",
        }
        tenant = provision_tenant(env, "logs", migrate=True)
        server = ServerProcess(env, str(tmp_path / "server.log"))
        try:
            server.start()
            server.wait_serving(timeout=60)
            with grpc.insecure_channel(server.address) as channel:
                stub = posts_pb2_grpc.PostServiceStub(channel)
                api = Api(stub)
                # Given a post delivered by the server's worker
                post = api.create(tenant, text="logged", status=pb.STATUS_CHANGE_PUBLISH)
                api.wait_published(tenant, post.post_id, timeout=30)
                # And a call, with its own request id, that logs (the database is away)
                postgres._halt()
                try:
                    with pytest.raises(grpc.RpcError):
                        stub.GetPostStatus(
                            pb.GetPostStatusRequest(post_id=post.post_id),
                            metadata=(
                                ("authorization", f"Bearer {tenant.key}"),
                                ("x-request-id", "req-42"),
                            ),
                            timeout=30,
                        )
                finally:
                    postgres._launch()
        finally:
            server.stop(timeout=20)
        lines = json_lines(str(tmp_path / "server.log"))

    # Then every line is a JSON object with time, level, logger and message
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    # ... the delivery's line names the post, its job, network and attempt
    published = [
        line
        for line in lines
        if line.get("post") == post.post_id and "PUBLISHED" in line["message"]
    ]
    assert len(published) == 1, lines
    assert published[0]["network"] == "x" and published[0]["attempt"] == 1
    assert published[0]["workspace"] == tenant.workspace_id and published[0]["job_token"]
    # ... and the refused call's line names its request (not its workspace: the
    # key could not be checked without the database)
    refused = [line for line in lines if line.get("request_id") == "req-42"]
    assert refused and "database unavailable" in refused[0]["message"], lines
    # ... and none holds the API key or the secret key
    text = json.dumps(lines)
    assert tenant.key not in text and SECRET_KEY not in text


@pytest.mark.timeout(600)
def test_no_log_line_of_the_scenario_tests_holds_a_secret(tmp_path):
    from tests.conftest import SECRET_KEY as SUITE_SECRET_KEY

    # Given the scenario tests run on every backend, everything logged kept
    log_file = tmp_path / "scenarios.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/service/test_scenarios.py",
            f"--log-file={log_file}",
            "--log-file-level=DEBUG",
            "--log-file-format=%(levelname)s %(name)s %(message)s",
        ],
        cwd=ROOT,
        env={**os.environ, "POSTS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    text = log_file.read_text()
    # (they did log: deliveries at least)
    assert text.count("PUBLISHED") >= 10, text[-2000:]
    # Then no line holds an API key, a bearer token or the secret key
    assert not API_KEY_SECRET.search(text), API_KEY_SECRET.search(text).group(0)
    assert "Bearer " not in text
    assert SUITE_SECRET_KEY not in text
