"""The LinkedIn adapter (Posts API): posts, media uploads, failures, unknown outcomes.

Integration tests publish through the real gRPC service and its in-process
worker against a fake LinkedIn (tests/fakes/linkedin.py) and read what went
live from the fake's ledger (``live``) and request log (``log``, with arrival
times). A few unit tests drive the adapter straight at the fake, and a few check
that the fake reads commentary by LinkedIn's little grammar, not the adapter's.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.base import Fault
from tests.fakes.linkedin import (
    AUTHOR,
    RESERVED,
    FakeLinkedIn,
    MalformedLittle,
    parse_little,
    visible,
)
from tests.support import as_datetime, wait_for
from workers.adapters.base import AccountRef, ItemRequest, OutcomeUnknown, PermanentError
from workers.adapters.linkedin import VERSION, LinkedInAdapter, little_text

# isort: split
from posts.v1 import posts_pb2 as pb

TOKEN = "linkedin-member-token"


@pytest.fixture
def fake(start_fake) -> FakeLinkedIn:
    return start_fake(FakeLinkedIn(TOKEN, author=AUTHOR))


@pytest.fixture
def account(tenant, fake) -> str:
    return tenant.add_account(
        "linkedin", sandbox=False, handle=AUTHOR, base_url=fake.base_url, token=TOKEN
    )


def publish(api, tenant, account_id: str, **fields) -> pb.Post:
    fields.setdefault("post_type", pb.POST_TYPE_POST)
    fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
    return api.create(tenant, account_id=account_id, **fields)


def url_of(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


def error(status: int, message: str) -> dict:
    return {"status": status, "message": message}


# ----------------------------------------------------------------- publishing


def test_publishes_a_post_with_its_urn_and_url(api, tenant, account, fake):
    text = (
        "Big news (really) for #engineering & #dev_ops: see https://example.com/a_b(c)~d#e "
        "~ @team [beta] *soon* {x|y} <tag> back\\slash C# 100%"
    )
    assert set(text) >= RESERVED
    post = publish(api, tenant, account, text=text)

    done = api.wait_published(tenant, post.post_id)

    assert len(fake.live) == 1
    live = fake.live[0]
    assert live["text"] == text
    assert (live["hashtags"], live["mentions"]) == (["engineering", "dev_ops"], [])
    body = live["body"]
    assert body["author"] == AUTHOR
    assert (body["visibility"], body["lifecycleState"]) == ("PUBLIC", "PUBLISHED")
    assert body["distribution"]["feedDistribution"] == "MAIN_FEED"
    assert body["isReshareDisabledByAuthor"] is False
    assert "content" not in body
    assert done.platform_post_id == done.items[0].platform_post_id == live["id"]
    assert done.platform_url == done.items[0].platform_url == url_of(live["id"])
    assert done.delivery.attempts == 1
    (sent,) = fake.posts()
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["linkedin-version"] == VERSION
    assert sent.headers["x-restli-protocol-version"] == "2.0.0"


def test_uploads_images_as_a_multi_image_post(api, tenant, account, fake):
    media = [
        pb.Media(url=fake.media_url("a.png"), kind=pb.MEDIA_KIND_IMAGE, alt_text="Chart"),
        pb.Media(url=fake.media_url("b.jpg"), kind=pb.MEDIA_KIND_IMAGE),
    ]
    post = publish(api, tenant, account, text="Two pictures", media=media)

    api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    images = live["content"]["multiImage"]["images"]
    assert [i.get("altText") for i in images] == ["Chart", None]
    assert [fake.assets[i["id"]]["kind"] for i in images] == ["image", "image"]
    assert all(fake.assets[i["id"]]["size"] for i in images)
    downloads = [s for s in fake.log if s.path.startswith("/media/")]
    assert len(downloads) == 2
    assert not any("authorization" in s.headers for s in downloads), "token sent to a media host"


def test_uploads_a_document(api, tenant, account, fake):
    pdf = pb.Media(url=fake.media_url("deck.pdf"), kind=pb.MEDIA_KIND_DOCUMENT)
    post = publish(
        api,
        tenant,
        account,
        post_type=pb.POST_TYPE_DOCUMENT,
        title="Q3 deck",
        text="Our quarter",
        media=[pdf],
    )

    api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    document = live["content"]["media"]
    assert document["title"] == "Q3 deck"
    assert document["id"].startswith("urn:li:document:")
    assert fake.assets[document["id"]]["status"] == "AVAILABLE"


def test_uploads_a_video_in_parts(api, tenant, account, fake):
    clip = pb.Media(url=fake.media_url("clip.mp4"), kind=pb.MEDIA_KIND_VIDEO)
    post = publish(api, tenant, account, text="Watch this", media=[clip])

    api.wait_published(tenant, post.post_id)

    (live,) = fake.live
    video = fake.assets[live["content"]["media"]["id"]]
    assert (video["kind"], video["status"], len(video["parts"])) == ("video", "AVAILABLE", 2)


# ------------------------------------------------------------------- failures


def test_transient_failure_then_success(api, tenant, account, fake):
    # A 5xx before the create changed nothing that can be seen: retried.
    fake.fail_next(Fault(status=503, body=error(503, "Service Unavailable"), path="/rest/images"))
    image = pb.Media(url=fake.media_url("a.png"), kind=pb.MEDIA_KIND_IMAGE)
    post = publish(api, tenant, account, text="Try, try again", media=[image])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.posts()) == 1
    assert len(fake.live) == 1
    assert done.platform_post_id == fake.live[0]["id"]
    assert not done.HasField("error")


def test_5xx_to_the_create_fails_as_an_unknown_outcome(api, tenant, account, fake, wait_failed):
    # A 5xx does not say the post was not made, and LinkedIn cannot be asked.
    fake.fail_next(Fault(status=503, body=error(503, "Service Unavailable"), path="/rest/posts"))
    post = publish(api, tenant, account, text="Made or not?")

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "DELIVERY_OUTCOME_UNKNOWN"
    assert done.delivery.attempts == 1
    assert len(fake.posts()) == 1


def test_waiting_retry_shows_pending_with_error_and_next_attempt(api, tenant, account, fake):
    fake.fail_next(
        Fault(
            status=429,
            headers={"Retry-After": "2"},
            body=error(429, "Resource level throttle limit reached"),
            path="/rest/posts",
        )
    )
    post = publish(api, tenant, account, text="Patience")

    def waiting():
        current = api.get(tenant, post.post_id)
        return current if current.error.code == "429" else None

    pending = wait_for(waiting, message="the post to wait for its retry")
    assert pending.status == pb.POST_STATUS_PENDING
    assert pending.error.message == "Resource level throttle limit reached"
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
            body=error(429, "Resource level throttle limit reached"),
            path="/rest/posts",
        )
    )
    post = publish(api, tenant, account, text="Slowly")

    api.wait_published(tenant, post.post_id)

    first, second = fake.posts()
    assert second.at - first.at >= 1.0
    assert len(fake.live) == 1


def test_permanent_failure_fails_with_the_network_code_and_message(
    api, tenant, account, fake, wait_failed
):
    message = "Invalid URN: urn:li:person:8675309 is not a valid author"
    fake.fail_next(Fault(status=400, body=error(400, message), path="/rest/posts"))
    post = publish(api, tenant, account, text="Rejected")

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("400", message)
    assert done.delivery.attempts == 1
    assert len(fake.posts()) == 1 and fake.live == []


def test_bad_credentials_fail(api, tenant, fake, wait_failed):
    account = tenant.add_account(
        "linkedin", sandbox=False, handle=AUTHOR, base_url=fake.base_url, token="expired-token"
    )
    post = publish(api, tenant, account, text="Who am I?")

    done = wait_failed(tenant, post.post_id)

    assert (done.error.code, done.error.message) == ("401", "Invalid access token")
    assert done.delivery.attempts == 1
    assert fake.live == []


def test_unknown_outcome_fails_without_sending_twice(api, tenant, account, fake, wait_failed):
    fake.fail_next(Fault(drop=True, path="/rest/posts"))  # goes live, then no answer
    post = publish(api, tenant, account, text="Did it go out?")

    done = wait_failed(tenant, post.post_id)

    assert done.error.code == "DELIVERY_OUTCOME_UNKNOWN"
    assert len(fake.live) == 1
    assert len(fake.posts()) == 1
    assert done.platform_post_id == ""


def test_unanswered_upload_is_retried_not_unknown(api, tenant, account, fake):
    fake.fail_next(Fault(drop=True, path="/rest/images"))  # nothing is live yet
    image = pb.Media(url=fake.media_url("a.png"), kind=pb.MEDIA_KIND_IMAGE)
    post = publish(api, tenant, account, text="With a picture", media=[image])

    done = api.wait_published(tenant, post.post_id)

    assert done.delivery.attempts == 2
    assert len(fake.live) == 1 and len(fake.posts()) == 1


# ----------------------------------------------------------------- unit tests


def adapter_for(fake: FakeLinkedIn, handle: str = AUTHOR) -> LinkedInAdapter:
    return LinkedInAdapter(AccountRef("acc_unit", "linkedin", handle, fake.base_url, TOKEN))


def request(text: str) -> ItemRequest:
    return ItemRequest(
        post_id="pst_unit",
        post_type="post",
        title="",
        item_index=0,
        item_count=1,
        text=text,
        media=(),
        reply_to=None,
        idempotency_key="unit-key",
    )


@pytest.mark.parametrize(
    "text",
    [
        "plain words",
        r"every reserved one: \ | { } @ [ ] ( ) < > # * _ ~",
        r"doubled and glued: \\ ((x)) [[y]] {{z}} __w__ ~~v~~ **u** <<t>> || @@ ##",
        "a link (https://example.com/x_y) in brackets, #tags and C# too",
        "links keep their marks: https://example.com/wiki/A_(b)?q=1&r=~2#top, https://example.com/#x",
        "@[Someone](urn:li:person:1) is not a mention here",
        "{hashtag|\\#|fake} is not a hashtag here",
        "#dev_ops, #2024 and #Überall at the ends: #a",
        "line one\nline two\ttab \u4f60\u597d \U0001f600",
    ],
)
def test_little_text_shows_the_text_verbatim(text):
    assert visible(little_text(text)) == text


def test_hashtags_go_out_as_hashtag_templates():
    commentary = little_text("#engineering, #dev_ops and C#, not https://example.com/#top")

    assert commentary.startswith("{hashtag|\\#|engineering}, {hashtag|\\#|dev\\_ops} and C\\#")
    assert parse_little(commentary).hashtags == ["engineering", "dev_ops"]


def test_fake_reads_the_documented_examples():
    mention = parse_little("Hello @[Acme Corp](urn:li:organization:1234)")
    hashtag = parse_little("the future of {hashtag|#|Technology} and \\(more\\)")

    assert (mention.text, mention.mentions) == (
        "Hello Acme Corp",
        [("Acme Corp", "urn:li:organization:1234")],
    )
    assert (hashtag.text, hashtag.hashtags) == (
        "the future of #Technology and (more)",
        ["Technology"],
    )


@pytest.mark.parametrize(
    "commentary",
    [
        *(f"a {c} b" for c in sorted(RESERVED)),
        "C# is escaped",
        "#",
        "trailing \\",
        r"\a is no escape",
        "@team",
        "@[Name]",
        "@[Name](me)",
        "{hashtag|\\#|}",
        "{hashtag|\\#|two words}",
        "{hashtag|\\#|open",
        "{tag|\\#|x}",
        "{hashtag|\\#|a_b}",
    ],
)
def test_fake_refuses_malformed_commentary(fake, commentary):
    with pytest.raises(MalformedLittle):
        parse_little(commentary)
    body = {
        "author": AUTHOR,
        "commentary": commentary,
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"},
        "lifecycleState": "PUBLISHED",
    }
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "LinkedIn-Version": VERSION,
        "X-Restli-Protocol-Version": "2.0.0",
    }

    answer = httpx.post(f"{fake.base_url}/rest/posts", json=body, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["message"].startswith("ERROR :: /commentary :: ")
    assert fake.live == []


def test_cannot_look_up(fake):
    adapter = adapter_for(fake)
    assert (adapter.honours_idempotency_keys, adapter.can_look_up) == (False, False)
    assert adapter.look_up(request("anything")) is None


def test_handle_must_be_an_author_urn(fake):
    with pytest.raises(PermanentError) as caught:
        adapter_for(fake, handle="acme").publish(request("Hello"))
    assert caught.value.code == "INVALID_AUTHOR"
    assert fake.log == []


def test_answer_without_urn_is_an_unknown_outcome(fake):
    fake.fail_next(Fault(status=201, path="/rest/posts"))
    with pytest.raises(OutcomeUnknown):
        adapter_for(fake).publish(request("Hello"))
