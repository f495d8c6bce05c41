"""The Mastodon adapter: statuses with the native Idempotency-Key, threads, media.

Integration tests go through the real gRPC service and its in-process worker to
a fake Mastodon instance, and read what reached it from the fake's records
(``arrivals``: every request, faults included, stamped on arrival; ``live``:
every status it published). A few unit tests drive the adapter straight at the
fake.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from tests.fakes.base import Fault
from tests.fakes.mastodon import FakeMastodon
from tests.support import item
from workers.adapters import mastodon
from workers.adapters.base import AccountRef, ItemRequest, MediaRef

TOKEN = "mastodon-access-token"
USERNAME = "alice"
STATUSES = "/api/v1/statuses"


@pytest.fixture
def fake(start_fake) -> FakeMastodon:
    return start_fake(FakeMastodon(token=TOKEN, username=USERNAME))


def _account(make_account, fake: FakeMastodon, token: str = TOKEN):
    """A tenant with a (non-sandbox) Mastodon account on the fake instance."""
    return make_account("mastodon", handle=USERNAME, base_url=fake.base_url, token=token)


@pytest.fixture
def account(make_account, fake):
    return _account(make_account, fake)


def gap(arrivals) -> float:
    """Seconds between the first two arrivals."""
    return arrivals[1].at - arrivals[0].at


# ---------------------------------------------------------------- integration


def test_publishes_a_status_with_media(api, account, fake, png):
    post = account.publish(api, item("Hello, fediverse", [png(fake, "cat.png", "A cat")]))
    done = api.wait_published(account.tenant, post.post_id)

    [status] = fake.live
    assert status["text"] == "Hello, fediverse"
    assert status["in_reply_to_id"] is None
    [media] = status["media"]
    assert (media["description"], media["type"]) == ("A cat", "image/png")
    assert media["data"] == fake.served("cat.png")
    url = fake.status_url(USERNAME, status["id"])
    assert (done.platform_post_id, done.platform_url) == (status["id"], url)
    assert (done.items[0].platform_post_id, done.items[0].platform_url) == (status["id"], url)
    [sent] = fake.calls(STATUSES)
    assert sent.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert re.fullmatch(r"[0-9a-f]{32}", sent.request.headers["idempotency-key"])
    assert done.delivery.attempts == 1


def test_thread_replies_to_the_previous_status(api, account, fake):
    post = account.publish(api, item("one"), item("two"), item("three"))
    done = api.wait_published(account.tenant, post.post_id)

    assert [s["text"] for s in fake.live] == ["one", "two", "three"]
    ids = [s["id"] for s in fake.live]
    assert [s["in_reply_to_id"] for s in fake.live] == [None, ids[0], ids[1]]
    assert [i.platform_post_id for i in done.items] == ids
    assert len({s["idempotency_key"] for s in fake.live}) == 3


def test_transient_failure_is_retried(api, account, fake):
    fake.fail_next(Fault(status=503, body={"error": "Service unavailable"}, path=STATUSES))
    post = account.publish(api, item("after a hiccup"))
    done = api.wait_published(account.tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.live) == 1
    assert len(fake.calls(STATUSES)) == 2


def test_retry_after_is_respected(api, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            body={"error": "Too many requests"},
            headers={"Retry-After": "1"},
            path=STATUSES,
        )
    )
    post = account.publish(api, item("patiently"))
    api.wait_published(account.tenant, post.post_id)

    arrivals = fake.calls(STATUSES)
    assert len(arrivals) == 2 and len(fake.live) == 1
    assert gap(arrivals) >= 1.0


def test_rate_limit_reset_stands_in_for_retry_after(api, account, fake):
    # Mastodon's own 429 says when the limit resets, not how long to wait.
    reset_mono = time.monotonic() + 1.2
    reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.2)
    fake.fail_next(
        Fault(
            status=429,
            body={"error": "Too many requests"},
            path=STATUSES,
            headers={"X-RateLimit-Reset": reset.isoformat()},
        )
    )
    post = account.publish(api, item("after the reset"))
    api.wait_published(account.tenant, post.post_id)

    arrivals = fake.calls(STATUSES)
    assert len(arrivals) == 2
    assert arrivals[1].at >= reset_mono - 0.05


def test_permanent_failure_fails_with_the_network_reason(api, account, fake, wait_failed):
    fake.fail_next(
        Fault(status=400, body={"error": "Bad request: status is malformed"}, path=STATUSES)
    )
    post = account.publish(api, item("doomed"))
    failed = wait_failed(account.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("400", "Bad request: status is malformed")
    assert failed.delivery.attempts == 1
    assert fake.live == []


def test_bad_credentials_fail(api, make_account, fake, wait_failed):
    account = _account(make_account, fake, token="revoked-token")
    post = account.publish(api, item("nope"))
    failed = wait_failed(account.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("401", "The access token is invalid")
    assert failed.delivery.attempts == 1
    assert fake.live == []


def test_unknown_outcome_is_sent_again_under_the_same_key(api, account, fake):
    # The status goes live, then the connection drops before the answer.
    fake.fail_next(Fault(drop=True, path=STATUSES))
    post = account.publish(api, item("exactly once"))
    done = api.wait_published(account.tenant, post.post_id)

    [status] = fake.live
    arrivals = fake.calls(STATUSES)
    assert len(arrivals) == 2
    keys = {a.request.headers["idempotency-key"] for a in arrivals}
    assert keys == {status["idempotency_key"]}
    assert done.platform_post_id == status["id"]
    assert done.delivery.attempts == 2


def test_unknown_outcome_midway_through_a_thread(api, account, fake, delivery_hooks):
    # The second status goes live unanswered: the retry keeps the first, sends the
    # second again under its key (getting the same status back) and goes on.
    injected = []

    def drop_second(post_id, index):
        if index == 1 and not injected:
            injected.append(post_id)
            fake.fail_next(Fault(drop=True, path=STATUSES))

    delivery_hooks.before_send(drop_second)
    post = account.publish(api, item("a"), item("b"), item("c"))
    done = api.wait_published(account.tenant, post.post_id)

    assert [s["text"] for s in fake.live] == ["a", "b", "c"]
    ids = [s["id"] for s in fake.live]
    assert [s["in_reply_to_id"] for s in fake.live] == [None, ids[0], ids[1]]
    assert [i.platform_post_id for i in done.items] == ids
    assert len(fake.calls(STATUSES)) == 4
    assert done.delivery.attempts == 2


# ---------------------------------------------------------------- unit tests


def _request(key: str, text: str = "hi", media=(), reply_to=None) -> ItemRequest:
    return ItemRequest(
        post_id="pst_unit",
        post_type="post",
        title="",
        item_index=0,
        item_count=1,
        text=text,
        media=tuple(media),
        reply_to=reply_to,
        idempotency_key=key,
    )


def _adapter(fake: FakeMastodon, token: str = TOKEN) -> mastodon.MastodonAdapter:
    return mastodon.Adapter(AccountRef("acc_unit", "mastodon", USERNAME, fake.base_url, token))


def test_the_same_key_answers_the_same_status(fake):
    adapter = _adapter(fake)
    first = adapter.publish(_request("k" * 32))
    again = adapter.publish(_request("k" * 32))
    other = adapter.publish(_request("j" * 32))

    assert first == again != other
    assert len(fake.live) == 2
    assert adapter.honours_idempotency_keys and not adapter.can_look_up


def test_waits_for_media_still_processing(monkeypatch, start_fake):
    monkeypatch.setattr(mastodon, "MEDIA_POLL_INTERVAL", 0.01)
    fake = start_fake(FakeMastodon(token=TOKEN, processing_polls=2))
    media = MediaRef(fake.add_file("big.png"), "image", "image/png", "big")
    _adapter(fake).publish(_request("m" * 32, media=[media]))
    [status] = fake.live
    assert status["media"][0]["description"] == "big"
    assert len(fake.calls("/api/v1/media/")) == 3  # 206, 206, 200
