"""Event webhooks delivered by the server's own worker, on every backend: each
event once after retries, in order per post, signed; disabled past the retry
window; isolated between workspaces; a slow subscriber holds up nobody; the
README's receiver works against real deliveries."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from google.protobuf import json_format

from tests.fakes.base import Fault
from tests.fakes.events import FakeSubscriber
from tests.support import ReadmeReceiver, call, readme_block, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb

pytestmark = pytest.mark.server_env(
    POSTS_WEBHOOK_RETRY_BASE="0.05",
    POSTS_WEBHOOK_RETRY_WINDOW="120",
    POSTS_DISPATCH_INTERVAL="0.05",
)


@pytest.fixture
def subscriber():
    fake = FakeSubscriber().start()
    yield fake
    fake.release()
    fake.stop()


def subscribe(api, tenant, fake: FakeSubscriber, name: str, **fields) -> pb.WebhookSubscription:
    request = pb.CreateWebhookSubscriptionRequest(
        workspace_id=tenant.workspace_id, url=fake.url(name), **fields
    )
    made = call(api.stub.CreateWebhookSubscription, request, tenant.key)
    fake.secrets[name] = made.secret
    return made.subscription


def subscriptions(api, tenant) -> dict[str, pb.WebhookSubscription]:
    request = pb.ListWebhookSubscriptionsRequest(workspace_id=tenant.workspace_id)
    answer = call(api.stub.ListWebhookSubscriptions, request, tenant.key)
    return {s.subscription_id: s for s in answer.subscriptions}


def events_of(api, tenant, post_id: str) -> list[pb.PostEvent]:
    request = pb.ListPostEventsRequest(
        workspace_id=tenant.workspace_id, post_id=post_id, page_size=1000
    )
    return list(call(api.stub.ListPostEvents, request, tenant.key).events)


def publish(api, tenant, n: int, text: str = "hooked") -> list[str]:
    posts = [
        api.create(tenant, text=f"{text} {i}", status=pb.STATUS_CHANGE_PUBLISH).post_id
        for i in range(n)
    ]
    for post_id in posts:
        api.wait_published(tenant, post_id)
    return posts


def all_arrived(api, tenant, fake, name, post_ids, timeout=20.0) -> dict[str, list[pb.PostEvent]]:
    """Waits until ``fake`` has received every event of every post (as
    ListPostEvents lists them); the posts' events."""
    expected = {}

    def done():
        for post_id in post_ids:
            expected[post_id] = events_of(api, tenant, post_id)
            got = {e["id"] for e in fake.received(name, post_id)}
            if not {str(e.event_id) for e in expected[post_id]} <= got:
                return False
        return True

    wait_for(done, timeout=timeout, interval=0.05, message=f"every event at {name}")
    return expected


def check_signature(secret: str, request) -> None:
    """The receiver's check, done again here: t and v1 over "<t>.<body>"."""
    parts = dict(p.split("=", 1) for p in request.headers["x-posts-signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - int(parts["t"])) < 60


def test_each_event_arrives_once_in_order_signed_after_three_500s(api, make_tenant, subscriber):
    from service.events import WEBHOOK_NAMES

    tenant = make_tenant("retried")
    sub = subscribe(api, tenant, subscriber, "retried")
    subscriber.fail_next(Fault(500), Fault(500), Fault(500))

    posts = publish(api, tenant, 3)
    expected = all_arrived(api, tenant, subscriber, "retried", posts)

    # Each event exactly once, in its post's order, as ListPostEvents shows it.
    received = subscriber.received("retried")
    ids = [entry["id"] for entry in received]
    assert len(ids) == len(set(ids)), ids
    for post_id in posts:
        got = [entry["id"] for entry in received if entry["post_id"] == post_id]
        assert got == [str(e.event_id) for e in expected[post_id]]
        for entry, event in zip(
            subscriber.received("retried", post_id), expected[post_id], strict=True
        ):
            assert entry["header_id"] == entry["id"]
            assert entry["type"] == WEBHOOK_NAMES[event.type]
            assert entry["event"] == json_format.MessageToDict(event)
            assert entry["body"]["createTime"] == event.create_time.ToJsonString()
    # The three 500s were real tries, then retried; every request was signed.
    assert len(subscriber.log) == len(received) + 3
    assert subscriber.refused == []
    for arrival in subscriber.log:
        check_signature(subscriber.secrets["retried"], arrival.request)
    # A success after failures resets the subscription's failure count.
    listed = subscriptions(api, tenant)[sub.subscription_id]
    assert (listed.consecutive_failures, listed.last_error) == (0, "")
    assert listed.state == pb.WEBHOOK_SUBSCRIPTION_STATE_ACTIVE


def test_event_types_filter_what_is_sent(api, make_tenant, subscriber):
    tenant = make_tenant("typed")
    subscribe(api, tenant, subscriber, "typed", event_types=[pb.POST_EVENT_TYPE_PUBLISHED])
    subscribe(api, tenant, subscriber, "all")
    posts = publish(api, tenant, 2)
    all_arrived(api, tenant, subscriber, "all", posts)
    wait_for(lambda: len(subscriber.received("typed")) == 2, message="two post.published")
    assert {e["type"] for e in subscriber.received("typed")} == {"post.published"}
    assert sorted(e["post_id"] for e in subscriber.received("typed")) == sorted(posts)


def test_a_subscriber_down_past_the_retry_window_is_disabled(
    api, make_tenant, subscriber, server, monkeypatch
):
    from service import db
    from service.models import WebhookDelivery
    from service.webhooks import Policy
    from workers import webhooks

    monkeypatch.setattr(
        webhooks, "_policy", Policy(webhooks.policy().lease, retry_base=0.05, retry_window=1.0)
    )
    tenant = make_tenant("down")
    sub = subscribe(api, tenant, subscriber, "down")
    subscriber.fail_next(*[Fault(503, {"error": "secret details of the receiver"})] * 10_000)
    publish(api, tenant, 1)

    def disabled():
        found = subscriptions(api, tenant)[sub.subscription_id]
        return found if found.state == pb.WEBHOOK_SUBSCRIPTION_STATE_DISABLED else None

    found = wait_for(disabled, timeout=20, message="the subscription disabled")
    assert found.last_error == "HTTP 503 Service Unavailable"  # never the body
    assert found.consecutive_failures >= 2
    assert found.HasField("disable_time")
    # Its rows stopped, and new events make none.
    tries = len(subscriber.log)
    publish(api, tenant, 1)
    with db.connection():
        assert (
            WebhookDelivery.select()
            .where(WebhookDelivery.subscription == sub.subscription_id)
            .count()
            == 0
        )
    assert len(subscriber.log) == tries


def test_another_workspaces_events_never_arrive(api, make_tenant, subscriber):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")
    subscribe(api, mine, subscriber, "mine")
    subscribe(api, theirs, subscriber, "theirs")
    my_posts = publish(api, mine, 2, "mine")
    their_posts = publish(api, theirs, 2, "theirs")
    all_arrived(api, mine, subscriber, "mine", my_posts)
    all_arrived(api, theirs, subscriber, "theirs", their_posts)
    assert {e["post_id"] for e in subscriber.received("mine")} == set(my_posts)
    assert {e["post_id"] for e in subscriber.received("theirs")} == set(their_posts)
    assert {e["event"]["workspaceId"] for e in subscriber.received("mine")} == {mine.workspace_id}


def test_a_slow_subscriber_delays_neither_posts_nor_other_subscribers(api, make_tenant):
    slow, fast = FakeSubscriber().start(), FakeSubscriber().start()
    slow.delay = 3.0  # every request: within the 5 s deadline, so each succeeds
    try:
        tenant = make_tenant("slowpoke")
        subscribe(api, tenant, slow, "slow")
        subscribe(api, tenant, fast, "fast")
        started = time.monotonic()
        posts = publish(api, tenant, 6)
        # Every post went out at once, and the fast subscriber had all their events,
        # while the slow one was still on its first few.
        all_arrived(api, tenant, fast, "fast", posts, timeout=8.0)
        took = time.monotonic() - started
        assert len(slow.received("slow")) < len(fast.received("fast")) / 2, took
        assert took < 8.0
        # And the slow one gets everything too, in the end: those in flight after
        # their delay, the rest at once (waiting out each delay proves nothing more).
        slow.delay = 0.0
        all_arrived(api, tenant, slow, "slow", posts, timeout=90.0)
    finally:
        slow.stop()
        fast.stop()


# ------------------------------------------------------------- the README's receiver


def test_the_readme_receiver_verifies_real_deliveries(api, make_tenant, tmp_path):
    code = readme_block("Event webhooks")
    assert len(code.strip().splitlines()) <= 10
    tenant = make_tenant("readme")
    receiver = ReadmeReceiver(code, tmp_path)
    request = pb.CreateWebhookSubscriptionRequest(
        workspace_id=tenant.workspace_id,
        url=receiver.url("/hook"),
        event_types=[pb.POST_EVENT_TYPE_PUBLISHED],
    )
    secret = call(api.stub.CreateWebhookSubscription, request, tenant.key).secret
    with receiver.start(WEBHOOK_SECRET=secret):
        [post_id] = publish(api, tenant, 1)
        [published] = [
            e for e in events_of(api, tenant, post_id) if e.type == pb.POST_EVENT_TYPE_PUBLISHED
        ]
        line = f"post.published {published.event_id}"
        wait_for(lambda: line in receiver.output(), message=line)
        # It refuses a wrong signature and a replayed (old) one.
        body = b'{"id":"1","type":"post.published"}'
        now = int(time.time())
        good = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        old = hmac.new(secret.encode(), f"{now - 301}.".encode() + body, hashlib.sha256).hexdigest()

        def status(body: bytes, signature: str) -> int:
            return receiver.post("/hook", body, {"X-Posts-Signature": signature})[0]

        assert status(body, f"t={now},v1={good}") < 300
        assert status(body, f"t={now},v1={'0' * 64}") == 401
        assert status(body, f"t={now - 301},v1={old}") == 401
        assert status(body + b" ", f"t={now},v1={good}") == 401
