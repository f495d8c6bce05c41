"""The TikTok adapter (Content Posting API, direct post) through the gRPC service.

Posts go through the real service and its in-process worker to a fake TikTok
(tests/fakes/tiktok.py), on the embedded default and on PostgreSQL with Redis:
videos and photo posts, failures (a ``fail_reason`` permanent or transient),
an init whose answer was lost, expiring and revoked tokens, and the rules.
"""

from __future__ import annotations

import struct

import pytest

from service import crypto, db
from service.models import Account, PostItem
from tests.fakes.base import Fault
from tests.fakes.tiktok import FakeTikTok

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite", "postgres-redis"]
TOKEN = "tt-token"
REFRESH = "tt-refresh"


@pytest.fixture
def fake(start_fake) -> FakeTikTok:
    fake = start_fake(FakeTikTok(TOKEN))
    fake.issue(REFRESH)
    return fake


@pytest.fixture
def account(tenant, fake) -> str:
    return tenant.add_account(
        "tiktok",
        sandbox=False,
        handle="creator",
        base_url=fake.base_url,
        token=TOKEN,
        refresh_token=REFRESH,
        client_id="tt-client",
        client_secret="tt-secret",
    )


def video(fake, name: str = "clip.mp4") -> pb.Media:
    return pb.Media(url=fake.media_url(name), kind=pb.MEDIA_KIND_VIDEO)


def photos(fake, count: int) -> list[pb.Media]:
    return [
        pb.Media(url=fake.media_url(f"p{n}.jpg"), kind=pb.MEDIA_KIND_IMAGE) for n in range(count)
    ]


def publish(api, tenant, account_id: str, post_type=pb.POST_TYPE_VIDEO, **fields) -> pb.Post:
    fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
    return api.create(tenant, account_id=account_id, post_type=post_type, **fields)


def error(code: str, message: str) -> dict:
    return {"data": {}, "error": {"code": code, "message": message, "log_id": "1"}}


def handle_of(post_id: str) -> str:
    with db.connection():
        return PostItem.get(PostItem.post == post_id).send_handle


# ----------------------------------------------------------------- publishing


def test_publishes_a_video_pulled_from_its_url(api, tenant, account, fake):
    clip = video(fake)
    post = publish(api, tenant, account, text="Dance #fyp", media=[clip])

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert (live["kind"], live["caption"], live["media"]) == ("VIDEO", "Dance #fyp", [clip.url])
    assert live["privacy"] == "PUBLIC_TO_EVERYONE"
    post_id = fake.publishes[live["publish_id"]]["post_id"]
    assert done.platform_post_id == post_id
    assert done.platform_url == f"https://www.tiktok.com/video/{post_id}"
    assert done.delivery.attempts == 1
    # creator_info came first, then the video's length was read; the publish_id was
    # recorded before polling
    assert [a.path for a in fake.log][:3] == [
        "/v2/post/publish/creator_info/query/",
        "/media/clip.mp4",
        "/v2/post/publish/video/init/",
    ]
    assert "authorization" not in fake.log[1].headers
    assert handle_of(post.post_id) == live["publish_id"]
    assert all(
        a.headers["authorization"] == f"Bearer {TOKEN}"
        for a in fake.log
        if a.path.startswith("/v2/post/")
    )


def test_publishes_a_photo_post(api, tenant, account, fake):
    images = photos(fake, 3)
    post = publish(
        api, tenant, account, pb.POST_TYPE_PHOTO, title="Trip", text="Three days", media=images
    )

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert (live["kind"], live["caption"]) == ("PHOTO", "Three days")
    assert live["media"] == [m.url for m in images]
    (init,) = fake.inits()
    assert init.request.json["post_info"]["title"] == "Trip"
    assert done.platform_post_id


def test_the_most_public_privacy_level_offered_is_used(api, tenant, account, fake):
    fake.privacy_options = ["SELF_ONLY"]  # an app not yet audited
    post = publish(api, tenant, account, text="Just me", media=[video(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert fake.live[0]["privacy"] == "SELF_ONLY"
    # A private post has no public id: the publish_id names it
    assert done.platform_post_id == fake.live[0]["publish_id"] and done.platform_url == ""


def mp4(seconds: int, timescale: int = 1000) -> bytes:
    """A minimal MP4: ftyp, then moov with its mvhd saying how long it lasts, then mdat."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    mvhd = box(
        b"mvhd", b"\0" * 12 + struct.pack(">II", timescale, seconds * timescale) + b"\0" * 80
    )
    return box(b"ftyp", b"isom\0\0\0\0isom") + box(b"moov", mvhd) + box(b"mdat", b"\0" * 64)


def test_a_video_longer_than_the_creator_may_post_fails_before_the_init(
    api, tenant, account, fake, wait_failed
):
    long = pb.Media(url=fake.add_file("long.mp4", mp4(700)), kind=pb.MEDIA_KIND_VIDEO)
    post = publish(api, tenant, account, text="Too long", media=[long])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "VIDEO_TOO_LONG"
    assert done.error.message == "the video lasts 700 s; this creator may post 600 s at most"
    assert fake.inits() == [] and fake.live == []
    # One within the limit goes out
    short = pb.Media(url=fake.add_file("short.mp4", mp4(30)), kind=pb.MEDIA_KIND_VIDEO)
    api.wait_published(tenant, publish(api, tenant, account, text="Fine", media=[short]).post_id)
    assert len(fake.live) == 1


# ------------------------------------------------------------------- failures


def test_transient_failure_then_success(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=503, body=error("internal_error", "Something went wrong"), path="/creator_info/"
        )
    )
    post = publish(api, tenant, account, text="Again", media=[video(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2 and len(fake.live) == 1


def test_retry_after_is_respected(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            headers={"Retry-After": "1"},
            body=error("rate_limit_exceeded", "Too many requests"),
            path="/creator_info/",
        )
    )
    post = publish(api, tenant, account, text="Slowly", media=[video(fake)])

    api.wait_published(tenant, post.post_id)

    first, second = fake.calls("/creator_info/")[:2]
    assert second.at - first.at >= 1.0
    assert len(fake.live) == 1


def test_a_transient_fail_reason_polls_again_without_a_second_init(api, tenant, account, fake):
    # A status read that fails after the init: the next attempt polls the recorded publish_id.
    fake.fail_next(
        Fault(status=503, body=error("internal_error", "Try again"), path="/status/fetch/")
    )
    post = publish(api, tenant, account, text="Patience", media=[video(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.inits()) == 1 and len(fake.live) == 1


def test_a_transient_fail_reason_posts_again(api, tenant, account, fake):
    fake.fail_next_publish("internal")
    post = publish(api, tenant, account, text="Once more", media=[video(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    first, second = fake.publishes.values()
    assert (first["fail"], second["fail"]) == ("internal", "")
    assert handle_of(post.post_id) == fake.live[1]["publish_id"]


@pytest.mark.parametrize("reason", ["duration_check_failed", "spam_risk_too_many_posts"])
def test_a_permanent_fail_reason_fails_the_post(api, tenant, account, fake, wait_failed, reason):
    fake.fail_next_publish(reason)
    post = publish(api, tenant, account, text="No", media=[video(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == f"FAILED:{reason}"
    assert done.delivery.attempts == 1 and len(fake.inits()) == 1


def test_an_init_whose_answer_was_lost_is_outcome_unknown(api, tenant, account, fake, wait_failed):
    fake.fail_next(Fault(drop=True, path="/video/init/"))  # accepted, then no answer
    post = publish(api, tenant, account, text="Made or not?", media=[video(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "DELIVERY_OUTCOME_UNKNOWN"
    assert len(fake.inits()) == 1


def test_a_refused_init_fails_with_the_networks_code(api, tenant, account, fake, wait_failed):
    fake.fail_next(
        Fault(
            status=403,
            body=error("spam_risk_user_banned_from_posting", "The user is banned from posting."),
            path="/video/init/",
        )
    )
    post = publish(api, tenant, account, text="Banned", media=[video(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "403/spam_risk_user_banned_from_posting"
    assert done.error.message == "The user is banned from posting."
    assert fake.live == []


# ---------------------------------------------------------------------- tokens


def test_an_expired_token_is_refreshed_mid_delivery_and_stored_encrypted(
    api, tenant, account, fake
):
    # The token lapses once the post is on its way: the status read refreshes it.
    fake.expire_when(lambda r: r.path.endswith("/status/fetch/"))
    post = publish(api, tenant, account, text="Fresh", media=[video(fake)])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 1
    (spent,) = fake.spent(REFRESH)
    with db.connection():
        row = Account.get_by_id(account)
    keyring = crypto.keyring()
    assert keyring.decrypt(row.credentials) == spent and spent not in row.credentials
    assert keyring.decrypt(row.refresh_token) not in ("", REFRESH)  # replaced, as TikTok does
    assert row.credentials_version == 1
    assert len(fake.inits()) == 1
    fetches = [a.headers["authorization"] for a in fake.calls("/status/fetch/")]
    assert fetches[0] == f"Bearer {TOKEN}" and fetches[-1] == f"Bearer {spent}"


def test_a_revoked_refresh_token_fails_as_credentials_revoked(
    api, tenant, account, fake, wait_failed
):
    fake.expire(TOKEN)
    fake.revoke(REFRESH)
    post = publish(api, tenant, account, text="Nobody", media=[video(fake)])

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "CREDENTIALS_REVOKED"
    assert REFRESH not in done.error.message
    assert fake.live == [] and fake.refused == [REFRESH]


# ---------------------------------------------------------------------- rules


def test_rules_refuse_a_long_caption_and_a_photo_post_of_one_image(api, tenant, account, fake):
    long = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_VIDEO,
        text="a" * 2201,
        media=[video(fake)],
        status=pb.STATUS_CHANGE_PUBLISH,
    )
    assert long.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert long.violations == [("text", "2201 characters; limit 2200")]
    one = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_PHOTO,
        text="one",
        media=photos(fake, 1),
        status=pb.STATUS_CHANGE_PUBLISH,
    )
    assert set(one.field_violations) == {"media"}
    draft = api.create(
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_PHOTO,
        text="one",
        media=photos(fake, 1),
        status=pb.STATUS_CHANGE_DRAFT,
    )
    assert draft.status == pb.POST_STATUS_DRAFT
    assert fake.log == []
