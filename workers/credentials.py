"""Access tokens that expire, renewed once however many workers find them expired.

An account's credentials are its access token and, where the network's tokens
expire, what renews them: a refresh token (TikTok, YouTube) or the long-lived
token itself (Instagram), with the app's client id and secret. All of them are
stored encrypted (service.crypto), on the account's row.

A refresh token may be single-use: the network answers the first refresh with
new tokens and refuses the old refresh token after. Two workers refreshing at
once must then not both send it. So a refresh is claimed first, by a
compare-and-set on the account's ``credentials_version`` taken under the row's
lock (``refreshing_until``, for as long as the exchange can take); only the
claimant calls the network, then stores the new tokens and bumps the version in
one write. Everyone else waits for the version to move and uses the tokens the
claimant stored. A claimant that dies leaves its claim to expire; the next
worker then claims again (if the dead one had spent the refresh token, the
network refuses it: CREDENTIALS_REVOKED, which no retry would mend).

The network's call (``exchange``) runs outside any transaction: a database
write lock is never held across a request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable

from service import crypto, db
from service.models import Account
from workers.adapters import http
from workers.adapters.base import (
    NO_LEASE,
    AccountRef,
    Lease,
    PermanentError,
    TransientError,
)

log = logging.getLogger(__name__)

#: The code of a post failed because the network refused to renew its account's
#: token: the account must be connected again (``admin account create``).
CREDENTIALS_REVOKED = "CREDENTIALS_REVOKED"
#: A worker waiting for another's refresh checks the row this often (seconds).
WAIT_INTERVAL = 0.05
#: The seconds a claim outlasts the exchange's own deadline (a write, a clock step).
CLAIM_MARGIN = 5.0


@dataclasses.dataclass(frozen=True)
class Renewed:
    """What a network answered a refresh: the new access token; the new refresh
    token where it rotates them ("" keeps the stored one); and the access token's
    lifetime in seconds where it said."""

    token: str
    refresh_token: str = ""
    expires_in: float | None = None


#: A network's refresh request: the account's current credentials in, the new
#: tokens out. Raises the adapters' delivery errors (workers.adapters.http).
Exchange = Callable[[AccountRef], Renewed]


def refresh_token_grant(account: AccountRef, path: str, client_field: str = "client_id"):
    """POSTs OAuth 2.0's refresh_token grant to ``path`` under the account's base
    URL (``client_field``: what the network calls the client id); the answer."""
    with http.client(account.base_url) as api:
        return http.answer(
            api,
            "POST",
            path,
            within=http.deadline(),
            data={
                client_field: account.client_id,
                "client_secret": account.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": account.refresh_token,
            },
        )


def renewed(body: dict) -> Renewed:
    """The tokens of an OAuth 2.0 token answer's JSON body."""
    expires_in = body.get("expires_in")
    return Renewed(
        str(body.get("access_token") or ""),
        str(body.get("refresh_token") or ""),
        float(expires_in) if isinstance(expires_in, (int, float)) else None,
    )


def account_ref(account: Account) -> AccountRef:
    """The account as adapters see it, its credentials decrypted."""
    keyring = crypto.keyring()
    return AccountRef(
        account.id,
        account.platform,
        account.handle,
        account.base_url,
        keyring.decrypt(account.credentials),
        refresh_token=keyring.decrypt(account.refresh_token),
        client_id=keyring.decrypt(account.client_id),
        client_secret=keyring.decrypt(account.client_secret),
        token_expires_at=account.token_expires_at,
        credentials_version=account.credentials_version,
    )


def expiring(account: AccountRef, within: float, now: dt.datetime | None = None) -> bool:
    """The access token is known to expire within ``within`` seconds."""
    if account.token_expires_at is None:
        return False
    now = now or db.utcnow()
    return account.token_expires_at <= now + dt.timedelta(seconds=within)


def refresh(account: AccountRef, exchange: Exchange, lease: Lease = NO_LEASE) -> AccountRef:
    """``account`` with a renewed access token, renewed once among all workers.

    If the stored credentials moved on since ``account`` was read (another
    worker refreshed), those are the answer and the network is not called.
    Otherwise this worker claims the refresh, calls ``exchange`` and stores
    what it answers; or, if another worker holds the claim, waits for its
    result (renewing ``lease``). A refusal by the network (a 4xx) is
    CREDENTIALS_REVOKED, permanent; an unanswered or failed request, or a
    claimant that never finishes, is transient.
    """
    claim_seconds = http.deadline() + CLAIM_MARGIN
    gives_up_at = time.monotonic() + claim_seconds + CLAIM_MARGIN
    while True:
        lease.renew()
        now = db.utcnow()
        with db.connection(), db.write():
            row = db.locked(Account.select().where(Account.id == account.account_id)).first()
            if row is None:
                raise PermanentError("ACCOUNT_GONE", f"account {account.account_id} is gone")
            if row.credentials_version != account.credentials_version:
                return account_ref(row)  # another worker's refresh: use its tokens
            claimed = row.refreshing_until is None or row.refreshing_until <= now
            if claimed:
                until = now + dt.timedelta(seconds=claim_seconds)
                Account.update(refreshing_until=until).where(
                    (Account.id == row.id)
                    & (Account.credentials_version == account.credentials_version)
                ).execute()
        if claimed:
            return _exchange(account, exchange)
        if time.monotonic() >= gives_up_at:
            raise TransientError(
                "TOKEN_REFRESH_PENDING", "another worker is refreshing the account's token"
            )
        time.sleep(WAIT_INTERVAL)


def _exchange(account: AccountRef, exchange: Exchange) -> AccountRef:
    """Calls the network as the claim's holder; stores its answer, or gives the claim back."""
    try:
        with http.nothing_live_yet("token refresh"):
            renewed = exchange(account)
    except BaseException as exc:
        _release(account)
        if isinstance(exc, PermanentError):
            raise PermanentError(
                CREDENTIALS_REVOKED,
                f"the network refused to renew the account's token ({exc.code} {exc.message}):"
                " connect the account again",
            ) from exc
        raise
    if not renewed.token:
        _release(account)
        raise TransientError("TOKEN_REFRESH_EMPTY", "the network's refresh gave no access token")
    now = db.utcnow()
    expires_at = (
        now + dt.timedelta(seconds=renewed.expires_in) if renewed.expires_in is not None else None
    )
    keyring = crypto.keyring()
    values = {
        Account.credentials: keyring.encrypt(renewed.token),
        Account.token_expires_at: expires_at,
        Account.credentials_version: account.credentials_version + 1,
        Account.refreshing_until: None,
    }
    if renewed.refresh_token:
        values[Account.refresh_token] = keyring.encrypt(renewed.refresh_token)
    with db.connection(), db.write():
        stored = (
            Account.update(values)
            .where(
                (Account.id == account.account_id)
                & (Account.credentials_version == account.credentials_version)
            )
            .execute()
        )
    if not stored:
        # Only when this claim outlived its time and another refresh won meanwhile.
        log.warning(
            "account %s: a refresh outlived its claim; its tokens were not stored",
            account.account_id,
        )
    return dataclasses.replace(
        account,
        token=renewed.token,
        refresh_token=renewed.refresh_token or account.refresh_token,
        token_expires_at=expires_at,
        credentials_version=account.credentials_version + 1,
    )


def _release(account: AccountRef) -> None:
    """Gives a claim back after a failed exchange, so the next worker need not wait it out."""
    try:
        with db.connection(), db.write():
            Account.update(refreshing_until=None).where(
                (Account.id == account.account_id)
                & (Account.credentials_version == account.credentials_version)
            ).execute()
    except db.UNAVAILABLE:
        log.exception(
            "account %s: could not give back a refresh claim; it expires", account.account_id
        )
