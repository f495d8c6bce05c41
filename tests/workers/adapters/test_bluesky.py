"""The Bluesky adapter: sessions, createRecord with derived record keys, reply refs.

Integration tests go through the real gRPC service and its in-process worker to
a fake PDS, and read what reached it from the fake's records (``arrivals``:
every request, faults included, stamped on arrival; ``live``: every post it
created). A few unit tests drive the adapter straight at the fake.
"""

from __future__ import annotations

import time
import uuid

import pytest
from ulid import ULID

from tests.fakes.base import Fault
from tests.fakes.bluesky import TID, FakeBluesky
from tests.support import item
from workers.adapters import bluesky
from workers.adapters.base import AccountRef, ItemRequest, PermanentError

HANDLE = "alice.test"
PASSWORD = "abcd-efgh-ijkl-mnop"
CREATE = "com.atproto.repo.createRecord"
GET = "com.atproto.repo.getRecord"
LOGIN = "com.atproto.server.createSession"
REFRESH = "com.atproto.server.refreshSession"


@pytest.fixture
def fake(start_fake) -> FakeBluesky:
    return start_fake(FakeBluesky(handle=HANDLE, password=PASSWORD))


def _account(make_account, fake: FakeBluesky, password: str = PASSWORD):
    """A tenant with a (non-sandbox) Bluesky account on the fake PDS."""
    return make_account("bluesky", handle=HANDLE, base_url=fake.base_url, token=password)


@pytest.fixture
def account(make_account, fake):
    return _account(make_account, fake)


def ref(entry: dict) -> dict:
    return {"uri": entry["uri"], "cid": entry["cid"]}


# ---------------------------------------------------------------- integration


def test_publishes_a_post_with_an_image(api, account, fake, png):
    text = "Hello, Bluesky: https://example.com/hello"
    post = account.publish(api, item(text, [png(fake, "cat.png", "A cat")]))
    done = api.wait_published(account.tenant, post.post_id)

    [entry] = fake.live
    assert entry["text"] == text
    assert entry["reply"] is None
    [image] = entry["images"]
    assert (image["alt"], image["mime_type"]) == ("A cat", "image/png")
    assert image["data"] == fake.served("cat.png")
    [facet] = entry["facets"]
    assert facet["features"][0]["uri"] == "https://example.com/hello"
    assert text.encode()[facet["index"]["byteStart"] : facet["index"]["byteEnd"]] == (
        b"https://example.com/hello"
    )
    assert TID.fullmatch(entry["rkey"])
    url = f"https://bsky.app/profile/{HANDLE}/post/{entry['rkey']}"
    assert (done.platform_post_id, done.platform_url) == (entry["uri"], url)
    assert (done.items[0].platform_post_id, done.items[0].platform_url) == (entry["uri"], url)
    assert entry["uri"] == fake.uri(entry["rkey"])
    assert len(fake.calls(LOGIN)) == 1
    assert done.delivery.attempts == 1


def test_thread_items_carry_root_and_parent_refs(api, account, fake):
    post = account.publish(api, item("one"), item("two"), item("three"))
    done = api.wait_published(account.tenant, post.post_id)

    first, second, third = fake.live
    assert [e["text"] for e in fake.live] == ["one", "two", "three"]
    assert first["reply"] is None
    assert second["reply"] == {"root": ref(first), "parent": ref(first)}
    assert third["reply"] == {"root": ref(first), "parent": ref(second)}
    assert [i.platform_post_id for i in done.items] == [e["uri"] for e in fake.live]
    assert len({e["rkey"] for e in fake.live}) == 3


def test_transient_failure_is_retried(api, account, fake):
    fake.fail_next(Fault(status=503, path=CREATE))
    post = account.publish(api, item("after a hiccup"))
    done = api.wait_published(account.tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.live) == 1
    assert len(fake.calls(CREATE)) == 2


def test_retry_after_is_respected(api, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            path=CREATE,
            headers={"Retry-After": "1"},
            body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )
    )
    post = account.publish(api, item("patiently"))
    api.wait_published(account.tenant, post.post_id)

    arrivals = fake.calls(CREATE)
    assert len(arrivals) == 2 and len(fake.live) == 1
    assert arrivals[1].at - arrivals[0].at >= 1.0


def test_rate_limit_reset_stands_in_for_retry_after(api, account, fake):
    # The PDS's own 429 says when the limit resets (unix seconds), not how long to wait.
    reset_mono, reset = time.monotonic() + 1.2, time.time() + 1.2
    fake.fail_next(
        Fault(
            status=429,
            path=CREATE,
            headers={"RateLimit-Reset": str(int(reset) + 1)},
            body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )
    )
    post = account.publish(api, item("after the reset"))
    api.wait_published(account.tenant, post.post_id)

    arrivals = fake.calls(CREATE)
    assert len(arrivals) == 2
    assert arrivals[1].at >= reset_mono - 0.05


def test_permanent_failure_fails_with_the_network_reason(api, account, fake, wait_failed):
    message = "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
    fake.fail_next(
        Fault(status=400, path=CREATE, body={"error": "InvalidRequest", "message": message})
    )
    post = account.publish(api, item("doomed"))
    failed = wait_failed(account.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("400", message)
    assert failed.delivery.attempts == 1
    assert fake.live == []


def test_bad_credentials_fail(api, make_account, fake, wait_failed):
    account = _account(make_account, fake, password="wrong-password")
    post = account.publish(api, item("nope"))
    failed = wait_failed(account.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("401", "Invalid identifier or password")
    assert failed.delivery.attempts == 1
    assert fake.live == [] and fake.calls(CREATE) == []


def test_unknown_outcome_is_looked_up_not_sent_again(api, account, fake):
    # The post goes live, then the connection drops before the answer: the
    # retry finds it under its record key and does not create it again.
    fake.fail_next(Fault(drop=True, path=CREATE))
    post = account.publish(api, item("exactly once"))
    done = api.wait_published(account.tenant, post.post_id)

    [entry] = fake.live
    assert len(fake.calls(CREATE)) == 1
    assert fake.calls(GET)[-1].at > fake.calls(CREATE)[0].at  # the look-up
    assert entry["rkey"] in fake.calls(GET)[-1].request.query
    assert done.platform_post_id == entry["uri"]
    assert done.delivery.attempts == 2


def test_unknown_outcome_midway_through_a_thread(api, account, fake, delivery_hooks):
    injected = []

    def drop_second(post_id, index):
        if index == 1 and not injected:
            injected.append(post_id)
            fake.fail_next(Fault(drop=True, path=CREATE))

    delivery_hooks.before_send(drop_second)
    post = account.publish(api, item("a"), item("b"), item("c"))
    done = api.wait_published(account.tenant, post.post_id)

    first, second, third = fake.live
    assert [e["text"] for e in fake.live] == ["a", "b", "c"]
    assert third["reply"] == {"root": ref(first), "parent": ref(second)}
    assert [i.platform_post_id for i in done.items] == [e["uri"] for e in fake.live]
    assert len(fake.calls(CREATE)) == 3
    assert done.delivery.attempts == 2


def test_session_is_reused_across_deliveries(api, account, fake):
    for text in ("first", "second"):
        post = account.publish(api, item(text))
        api.wait_published(account.tenant, post.post_id)

    assert [e["text"] for e in fake.live] == ["first", "second"]
    assert len(fake.calls(LOGIN)) == 1
    assert fake.calls(REFRESH) == []


def test_expired_session_is_refreshed(api, account, fake):
    post = account.publish(api, item("first"))
    api.wait_published(account.tenant, post.post_id)
    fake.expire_access_tokens()

    post = account.publish(api, item("second"))
    done = api.wait_published(account.tenant, post.post_id)

    assert [e["text"] for e in fake.live] == ["first", "second"]
    assert done.delivery.attempts == 1  # renewed within the attempt
    assert len(fake.calls(LOGIN)) == 1
    [refresh] = fake.calls(REFRESH)
    assert refresh.request.headers["authorization"] == "Bearer refresh-1"
    refused, retried = fake.calls(CREATE)[1:]
    assert refused.request.headers["authorization"] == "Bearer access-1"
    assert retried.request.headers["authorization"] == "Bearer access-2"


def test_a_refused_refresh_logs_in_again(api, account, fake):
    post = account.publish(api, item("first"))
    api.wait_published(account.tenant, post.post_id)
    fake.expire_access_tokens()
    fake.expire_refresh_tokens()

    post = account.publish(api, item("second"))
    api.wait_published(account.tenant, post.post_id)

    assert [e["text"] for e in fake.live] == ["first", "second"]
    assert len(fake.calls(REFRESH)) == 1
    assert len(fake.calls(LOGIN)) == 2


# ---------------------------------------------------------------- unit tests

POST_ID = "pst_01KB0000000000000000000000"


def _request(key: str, index: int = 0, text: str = "hi", reply_to=None) -> ItemRequest:
    return ItemRequest(
        post_id=POST_ID,
        post_type="thread",
        title="",
        item_index=index,
        item_count=3,
        text=text,
        media=(),
        reply_to=reply_to,
        idempotency_key=key,
    )


def _adapter(fake: FakeBluesky, password: str = PASSWORD) -> bluesky.BlueskyAdapter:
    account_id = f"acc_unit_{uuid.uuid4().hex}"  # sessions are cached per account
    return bluesky.Adapter(AccountRef(account_id, "bluesky", HANDLE, fake.base_url, password))


def test_record_keys_are_deterministic_tids():
    key = _request("a" * 32)
    rkeys = {bluesky.record_key(_request("a" * 32, index)) for index in range(25)}
    assert bluesky.record_key(key) == bluesky.record_key(_request("a" * 32))
    assert len(rkeys) == 25 and all(TID.fullmatch(rkey) for rkey in rkeys)
    assert bluesky.record_key(key) != bluesky.record_key(_request("b" * 32))
    # The TID's time is the post's creation second (from its ULID).
    value = 0
    for char in bluesky.record_key(key):
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    assert (value >> 10) // 1_000_000 == ULID.from_str(POST_ID[4:]).milliseconds // 1000


def test_a_repeated_create_answers_the_existing_post(fake):
    adapter = _adapter(fake)
    first = adapter.publish(_request("k" * 32))
    again = adapter.publish(_request("k" * 32))  # the PDS refuses the duplicate key (500)

    assert first == again
    assert len(fake.live) == 1
    assert len(fake.calls(CREATE)) == 2
    assert adapter.look_up(_request("k" * 32)) == first
    assert adapter.look_up(_request("z" * 32)) is None
    assert adapter.can_look_up and not adapter.honours_idempotency_keys


def test_a_reply_to_a_missing_post_fails_permanently(fake):
    adapter = _adapter(fake)
    missing = fake.uri("3kaaaaaaaaaaa")
    with pytest.raises(PermanentError) as refused:
        adapter.publish(_request("r" * 32, index=1, reply_to=missing))
    assert refused.value.code == "REPLY_TARGET_NOT_FOUND"
    assert fake.live == []
