"""The WEBHOOK adapter: signed JSON POSTs, one per item, deduplicated by key.

Unit tests drive the adapter straight at the fake consumer; the integration
tests go through the real gRPC service and its in-process worker, and read
what reached the consumer from the fake's records (``arrivals``: every
request, faults included; ``live``: every item it accepted, once per key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from google.protobuf import json_format

from tests.fakes.base import Fault
from tests.fakes.webhook import FakeWebhook, parse_signature
from tests.support import ReadmeReceiver, in_seconds, item, readme_block, utcnow
from workers.adapters.base import AccountRef, ItemRequest, PermanentError
from workers.adapters.webhook import (
    WebhookAdapter,
    _published,
    encode_body,
    sign,
    signature_header,
)

# isort: split
from posts.v1 import posts_pb2 as pb

pytestmark = pytest.mark.server_env(POSTS_RETRY_BASE="0.2", POSTS_MAX_ATTEMPTS="3")

SECRET = "whsec_test-signing-secret"


@pytest.fixture
def fake(start_fake) -> FakeWebhook:
    return start_fake(FakeWebhook(SECRET))


@pytest.fixture
def hook(make_account, fake):
    return _hook(make_account, fake, SECRET)


def _hook(make_account, fake: FakeWebhook, token: str):
    """A tenant with a webhook account pointing at the fake consumer."""
    return make_account(
        "webhook", handle="consumer", base_url=fake.base_url + "/hooks/posts", token=token
    )


def verifies(request, secret: str = SECRET) -> bool:
    """The request's X-Signature checks out, computed here with the hmac module."""
    timestamp, given = parse_signature(request.headers["x-signature"])
    message = str(timestamp).encode() + b"." + request.body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, expected) and abs(time.time() - timestamp) < 60


# ------------------------------------------------------------------- unit tests


def test_signature_matches_a_known_vector():
    # Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    known = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    body = b'{"a":1}'
    assert sign("whsec_test", 1700000000, body) == known
    assert hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest() == known
    assert signature_header("whsec_test", 1700000000, body) == f"t=1700000000,v1={known}"


def test_signature_covers_the_timestamp_and_the_body():
    body = b'{"a":1}'
    assert sign("s", 1, body) != sign("s", 2, body)
    assert sign("s", 1, body) != sign("s", 1, b'{"a":2}')
    assert sign("s", 1, body) != sign("t", 1, body)


def _request(key: str = "k" * 32, index: int = 0) -> ItemRequest:
    return ItemRequest(
        post_id="pst_unit",
        post_type="post",
        title="",
        item_index=index,
        item_count=1,
        text="héllo",
        media=(),
        reply_to=None,
        idempotency_key=key,
        post_json={"postId": "pst_unit", "items": [{"text": "héllo"}]},
    )


def _adapter(fake: FakeWebhook, token: str = SECRET, clock=time.time) -> WebhookAdapter:
    account = AccountRef("acc_unit", "webhook", "consumer", fake.base_url + "/hooks/unit", token)
    return WebhookAdapter(account, clock=clock)


def test_body_is_the_spec_shape_and_exactly_what_is_signed(fake):
    request = _request()
    published = _adapter(fake).publish(request)
    [arrival] = fake.arrivals
    sent = arrival.request
    assert sent.path == "/hooks/unit"
    assert sent.body == encode_body(request)
    assert json.loads(sent.body) == {
        "post": request.post_json,
        "itemIndex": 0,
        "idempotencyKey": request.idempotency_key,
    }
    assert sent.headers["idempotency-key"] == request.idempotency_key
    assert sent.headers["content-type"] == "application/json"
    assert verifies(sent)
    assert published.platform_post_id == fake.live[0]["id"]
    assert published.url == f"https://consumer.example/unit/{fake.live[0]['id']}"


def test_same_key_gets_the_same_answer_and_goes_live_once(fake):
    adapter = _adapter(fake)
    first = adapter.publish(_request("a" * 32))
    again = adapter.publish(_request("a" * 32))
    other = adapter.publish(_request("b" * 32))
    assert first == again != other
    assert [entry["key"] for entry in fake.live] == ["a" * 32, "b" * 32]


def test_answer_without_id_falls_back_to_the_key(start_fake):
    consumer = start_fake(FakeWebhook(SECRET, with_ids=False))
    published = _adapter(consumer).publish(_request("c" * 32))
    assert (published.platform_post_id, published.url) == ("c" * 32, "")


@pytest.mark.parametrize(
    ("answer", "platform_id"),
    [
        ({"id": 42}, "42"),
        ({"id": {"value": "m-1"}}, "d" * 32),  # not an id: the key, not "{'value': 'm-1'}"
        ({"id": ["m-1"]}, "d" * 32),
        ({"id": True}, "d" * 32),
    ],
)
def test_only_a_string_or_a_number_is_taken_for_the_id(answer, platform_id):
    response = httpx.Response(201, json=answer, request=httpx.Request("POST", "http://x/h"))
    assert _published(response, "d" * 32).platform_post_id == platform_id


def test_wrong_secret_is_refused_with_401(fake):
    with pytest.raises(PermanentError) as refused:
        _adapter(fake, token="not-the-secret").publish(_request())
    assert (refused.value.code, refused.value.message) == ("401", "invalid signature")
    assert fake.live == []


def test_stale_timestamp_is_refused_with_401(fake):
    six_minutes_ago = lambda: time.time() - 360
    with pytest.raises(PermanentError) as refused:
        _adapter(fake, clock=six_minutes_ago).publish(_request())
    assert refused.value.code == "401"
    assert "timestamp" in refused.value.message
    four_minutes_ago = lambda: time.time() - 240
    assert _adapter(fake, clock=four_minutes_ago).publish(_request()).platform_post_id
    assert len(fake.live) == 1


def test_fake_refuses_unsigned_requests(fake):
    response = httpx.post(fake.base_url + "/hooks/posts", json={"post": {}, "itemIndex": 0})
    assert response.status_code == 401
    assert fake.live == []


# ----------------------------------------------------------- through the service


def test_publishes_one_signed_post_per_item(api, hook, fake):
    post = hook.publish(api, text="Hello, consumer")
    done = api.wait_published(hook.tenant, post.post_id)

    [entry] = fake.live_for(post.post_id)
    assert (done.platform_post_id, done.platform_url) == (
        entry["id"],
        f"https://consumer.example/posts/{entry['id']}",
    )
    [arrival] = fake.arrivals
    assert arrival.request.path == "/hooks/posts"
    assert verifies(arrival.request)
    body = entry["body"]
    assert body["itemIndex"] == 0
    assert body["idempotencyKey"] == arrival.key == entry["key"]
    sent = json_format.ParseDict(body["post"], pb.Post())  # strict: the Post's proto JSON
    assert sent.post_id == post.post_id
    assert sent.account_id == hook.account_id
    assert sent.platform == pb.PLATFORM_WEBHOOK
    assert [i.text for i in sent.items] == ["Hello, consumer"]


def test_thread_sends_one_post_per_item_with_distinct_keys(api, hook, fake):
    post = hook.publish(
        api, post_type=pb.POST_TYPE_THREAD, items=[item("one"), item("two"), item("three")]
    )
    done = api.wait_published(hook.tenant, post.post_id)

    live = fake.live_for(post.post_id)
    assert [entry["item_index"] for entry in live] == [0, 1, 2]
    assert len({entry["key"] for entry in live}) == 3
    assert len(fake.arrivals) == 3
    assert all(verifies(arrival.request) for arrival in fake.arrivals)
    assert [i.platform_post_id for i in done.items] == [entry["id"] for entry in live]
    for entry in live:
        sent = json_format.ParseDict(entry["body"]["post"], pb.Post())
        assert [i.text for i in sent.items] == ["one", "two", "three"]


def test_transient_failure_is_retried_with_the_same_key(api, hook, fake):
    fake.fail_next(Fault(status=503, body={"error": "consumer is restarting"}))
    post = hook.publish(api, items=[item("first"), item("second")])
    done = api.wait_published(hook.tenant, post.post_id)

    assert done.delivery.attempts == 2
    live = fake.live_for(post.post_id)
    assert [entry["item_index"] for entry in live] == [0, 1]
    keys = fake.keys()
    assert len(keys) == 3 and keys[0] == keys[1] == live[0]["key"] != keys[2]


def test_retry_after_is_respected(api, hook, fake):
    fake.fail_next(Fault(status=429, body={"error": "slow down"}, headers={"Retry-After": "1"}))
    post = hook.publish(api, text="Patience")
    done = api.wait_published(hook.tenant, post.post_id)

    assert done.delivery.attempts == 2
    first, second = fake.arrivals
    assert second.at - first.at >= 1.0
    assert len(fake.live_for(post.post_id)) == 1


def test_permanent_failure_fails_with_the_consumers_reason(api, hook, fake, wait_failed):
    fake.fail_next(Fault(status=400, body={"error": "channel is archived"}))
    post = hook.publish(api, text="Nobody listens")
    failed = wait_failed(hook.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("400", "channel is archived")
    assert failed.delivery.attempts == 1
    assert fake.live == []


def test_bad_secret_fails_with_401(api, make_account, fake, wait_failed):
    hook = _hook(make_account, fake, token="not-the-consumers-secret")
    post = hook.publish(api, text="Forged?")
    failed = wait_failed(hook.tenant, post.post_id)

    assert (failed.error.code, failed.error.message) == ("401", "invalid signature")
    assert failed.delivery.attempts == 1
    assert fake.live == []


def test_unknown_outcome_is_repeated_with_the_same_key(api, hook, fake, delivery_hooks):
    post = hook.publish(api, status=pb.STATUS_CHANGE_DRAFT, items=[item("a"), item("b"), item("c")])
    armed = []

    def drop_second_item(post_id, index):
        # Item 1 goes live on the consumer, then the connection drops unanswered.
        if post_id == post.post_id and index == 1 and not armed:
            armed.append(index)
            fake.fail_next(Fault(drop=True))

    delivery_hooks.before_send(drop_second_item)
    api.update(hook.tenant, post.post_id, status=pb.STATUS_CHANGE_PUBLISH)
    done = api.wait_published(hook.tenant, post.post_id)

    assert armed and done.delivery.attempts == 2
    live = fake.live_for(post.post_id)
    assert [entry["item_index"] for entry in live] == [0, 1, 2]  # each item once
    keys = fake.keys()
    assert keys == [live[0]["key"], live[1]["key"], live[1]["key"], live[2]["key"]]
    assert [i.platform_post_id for i in done.items] == [entry["id"] for entry in live]


def test_editing_content_changes_the_keys_and_a_retry_keeps_them(api, hook, fake):
    from service import db
    from service.models import Post
    from workers.delivery import delivery_key

    def keys_now(post_id: str) -> list[str]:
        with db.connection():
            row = Post.get_by_id(post_id)
            return [delivery_key(row, index) for index in range(2)]

    post = hook.publish(
        api,
        status=pb.STATUS_CHANGE_SCHEDULED,
        scheduled_at=in_seconds(3600),
        idempotency_key=f"edit-{uuid.uuid4()}",
        items=[item("v1 a"), item("v1 b")],
    )
    before = keys_now(post.post_id)
    api.update(hook.tenant, post.post_id, items=[item("v2 a"), item("v2 b")])
    after = keys_now(post.post_id)
    assert set(before).isdisjoint(after)

    fake.fail_next(Fault(status=503, body={"error": "busy"}))
    api.update(hook.tenant, post.post_id, scheduled_at=utcnow())  # due now: publish
    done = api.wait_published(hook.tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert fake.keys() == [after[0], after[0], after[1]]  # the retry kept the key
    live = fake.live_for(post.post_id)
    assert [entry["key"] for entry in live] == after
    sent = json_format.ParseDict(live[0]["body"]["post"], pb.Post())
    assert [i.text for i in sent.items] == ["v2 a", "v2 b"]


# ------------------------------------------------------------- the README's receiver


def test_the_readme_receiver_takes_real_deliveries(api, make_account, wait_failed, tmp_path):
    code = readme_block("Receiving posts: the webhook network")
    assert len(code.strip().splitlines()) <= 10
    receiver = ReadmeReceiver(code, tmp_path)
    hook = make_account("webhook", handle="readme", base_url=receiver.url("/posts"), token=SECRET)
    forger = make_account(
        "webhook", handle="forger", base_url=receiver.url("/posts"), token="not-the-receivers-token"
    )
    with receiver.start(WEBHOOK_TOKEN=SECRET):
        # A thread: one signed POST per item, each answered with the receiver's id and url.
        post = hook.publish(api, item("one"), item("two"))
        done = api.wait_published(hook.tenant, post.post_id)
        refs = [f"{post.post_id}-{index}" for index in range(2)]
        assert [i.platform_post_id for i in done.items] == refs
        assert [i.platform_url for i in done.items] == [f"https://example.com/{r}" for r in refs]
        assert (done.platform_post_id, done.platform_url) == (refs[0], done.items[0].platform_url)
        assert done.delivery.attempts == 1

        # Deliveries signed with another token are refused: the post fails at once.
        forged = forger.publish(api, text="forged")
        failed = wait_failed(forger.tenant, forged.post_id)
        assert (failed.error.code, failed.error.message) == ("401", "Unauthorized")
        assert failed.delivery.attempts == 1

        # And so are a replayed (old) signature and a body that is not the one signed.
        body = b'{"post":{"postId":"pst_1"},"itemIndex":0,"idempotencyKey":"k"}'
        now = int(time.time())

        def status(body: bytes, signature: str) -> int:
            return receiver.post("/posts", body, {"X-Signature": signature})[0]

        assert status(body, signature_header(SECRET, now, body)) == 201
        assert status(body, signature_header(SECRET, now - 301, body)) == 401
        assert status(body + b" ", signature_header(SECRET, now, body)) == 401
        assert status(body, signature_header("another-token", now, body)) == 401
