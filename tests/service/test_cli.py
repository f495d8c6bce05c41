"""The command line: admin commands print the new id alone, and the demo's
grpcurl lines work as pasted against a running server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys

import peewee
import pytest

from service import db
from service.config import Config
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
    account = run(
        env,
        "admin",
        "account",
        "create",
        "--workspace",
        workspace.strip(),
        "--platform",
        "mastodon",
        "--handle",
        "acme",
        "--base-url",
        "http://127.0.0.1:9",
        "--token",
        "secret-token",
    ).stdout
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


def _store_subscription(env, workspace: str, keyring: Keyring) -> str:
    """A webhook subscription whose signing secret is "whsec_rotation" under
    ``keyring``, written straight into the file (made by the API otherwise)."""
    with sqlite3.connect(env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        database.execute(
            "INSERT INTO webhook_subscription (id, workspace_id, url, event_types, description,"
            " state, secret, last_error, consecutive_failures, created_at)"
            " VALUES ('whs_rotation', ?, 'http://127.0.0.1:9/', '', '', 'active', ?, '', 0, 0)",
            (workspace, keyring.encrypt("whsec_rotation")),
        )
    return "whs_rotation"


def _stored_subscription_secret(env, subscription_id: str) -> str:
    with sqlite3.connect(env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        (row,) = database.execute(
            "SELECT secret FROM webhook_subscription WHERE id = ?", (subscription_id,)
        )
    return row[0]


def _workspace(env) -> str:
    assert run(env, "migrate").returncode == 0
    return run(env, "admin", "workspace", "create", "acme").stdout.strip()


def _create_account(env, workspace, *token_args, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "admin",
            "account",
            "create",
            "--workspace",
            workspace,
            "--platform",
            "mastodon",
            "--handle",
            "acme",
            "--base-url",
            "http://127.0.0.1:9",
            *token_args,
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
        (
            ("--token-file", str(tmp_path / "empty")),
            None,
            f"error: --token-file {tmp_path}/empty is empty",
        ),
        (
            ("--token-file", str(tmp_path / "nope")),
            None,
            f"error: --token-file {tmp_path}/nope: No such file",
        ),
    ]:
        result = _create_account(env, workspace, *args, stdin=stdin)
        assert result.returncode == 2 and result.stderr.startswith(complaint), result.stderr


def _accounts(env) -> int:
    with sqlite3.connect(env["POSTS_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        ((count,),) = database.execute("SELECT COUNT(*) FROM account")
    return count


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        pytest.param(
            ("--platform", "webhook", "--token", "hook-secret"),
            "a real webhook account needs --base-url (the receiver's URL",
            id="webhook-without-url",
        ),
        pytest.param(
            ("--platform", "webhook", "--base-url", "https://hooks.example.com/posts"),
            "a real webhook account needs a token (the signing secret)",
            id="webhook-without-token",
        ),
        pytest.param(
            ("--platform", "webhook"),
            "a real webhook account needs --base-url (the receiver's URL, which each"
            " item is POSTed to) and a token",
            id="webhook-without-either",
        ),
        pytest.param(
            ("--platform", "mastodon", "--base-url", "notaurl", "--token", "t"),
            "--base-url 'notaurl': an http(s) URL is required",
            id="not-a-url",
        ),
        pytest.param(
            ("--platform", "x", "--base-url", "ftp://api.x.com", "--sandbox"),
            "--base-url 'ftp://api.x.com': an http(s) URL is required",
            id="not-http-even-in-the-sandbox",
        ),
        pytest.param(
            ("--platform", "x", "--token", "x-token"),
            "a real x account needs --base-url (the API's root, https://api.x.com);"
            " or add --sandbox",
            id="real-x-without-base-url",
        ),
        pytest.param(
            ("--platform", "bluesky", "--base-url", "https://bsky.social"),
            "a real bluesky account needs a token (an app password)",
            id="real-bluesky-without-password",
        ),
    ],
)
def test_an_account_that_could_never_deliver_is_refused_and_not_stored(env, options, complaint):
    workspace = _workspace(env)

    result = run(
        env, "admin", "account", "create", "--workspace", workspace, "--handle", "acme", *options
    )

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {complaint}"), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert _accounts(env) == 0


@pytest.mark.parametrize(
    "options",
    [
        ("--platform", "x", "--sandbox"),  # the sandbox needs neither
        ("--platform", "webhook", "--sandbox"),
        ("--platform", "x", "--base-url", "https://api.x.com", "--token", "x-token"),
        ("--platform", "instagram", "--base-url", "https://graph.instagram.com", "--token", "t"),
    ],
    ids=["sandbox-x", "sandbox-webhook", "real-x", "real-instagram"],
)
def test_an_account_with_what_it_needs_is_stored(env, options):
    workspace = _workspace(env)

    result = run(
        env, "admin", "account", "create", "--workspace", workspace, "--handle", "acme", *options
    )

    assert result.returncode == 0, result.stderr
    assert _accounts(env) == 1


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
        env,
        workspace,
        "--token",
        "access-token-0123456789",
        "--refresh-token",
        "-",
        "--client-id",
        "client-id-0123456789",
        "--client-secret-file",
        str(tmp_path / "client-secret"),
        stdin="refresh-token-0123456789\n",
    )
    assert created.returncode == 0, created.stderr
    account = created.stdout.strip()
    keyring = Keyring([SECRET_KEY.encode()])
    for column, value in [
        ("credentials", "access-token-0123456789"),
        ("refresh_token", "refresh-token-0123456789"),
        ("client_id", "client-id-0123456789"),
        ("client_secret", "client-secret-0123456789"),
    ]:
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
    rotated = run(
        {**env, "POSTS_SECRET_KEY": f"{new_key},{SECRET_KEY}"}, "admin", "secrets", "rotate"
    )
    assert rotated.returncode == 0, rotated.stderr
    new_only = Keyring([new_key.encode()])
    assert new_only.decrypt(_stored(env, account, "refresh_token")) == "refresh-token-0123456789"
    assert new_only.decrypt(_stored(env, account, "client_secret")) == "client-secret-0123456789"


def test_secrets_rotate_encrypts_every_credential_again_with_the_first_key(env):
    new_key = "rotated-secret-key-0123456789abcdef-01234567"
    workspace = _workspace(env)
    accounts = [
        _create_account(env, workspace, "--token", "-", stdin=f"token-{n}").stdout.strip()
        for n in range(3)
    ]
    bare = _create_account(env, workspace, "--sandbox").stdout.strip()  # nothing to rotate
    subscription = _store_subscription(env, workspace, Keyring([SECRET_KEY.encode()]))
    # When the new key is put in front of the old one, and the credentials rotated
    rotated_env = {**env, "POSTS_SECRET_KEY": f"{new_key},{SECRET_KEY}"}
    result = run(rotated_env, "admin", "secrets", "rotate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "re-encrypted the credentials of 3 account(s) and the signing secrets"
        " of 1 webhook subscription(s) with the first secret key\n"
    )
    # Then the new key alone opens them all, a webhook's signing secret too: the
    # old one can be retired
    new_only = Keyring([new_key.encode()])
    for n, account in enumerate(accounts):
        assert new_only.decrypt(_stored_credentials(env, account)) == f"token-{n}"
    assert _stored_credentials(env, bare) == ""
    assert new_only.decrypt(_stored_subscription_secret(env, subscription)) == "whsec_rotation"
    # And with no key that opens them, nothing changes and the error names no secret:
    # a key the database never knew is refused at start-up; beside a known key
    # that no longer opens the credentials, by the rotation itself
    before = [_stored_credentials(env, a) for a in accounts]
    other = "unrelated-secret-key-0123456789abcdef-0123"
    for keys, complaint in [
        (other, "error: POSTS_SECRET_KEY is not the key this database's secrets were stored under"),
        (f"{other},{SECRET_KEY}", "error: no configured key decrypts the secrets of 4"),
    ]:
        refused = run({**env, "POSTS_SECRET_KEY": keys}, "admin", "secrets", "rotate")
        assert refused.returncode == 2 and refused.stderr.startswith(complaint), refused.stderr
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
    past = run(
        env, "admin", "key", "create", "--workspace", workspace, "--expires", "2020-01-01T00:00:00Z"
    )
    assert past.returncode == 2 and "already past" in past.stderr
    # Revoking says when; again, that it already was; an unknown key is an error
    first = run(env, "admin", "key", "revoke", key_id)
    assert re.fullmatch(rf"{key_id} revoked at \S+Z\n", first.stdout), first.stderr
    again = run(env, "admin", "key", "revoke", key_id)
    assert again.returncode == 0 and "was already revoked at" in again.stdout
    unknown = run(env, "admin", "key", "revoke", "key_01ABCDEFGHJKMNPQRSTVWXYZ00")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no key key_01")


def test_a_listing_whose_reader_has_gone_ends_quietly(env):
    # `admin key list | head -1`, the reader gone before the listing is written
    workspace = _workspace(env)
    for _ in range(3):
        assert run(env, "admin", "key", "create", "--workspace", workspace).returncode == 0
    listing = subprocess.Popen(
        [sys.executable, "-m", "service", "admin", "key", "list", "--workspace", workspace],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    listing.stdout.close()
    stderr = listing.stderr.read().decode()
    listing.stderr.close()
    assert listing.wait(timeout=60) == 128 + signal.SIGPIPE
    assert stderr == ""


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
            ["bash", "-e", "-o", "pipefail"],
            input=demo.stdout,
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    # Then every line succeeded: the draft was published, the scheduled post cancelled
    assert shell.returncode == 0, shell.stderr
    assert "posts.v1.PostService" in shell.stdout
    statuses = [answer["post"]["status"] for answer in _answers(shell.stdout)]
    published, read_back, *later = statuses
    assert published == "POST_STATUS_PENDING", statuses
    # (read back at once: queued, in flight or already live)
    assert read_back in {
        "POST_STATUS_PENDING",
        "POST_STATUS_PROCESSING",
        "POST_STATUS_PUBLISHED",
    }, statuses
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


# ------------------------------------------------- a PostgreSQL not set up for us


@pytest.fixture
def on_postgres(tmp_path, postgres_server):
    """``(env for a role and database, the server)``: run the CLI against names
    of the test's choosing on the session's PostgreSQL."""

    def env_for(role: str, database: str) -> dict[str, str]:
        url = f"postgresql://{role}@127.0.0.1:{postgres_server.port}/{database}"
        return {
            "POSTS_VAR_DIR": str(tmp_path),
            "POSTS_DATABASE_URL": url,
            "POSTS_SECRET_KEY": SECRET_KEY,
        }

    return env_for


def _one_line_error(result: subprocess.CompletedProcess, *says: str) -> str:
    """The command failed with one line on stderr, saying each of ``says``."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for words in says:
        assert words in lines[0], lines[0]
    return lines[0]


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.urandom(6).hex()}"


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_missing_postgres_role_is_one_line_saying_how_to_create_it(on_postgres, command):
    role = _unique("nobody")

    result = run(on_postgres(role, "postgres"), command)

    _one_line_error(result, f'no role "{role}"', f'CREATE ROLE "{role}" LOGIN')


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_missing_postgres_database_is_one_line_saying_how_to_create_it(on_postgres, command):
    database = _unique("nodb")

    result = run(on_postgres("postgres", database), command)

    _one_line_error(
        result, f'no database "{database}"', f'CREATE DATABASE "{database}" OWNER "postgres"'
    )


@pytest.mark.parametrize("remedy", ["owner", "grant"])
def test_a_role_without_create_on_schema_public_is_one_line_and_its_remedy_works(
    on_postgres, postgres_server, remedy
):
    # Given a role that does not own its database: since PostgreSQL 15 it may
    # not create tables in schema public
    role, database = _unique("app"), _unique("appdb")
    postgres_server.execute(f'CREATE ROLE "{role}" LOGIN')
    postgres_server.execute(f'CREATE DATABASE "{database}"')
    env = on_postgres(role, database)

    # When it migrates, it is told what is wrong and what to run
    line = _one_line_error(
        run(env, "migrate"),
        "schema public",
        f'ALTER DATABASE "{database}" OWNER TO "{role}"',
        f'GRANT CREATE ON SCHEMA public TO "{role}"',
    )
    # (serve only says to migrate first)
    _one_line_error(run(env, "serve"), "python -m service migrate")

    # Then either statement the line names (as the README's steps give them) lets it migrate
    if remedy == "owner":
        postgres_server.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
    else:
        postgres_server.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"', database=database)
    migrated = run(env, "migrate")
    assert migrated.returncode == 0, (line, migrated.stderr)
    assert run(env, "admin", "workspace", "create", "acme").returncode == 0


def test_a_refused_password_says_how_to_set_it_or_create_the_role():
    # The session's PostgreSQL trusts every role, so the refusal is PostgreSQL's
    # own text, as a server with password authentication gives it for a wrong
    # password and for a role that does not exist alike.
    config = Config.from_env(
        {
            "POSTS_DATABASE_URL": "postgresql://posts:pw@127.0.0.1:9/posts",
            "POSTS_SECRET_KEY": SECRET_KEY,
        }
    )
    db.init(config)
    try:
        refused = peewee.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 9 failed: FATAL:  '
            'password authentication failed for user "posts"'
        )
        line = db.setup_problem(refused)
    finally:
        db.close()
    assert line.startswith('PostgreSQL at 127.0.0.1:9 refused the password of role "posts"')
    assert """ALTER ROLE "posts" PASSWORD '…'""" in line
    assert """CREATE ROLE "posts" LOGIN PASSWORD '…'""" in line


def test_an_unreachable_postgres_is_one_line(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_DATABASE_URL": f"postgresql://posts@127.0.0.1:{port}/posts",
    }

    _one_line_error(run(env, "migrate"), f"cannot connect to PostgreSQL at 127.0.0.1:{port}")
