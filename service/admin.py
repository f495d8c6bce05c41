"""Provisioning: workspaces, API keys and accounts (``python -m service admin …``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import operator
import re

from service import auth, crypto, db, egress, ids, migrations, platforms
from service.config import Config, ConfigError
from service.crypto import hash_secret
from service.models import (
    Account,
    ApiKey,
    ApiKeyGrant,
    SecretKeyCheck,
    WebhookSubscription,
    Workspace,
)


class AdminError(ValueError):
    """A provisioning request that cannot be carried out."""


def create_workspace(name: str) -> str:
    """Makes a workspace; returns its id."""
    if not name.strip():
        raise AdminError("a workspace needs a name")
    with db.connection(), db.write():
        return Workspace.create(id=ids.new(ids.WORKSPACE), name=name, created_at=db.utcnow()).id


def create_api_key(workspace_ids: list[str], expires_at: dt.datetime | None = None) -> str:
    """Makes an API key granting ``workspace_ids``, valid until ``expires_at``
    (None: until revoked); returns its secret (shown once)."""
    if not workspace_ids:
        raise AdminError("a key needs at least one workspace")
    now = db.utcnow()
    if expires_at is not None and expires_at <= now:
        raise AdminError(f"the expiry {iso_utc(expires_at)} is already past")
    key_id = ids.new(ids.KEY)
    secret = auth.new_key_secret(key_id)
    with db.connection(), db.write():
        for workspace_id in workspace_ids:
            if not Workspace.get_or_none(Workspace.id == workspace_id):
                raise AdminError(f"no workspace {workspace_id}")
        ApiKey.create(
            id=key_id, secret_hash=hash_secret(secret), created_at=now, expires_at=expires_at
        )
        for workspace_id in dict.fromkeys(workspace_ids):
            ApiKeyGrant.create(api_key=key_id, workspace=workspace_id)
    return secret


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: dt.datetime) -> dt.datetime:
    """When a key given ``--expires text`` at ``now`` expires: ``text`` is an ISO 8601
    time (UTC unless it names an offset) or a duration from now such as 30d, 12h, 90m."""
    text = text.strip()
    try:
        if match := _DURATION.fullmatch(text):
            return now + dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
        when = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise AdminError(
            f"--expires {text!r}: neither an ISO 8601 time (2026-01-31T12:00:00Z) nor a"
            " duration (30d, 12h, 90m, 45s, 2w)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """What ``admin key list`` shows of a key: never its secret nor its hash."""

    id: str
    prefix: str  # how the key's secret begins: its id, public by design
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


def list_api_keys(workspace_id: str) -> list[KeyInfo]:
    """The keys granted ``workspace_id``, oldest first."""
    with db.connection():
        if not Workspace.get_or_none(Workspace.id == workspace_id):
            raise AdminError(f"no workspace {workspace_id}")
        keys = (
            ApiKey.select(
                ApiKey.id,
                ApiKey.created_at,
                ApiKey.last_used_at,
                ApiKey.expires_at,
                ApiKey.revoked_at,
            )
            .join(ApiKeyGrant)
            .where(ApiKeyGrant.workspace == workspace_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        return [
            KeyInfo(k.id, f"{k.id}.", k.created_at, k.last_used_at, k.expires_at, k.revoked_at)
            for k in keys
        ]


def revoke_api_key(key_id: str) -> tuple[dt.datetime, bool]:
    """Revokes a key: every server refuses it within a second (``auth.Authenticator``).

    Returns when it was revoked, and whether that was now (False: it already was).
    """
    with db.connection(), db.write():
        key = db.locked(ApiKey.select().where(ApiKey.id == key_id)).first()
        if key is None:
            raise AdminError(f"no key {key_id}")
        if key.revoked_at is not None:
            return key.revoked_at, False
        now = db.utcnow()
        ApiKey.update(revoked_at=now).where(ApiKey.id == key_id).execute()
        return now, True


#: The Account columns stored encrypted: the access token and what refreshes it.
ENCRYPTED = ("credentials", "refresh_token", "client_id", "client_secret")


def rotate_secrets() -> tuple[int, int]:
    """Encrypts every stored secret again under the first secret key: each
    account's credentials (ENCRYPTED) and each webhook subscription's signing
    secret. Returns how many accounts and subscriptions. Changes nothing when
    some cannot be decrypted."""
    keyring = crypto.keyring()
    columns = [getattr(Account, name) for name in ENCRYPTED]
    with db.connection(), db.write():
        stored = functools.reduce(operator.or_, [column != "" for column in columns])
        rows = db.locked(Account.select(Account.id, *columns).where(stored))
        rotated, unreadable = {}, []
        for row in rows:
            try:
                rotated[row.id] = {
                    name: keyring.rotate(getattr(row, name))
                    for name in ENCRYPTED
                    if getattr(row, name)
                }
            except ValueError:
                unreadable.append(row.id)
        # A subscription's secret left under the old key would fail every send
        # once that key is dropped.
        subscriptions = db.locked(
            WebhookSubscription.select(WebhookSubscription.id, WebhookSubscription.secret)
        )
        secrets = {}
        for row in subscriptions:
            try:
                secrets[row.id] = keyring.rotate(row.secret)
            except ValueError:
                unreadable.append(row.id)
        if unreadable:
            raise AdminError(
                f"no configured key decrypts the secrets of {len(unreadable)} account(s) or"
                f" webhook subscription(s)"
                f" ({', '.join(unreadable[:5])}{', …' if len(unreadable) > 5 else ''}):"
                " nothing was changed; add their key to POSTS_SECRET_KEY"
            )
        for account_id, values in rotated.items():
            Account.update(values).where(Account.id == account_id).execute()
        for subscription_id, secret in secrets.items():
            (
                WebhookSubscription.update(secret=secret)
                .where(WebhookSubscription.id == subscription_id)
                .execute()
            )
    return len(rotated), len(secrets)


def check_database(config: Config) -> None:
    """What every command but ``migrate``, and every delivering process, checks
    before it starts: the schema is current and the secret key is the
    database's (``check_secret_keys``). ConfigError, one line, otherwise."""
    if migrations.pending():
        raise ConfigError("the database schema is behind: run `python -m service migrate`")
    check_secret_keys(config)


def check_secret_keys(config: Config) -> None:
    """ConfigError unless one of the configured secret keys is one the
    database's secrets (account credentials, webhook signing secrets) were
    stored under, as its stored key checks (models.SecretKeyCheck) say.

    The checks of the configured keys the database does not know yet are then
    stored: a new key put in front of a known one (a rotation) becomes known. A
    database without checks (new, or from before them) takes the keys if they
    decrypt its newest stored secret, or at once when it holds none.
    """
    keyring = crypto.keyring()
    checks = keyring.checks()
    with db.connection():
        known = {row.digest for row in SecretKeyCheck.select(SecretKeyCheck.digest)}
        if known.isdisjoint(checks):
            if known:
                raise ConfigError(_not_the_key(config, len(checks)))
            stored = _newest_secret()
            if stored is not None:
                try:
                    keyring.decrypt(stored[1])
                except ValueError:
                    raise ConfigError(
                        f"{_not_the_key(config, len(checks))} (it does not decrypt {stored[0]})"
                    ) from None
        new = [digest for digest in checks if digest not in known]
        if new:
            now = db.utcnow()
            with db.write():
                SecretKeyCheck.insert_many(
                    [{"digest": digest, "created_at": now} for digest in new]
                ).on_conflict_ignore().execute()


def _not_the_key(config: Config, count: int) -> str:
    if not config.secret_key:
        subject = f"the key in {config.var_dir / crypto.KEY_FILE} is not"
    elif count == 1:
        subject = "POSTS_SECRET_KEY is not"
    else:
        subject = f"none of the {count} keys in POSTS_SECRET_KEY is"
    return (
        f"{subject} the key this database's secrets were stored under: start with that"
        " key (to rotate, put the new key in front of it)"
    )


def _newest_secret() -> tuple[str, str] | None:
    """(its owner's id, the stored ciphertext) of the newest stored secret, if any."""
    account = (
        Account.select(Account.id, Account.credentials)
        .where(Account.credentials != "")
        .order_by(Account.created_at.desc())
        .first()
    )
    if account is not None:
        return f"account {account.id}'s credentials", account.credentials
    subscription = (
        WebhookSubscription.select(WebhookSubscription.id, WebhookSubscription.secret)
        .order_by(WebhookSubscription.created_at.desc())
        .first()
    )
    if subscription is not None:
        return f"webhook subscription {subscription.id}'s secret", subscription.secret
    return None


def iso_utc(when: dt.datetime) -> str:
    """``when`` as ISO 8601 UTC to the second: 2026-01-31T12:00:00Z."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_account(
    workspace_id: str,
    platform: str = "x",
    handle: str = "demo",
    base_url: str | None = None,
    token: str | None = None,
    sandbox: bool = True,
    refresh_token: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> str:
    """Connects a network identity to a workspace; returns the account id.

    ``token`` (the network credentials) is stored encrypted, and so are
    ``refresh_token``, ``client_id`` and ``client_secret``, with which workers
    renew an access token that expires (workers.credentials).
    """
    platform = platform.lower()
    if platform not in platforms.PLATFORMS:
        raise AdminError(f"unknown platform {platform!r}: one of {', '.join(platforms.PLATFORMS)}")
    if not handle.strip():
        raise AdminError("an account needs a handle")
    _check_delivery_settings(platform, base_url, token, sandbox)
    keyring = crypto.keyring()
    with db.connection(), db.write():
        if not Workspace.get_or_none(Workspace.id == workspace_id):
            raise AdminError(f"no workspace {workspace_id}")
        return Account.create(
            id=ids.new(ids.ACCOUNT),
            workspace=workspace_id,
            platform=platform,
            handle=handle,
            base_url=base_url or "",
            credentials=keyring.encrypt(token or ""),
            refresh_token=keyring.encrypt(refresh_token or ""),
            client_id=keyring.encrypt(client_id or ""),
            client_secret=keyring.encrypt(client_secret or ""),
            sandbox=sandbox,
            created_at=db.utcnow(),
        ).id


def _check_delivery_settings(
    platform: str, base_url: str | None, token: str | None, sandbox: bool
) -> None:
    """Refuses an account that could never deliver: a base URL that is not an
    http(s) URL, or a real account without the base URL and token its network
    needs (platforms.ACCOUNT_SETTINGS)."""
    if base_url:
        refusal = egress.form_refusal(base_url)
        if refusal:
            raise AdminError(f"--base-url {base_url!r}: {refusal}")
    if sandbox or platform not in platforms.ACCOUNT_SETTINGS:
        return
    url_is, token_is = platforms.ACCOUNT_SETTINGS[platform]
    missing = []
    if not base_url:
        missing.append(f"--base-url ({url_is})")
    if not token:
        missing.append(f"a token ({token_is}) with --token-file PATH or --token -")
    if missing:
        raise AdminError(
            f"a real {platform} account needs {' and '.join(missing)}; or add"
            " --sandbox to simulate its deliveries"
        )


def ensure_demo() -> tuple[str, str]:
    """The demo workspace and its sandbox X account, made on first use and reused after."""
    with db.connection():
        workspace = Workspace.get_or_none(Workspace.name == "demo")
        account = None
        if workspace:
            account = Account.get_or_none(
                (Account.workspace == workspace.id) & (Account.sandbox == True)
            )
    workspace_id = workspace.id if workspace else create_workspace("demo")
    account_id = account.id if account else create_account(workspace_id, "x", "demo", sandbox=True)
    return workspace_id, account_id
