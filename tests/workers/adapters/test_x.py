"""The X adapter (API v2): tweets, threads as replies, media, failures, look-up.

Integration tests publish through the real gRPC service and its in-process
worker against a fake X (tests/fakes/x.py) and read what went live from the
fake's ledger (``live``) and request log (``log``, with arrival times). A few
unit tests drive the adapter straight at the fake, and a few check that the fake
refuses what X refuses (too long, duplicate, media not ready, fields not asked for).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest

from service.rules import weighted_length_x
from tests.fakes.base import Fault
from tests.fakes.x import DUPLICATE, INVALID_MEDIA, TOO_LONG, USER_ID, FakeX, weighted_length
from tests.support import as_datetime, item, utcnow, wait_for
from workers.adapters.base import (
    NO_LEASE,
    AccountRef,
    ItemRequest,
    Lease,
    LeaseLost,
    MediaRef,
    PermanentError,
    TransientError,
)
from workers.adapters.x import XAdapter

# isort: split
from posts.v1 import posts_pb2 as pb

TOKEN = "x-oauth2-user-token"
HANDLE = "acme_news"
CJK = "\u4f60"  # 你, two units
LONG_URL = "https://example.com/" + "a" * 280  # 23 units however long


@pytest.fixture
def fake(start_fake) -> FakeX:
    return start_fake(FakeX(TOKEN, username=HANDLE))


@pytest.fixture
def account(tenant, fake) -> str:
    return tenant.add_account(
        "x", sandbox=False, handle=HANDLE, base_url=fake.base_url, token=TOKEN
    )


def publish(api, tenant, account_id: str, **fields) -> pb.Post:
    fields.setdefault("post_type", pb.POST_TYPE_TWEET)
    fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
    return api.create(tenant, account_id=account_id, **fields)


def url_of(tweet_id: str) -> str:
    return f"https://x.com/{HANDLE}/status/{tweet_id}"


def problem(status: int, detail: str, title: str) -> dict:
    return {"title": title, "detail": detail, "status": status, "type": "about:blank"}


# ----------------------------------------------------------------- publishing


def test_publishes_a_tweet_with_its_id_and_url(api, tenant, account, fake):
    text = "Launch day & more <details> at https://example.com/launch"
    post = publish(api, tenant, account, text=text)

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.live) == 1
    tweet = fake.live[0]
    assert (tweet["text"], tweet["reply_to"], tweet["media_ids"]) == (text, None, [])
    assert done.platform_post_id == done.items[0].platform_post_id == tweet["id"]
    assert done.platform_url == done.items[0].platform_url == url_of(tweet["id"])
    assert done.delivery.attempts == 1
    assert [s.headers["authorization"] for s in fake.posts()] == [f"Bearer {TOKEN}"]


def test_thread_replies_to_the_previous_tweet(api, tenant, account, fake):
    texts = ["1/3 A thread", "2/3 goes on", "3/3 and ends"]
    post = publish(
        api, tenant, account, post_type=pb.POST_TYPE_THREAD, items=[item(t) for t in texts]
    )

    done = api.wait_published(tenant, post.post_id)

    assert [t["text"] for t in fake.live] == texts
    ids = [t["id"] for t in fake.live]
    assert [t["reply_to"] for t in fake.live] == [None, ids[0], ids[1]]
    assert [i.platform_post_id for i in done.items] == ids
    assert [i.platform_url for i in done.items] == [url_of(i) for i in ids]


def test_uploads_images_with_alt_text_and_a_video_in_chunks(api, tenant, account, fake):
    images = [
        pb.Media(url=fake.media_url("cat.png"), kind=pb.MEDIA_KIND_IMAGE, alt_text="A cat"),
        pb.Media(url=fake.media_url("dog.jpg"), kind=pb.MEDIA_KIND_IMAGE),
    ]
    clip = pb.Media(url=fake.media_url("clip.mp4"), kind=pb.MEDIA_KIND_VIDEO)
    post = publish(
        api,
        tenant,
        account,
        post_type=pb.POST_TYPE_THREAD,
        items=[item("Pictures", images), item("A clip", [clip])],
    )

    api.wait_published(tenant, post.post_id)

    first, second = fake.live
    assert [fake.media[m]["category"] for m in first["media_ids"]] == ["tweet_image"] * 2
    assert [fake.media[m]["mime"] for m in first["media_ids"]] == ["image/png", "image/jpeg"]
    assert [fake.media[m]["alt_text"] for m in first["media_ids"]] == ["A cat", ""]
    (video,) = second["media_ids"]
    assert (fake.media[video]["category"], fake.media[video]["done"]) == ("tweet_video", True)
    assert fake.seen("GET", "/2/media/upload"), "the adapter never waited for processing"
    downloads = [s for s in fake.log if s.path.startswith("/media/")]
    assert len(downloads) == 3
    assert not any("authorization" in s.headers for s in downloads), "token sent to a media host"


# ------------------------------------------------------------------- failures


def test_5xx_to_the_create_is_looked_up_then_sent_again(api, tenant, account, fake):
    # X has made tweets it answered 5xx to: the retry looks first, finds none, sends.
    fake.fail_next(
        Fault(status=503, body=problem(503, "Service Unavailable", "Unavailable"), path="/2/tweets")
    )
    post = publish(api, tenant, account, text="Try, try again")

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.posts()) == 2
    assert fake.seen("GET", f"/2/users/{USER_ID}/tweets")
    assert len(fake.live) == 1
    assert done.platform_post_id == fake.live[0]["id"]
    assert not done.HasField("error")


def test_waiting_retry_shows_pending_with_error_and_next_attempt(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=503,
            headers={"Retry-After": "2"},
            body=problem(503, "Over capacity", "Unavailable"),
            path="/2/tweets",
        )
    )
    post = publish(api, tenant, account, text="Patience")

    def waiting():
        current = api.get(tenant, post.post_id)
        return current if current.error.code == "503" else None

    pending = wait_for(waiting, message="the post to wait for its retry")
    assert pending.status == pb.POST_STATUS_PENDING
    assert pending.error.message == "Over capacity"
    assert pending.delivery.attempts == 1
    assert pending.delivery.HasField("next_attempt_time")
    delay = as_datetime(pending.delivery.next_attempt_time) - as_datetime(
        pending.delivery.last_attempt_time
    )
    assert delay.total_seconds() >= 1.5
    assert fake.live == []

    done = api.wait_published(tenant, post.post_id)
    assert done.delivery.attempts == 2 and len(fake.live) == 1


def test_retry_after_is_respected(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            headers={"Retry-After": "1"},
            body=problem(429, "Too Many Requests", "Too Many Requests"),
            path="/2/tweets",
        )
    )
    post = publish(api, tenant, account, text="Slowly")

    api.wait_published(tenant, post.post_id)

    first, second = fake.posts()
    assert second.at - first.at >= 1.0
    assert len(fake.live) == 1


def test_rate_limit_reset_header_is_respected(api, tenant, account, fake):
    reset = int(time.time()) + 2  # X's window end, in epoch seconds: 1 to 2 s from now
    fake.fail_next(
        Fault(
            status=429,
            headers={"x-rate-limit-reset": str(reset)},
            body=problem(429, "Too Many Requests", "Too Many Requests"),
            path="/2/tweets",
        )
    )
    post = publish(api, tenant, account, text="After the window")

    api.wait_published(tenant, post.post_id)

    _, second = fake.posts()
    # The retry waits for the window's end (arrival times are monotonic; reset is epoch).
    second_wall_clock = time.time() - (time.monotonic() - second.at)
    assert second_wall_clock >= reset - 0.05
    assert len(fake.live) == 1


def test_permanent_failure_fails_with_the_network_code_and_message(
    api, tenant, account, fake, wait_failed
):
    detail = "One or more parameters to your request was invalid."
    fake.fail_next(
        Fault(status=400, body=problem(400, detail, "Invalid Request"), path="/2/tweets")
    )
    post = publish(api, tenant, account, text="Rejected")

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("400", detail)
    assert done.delivery.attempts == 1
    assert len(fake.posts()) == 1 and fake.live == []


def test_bad_credentials_fail(api, tenant, fake, wait_failed):
    account = tenant.add_account(
        "x", sandbox=False, handle=HANDLE, base_url=fake.base_url, token="revoked-token"
    )
    post = publish(api, tenant, account, text="Who am I?")

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("401", "Unauthorized")
    assert done.delivery.attempts == 1
    assert fake.live == []


def test_forbidden_fails(api, tenant, account, fake, wait_failed):
    detail = "You are not permitted to perform this action."
    fake.fail_next(Fault(status=403, body=problem(403, detail, "Forbidden"), path="/2/tweets"))
    post = publish(api, tenant, account, text="Not allowed")

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("403", detail)
    assert fake.live == []


# ------------------------------------------------------------ unknown outcome


def test_unknown_outcome_is_looked_up_and_not_sent_twice(api, tenant, account, fake):
    fake.fail_next(Fault(drop=True, path="/2/tweets"))  # goes live, then no answer
    post = publish(api, tenant, account, text="Did it go out? Q&A <here>")

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.live) == 1
    assert len(fake.posts()) == 1
    assert fake.seen("GET", f"/2/users/{USER_ID}/tweets")
    assert done.platform_post_id == fake.live[0]["id"]
    assert done.platform_url == url_of(fake.live[0]["id"])
    assert done.delivery.attempts == 2


def test_unknown_outcome_not_live_is_sent_again(api, tenant, account, fake):
    fake.lose_next("/2/tweets")  # no answer, and nothing went live
    post = publish(api, tenant, account, text="Lost on the way")

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.posts()) == 2
    assert len(fake.live) == 1
    assert done.platform_post_id == fake.live[0]["id"]


class AtItem:
    """A before_send hook that runs ``action`` once, before the send of one item."""

    def __init__(self, index: int, action):
        self.index, self.action = index, action
        self._done = threading.Event()

    def __call__(self, post_id: str, item_index: int) -> None:
        if item_index == self.index and not self._done.is_set():
            self._done.set()
            self.action()


def test_look_up_tells_a_reply_from_its_parent_with_the_same_text(
    api, tenant, account, fake, delivery_hooks
):
    # X refuses a tweet whose text repeats a recent one, but texts that differ only
    # in a link come back alike (t.co): only the reply target tells them apart.
    delivery_hooks.before_send(
        AtItem(1, lambda: fake.fail_next(Fault(drop=True, path="/2/tweets")))
    )
    post = publish(
        api,
        tenant,
        account,
        post_type=pb.POST_TYPE_THREAD,
        items=[
            item("Same words https://example.com/1"),
            item("Same words https://example.com/2"),
            item("The end"),
        ],
    )

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.posts()) == 3
    ids = [t["id"] for t in fake.live]
    assert [t["reply_to"] for t in fake.live] == [None, ids[0], ids[1]]
    assert [i.platform_post_id for i in done.items] == ids


def test_lost_reply_is_not_mistaken_for_its_parent(api, tenant, account, fake, delivery_hooks):
    delivery_hooks.before_send(AtItem(1, lambda: fake.lose_next("/2/tweets")))
    post = publish(
        api,
        tenant,
        account,
        post_type=pb.POST_TYPE_THREAD,
        items=[item("Echo https://example.com/1"), item("Echo https://example.com/2")],
    )

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.posts()) == 3
    ids = [t["id"] for t in fake.live]
    assert [t["reply_to"] for t in fake.live] == [None, ids[0]]
    assert [i.platform_post_id for i in done.items] == ids


def test_thread_repeating_a_tweet_fails_as_a_duplicate(api, tenant, account, fake, wait_failed):
    post = publish(
        api, tenant, account, post_type=pb.POST_TYPE_THREAD, items=[item("Echo"), item("Echo")]
    )

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("403", DUPLICATE)
    assert [t["text"] for t in fake.live] == ["Echo"]
    assert [i.platform_post_id for i in done.items] == [fake.live[0]["id"], ""]


def test_lost_repeat_is_not_mistaken_for_its_parent(
    api, tenant, account, fake, delivery_hooks, wait_failed
):
    # The look-up must not take the parent for the lost reply; the re-send then
    # meets X's duplicate rule, as it would on X.
    delivery_hooks.before_send(AtItem(1, lambda: fake.lose_next("/2/tweets")))
    post = publish(
        api, tenant, account, post_type=pb.POST_TYPE_THREAD, items=[item("Echo"), item("Echo")]
    )

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("403", DUPLICATE)
    assert fake.seen("GET", f"/2/users/{USER_ID}/tweets")
    assert len(fake.posts()) == 3 and len(fake.live) == 1
    assert done.items[1].platform_post_id == ""


# ----------------------------------------------------------------- unit tests


def adapter_for(fake: FakeX, token: str = TOKEN) -> XAdapter:
    return XAdapter(AccountRef("acc_unit", "x", f"@{HANDLE}", fake.base_url, token))


def request(
    text: str,
    reply_to: str | None = None,
    media=(),
    send_started_at: dt.datetime | None = None,
    lease: Lease = NO_LEASE,
) -> ItemRequest:
    return ItemRequest(
        post_id="pst_unit",
        post_type="tweet",
        title="",
        item_index=0,
        item_count=1,
        text=text,
        media=tuple(media),
        reply_to=reply_to,
        idempotency_key="unit-key",
        send_started_at=send_started_at,
        lease=lease,
    )


def x_api(fake: FakeX) -> httpx.Client:
    """A client straight to the fake, to see its answers as they are."""
    return httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Bearer {TOKEN}"})


def test_look_up_matches_text_as_x_returns_it(fake):
    adapter = adapter_for(fake)
    media = [MediaRef(fake.media_url("a.png"), "image")]
    sent = request("Fish & chips <3 https://example.com/menu", media=media)
    published = adapter.publish(sent)

    assert adapter.look_up(sent) == published
    assert adapter.look_up(request("Fish & chips")) is None
    assert adapter.look_up(request(sent.text, reply_to=published.platform_post_id)) is None
    assert published.url == url_of(published.platform_post_id)


def test_look_up_goes_by_the_tweets_time_and_reply_target(fake):
    # X returns created_at and referenced_tweets only when tweet.fields asks for them.
    adapter = adapter_for(fake)
    parent = fake.tweeted_before("Part one", ago=dt.timedelta(hours=3))
    fake.tweeted_before("Weekly digest", ago=dt.timedelta(hours=2))
    reply = fake.tweeted_before("Part two", ago=dt.timedelta(seconds=10), reply_to=parent["id"])
    started = utcnow() - dt.timedelta(seconds=30)

    assert adapter.look_up(request("Weekly digest", send_started_at=started)) is None
    assert adapter.look_up(request("Part two", send_started_at=started)) is None
    found = adapter.look_up(request("Part two", reply_to=parent["id"], send_started_at=started))
    assert found is not None and found.platform_post_id == reply["id"]


def test_timeline_has_only_the_fields_asked_for(fake):
    fake.tweeted_before("Part one", ago=dt.timedelta(minutes=1))
    with x_api(fake) as api:
        bare = api.get(f"/2/users/{USER_ID}/tweets", params={"max_results": 5})
        asked = api.get(
            f"/2/users/{USER_ID}/tweets", params={"max_results": 5, "tweet.fields": "created_at"}
        )
        unknown = api.get(
            f"/2/users/{USER_ID}/tweets", params={"max_results": 5, "tweet.fields": "created"}
        )

    assert set(bare.json()["data"][0]) == {"id", "text", "edit_history_tweet_ids"}
    assert set(asked.json()["data"][0]) == {"id", "text", "edit_history_tweet_ids", "created_at"}
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["parameters"] == {"tweet.fields": ["created"]}


def test_same_text_again_is_refused_as_a_duplicate(fake):
    adapter = adapter_for(fake)
    adapter.publish(request("Hello again"))

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request("Hello again"))

    assert (caught.value.code, caught.value.message) == ("403", DUPLICATE)
    assert len(fake.live) == 1


@pytest.mark.parametrize(
    ("at_limit", "over_limit"),
    [
        ("a" * 280, "a" * 281),
        (CJK * 140, CJK * 139 + "aaa"),
        ("\U0001f600" * 140, "\U0001f600" * 140 + "a"),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467" * 140, "\U0001f1fa\U0001f1f8" * 141),
        (LONG_URL + " " + "a" * 256, LONG_URL + " " + "a" * 257),
        ("\u1000" * 280, "\u1100" * 141),  # Myanmar weighs 1, Hangul jamo 2
    ],
)
def test_text_over_280_weighted_characters_is_refused(fake, at_limit, over_limit):
    adapter = adapter_for(fake)
    adapter.publish(request(at_limit))

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request(over_limit))

    assert caught.value.code == "400"
    assert [t["text"] for t in fake.live] == [at_limit]
    with x_api(fake) as api:
        answer = api.post("/2/tweets", json={"text": over_limit})
    assert (answer.status_code, answer.json()["errors"][0]["message"]) == (400, TOO_LONG)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "a" * 281,
        CJK * 141,
        "\u00e9\u0416\u05d0 \u2014\u2026",
        # either side of each edge of the light ranges
        "\u0fff\u1000\u109f\u10ff\u1100\u1fff\u2000\u200d\u200e\u2010\u201f\u2020\u2031\u2032\u2037",
        "\u2038",
        "\U0001f44d\U0001f3fd \u2764\ufe0f 1\ufe0f\u20e3 \U0001f1eb\U0001f1f7 e\u0301",
        "see https://example.com/a. and example.org/x?y, not me@example.com",
        LONG_URL + " " + "\u4f60\u597d" * 10,
    ],
)
def test_fake_weighs_tweets_as_the_service_does(text):
    # Two counters written apart: a slip in either one shows up here.
    assert weighted_length(text) == weighted_length_x(text)


def test_media_not_finalized_or_not_processed_is_refused(fake):
    with x_api(fake) as api:
        media_id = api.post(
            "/2/media/upload/initialize",
            json={
                "media_type": "video/mp4",
                "total_bytes": 4,
                "media_category": "tweet_video",
            },
        ).json()["data"]["id"]
        api.post(
            f"/2/media/upload/{media_id}/append",
            data={"segment_index": "0"},
            files={"media": ("chunk", b"clip", "application/octet-stream")},
        )
        tweet = {"text": "A clip", "media": {"media_ids": [media_id]}}
        not_finalized = api.post("/2/tweets", json=tweet)
        assert api.post(f"/2/media/upload/{media_id}/finalize").status_code == 200
        processing = api.post("/2/tweets", json=tweet)
        states = [
            api.get("/2/media/upload", params={"command": "STATUS", "media_id": media_id}).json()[
                "data"
            ]["processing_info"]["state"]
            for _ in range(fake.processing_checks)
        ]
        processed = api.post("/2/tweets", json=tweet)

    for refused in (not_finalized, processing):
        assert refused.status_code == 400
        assert refused.json()["errors"][0] == {
            "parameters": {"media.media_ids": [media_id]},
            "message": INVALID_MEDIA,
        }
    assert states[-1] == "succeeded" and "succeeded" not in states[:-1]
    assert processed.status_code == 201
    assert [t["media_ids"] for t in fake.live] == [[media_id]]


def test_rate_limit_reset_becomes_retry_after(fake):
    fake.fail_next(
        Fault(
            status=429, headers={"x-rate-limit-reset": str(int(time.time()) + 30)}, path="/2/tweets"
        )
    )
    with pytest.raises(TransientError) as caught:
        adapter_for(fake).publish(request("Too soon"))
    assert caught.value.code == "429"
    assert 28 <= caught.value.retry_after <= 31


def test_unanswered_media_upload_is_transient_not_unknown(fake):
    fake.fail_next(Fault(drop=True, path="/2/media/upload"))
    media = [MediaRef(fake.media_url("a.png"), "image")]
    with pytest.raises(TransientError):
        adapter_for(fake).publish(request("With a picture", media=media))
    assert fake.live == [] and fake.posts() == []


def test_missing_media_fails_permanently(fake):
    media = [MediaRef(f"{fake.base_url}/gone/a.png", "image")]
    with pytest.raises(PermanentError) as caught:
        adapter_for(fake).publish(request("With a missing picture", media=media))
    assert caught.value.code == "MEDIA_UNAVAILABLE"
    assert "404" in caught.value.message
    assert fake.posts() == []


class RecordingLease:
    """A lease that counts its renewals and records when it was proven (or is lost)."""

    def __init__(self, lost: bool = False):
        self.lost = lost
        self.renewals = 0
        self.proven_at: list[float] = []

    def renew(self) -> None:
        self.renewals += 1

    def still_mine(self) -> bool:
        return not self.lost

    def before_create(self) -> None:
        if self.lost:
            raise LeaseLost("pst_unit")
        self.proven_at.append(time.monotonic())


def test_the_lease_is_renewed_while_processing_and_proven_right_before_the_tweet(fake):
    lease = RecordingLease()
    clip = MediaRef(fake.media_url("clip.mp4"), "video")

    adapter_for(fake).publish(request("A clip", media=[clip], lease=lease))

    (proven,) = lease.proven_at
    (tweet,) = fake.posts()
    before = [a for a in fake.log if a is not tweet]
    assert max(a.at for a in before) < proven < tweet.at
    assert lease.renewals >= 1 + fake.processing_checks  # the download, then each poll


def test_a_lost_lease_stops_before_the_tweet(fake):
    clip = MediaRef(fake.media_url("clip.mp4"), "video")

    with pytest.raises(LeaseLost):
        adapter_for(fake).publish(request("A clip", media=[clip], lease=RecordingLease(lost=True)))

    assert fake.posts() == [] and fake.live == []
