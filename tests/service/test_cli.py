"""The command line: admin commands print the new id alone, and the demo's
grpcurl lines work as pasted against a running server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.processes import ROOT, ServerProcess
from tests.processes import run_cli as run

SECRET_KEY = "cli-secret-key-0123456789abcdef-0123456789"


@pytest.fixture
def env(tmp_path):
    return {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def test_serve_refuses_an_unmigrated_database(env):
    result = run(env, "serve")
    assert result.returncode == 2
    assert "migrate" in result.stderr


def test_each_create_prints_the_new_id_alone_on_stdout(env):
    assert run(env, "migrate").returncode == 0
    workspace = run(env, "admin", "workspace", "create", "acme").stdout
    assert re.fullmatch(r"wks_[0-9A-Z]{26}\n", workspace)
    key = run(env, "admin", "key", "create", "--workspace", workspace.strip()).stdout
    assert re.fullmatch(r"key_[0-9A-Z]{26}\.[\w-]{43}\n", key)
    account = run(env, "admin", "account", "create", "--workspace", workspace.strip(),
                  "--platform", "mastodon", "--handle", "acme",
                  "--base-url", "http://127.0.0.1:9", "--token", "secret-token").stdout  # fmt: skip
    assert re.fullmatch(r"acc_[0-9A-Z]{26}\n", account)


def test_a_bad_admin_request_is_a_clear_error_not_a_traceback(env):
    assert run(env, "migrate").returncode == 0
    result = run(env, "admin", "key", "create", "--workspace", "wks_nope")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no workspace wks_nope")


def test_the_demo_lines_work_as_pasted(env, tmp_path):
    # Given a migrated database and a running server
    assert run(env, "migrate").returncode == 0
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    try:
        server.wait_serving()
        # When the demo's lines are pasted into a shell
        demo = run({**env, "POSTS_LISTEN": server.address}, "demo")
        assert demo.returncode == 0, demo.stderr
        shell = subprocess.run(
            ["bash", "-e", "-o", "pipefail"], input=demo.stdout, cwd=ROOT,
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    # Then every line succeeded: the draft was published, the scheduled post cancelled
    assert shell.returncode == 0, shell.stderr
    assert "posts.v1.PostService" in shell.stdout
    statuses = [answer["post"]["status"] for answer in _answers(shell.stdout)]
    published, read_back, *later = statuses
    assert published == "POST_STATUS_PENDING", statuses
    # (read back at once: queued, in flight or already live)
    assert read_back in {"POST_STATUS_PENDING", "POST_STATUS_PROCESSING",
                         "POST_STATUS_PUBLISHED"}, statuses  # fmt: skip
    assert later == ["POST_STATUS_SCHEDULED", "POST_STATUS_CANCELLED"], statuses
    # And a second run reuses the demo workspace and account, with a fresh key
    again = run({**env, "POSTS_LISTEN": server.address}, "demo")
    ids = re.compile(r"KEY='([^']+)'; WKS='([^']+)'; ACC='([^']+)'")
    first, second = ids.search(demo.stdout).groups(), ids.search(again.stdout).groups()
    assert first[1:] == second[1:] and first[0] != second[0]


def _answers(stdout: str) -> list[dict]:
    """The JSON answers grpcurl printed, in order (the other lines hold no braces)."""
    decoder, answers, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) != -1:
        answer, at = decoder.raw_decode(stdout, start)
        answers.append(answer)
    return answers
