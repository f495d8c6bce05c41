"""Renewing expired access tokens (workers.credentials) against a fake OAuth token
endpoint whose refresh tokens work once (tests/fakes/oauth.py), on the database
of each backend.

The race: two threads released together by a barrier refresh the same account,
again and again on fresh accounts; the endpoint must see its refresh token
spent once each time, whichever thread wins, and both threads must end with
the one new token stored.
"""

from __future__ import annotations

import collections
import threading
import time

import pytest

from service import crypto, db
from service.models import Account
from tests.fakes.oauth import EXPIRES_IN, FakeTokenEndpoint
from workers import credentials
from workers.adapters import http
from workers.adapters.base import AccountRef, PermanentError

BACKENDS = ["sqlite", "postgres-redis"]
ITERATIONS = 40
BARRIER_TIMEOUT = 5.0
#: After the barrier one thread (each in turn) starts this much later: the last to
#: reach a barrier runs on first, so without a lag it would always win. Far below
#: the fake's delay, so the loser still arrives while the winner's refresh is under way.
LAGS = (0.0, 0.001, 0.003)


@pytest.fixture
def endpoint(start_fake) -> FakeTokenEndpoint:
    return start_fake(FakeTokenEndpoint(client_id="yt-client", client_secret="yt-secret"))


def exchange(endpoint: FakeTokenEndpoint, who: list | None = None, name: str = ""):
    """A network's refresh request, as an adapter makes it; notes in ``who`` which
    thread made it."""

    def call(account: AccountRef) -> credentials.Renewed:
        if who is not None:
            who.append(name)
        with http.client(endpoint.base_url) as api:
            answer = http.request(
                api,
                "POST",
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": account.refresh_token,
                    "client_id": account.client_id,
                    "client_secret": account.client_secret,
                },
            ).json()
        return credentials.Renewed(
            answer["access_token"], answer.get("refresh_token", ""), answer.get("expires_in")
        )

    return call


def new_account(tenant, endpoint: FakeTokenEndpoint, refresh_token: str) -> AccountRef:
    endpoint.issue(refresh_token, access_token=f"old-{refresh_token}")
    account_id = tenant.add_account(
        "youtube",
        sandbox=False,
        base_url=endpoint.base_url,
        token=f"old-{refresh_token}",
        refresh_token=refresh_token,
        client_id="yt-client",
        client_secret="yt-secret",
    )
    return stored(account_id)


def stored(account_id: str) -> AccountRef:
    with db.connection():
        return credentials.account_ref(Account.get_by_id(account_id))


def raw(account_id: str) -> Account:
    with db.connection():
        return Account.get_by_id(account_id)


def test_a_refresh_stores_the_new_tokens_encrypted_and_bumps_the_version(tenant, endpoint):
    account = new_account(tenant, endpoint, "rt-single")
    assert account.refresh_token == "rt-single" and account.credentials_version == 0

    renewed = credentials.refresh(account, exchange(endpoint))

    (spent,) = endpoint.spent("rt-single")
    assert renewed.token == spent and endpoint.valid(spent)
    assert renewed.credentials_version == 1
    now_stored = stored(account.account_id)
    assert (now_stored.token, now_stored.refresh_token) == (spent, renewed.refresh_token)
    assert now_stored.refresh_token != "rt-single"
    assert now_stored.credentials_version == 1
    lifetime = (now_stored.token_expires_at - db.utcnow()).total_seconds()
    assert EXPIRES_IN - 60 < lifetime <= EXPIRES_IN
    row = raw(account.account_id)
    assert row.refreshing_until is None
    keyring = crypto.keyring()
    for column in ("credentials", "refresh_token", "client_secret"):
        assert getattr(row, column) and "access-" not in getattr(row, column)
        assert "refresh-" not in getattr(row, column)
    assert keyring.decrypt(row.credentials) == spent


def test_a_worker_holding_old_tokens_gets_the_stored_ones_without_a_refresh(tenant, endpoint):
    account = new_account(tenant, endpoint, "rt-stale")
    first = credentials.refresh(account, exchange(endpoint))

    # A worker that read the account before that refresh finds its token expired too
    second = credentials.refresh(account, exchange(endpoint))

    assert second.token == first.token and second.credentials_version == 1
    assert len(endpoint.spent("rt-stale")) == 1 and not endpoint.refused


def test_two_workers_refreshing_at_once_spend_the_refresh_token_once(tenant, endpoint):
    # Each exchange takes a moment, so the loser arrives while the winner's claim is held.
    endpoint.delay = 0.02
    winners: collections.Counter[str] = collections.Counter()
    for n in range(ITERATIONS):
        account = new_account(tenant, endpoint, f"rt-race-{n}")
        barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
        who: list[str] = []
        results: dict[str, AccountRef | BaseException] = {}

        late, lag = "ab"[n % 2], LAGS[n // 2 % len(LAGS)]

        def worker(
            name: str,
            account=account,
            barrier=barrier,
            who=who,
            results=results,
            late=late,
            lag=lag,
        ) -> None:
            try:
                barrier.wait()
                if name == late:
                    time.sleep(lag)
                results[name] = credentials.refresh(account, exchange(endpoint, who, name))
            except BaseException as exc:  # noqa: BLE001 (asserted below)
                results[name] = exc

        threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        # The refresh token was spent once, by one of them, and both use its answer
        assert endpoint.spent(f"rt-race-{n}") and len(endpoint.spent(f"rt-race-{n}")) == 1, (
            n,
            endpoint.refused,
        )
        assert len(who) == 1, (n, who, results)
        assert not any(isinstance(r, BaseException) for r in results.values()), results
        (issued,) = endpoint.spent(f"rt-race-{n}")
        assert results["a"].token == results["b"].token == issued
        assert stored(account.account_id).token == issued
        winners[who[0]] += 1
    print("refreshes won:", dict(winners))
    # Both outcomes happened: the race was real, not one thread always first
    assert winners["a"] and winners["b"], winners
    assert not endpoint.refused


def test_a_revoked_refresh_token_is_credentials_revoked_and_gives_the_claim_back(tenant, endpoint):
    account = new_account(tenant, endpoint, "rt-revoked")
    endpoint.revoke("rt-revoked")

    with pytest.raises(PermanentError) as failure:
        credentials.refresh(account, exchange(endpoint))

    assert failure.value.code == credentials.CREDENTIALS_REVOKED
    assert "invalid_grant" in failure.value.message or "revoked" in failure.value.message
    assert "rt-revoked" not in failure.value.message
    row = raw(account.account_id)
    assert (row.refreshing_until, row.credentials_version) == (None, 0)
    assert stored(account.account_id).token == "old-rt-revoked"
