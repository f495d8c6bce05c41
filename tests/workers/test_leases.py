"""Deliveries that outlive the lease, and creates whose answer is lost.

The server runs with a lease of 2 s (the sweeper takes an expired one over at
its next round, every 0.5 s here): media processing that takes several leases must
keep renewing it, or a second worker delivers the same post while the first
is still sending. A create that X makes and then answers 504 for must be looked
up, not sent again. Each test goes through the real gRPC service and worker to
a fake network (tests/fakes) and counts the creates that reached it.
"""

from __future__ import annotations

import logging
import threading

import pytest

from tests.fakes.base import Fault
from tests.fakes.linkedin import AUTHOR, FakeLinkedIn
from tests.fakes.x import USER_ID, FakeX
from tests.support import DEFAULT_WAIT, item, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb

pytestmark = pytest.mark.server_env(
    POSTS_LEASE_SECONDS="2",
    POSTS_SWEEP_INTERVAL="0.5",
    POSTS_DISPATCH_INTERVAL="0.05",
    POSTS_RETRY_BASE="0.2",
    POSTS_MAX_ATTEMPTS="3",
)

#: Media processing of two leases: several sweeper rounds come after the first
#: lease would have run out, while it lasts.
PROCESSING = 4.0
LONG_WAIT = PROCESSING + 2 * DEFAULT_WAIT
X_TOKEN = "x-lease-token"
LINKEDIN_TOKEN = "linkedin-lease-token"


@pytest.fixture
def x():
    fake = FakeX(X_TOKEN, username="acme").start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def linkedin():
    fake = FakeLinkedIn(LINKEDIN_TOKEN, author=AUTHOR).start()
    try:
        yield fake
    finally:
        fake.stop()


def publish(api, tenant, account_id: str, post_type: int, *items: pb.PostItem) -> pb.Post:
    return api.create(
        tenant,
        account_id=account_id,
        post_type=post_type,
        items=list(items),
        status=pb.STATUS_CHANGE_PUBLISH,
    )


def test_x_processing_longer_than_the_lease_sends_one_tweet(api, tenant, x):
    x.processing_seconds = PROCESSING
    account = tenant.add_account(
        "x", sandbox=False, handle="acme", base_url=x.base_url, token=X_TOKEN
    )
    clip = pb.Media(url=x.media_url("long.mp4"), kind=pb.MEDIA_KIND_VIDEO)
    post = publish(api, tenant, account, pb.POST_TYPE_TWEET, item("A long clip", [clip]))

    done = api.wait_published(tenant, post.post_id, timeout=LONG_WAIT)

    assert len(x.posts()) == 1, "a second worker sent the tweet again"
    (tweet,) = x.live
    assert done.platform_post_id == done.items[0].platform_post_id == tweet["id"]
    assert done.delivery.attempts == 1
    statuses = x.seen("GET", "/2/media/upload")
    assert statuses[-1].at - statuses[0].at >= PROCESSING - 1.5, "processing was not slow"


@pytest.mark.parametrize(
    ("kind", "name", "post_type"),
    [
        (pb.MEDIA_KIND_VIDEO, "long.mp4", pb.POST_TYPE_POST),
        (pb.MEDIA_KIND_DOCUMENT, "long.pdf", pb.POST_TYPE_DOCUMENT),
    ],
)
def test_linkedin_processing_longer_than_the_lease_creates_one_post(
    api, tenant, linkedin, kind, name, post_type
):
    linkedin.processing_seconds = PROCESSING
    account = tenant.add_account(
        "linkedin", sandbox=False, handle=AUTHOR, base_url=linkedin.base_url, token=LINKEDIN_TOKEN
    )
    media = pb.Media(url=linkedin.media_url(name), kind=kind)
    post = publish(api, tenant, account, post_type, item("Worth the wait", [media]))

    done = api.wait_published(tenant, post.post_id, timeout=LONG_WAIT)

    assert len(linkedin.posts()) == 1, "a second worker created the post again"
    (live,) = linkedin.live
    assert done.platform_post_id == live["id"]
    assert done.delivery.attempts == 1
    polls = linkedin.calls("/rest/videos/" if kind == pb.MEDIA_KIND_VIDEO else "/rest/documents/")
    assert polls[-1].at - polls[0].at >= PROCESSING - 2.5, "processing was not slow"


def test_a_worker_held_past_its_lease_before_the_create_sends_nothing(
    api, tenant, ledger, delivery_hooks, caplog
):
    # Given a post whose first attempt stops right before its create (sandbox:
    # a network that honours idempotency keys, so the lease is proven, not renewed)
    arrived, go_on = threading.Event(), threading.Event()

    def hold_the_first(post_id, item_index):
        if not arrived.is_set():
            arrived.set()
            go_on.wait(LONG_WAIT)

    delivery_hooks.before_send(hold_the_first)

    def stopped(post_id: str) -> bool:
        return any(
            r.msg.startswith("lost %s while delivering") and r.args[0] == post_id
            for r in list(caplog.records)
        )

    try:
        with caplog.at_level(logging.WARNING, logger="workers.delivery"):
            post = api.create(tenant, status=pb.STATUS_CHANGE_PUBLISH)
            assert arrived.wait(DEFAULT_WAIT), "the first attempt never reached its send"
            # When its lease runs out, and a second attempt takes the post over and publishes it
            done = api.wait_published(tenant, post.post_id, timeout=LONG_WAIT)
            go_on.set()
            # Then the first attempt, let go, finds its lease gone and sends nothing
            wait_for(lambda: stopped(post.post_id), message="the first attempt to stop")
    finally:
        go_on.set()
    assert len(ledger.sends(post_id=post.post_id)) == 1, ledger.sends(post_id=post.post_id)
    assert done.delivery.attempts == 2


def test_x_tweet_made_then_answered_504_is_found_not_sent_again(api, tenant, x):
    # X made the tweet; the gateway in front of it gave up and answered 504.
    x.fail_next(
        Fault(
            status=504,
            live=True,
            path="/2/tweets",
            body={"title": "Gateway Timeout", "detail": "Gateway Timeout", "status": 504},
        )
    )
    account = tenant.add_account(
        "x", sandbox=False, handle="acme", base_url=x.base_url, token=X_TOKEN
    )
    post = publish(api, tenant, account, pb.POST_TYPE_TWEET, item("Made, then 504"))

    done = api.wait_published(tenant, post.post_id)

    (tweet,) = x.live
    assert len(x.posts()) == 1
    assert x.seen("GET", f"/2/users/{USER_ID}/tweets"), "the retry did not look the tweet up"
    assert done.platform_post_id == done.items[0].platform_post_id == tweet["id"]
    assert done.delivery.attempts == 2
