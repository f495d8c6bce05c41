"""The YouTube adapter (Data API v3 resumable uploads) through the gRPC service.

Posts go through the real service and its in-process worker to a fake YouTube
(tests/fakes/youtube.py), on the embedded default and on PostgreSQL with
Redis: videos and shorts uploaded in chunks, a partial upload resumed from
where YouTube stands, a lost answer resumed on the same session, the quota,
expiring and revoked tokens, and the rules (a title required at publish, not
in a draft).
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from service import crypto, db
from service.models import Account, PostItem
from tests.fakes.base import Fault
from tests.fakes.youtube import UPLOAD_PATH, FakeYouTube
from tests.support import as_datetime, wait_for
from workers.adapters import youtube

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite", "postgres-redis"]
TOKEN = "yt-token"
REFRESH = "yt-refresh"
#: Made-up video contents of two chunks and a half.
CONTENTS = "v" * (youtube.CHUNK * 5 // 2)


@pytest.fixture
def fake(start_fake) -> FakeYouTube:
    fake = start_fake(FakeYouTube(TOKEN))
    fake.issue(REFRESH)
    fake.add_file("clip.mp4", CONTENTS)
    return fake


@pytest.fixture
def account(tenant, fake) -> str:
    return tenant.add_account(
        "youtube",
        sandbox=False,
        handle="channel",
        base_url=fake.base_url,
        token=TOKEN,
        refresh_token=REFRESH,
        client_id="yt-client",
        client_secret="yt-secret",
    )


def clip(fake) -> pb.Media:
    return pb.Media(url=fake.media_url("clip.mp4"), kind=pb.MEDIA_KIND_VIDEO)


def publish(api, tenant, account_id: str, fake, post_type=pb.POST_TYPE_VIDEO, **fields) -> pb.Post:
    fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
    fields.setdefault("title", "A video")
    fields.setdefault("media", [clip(fake)])
    return api.create(tenant, account_id=account_id, post_type=post_type, **fields)


def google_error(status: int, reason: str, message: str) -> dict:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"reason": reason, "message": message}],
        }
    }


def only_session(fake) -> dict:
    (session,) = fake.sessions.values()
    return session


def assert_each_byte_once(fake, session: dict) -> None:
    """The session got the file whole, each byte range once, in order."""
    served = fake.served("clip.mp4")
    assert bytes(session["data"]) == served
    ends = [0] + [end for _, end in session["ranges"]]
    assert [start for start, _ in session["ranges"]] == ends[:-1], session["ranges"]
    assert fake.overlaps == 0


# ----------------------------------------------------------------- publishing


def test_uploads_a_video_in_chunks_on_one_session(api, tenant, account, fake):
    post = publish(api, tenant, account, fake, title="My trip", text="Three days in the hills")

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert (live["title"], live["description"], live["privacy"]) == (
        "My trip",
        "Three days in the hills",
        "public",
    )
    assert done.platform_post_id == live["id"]
    assert done.platform_url == f"https://www.youtube.com/watch?v={live['id']}"
    session = only_session(fake)
    assert session["type"] == "video/mp4"
    assert len(session["ranges"]) == math.ceil(len(fake.served("clip.mp4")) / youtube.CHUNK)
    assert_each_byte_once(fake, session)
    # The session was recorded with the item
    with db.connection():
        handle = PostItem.get(PostItem.post == post.post_id).send_handle
    assert handle.endswith(f"upload_id={next(iter(fake.sessions))}")


def test_uploads_a_short(api, tenant, account, fake):
    post = publish(api, tenant, account, fake, pb.POST_TYPE_SHORT, title="Quick one", text="Look")

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert live["description"] == "Look\n\n#Shorts"
    assert done.platform_url == f"https://www.youtube.com/shorts/{live['id']}"


def test_a_308_after_a_partial_upload_goes_on_from_what_youtube_holds(api, tenant, account, fake):
    fake.accept_next(1000)  # the first request's bytes, but 1,000, are lost
    post = publish(api, tenant, account, fake)

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 1
    session = only_session(fake)
    assert session["ranges"][:2] == [(0, 1000), (1000, 1000 + youtube.CHUNK)]
    assert_each_byte_once(fake, session)


# ------------------------------------------------------------------- failures


def test_transient_failure_then_success(api, tenant, account, fake):
    fake.fail_next(
        Fault(status=503, body=google_error(503, "backendError", "Backend Error"), path=UPLOAD_PATH)
    )
    post = publish(api, tenant, account, fake)

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2 and len(fake.live) == 1


def test_retry_after_is_respected(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            headers={"Retry-After": "1"},
            body=google_error(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            path=UPLOAD_PATH,
        )
    )
    post = publish(api, tenant, account, fake)

    api.wait_published(tenant, post.post_id)

    first, second = fake.calls(UPLOAD_PATH)[:2]
    assert second.at - first.at >= 1.0
    assert len(fake.live) == 1


def test_a_chunk_whose_answer_was_lost_resumes_on_the_same_session(api, tenant, account, fake):
    # The session is made; the first chunk arrives, then its connection drops.
    fake.fail_next(Fault(path=UPLOAD_PATH), Fault(drop=True, path=UPLOAD_PATH))
    post = publish(api, tenant, account, fake)

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    session = only_session(fake)
    assert session["ranges"][0] == (0, youtube.CHUNK)
    assert_each_byte_once(fake, session)
    assert len(fake.live) == 1


def test_a_finished_upload_whose_answer_was_lost_is_not_uploaded_again(api, tenant, account, fake):
    chunks = math.ceil(len(fake.served("clip.mp4")) / youtube.CHUNK)
    fake.fail_next(*[Fault(path=UPLOAD_PATH)] * chunks, Fault(drop=True, path=UPLOAD_PATH))
    post = publish(api, tenant, account, fake)

    done = api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    assert done.platform_post_id == live["id"] and done.delivery.attempts == 2
    assert_each_byte_once(fake, only_session(fake))


def test_a_session_youtube_forgot_is_made_again(api, tenant, account, fake):
    # The first chunk is on its way when YouTube forgets the session.
    fake.hold_when(lambda r: r.method == "PUT", timeout=30)
    post = publish(api, tenant, account, fake)
    wait_for(lambda: fake.held, message="the first chunk held")
    fake.forget_sessions()
    fake.release_held()

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2 and len(fake.live) == 1
    forgotten, used = fake.sessions.values()
    assert forgotten["gone"] and forgotten["data"] == bytearray()
    assert_each_byte_once(fake, used)


def test_a_refusal_fails_with_the_reason_and_message(api, tenant, account, fake, wait_failed):
    fake.fail_next(
        Fault(status=403, body=google_error(403, "forbidden", "Forbidden"), path=UPLOAD_PATH)
    )
    post = publish(api, tenant, account, fake)

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("403/forbidden", "Forbidden")
    assert done.delivery.attempts == 1 and fake.live == []


def test_quota_exceeded_waits_until_the_quota_resets(api, tenant, account, fake):
    fake.quota = 0
    post = publish(api, tenant, account, fake)

    def paced():
        current = api.get(tenant, post.post_id)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        return current if as_datetime(current.delivery.next_attempt_time) > later else None

    waiting = wait_for(paced, message="the post to wait for the quota")
    assert waiting.status == pb.POST_STATUS_PENDING and waiting.delivery.attempts == 0
    due = as_datetime(waiting.delivery.next_attempt_time)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=youtube.until_quota_resets())
    assert abs(due - expected) < dt.timedelta(seconds=30)
    assert fake.live == []


# ---------------------------------------------------------------------- tokens


def test_a_token_expiring_mid_upload_is_refreshed_and_stored_encrypted(api, tenant, account, fake):
    fake.expire_when(lambda r: r.method == "PUT")
    post = publish(api, tenant, account, fake)

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 1
    (spent,) = fake.spent(REFRESH)
    with db.connection():
        row = Account.get_by_id(account)
    assert crypto.keyring().decrypt(row.credentials) == spent and spent not in row.credentials
    assert row.credentials_version == 1
    assert_each_byte_once(fake, only_session(fake))


def test_a_revoked_refresh_token_fails_as_credentials_revoked(
    api, tenant, account, fake, wait_failed
):
    fake.expire(TOKEN)
    fake.revoke(REFRESH)
    post = publish(api, tenant, account, fake)

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "CREDENTIALS_REVOKED"
    assert fake.live == [] and fake.sessions == {}


# ---------------------------------------------------------------------- rules


def test_a_title_is_required_at_publish_but_not_in_a_draft(api, tenant, account, fake):
    failure = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_VIDEO,
        text="no title",
        media=[clip(fake)],
        status=pb.STATUS_CHANGE_PUBLISH,
    )
    assert failure.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert failure.violations == [("title", "required")]
    draft = api.create(
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_VIDEO,
        text="no title",
        media=[clip(fake)],
        status=pb.STATUS_CHANGE_DRAFT,
    )
    assert draft.status == pb.POST_STATUS_DRAFT
    long = api.refused(
        "CreatePost",
        tenant,
        account_id=account,
        post_type=pb.POST_TYPE_SHORT,
        title="t" * 101,
        text="d" * 5001,
        media=[clip(fake)],
        status=pb.STATUS_CHANGE_PUBLISH,
    )
    assert long.violations == [
        ("title", "101 characters; limit 100"),
        ("text", "5001 characters; limit 5000"),
    ]
    assert fake.log == []
