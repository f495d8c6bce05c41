"""Keys: the service's secret keys (required where processes share a database,
the embedded default's key file, rotation) and API keys (listing, revocation
on every server, expiry, last use)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sqlite3
import stat
import threading
import time

import grpc
import pytest
from cryptography.fernet import Fernet

from service import admin, crypto, db, errors
from service.auth import Authenticator
from service.config import Config, ConfigError
from service.crypto import Keyring
from service.models import ApiKey
from tests.processes import ServerProcess, run_python
from tests.processes import run_cli as run
from tests.support import DEFAULT_WAIT, Api, Failure, Tenant, utcnow, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

OLD_KEY = "old-secret-key-0123456789abcdef-0123456789"
NEW_KEY = "new-secret-key-0123456789abcdef-0123456789"


# ------------------------------------------------------------ the secret keys


@pytest.mark.parametrize(
    "shared",
    [
        {"POSTS_DATABASE_URL": "postgresql://posts@127.0.0.1:9/posts"},
        {"POSTS_BROKER_URL": "redis://127.0.0.1:9/0"},
    ],
    ids=["postgresql", "broker"],
)
def test_postgresql_or_a_broker_without_a_secret_key_is_refused_at_start_up(shared, tmp_path):
    with pytest.raises(ConfigError, match="^POSTS_SECRET_KEY is required"):
        Config.from_env({"POSTS_VAR_DIR": str(tmp_path), **shared})
    assert Config.from_env({"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": OLD_KEY, **shared})
    # The command line says so in one line, not a traceback
    result = run({"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": "", **shared}, "serve")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: POSTS_SECRET_KEY is required with PostgreSQL or a broker (the same on every process)"
    ]


def test_the_embedded_default_needs_no_secret_key(tmp_path):
    assert Config.from_env({"POSTS_VAR_DIR": str(tmp_path)}).secret_key == ""


def test_a_short_key_in_the_list_is_refused_without_showing_it(tmp_path):
    short = "too-short-to-be-a-key"
    with pytest.raises(ConfigError, match="key 2 of 2 is shorter than 32") as refused:
        Config.from_env({"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": f"{NEW_KEY},{short}"})
    assert short not in str(refused.value) and NEW_KEY not in str(refused.value)


def _embedded(var_dir) -> Config:
    return Config.from_env({"POSTS_VAR_DIR": str(var_dir)})


def test_the_key_file_is_made_once_private_and_whole(tmp_path):
    first = crypto.load_secrets(_embedded(tmp_path))
    path = tmp_path / crypto.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Fernet(path.read_bytes().strip())  # a valid Fernet key
    assert os.listdir(tmp_path) == [crypto.KEY_FILE]  # no temporary file left behind
    # A later start reads the same key: what it encrypted, the next one decrypts
    ciphertext = Keyring(first).encrypt("network-token")
    assert Keyring(crypto.load_secrets(_embedded(tmp_path))).decrypt(ciphertext) == "network-token"


def test_a_key_file_published_meanwhile_by_another_process_is_used_not_replaced(
    tmp_path, monkeypatch
):
    # Given another process that publishes its key just before this one does
    theirs = Fernet.generate_key()
    link = os.link

    def they_win(source, target, *args, **kwargs):
        with open(target, "xb") as out:
            out.write(theirs + b"\n")
        return link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", they_win)
    # When this process starts, then Both use their key
    assert crypto.load_secrets(_embedded(tmp_path)) == [theirs]
    assert (tmp_path / crypto.KEY_FILE).read_bytes() == theirs + b"\n"
    assert os.listdir(tmp_path) == [crypto.KEY_FILE]


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    starts, keys = threading.Barrier(8), []

    def start():
        starts.wait(DEFAULT_WAIT)
        keys.append(crypto.load_secrets(_embedded(tmp_path))[0])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEFAULT_WAIT)
    assert len(keys) == 8 and set(keys) == {(tmp_path / crypto.KEY_FILE).read_bytes().strip()}


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"not-a-key\n", "does not hold a valid key"),
        (Fernet.generate_key()[:-2] + b"\n", "does not hold a valid key"),
    ],
    ids=["empty", "blank", "garbage", "truncated"],
)
def test_an_empty_or_malformed_key_file_stops_the_start(tmp_path, content, complaint):
    (tmp_path / crypto.KEY_FILE).write_bytes(content)
    with pytest.raises(ConfigError, match=complaint):
        crypto.load_secrets(_embedded(tmp_path))
    # ... on the command line, as one line
    result = run({"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": ""}, "migrate")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and complaint in result.stderr


def test_the_key_file_of_earlier_versions_still_opens_their_credentials(tmp_path):
    legacy = b"A" * 32 + b"-_" * 16  # secrets.token_urlsafe(48): 64 URL-safe characters
    (tmp_path / crypto.KEY_FILE).write_bytes(legacy)
    assert crypto.load_secrets(_embedded(tmp_path)) == [legacy]


def test_the_first_key_encrypts_and_every_key_decrypts():
    old = Keyring([OLD_KEY.encode()])
    rotated = Keyring([NEW_KEY.encode(), OLD_KEY.encode()])
    new_only = Keyring([NEW_KEY.encode()])
    under_old = old.encrypt("token-1")

    assert rotated.decrypt(under_old) == "token-1"
    assert new_only.decrypt(rotated.encrypt("token-2")) == "token-2"
    assert new_only.decrypt(rotated.rotate(under_old)) == "token-1"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        new_only.decrypt(under_old)


def test_page_tokens_signed_with_an_old_key_keep_verifying():
    old = Keyring([OLD_KEY.encode()])
    rotated = Keyring([NEW_KEY.encode(), OLD_KEY.encode()])
    new_only = Keyring([NEW_KEY.encode()])
    token = old.sign(b"cursor")

    assert rotated.verify(token) == b"cursor"
    assert new_only.verify(token) is None
    assert new_only.verify(rotated.sign(b"cursor")) == b"cursor"
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert rotated.verify(tampered) is None


def test_a_page_token_from_before_a_rotation_still_pages_on(tmp_path):
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
        "POSTS_SECRET_KEY": OLD_KEY,
    }
    assert run(env, "migrate").returncode == 0
    workspace = run(env, "admin", "workspace", "create", "rotation").stdout.strip()
    key = run(env, "admin", "key", "create", "--workspace", workspace).stdout.strip()
    account = run(
        env,
        "admin",
        "account",
        "create",
        "--workspace",
        workspace,
        "--platform",
        "x",
        "--handle",
        "r",
        "--sandbox",
    ).stdout.strip()
    tenant = Tenant(workspace, key, account)

    def page(secret_keys: str, token: str = "") -> pb.ListPostsResponse | Failure:
        server = ServerProcess(
            {**env, "POSTS_SECRET_KEY": secret_keys}, str(tmp_path / "server.log")
        ).start()
        try:
            server.wait_serving()
            with grpc.insecure_channel(server.address) as channel:
                api = Api(posts_pb2_grpc.PostServiceStub(channel))
                if not token:
                    for n in range(3):
                        api.create(tenant, text=f"draft {n}")
                    return api.list(tenant, page_size=2)
                try:
                    return api.list(tenant, page_size=2, page_token=token)
                except grpc.RpcError as error:
                    return Failure.of(error)
        finally:
            server.stop()

    # Given a page token signed under the old key
    first = page(OLD_KEY)
    assert len(first.posts) == 2 and first.next_page_token
    # When the servers restart with a new key in front of it, then the token still pages on
    second = page(f"{NEW_KEY},{OLD_KEY}", first.next_page_token)
    assert len(second.posts) == 1
    # (and it is the old key that verifies it: without it, the token is refused)
    refused = page(NEW_KEY, first.next_page_token)
    assert refused.kind == ("INVALID_ARGUMENT", "INVALID_FIELD") and "page_token" in refused.fields


# ------------------------------------------------------- the key check at start-up


def _first_line_of_a_refusal(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


WRONG = (
    "error: POSTS_SECRET_KEY is not the key this database's secrets were stored under:"
    " start with that key (to rotate, put the new key in front of it)"
)


def test_a_wrong_secret_key_is_refused_at_start_up_by_the_server_and_the_workers(tmp_path):
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        "POSTS_SECRET_KEY": OLD_KEY,
    }
    assert run(env, "migrate").returncode == 0
    workspace = run(env, "admin", "workspace", "create", "keys").stdout.strip()
    assert workspace.startswith("wks_")
    wrong = {**env, "POSTS_SECRET_KEY": NEW_KEY}
    # When a server starts with another key, it refuses in one line
    assert _first_line_of_a_refusal(run(wrong, "serve")) == WRONG
    # And so do the workers (the broker is never reached: nothing listens there)
    workers = run_python({**wrong, "POSTS_BROKER_URL": "redis://127.0.0.1:9/0"}, "-m", "workers")
    assert _first_line_of_a_refusal(workers) == WRONG
    # And an admin command, before it stores anything under the wrong key
    assert (
        _first_line_of_a_refusal(
            run(
                wrong,
                "admin",
                "account",
                "create",
                "--workspace",
                workspace,
                "--platform",
                "x",
                "--handle",
                "k",
                "--sandbox",
            )
        )
        == WRONG
    )
    # Then with the right key the server starts
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    try:
        server.wait_serving()
    finally:
        assert server.stop() == 0
    # And a rotation (the new key in front of the known one) makes the new key known
    rotated = {**env, "POSTS_SECRET_KEY": f"{NEW_KEY},{OLD_KEY}"}
    assert run(rotated, "admin", "secrets", "rotate").returncode == 0
    assert run(wrong, "admin", "workspace", "create", "after").returncode == 0
    # While a list of keys none of which the database knows is refused
    unknown = "unknown-secret-key-0123456789abcdef-0123456"
    third = "third-secret-key-0123456789abcdef-0123456789"
    refused = run({**env, "POSTS_SECRET_KEY": f"{unknown},{third}"}, "serve")
    assert _first_line_of_a_refusal(refused) == WRONG.replace(
        "POSTS_SECRET_KEY is not", "none of the 2 keys in POSTS_SECRET_KEY is"
    )
    assert unknown not in refused.stderr and third not in refused.stderr


def test_a_database_from_before_the_check_takes_the_key_that_opens_its_credentials(tmp_path):
    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        "POSTS_SECRET_KEY": OLD_KEY,
    }
    assert run(env, "migrate").returncode == 0
    workspace = run(env, "admin", "workspace", "create", "keys").stdout.strip()
    account = run(
        env,
        "admin",
        "account",
        "create",
        "--workspace",
        workspace,
        "--platform",
        "mastodon",
        "--handle",
        "k",
        "--base-url",
        "http://127.0.0.1:9",
        "--token",
        "network-token",
    ).stdout.strip()
    # Given a database whose credentials were stored before it kept key checks
    database = sqlite3.connect(f"{tmp_path}/k.db")
    with database:
        database.execute("DELETE FROM secret_key_check")
    # When a process starts with a key that does not open them, it is refused
    refused = run({**env, "POSTS_SECRET_KEY": NEW_KEY}, "admin", "workspace", "create", "x")
    assert _first_line_of_a_refusal(refused) == (
        f"{WRONG} (it does not decrypt account {account}'s credentials)"
    )
    assert database.execute("SELECT count(*) FROM secret_key_check").fetchall() == [(0,)]
    # And with the key that opens them, it starts and stores that key's check
    assert run(env, "admin", "workspace", "create", "y").returncode == 0
    [(digest,)] = database.execute("SELECT digest FROM secret_key_check").fetchall()
    assert digest == Keyring([OLD_KEY.encode()]).checks()[0]
    assert OLD_KEY not in digest
    database.close()


def test_the_embedded_key_file_is_checked_too(tmp_path):
    env = {"POSTS_VAR_DIR": str(tmp_path), "POSTS_SECRET_KEY": ""}
    assert run(env, "migrate").returncode == 0
    assert run(env, "admin", "workspace", "create", "keys").returncode == 0
    # When var/secret.key is replaced (restored from the wrong backup, say)
    (tmp_path / crypto.KEY_FILE).write_bytes(Fernet.generate_key() + b"\n")
    assert _first_line_of_a_refusal(run(env, "serve")) == (
        f"error: the key in {tmp_path / crypto.KEY_FILE} is not the key this database's secrets"
        " were stored under: start with that key (to rotate, put the new key in front of it)"
    )


# ------------------------------------------------------------------- API keys


def _env(server) -> dict[str, str]:
    """The environment of another process on the test server's database."""
    config = server.config
    return {
        "POSTS_VAR_DIR": str(config.var_dir),
        "POSTS_DATABASE_URL": config.database_url,
        "POSTS_BROKER_URL": config.broker_url,
        "POSTS_SECRET_KEY": config.secret_key,
        "POSTS_INPROCESS_WORKER": "",
    }


def _outcome(api: Api, tenant: Tenant) -> str:
    try:
        api.list(tenant)
    except grpc.RpcError as error:
        return Failure.of(error).reason or error.code().name
    return "served"


def test_key_list_shows_when_keys_were_made_used_expire_and_were_revoked_never_a_secret(
    server, api, make_tenant, make_key
):
    tenant = make_tenant("listed")
    api.list(tenant)  # uses the key
    expiring = admin.create_api_key([tenant.workspace_id], utcnow() + dt.timedelta(days=30))
    revoked = make_key(tenant.workspace_id)
    admin.revoke_api_key(revoked.partition(".")[0])
    other = make_tenant("elsewhere")

    result = run(_env(server), "admin", "key", "list", "--workspace", tenant.workspace_id)

    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split("  ")[0] == "ID" and " ".join(header.split()) == (
        "ID PREFIX CREATED LAST USED EXPIRES REVOKED"
    )
    rows = {line.split()[0]: line.split() for line in lines}
    ids = {secret.partition(".")[0]: secret for secret in (tenant.key, expiring, revoked)}
    assert set(rows) == set(ids)
    with db.connection():
        keys = {k.id: k for k in ApiKey.select().where(ApiKey.id.in_(list(ids)))}
    for key_id, (_, prefix, created, last_used, expires, revoked_at) in rows.items():
        key = keys[key_id]
        assert prefix == f"{key_id}." and created == admin.iso_utc(key.created_at)
        assert last_used == (admin.iso_utc(key.last_used_at) if key.last_used_at else "never")
        assert expires == (admin.iso_utc(key.expires_at) if key.expires_at else "never")
        assert revoked_at == (admin.iso_utc(key.revoked_at) if key.revoked_at else "-")
    assert rows[tenant.key.partition(".")[0]][3] != "never"
    assert rows[expiring.partition(".")[0]][4] != "never"
    assert rows[revoked.partition(".")[0]][5] != "-"
    assert other.key.partition(".")[0] not in result.stdout
    for secret in ids.values():
        assert secret.partition(".")[2] not in result.stdout
        assert keys[secret.partition(".")[0]].secret_hash not in result.stdout


def test_a_revoked_key_is_refused_by_every_server_within_a_second(
    server, api, make_tenant, tmp_path
):
    tenant = make_tenant("revoked")
    with _other_server(server, tmp_path) as address, grpc.insecure_channel(address) as channel:
        apis = [api, Api(posts_pb2_grpc.PostServiceStub(channel))]
        # Given both servers serving the key (and caching that it checked out)
        assert [_outcome(a, tenant) for a in apis] == ["served", "served"]
        # When another process revokes it
        revoked = run(_env(server), "admin", "key", "revoke", tenant.key.partition(".")[0])
        assert revoked.returncode == 0, revoked.stderr
        assert " revoked at " in revoked.stdout
        # Then both refuse it within a second
        refused = wait_for(
            lambda: all(_outcome(a, tenant) == "API_KEY_INVALID" for a in apis),
            timeout=1.5,
            message="both servers to refuse the revoked key",
        )
        assert refused


def test_a_cached_key_and_answer_cost_a_call_its_version_read_and_no_checkout(
    server, api, make_tenant, monkeypatch
):
    tenant = make_tenant("polled")
    post = api.create(tenant, text="polled")
    target = db.database.obj
    statements: list[str] = []
    checkouts: list[str] = []

    def on_a_handler_thread() -> bool:
        return threading.current_thread().name.startswith("rpc")

    def record(query) -> None:
        if on_a_handler_thread():
            statements.append(query.sql)

    checkout = target._connect

    def counted_checkout():
        if on_a_handler_thread():
            checkouts.append(threading.current_thread().name)
        return checkout()

    monkeypatch.setattr(target, "query_hooks", [record])
    monkeypatch.setattr(target, "_connect", counted_checkout)
    for _ in range(10):  # the key checks out, the answer is encoded, threads hold connections
        api.get(tenant, post.post_id)
    statements.clear()
    checkouts.clear()
    # When a client polls the post
    calls, started = 50, time.monotonic()
    for _ in range(calls):
        api.get(tenant, post.post_id)
    elapsed = time.monotonic() - started
    # Then the key is read once a second (the cache's documented lifetime), not per call
    key_reads = [sql for sql in statements if 'FROM "api_key" ' in sql]
    assert len(key_reads) <= elapsed / 1.0 + 1, (len(key_reads), elapsed)
    # and each call reads its post's version, nothing else
    versions = [sql for sql in statements if '"api_key' not in sql]
    assert len(versions) == calls and {'"version"' in sql for sql in versions} == {True}
    # on the connection its handler thread holds (a thread's first call checks one out)
    assert len(checkouts) <= server.config.max_workers < calls, checkouts


@contextlib.contextmanager
def _other_server(server, tmp_path):
    """Another server on the test server's database, with its own key cache; the
    address it serves on. A process of its own, except on the embedded default,
    where a second server on the file is refused (its worker would take the
    first one's posts): there a server without a worker, in this process."""
    if server.backend != "sqlite":
        other = ServerProcess(_env(server), str(tmp_path / "other.log")).start()
        try:
            other.wait_serving()
            yield other.address
        finally:
            other.stop()
        return
    from service.server import create_server

    config = dataclasses.replace(server.config, listen="127.0.0.1:0")
    other, port = create_server(config, lambda post_id, token: None)
    other.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        other.stop(grace=1.0)


def test_an_expired_key_is_unauthenticated(api, make_tenant):
    tenant = make_tenant("expiring")
    tenant.key = admin.create_api_key([tenant.workspace_id], utcnow() + dt.timedelta(hours=1))
    key_id = tenant.key.partition(".")[0]
    assert _outcome(api, tenant) == "served"

    # When its expiry passes (moved into the past rather than waited for)
    with db.connection():
        ApiKey.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(
            ApiKey.id == key_id
        ).execute()

    wait_for(
        lambda: _outcome(api, tenant) == "API_KEY_INVALID",
        timeout=1.5,
        message="the expired key to be refused",
    )
    failure = api.refused("ListPosts", tenant)
    assert failure.kind == ("UNAUTHENTICATED", "API_KEY_INVALID")


def test_a_key_expiring_while_cached_stops_at_its_expiry(server, make_tenant):
    workspace_id = make_tenant("cached").workspace_id
    expires = utcnow() + dt.timedelta(seconds=0.5)
    key = admin.create_api_key([workspace_id], expires)
    authenticator = Authenticator(ttl=60.0)  # far longer than the key lives

    def accepted() -> bool:
        with db.connection():
            try:
                authenticator.authenticate(f"Bearer {key}")
            except errors.ApiKeyInvalid:
                return False
            return True

    assert accepted()
    wait_for(lambda: not accepted(), timeout=5.0, message="the key to expire")
    assert utcnow() >= expires


def test_the_last_use_is_written_at_most_once_a_minute(server, make_tenant):
    key = make_tenant("used").key
    key_id = key.partition(".")[0]
    authenticator = Authenticator(ttl=0)  # every call reads the key, as on a cache miss

    def use_and_read() -> dt.datetime | None:
        with db.connection():
            authenticator.authenticate(f"Bearer {key}")
            return ApiKey.get_by_id(key_id).last_used_at

    before = utcnow()
    first = use_and_read()
    assert first is not None and before <= first <= utcnow()
    # Later calls within the minute leave it as it is
    assert use_and_read() == first
    assert use_and_read() == first
    # A minute on, the next call writes it again
    with db.connection():
        ApiKey.update(last_used_at=first - dt.timedelta(seconds=61)).where(
            ApiKey.id == key_id
        ).execute()
    assert use_and_read() > first


def test_a_call_through_the_server_records_the_keys_last_use(api, make_tenant):
    tenant = make_tenant("via-server")
    before = utcnow()
    api.list(tenant)
    (info,) = admin.list_api_keys(tenant.workspace_id)
    assert info.last_used_at is not None and before <= info.last_used_at <= utcnow()


NOW = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + dt.timedelta(days=30)),
        ("12h", NOW + dt.timedelta(hours=12)),
        ("90m", NOW + dt.timedelta(minutes=90)),
        ("45s", NOW + dt.timedelta(seconds=45)),
        ("2w", NOW + dt.timedelta(weeks=2)),
        ("2026-03-01T00:00:00Z", dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
        ("2026-03-01T02:00:00+02:00", dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
        ("2026-03-01", dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
    ],
)
def test_expires_takes_an_iso_time_or_a_duration(text, expected):
    assert admin.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["soon", "30", "d30", "30y", "-5d", ""])
def test_expires_refuses_anything_else(text):
    with pytest.raises(admin.AdminError, match="neither an ISO 8601 time .* nor a duration"):
        admin.parse_expiry(text, NOW)
