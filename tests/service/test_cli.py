"""The command line: admin commands print the new id alone, and the demo's
grpcurl lines work as pasted against a running server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from service.crypto import Keyring
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


def _stored_credentials(env, account_id: str) -> str:
    """The account's credentials as stored (encrypted), read straight from the file."""
    with sqlite3.connect(env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        (row,) = database.execute("SELECT credentials FROM account WHERE id = ?", (account_id,))
    return row[0]


def _workspace(env) -> str:
    assert run(env, "migrate").returncode == 0
    return run(env, "admin", "workspace", "create", "acme").stdout.strip()


def _create_account(env, workspace, *token_args, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service", "admin", "account", "create", "--workspace", workspace,
         "--platform", "mastodon", "--handle", "acme", "--base-url", "http://127.0.0.1:9",
         *token_args],
        cwd=ROOT, env={**os.environ, **env}, input=stdin, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("source", ["stdin", "file", "argument"])
def test_account_credentials_come_from_stdin_a_file_or_the_argument(env, tmp_path, source):
    workspace = _workspace(env)
    token = "network-token-0123456789"
    if source == "stdin":
        created = _create_account(env, workspace, "--token", "-", stdin=f"{token}\n")
    elif source == "file":
        (tmp_path / "token").write_text(f"{token}\n")
        created = _create_account(env, workspace, "--token-file", str(tmp_path / "token"))
    else:
        created = _create_account(env, workspace, "--token", token)
    assert created.returncode == 0, created.stderr
    account = created.stdout.strip()
    stored = _stored_credentials(env, account)
    assert token not in stored
    assert Keyring([SECRET_KEY.encode()]).decrypt(stored) == token
    assert token not in created.stdout + created.stderr


def test_empty_or_missing_credentials_are_a_clear_error(env, tmp_path):
    workspace = _workspace(env)
    (tmp_path / "empty").write_text("\n")
    for args, stdin, complaint in [
        (("--token", "-"), "", "error: --token -: no credentials on stdin"),
        (("--token-file", str(tmp_path / "empty")), None, f"error: --token-file {tmp_path}/empty is empty"),
        (("--token-file", str(tmp_path / "nope")), None, f"error: --token-file {tmp_path}/nope: No such file"),
    ]:  # fmt: skip
        result = _create_account(env, workspace, *args, stdin=stdin)
        assert result.returncode == 2 and result.stderr.startswith(complaint), result.stderr


def _stored(env, account_id: str, column: str) -> str:
    with sqlite3.connect(env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        (row,) = database.execute(f"SELECT {column} FROM account WHERE id = ?", (account_id,))
    return row[0]


def test_refresh_credentials_come_from_stdin_files_or_arguments_and_are_stored_encrypted(
    env, tmp_path
):
    workspace = _workspace(env)
    (tmp_path / "client-secret").write_text("client-secret-0123456789\n")
    created = _create_account(
        env, workspace, "--token", "access-token-0123456789",
        "--refresh-token", "-", "--client-id", "client-id-0123456789",
        "--client-secret-file", str(tmp_path / "client-secret"),
        stdin="refresh-token-0123456789\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    account = created.stdout.strip()
    keyring = Keyring([SECRET_KEY.encode()])
    for column, value in [("credentials", "access-token-0123456789"),
                          ("refresh_token", "refresh-token-0123456789"),
                          ("client_id", "client-id-0123456789"),
                          ("client_secret", "client-secret-0123456789")]:  # fmt: skip
        stored = _stored(env, account, column)
        assert value not in stored, column
        assert keyring.decrypt(stored) == value, column
    # Two of them cannot both read stdin; an empty one is named
    both = _create_account(env, workspace, "--token", "-", "--refresh-token", "-", stdin="x\n")
    assert both.returncode == 2
    assert both.stderr.startswith("error: --token and --refresh-token both read stdin"), both.stderr
    empty = _create_account(env, workspace, "--client-secret", "-", stdin="\n")
    assert empty.returncode == 2
    assert empty.stderr.startswith("error: --client-secret -: no OAuth client secret on stdin")
    # And a rotation re-encrypts them all, not only the access token
    new_key = "rotated-secret-key-0123456789abcdef-01234567"
    rotated = run({**env, "POSTS_SECRET_KEY": f"{new_key},{SECRET_KEY}"}, "admin", "secrets",
                  "rotate")  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    new_only = Keyring([new_key.encode()])
    assert new_only.decrypt(_stored(env, account, "refresh_token")) == "refresh-token-0123456789"
    assert new_only.decrypt(_stored(env, account, "client_secret")) == "client-secret-0123456789"


def test_secrets_rotate_encrypts_every_credential_again_with_the_first_key(env):
    new_key = "rotated-secret-key-0123456789abcdef-01234567"
    workspace = _workspace(env)
    accounts = [_create_account(env, workspace, "--token", "-", stdin=f"token-{n}").stdout.strip()
                for n in range(3)]  # fmt: skip
    bare = _create_account(env, workspace).stdout.strip()  # no credentials: nothing to rotate
    # When the new key is put in front of the old one, and the credentials rotated
    rotated_env = {**env, "POSTS_SECRET_KEY": f"{new_key},{SECRET_KEY}"}
    result = run(rotated_env, "admin", "secrets", "rotate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "re-encrypted the credentials of 3 account(s) with the first secret key\n"
    # Then the new key alone opens them all: the old one can be retired
    new_only = Keyring([new_key.encode()])
    for n, account in enumerate(accounts):
        assert new_only.decrypt(_stored_credentials(env, account)) == f"token-{n}"
    assert _stored_credentials(env, bare) == ""
    # And with no key that opens them, nothing changes and the error names no secret
    before = [_stored_credentials(env, a) for a in accounts]
    other = "unrelated-secret-key-0123456789abcdef-0123"
    refused = run({**env, "POSTS_SECRET_KEY": other}, "admin", "secrets", "rotate")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: no configured key decrypts the credentials of 3")
    assert other not in refused.stderr and new_key not in refused.stderr
    assert [_stored_credentials(env, a) for a in accounts] == before


def test_key_create_expires_and_revoke(env):
    workspace = _workspace(env)
    created = run(env, "admin", "key", "create", "--workspace", workspace, "--expires", "30d")
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.partition(".")[0]
    listed = run(env, "admin", "key", "list", "--workspace", workspace).stdout.splitlines()[1]
    expires = dt.datetime.fromisoformat(listed.split()[4])
    in_30_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs(expires - in_30_days) < dt.timedelta(minutes=1)
    # A time already past, or no time at all, is refused
    past = run(env, "admin", "key", "create", "--workspace", workspace,
               "--expires", "2020-01-01T00:00:00Z")  # fmt: skip
    assert past.returncode == 2 and "already past" in past.stderr
    # Revoking says when; again, that it already was; an unknown key is an error
    first = run(env, "admin", "key", "revoke", key_id)
    assert re.fullmatch(rf"{key_id} revoked at \S+Z\n", first.stdout), first.stderr
    again = run(env, "admin", "key", "revoke", key_id)
    assert again.returncode == 0 and "was already revoked at" in again.stdout
    unknown = run(env, "admin", "key", "revoke", "key_01ABCDEFGHJKMNPQRSTVWXYZ00")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no key key_01")


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
