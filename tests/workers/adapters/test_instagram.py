"""The Instagram adapter (Graph API content publishing) through the gRPC service.

Posts go through the real service and its in-process worker to a fake Graph
API (tests/fakes/instagram.py); what went live is read from the fake's ledger
(``live``) and request log. Every post type, a carousel, failures, the
publishing limit, expiring and revoked tokens, and publishes whose answer was
lost, on the embedded default and on PostgreSQL with Redis.
"""

from __future__ import annotations

import datetime as dt

import pytest

from service import crypto, db
from service.models import Account, PostItem
from tests.fakes.base import Fault
from tests.fakes.instagram import USER_ID, FakeInstagram
from tests.support import as_datetime, wait_for
from workers.adapters import instagram

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite", "postgres-redis"]
TOKEN = "ig-token"


@pytest.fixture
def fake(start_fake) -> FakeInstagram:
    return start_fake(FakeInstagram(TOKEN))


@pytest.fixture
def account(tenant, fake) -> str:
    return tenant.add_account(
        "instagram", sandbox=False, handle=USER_ID, base_url=fake.base_url, token=TOKEN
    )


def image(fake, name: str = "photo.jpg") -> pb.Media:
    return pb.Media(url=fake.media_url(name), kind=pb.MEDIA_KIND_IMAGE)


def video(fake, name: str = "clip.mp4") -> pb.Media:
    return pb.Media(url=fake.media_url(name), kind=pb.MEDIA_KIND_VIDEO)


def publish(api, tenant, account_id: str, post_type=pb.POST_TYPE_FEED, **fields) -> pb.Post:
    fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
    return api.create(tenant, account_id=account_id, post_type=post_type, **fields)


def ig_error(message: str, code: int, subcode: int | None = None) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def stored_account(account_id: str) -> Account:
    with db.connection():
        return Account.get_by_id(account_id)


def item_row(post_id: str) -> PostItem:
    with db.connection():
        return PostItem.get(PostItem.post == post_id)


# ----------------------------------------------------------------- publishing


@pytest.mark.parametrize(
    ("post_type", "kind", "media_type", "caption"),
    [
        (pb.POST_TYPE_FEED, "image", "IMAGE", True),
        (pb.POST_TYPE_FEED, "video", "REELS", True),  # shared to the feed
        (pb.POST_TYPE_REEL, "video", "REELS", True),
        (pb.POST_TYPE_STORY, "image", "STORIES", False),
        (pb.POST_TYPE_STORY, "video", "STORIES", False),
    ],
    ids=["feed-image", "feed-video", "reel", "story-image", "story-video"],
)
def test_publishes_every_post_type(
    api, tenant, account, fake, post_type, kind, media_type, caption
):
    medium = image(fake) if kind == "image" else video(fake)
    post = publish(api, tenant, account, post_type, text="Sunset #travel", media=[medium])

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert live["media_type"] == media_type
    assert live["media"] == [medium.url]
    assert live["caption"] == ("Sunset #travel" if caption else "")
    assert live["share_to_feed"] == (
        "true" if post_type == pb.POST_TYPE_FEED and kind == "video" else None
    )
    assert done.platform_post_id == done.items[0].platform_post_id == live["id"]
    assert done.platform_url == f"https://www.instagram.com/p/{live['id']}/"
    assert done.delivery.attempts == 1
    assert len(fake.publishes()) == 1
    (sent,) = fake.publishes()
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    # Videos were polled until processed before the publish
    if kind == "video":
        polls = [a for a in fake.calls(f"/v21.0/{live['container']}", "GET")]
        assert len(polls) >= 2 and polls[-1].at < sent.at


def test_publishes_a_carousel_through_child_containers(api, tenant, account, fake):
    media = [image(fake, "a.jpg"), video(fake, "b.mp4"), image(fake, "c.png")]
    post = publish(api, tenant, account, pb.POST_TYPE_CAROUSEL, text="Three #days", media=media)

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert live["media_type"] == "CAROUSEL" and live["caption"] == "Three #days"
    assert live["media"] == [m.url for m in media]
    parent = fake.containers[live["container"]]
    children = [fake.containers[c] for c in parent["children"]]
    assert [c["media_type"] for c in children] == ["IMAGE", "VIDEO", "IMAGE"]
    assert all(c["child"] and c["caption"] == "" for c in children)
    assert done.platform_post_id == live["id"]
    # The carousel container's id was recorded with the item
    assert item_row(post.post_id).send_handle == live["container"]


# ------------------------------------------------------------------- failures


def test_transient_failure_then_success_resumes_the_container(api, tenant, account, fake):
    # The quota check fails after the container exists: the next attempt reuses it.
    fake.fail_next(
        Fault(
            status=503,
            body=ig_error("Service temporarily unavailable", 2),
            path="/content_publishing_limit",
        )
    )
    post = publish(api, tenant, account, text="Again", media=[image(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.containers) == 1, "a second container was made"
    assert len(fake.live) == 1 and len(fake.publishes()) == 1


def test_retry_after_is_respected(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            headers={"Retry-After": "1"},
            body=ig_error("Application request limit reached", 4),
            path="/media_publish",
        )
    )
    post = publish(api, tenant, account, text="Slowly", media=[image(fake)])

    api.wait_published(tenant, post.post_id)

    first, second = fake.publishes()
    assert second.at - first.at >= 1.0
    assert len(fake.live) == 1


def test_a_refused_container_fails_with_the_networks_code_and_message(
    api, tenant, account, fake, wait_failed
):
    message = "Only photo or video can be accepted as media type."
    fake.fail_next(Fault(status=400, body=ig_error(message, 9004, 2207052), path="/media"))
    post = publish(api, tenant, account, text="Refused", media=[image(fake)])

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("400/9004", message)
    assert done.delivery.attempts == 1
    assert fake.live == [] and fake.publishes() == []


@pytest.mark.parametrize("status", ["ERROR", "EXPIRED"])
def test_a_container_in_error_or_expired_fails_permanently(
    api, tenant, account, fake, wait_failed, status
):
    fake.containers_end_as = status
    post = publish(api, tenant, account, pb.POST_TYPE_REEL, text="Broken", media=[video(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == f"CONTAINER_{status}"
    assert done.delivery.attempts == 1
    assert fake.publishes() == []


def test_a_full_publishing_quota_waits_without_spending_an_attempt(api, tenant, account, fake):
    fake.publish_limit = 0
    post = publish(api, tenant, account, text="Tomorrow", media=[image(fake)])

    def paced():  # queued at first with its next attempt now: wait for the one an hour on
        current = api.get(tenant, post.post_id)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        return current if as_datetime(current.delivery.next_attempt_time) > later else None

    waiting = wait_for(paced, message="the post to wait for the quota")
    assert waiting.status == pb.POST_STATUS_PENDING
    assert waiting.delivery.attempts == 0
    wait = as_datetime(waiting.delivery.next_attempt_time) - dt.datetime.now(dt.UTC)
    assert wait > dt.timedelta(seconds=instagram.PUBLISH_LIMIT_WAIT - 60)
    assert fake.publishes() == [] and fake.live == []
    # The container is kept for the attempt after the wait
    assert item_row(post.post_id).send_handle in fake.containers


# ---------------------------------------------------------------------- tokens


def test_a_token_expiring_mid_delivery_is_refreshed_and_stored_encrypted(
    api, tenant, account, fake
):
    fake.expire_on("/content_publishing_limit")  # after the container was made
    post = publish(api, tenant, account, text="Fresh token", media=[image(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 1
    assert fake.refreshes == [(TOKEN, "ig-token-1")]
    (sent,) = fake.publishes()
    assert sent.headers["authorization"] == "Bearer ig-token-1"
    row = stored_account(account)
    assert "ig-token-1" not in row.credentials
    assert crypto.keyring().decrypt(row.credentials) == "ig-token-1"
    assert row.credentials_version == 1
    remaining = (row.token_expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert remaining > 59 * 86400
    # The next post uses the stored token without refreshing again
    again = publish(api, tenant, account, text="Same token", media=[image(fake)])
    api.wait_published(tenant, again.post_id)
    assert len(fake.refreshes) == 1


def test_a_token_known_to_expire_soon_is_refreshed_before_use(api, tenant, account, fake):
    with db.connection():
        Account.update(token_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).where(
            Account.id == account
        ).execute()
    post = publish(api, tenant, account, text="Before it lapses", media=[image(fake)])

    api.wait_published(tenant, post.post_id)

    assert fake.refreshes == [(TOKEN, "ig-token-1")]
    assert all(
        a.headers.get("authorization") == "Bearer ig-token-1"
        for a in fake.log
        if a.path.startswith("/v21.0/")
    )


def test_a_revoked_token_fails_as_credentials_revoked(api, tenant, account, fake, wait_failed):
    fake.revoke(TOKEN)
    post = publish(api, tenant, account, text="Nobody", media=[image(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "CREDENTIALS_REVOKED"
    assert TOKEN not in done.error.message
    assert done.delivery.attempts == 1
    assert fake.containers == {} and fake.refreshes == []
    assert stored_account(account).refreshing_until is None


# -------------------------------------------------------------- exactly once


def test_a_publish_whose_answer_was_lost_is_found_not_sent_again(api, tenant, account, fake):
    fake.fail_next(Fault(drop=True, path="/media_publish"))  # goes live, then no answer
    post = publish(api, tenant, account, text="Did it go out?", media=[image(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.publishes()) == 1 and len(fake.live) == 1
    assert done.platform_post_id == fake.live[0]["id"]
    assert done.platform_url == f"https://www.instagram.com/p/{fake.live[0]['id']}/"


def test_a_5xx_to_the_publish_that_did_not_publish_is_sent_again(api, tenant, account, fake):
    fake.fail_next(
        Fault(status=500, body=ig_error("An unknown error occurred", 1), path="/media_publish")
    )
    post = publish(api, tenant, account, text="Second time lucky", media=[image(fake)])

    done = api.wait_published(tenant, post.post_id)

    # The container said it was not published: the one container was published once
    assert done.delivery.attempts == 2
    assert len(fake.publishes()) == 2 and len(fake.live) == 1
    assert len(fake.containers) == 1


def test_a_published_container_whose_media_cannot_be_found_is_outcome_unknown(
    api, tenant, account, fake, wait_failed
):
    fake.hide_media = True
    fake.fail_next(Fault(drop=True, path="/media_publish"))
    post = publish(api, tenant, account, text="Somewhere", media=[image(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "DELIVERY_OUTCOME_UNKNOWN"
    assert len(fake.publishes()) == 1 and len(fake.live) == 1


# ---------------------------------------------------------------------- rules


def test_31_hashtags_are_refused_at_publish_and_allowed_in_a_draft(api, tenant, account, fake):
    caption = " ".join(f"#tag{n}" for n in range(31))

    failure = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_FEED,
        text=caption,
        media=[image(fake)],
        status=pb.STATUS_CHANGE_PUBLISH,
    )

    assert failure.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    # (the shorthand's fields: ``text`` for items[0].text)
    assert failure.field_violations == {"text": "31 hashtags; limit 30"}
    draft = api.create(
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_FEED,
        text=caption,
        media=[image(fake)],
        status=pb.STATUS_CHANGE_DRAFT,
    )
    assert draft.status == pb.POST_STATUS_DRAFT
    scheduled = api.refused(
        "UpdatePost",
        tenant,
        post_id=draft.post_id,
        status=pb.STATUS_CHANGE_SCHEDULED,
        scheduled_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    assert scheduled.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert fake.log == []


def test_a_reel_without_video_and_a_long_caption_are_refused_one_violation_per_rule(
    api, tenant, account, fake
):
    caption = " ".join(f"#t{n}" for n in range(31)).ljust(2201, "a")
    failure = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_REEL,
        text=caption,
        media=[image(fake)],
        status=pb.STATUS_CHANGE_PUBLISH,
    )

    assert failure.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert failure.violations == [
        ("text", "2201 characters; limit 2200"),
        ("text", "31 hashtags; limit 30"),
        ("media", "has 1 image; allowed: exactly 1 video"),
    ]
    assert "3 rule(s)" in failure.message
    carousel = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_CAROUSEL,
        text="one",
        media=[image(fake)] * 11,
        status=pb.STATUS_CHANGE_PUBLISH,
    )
    assert set(carousel.field_violations) == {"media"}
    assert fake.log == []


def test_a_sandbox_instagram_account_publishes_a_reel(api, tenant, ledger, fake):
    account_id = tenant.add_account("instagram", sandbox=True)
    post = publish(
        api, tenant, account_id, pb.POST_TYPE_REEL, text="Simulated", media=[video(fake)]
    )

    done = api.wait_published(tenant, post.post_id)

    assert done.platform_url.startswith("https://sandbox.invalid/instagram/")
    assert fake.log == []
