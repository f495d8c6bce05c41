"""The seed scenarios, end to end over a real channel, with the real worker and dispatcher.

Each test provisions its own workspace, so tests share the module's server
without seeing each other's posts; the sandbox ledger is read per post.
"""

import datetime
import threading

import pytest

from tests.support import (
    DEFAULT_WAIT,
    as_datetime,
    image,
    in_seconds,
    item,
    video,
)

# isort: split
from posts.v1 import posts_pb2 as pb

DRAFT = pb.STATUS_CHANGE_DRAFT
SCHEDULED = pb.STATUS_CHANGE_SCHEDULED
PUBLISH = pb.STATUS_CHANGE_PUBLISH
CANCELLED = pb.STATUS_CHANGE_CANCELLED


def assert_live(post: pb.Post) -> None:
    """A published post carries the network's id and URL, on the post and every item."""
    assert post.status == pb.POST_STATUS_PUBLISHED
    assert post.platform_post_id and post.platform_url
    assert post.delivery.HasField("publish_time")
    for number, each in enumerate(post.items):
        assert each.status == pb.POST_STATUS_PUBLISHED, number
        assert each.platform_post_id and each.platform_url, number
    assert post.platform_post_id == post.items[0].platform_post_id
    assert post.platform_url == post.items[0].platform_url


def assert_fired_at_or_after(post: pb.Post, when) -> None:
    """The post was queued, attempted and published no earlier than ``when``."""
    for name in ("queue_time", "last_attempt_time", "publish_time"):
        assert post.delivery.HasField(name), name
        assert as_datetime(getattr(post.delivery, name)) >= when, name


# ------------------------------------------------------------------ publishing


def test_a_draft_is_published_when_asked_to(api, tenant, ledger, held_claims):
    # Given a draft
    draft = api.create(tenant, text="Draft to publish", status=DRAFT)
    assert draft.status == pb.POST_STATUS_DRAFT
    assert draft.post_id.startswith("pst_")

    # When it is published (the worker held just before its claim)
    pending = api.update(tenant, draft.post_id, status=PUBLISH)

    # Then it is queued, and once the worker runs it is live, sent exactly once
    assert pending.status == pb.POST_STATUS_PENDING
    assert pending.delivery.HasField("queue_time")
    held_claims.wait_arrival(draft.post_id)
    assert api.get(tenant, draft.post_id).status == pb.POST_STATUS_PENDING
    held_claims.release()
    post = api.wait_published(tenant, draft.post_id)
    assert_live(post)
    assert post.text == "Draft to publish"
    assert [send.post_id for send in ledger.sends(post_id=draft.post_id)] == [draft.post_id]


def test_a_post_created_to_publish_goes_live(api, tenant, ledger):
    post = api.create(tenant, text="Straight out", status=PUBLISH)

    live = api.wait_published(tenant, post.post_id)

    assert_live(live)
    assert live.delivery.attempts == 1
    (send,) = ledger.sends(post_id=post.post_id)
    assert send.platform_post_id == live.platform_post_id


def test_each_item_keeps_its_own_media_in_order(api, tenant):
    # Items with none, one and several media, in two posts read singly and together
    threads = [
        [
            item("a"),
            item("b", [image(3), image(1), image(2)]),
            item("c", [image(4)]),
            item("d", [image(6), image(5)]),
        ],
        [item("e", [image(7)]), item("f")],
    ]
    created = [
        api.create(tenant, post_type=pb.POST_TYPE_THREAD, items=items, status=DRAFT)
        for items in threads
    ]

    def media(post: pb.Post) -> list[list[str]]:
        return [[m.url for m in each.media] for each in post.items]

    expected = [[[m.url for m in each.media] for each in items] for items in threads]
    assert [media(post) for post in created] == expected
    assert [media(api.get(tenant, post.post_id)) for post in created] == expected
    listed = {post.post_id: media(post) for post in api.list_all(tenant)}
    assert [listed[post.post_id] for post in created] == expected


def test_a_thread_is_published_item_by_item_as_replies(api, tenant, ledger):
    thread = api.create(
        tenant,
        post_type=pb.POST_TYPE_THREAD,
        items=[item("one"), item("two", [image(1)]), item("three")],
        status=PUBLISH,
    )

    live = api.wait_published(tenant, thread.post_id)

    assert_live(live)
    assert [each.text for each in live.items] == ["one", "two", "three"]
    sends = ledger.sends(post_id=thread.post_id)
    assert [send.item_index for send in sends] == [0, 1, 2]
    assert len({send.idempotency_key for send in sends}) == 3
    assert [send.platform_post_id for send in sends] == [
        each.platform_post_id for each in live.items
    ]


@pytest.mark.parametrize(
    ("platform", "post_type", "content"),
    [
        ("x", pb.POST_TYPE_TWEET, {"text": "hi"}),
        ("instagram", pb.POST_TYPE_FEED, {"text": "caption", "media": [image()]}),
        ("linkedin", pb.POST_TYPE_POST, {"text": "hi"}),
        ("tiktok", pb.POST_TYPE_VIDEO, {"text": "caption", "media": [video()]}),
        ("youtube", pb.POST_TYPE_SHORT, {"title": "A short", "media": [video()]}),
        ("bluesky", pb.POST_TYPE_POST, {"text": "hi"}),
        ("mastodon", pb.POST_TYPE_POST, {"text": "hi"}),
        ("webhook", pb.POST_TYPE_POST, {"text": "hi"}),
    ],
)
def test_a_sandbox_account_on_any_network_publishes(
    api, tenant, ledger, platform, post_type, content
):
    account_id = tenant.add_account(platform, sandbox=True)

    post = api.create(tenant, account_id=account_id, post_type=post_type, status=PUBLISH, **content)

    assert post.platform == getattr(pb, f"PLATFORM_{platform.upper()}")
    assert_live(api.wait_published(tenant, post.post_id))
    assert len(ledger.sends(post_id=post.post_id)) == 1


# ------------------------------------------------------------------ scheduling


def test_a_draft_promoted_to_scheduled_fires_at_its_time(api, tenant, ledger):
    # Given a draft
    draft = api.create(tenant, status=DRAFT)

    # When it is scheduled a moment ahead
    when = in_seconds(1.5)
    scheduled = api.update(tenant, draft.post_id, status=SCHEDULED, scheduled_at=when)

    # Then it waits, and fires at (not before) its time, once
    assert scheduled.status == pb.POST_STATUS_SCHEDULED
    assert abs(as_datetime(scheduled.scheduled_at) - when) < datetime.timedelta(seconds=1)
    post = api.wait_published(tenant, draft.post_id)
    assert_fired_at_or_after(post, as_datetime(scheduled.scheduled_at))
    assert len(ledger.sends(post_id=draft.post_id)) == 1


def test_a_post_created_scheduled_fires_at_its_time(api, tenant, ledger):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1))
    assert post.status == pb.POST_STATUS_SCHEDULED

    live = api.wait_published(tenant, post.post_id)

    assert_fired_at_or_after(live, as_datetime(post.scheduled_at))
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_post_rescheduled_later_fires_once_at_the_new_time_only(api, tenant, ledger):
    # Given a post scheduled a moment ahead
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1))

    # When it is rescheduled further out before it fires
    moved = api.update(tenant, post.post_id, scheduled_at=in_seconds(2.5))
    assert moved.status == pb.POST_STATUS_SCHEDULED
    new_time = as_datetime(moved.scheduled_at)
    assert new_time > as_datetime(post.scheduled_at)
    assert moved.etag != post.etag

    # Then the old time passes without a delivery, and the new time fires it once
    live = api.wait_published(tenant, post.post_id)
    assert_fired_at_or_after(live, new_time)
    assert as_datetime(live.scheduled_at) == new_time
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_post_rescheduled_earlier_fires_once_at_the_new_time(api, tenant, ledger):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    moved = api.update(tenant, post.post_id, scheduled_at=in_seconds(1))

    live = api.wait_published(tenant, post.post_id)
    assert_fired_at_or_after(live, as_datetime(moved.scheduled_at))
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_scheduled_post_is_published_now_when_asked_to(api, tenant, ledger):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    now = api.update(tenant, post.post_id, status=PUBLISH)

    # (the answer is the post as the update wrote it, before any worker ran)
    assert now.status == pb.POST_STATUS_PENDING
    assert_live(api.wait_published(tenant, post.post_id))
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_scheduled_post_moved_into_the_last_minute_is_published_now(api, tenant, ledger):
    """Within a minute of the server's clock, a past time is the caller's "now"."""
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    now = api.update(tenant, post.post_id, scheduled_at=in_seconds(-30))

    assert now.status == pb.POST_STATUS_PENDING
    assert_live(api.wait_published(tenant, post.post_id))
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_scheduled_post_moved_over_a_minute_into_the_past_is_refused(api, tenant, ledger):
    """Publishing cannot be undone: a time further back is taken for a mistake."""
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, scheduled_at=in_seconds(-90))

    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"scheduled_at"}
    assert "status: STATUS_CHANGE_PUBLISH" in failure.field_violations["scheduled_at"]
    after = api.get(tenant, post.post_id)
    assert after.status == pb.POST_STATUS_SCHEDULED and after.etag == post.etag
    assert after.scheduled_at == post.scheduled_at
    assert ledger.sends(post_id=post.post_id) == []


def test_a_scheduled_post_moved_into_the_past_with_publish_is_published_now(api, tenant, ledger):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    now = api.update(tenant, post.post_id, scheduled_at=in_seconds(-86400), status=PUBLISH)

    assert now.status == pb.POST_STATUS_PENDING
    assert_live(api.wait_published(tenant, post.post_id))
    assert len(ledger.sends(post_id=post.post_id)) == 1


def test_a_scheduled_post_turned_back_into_a_draft_keeps_its_time_and_does_not_fire(
    api, tenant, ledger
):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1))

    draft = api.update(tenant, post.post_id, status=DRAFT)

    assert draft.status == pb.POST_STATUS_DRAFT
    assert draft.scheduled_at == post.scheduled_at
    # Once a post due after the draft's old time has fired, the dispatcher has
    # been past that time: the draft has still not fired
    later = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1.2))
    assert as_datetime(later.scheduled_at) > as_datetime(post.scheduled_at)
    api.wait_published(tenant, later.post_id)
    api.settle(tenant)
    still = api.get(tenant, post.post_id)
    assert still.status == pb.POST_STATUS_DRAFT
    assert still.scheduled_at == post.scheduled_at
    assert ledger.sends(post_id=post.post_id) == []


def test_editing_a_scheduled_post_replaces_its_content(api, tenant, ledger):
    post = api.create(tenant, text="Typo here", status=SCHEDULED, scheduled_at=in_seconds(1.5))

    edited = api.update(tenant, post.post_id, text="Fixed", media=[image(7)])

    assert edited.status == pb.POST_STATUS_SCHEDULED
    assert edited.text == "Fixed"
    assert [media.url for media in edited.media] == [image(7).url]
    assert edited.media[0].media_id.startswith("med_")
    assert edited.scheduled_at == post.scheduled_at
    live = api.wait_published(tenant, post.post_id)
    assert live.text == "Fixed"
    assert len(ledger.sends(post_id=post.post_id)) == 1


# ------------------------------------------------------------------ cancelling


def test_a_cancelled_scheduled_post_never_fires(api, tenant, ledger):
    # Given a post scheduled a moment ahead
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1))

    # When it is cancelled
    cancelled = api.update(tenant, post.post_id, status=CANCELLED)

    # Then it is CANCELLED, and after a post due later has fired it still is, unsent
    assert cancelled.status == pb.POST_STATUS_CANCELLED
    later = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1.2))
    api.wait_published(tenant, later.post_id)
    api.settle(tenant)
    assert api.get(tenant, post.post_id).status == pb.POST_STATUS_CANCELLED
    assert ledger.sends(post_id=post.post_id) == []


def test_a_cancelled_pending_post_is_never_delivered(api, tenant, ledger, held_claims):
    # Given a post queued for delivery, its worker about to claim it
    post = api.create(tenant, status=PUBLISH)
    held_claims.wait_arrival(post.post_id)
    assert api.get(tenant, post.post_id).status == pb.POST_STATUS_PENDING

    # When it is cancelled, and then the worker goes on
    cancelled = api.update(tenant, post.post_id, status=CANCELLED)
    held_claims.release()

    # Then the worker's message is dropped: the post stays CANCELLED, unsent
    assert cancelled.status == pb.POST_STATUS_CANCELLED
    held_claims.wait_departure(post.post_id)
    api.settle(tenant)
    final = api.get(tenant, post.post_id)
    assert final.status == pb.POST_STATUS_CANCELLED
    assert not final.platform_post_id
    assert ledger.sends(post_id=post.post_id) == []


def test_cancelling_a_cancelled_post_succeeds_and_changes_nothing(api, tenant):
    post = api.create(tenant, status=DRAFT)
    cancelled = api.update(tenant, post.post_id, status=CANCELLED)

    again = api.update(tenant, post.post_id, status=CANCELLED)

    assert again.status == pb.POST_STATUS_CANCELLED
    assert again.etag == cancelled.etag
    assert again.update_time == cancelled.update_time


def test_asking_a_draft_to_stay_a_draft_succeeds_and_changes_nothing(api, tenant):
    post = api.create(tenant, status=DRAFT)

    again = api.update(tenant, post.post_id, status=DRAFT)

    assert again.status == pb.POST_STATUS_DRAFT
    assert again.etag == post.etag


# -------------------------------------------------------------- refused edits


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"text": "Edited after the fact"}, id="edit-text"),
        pytest.param({"status": CANCELLED}, id="cancel"),
        pytest.param({"status": DRAFT}, id="back-to-draft"),
        pytest.param({"scheduled_at": in_seconds(3600)}, id="reschedule"),
        pytest.param({"media": [image()]}, id="reattach-media"),
    ],
)
def test_a_published_post_refuses_edits_and_cancel(api, tenant, published, ledger, change):
    failure = api.refused("UpdatePost", tenant, post_id=published.post_id, **change)

    assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION")
    assert failure.metadata["currentStatus"] == "POST_STATUS_PUBLISHED"
    assert failure.precondition_violations
    after = api.get(tenant, published.post_id)
    assert after.etag == published.etag
    assert after.status == pb.POST_STATUS_PUBLISHED
    assert len(ledger.sends(post_id=published.post_id)) == 1


def test_a_published_post_cannot_be_deleted(api, tenant, published):
    failure = api.refused("DeletePost", tenant, post_id=published.post_id)

    assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION")
    assert failure.metadata["currentStatus"] == "POST_STATUS_PUBLISHED"
    after = api.get(tenant, published.post_id)
    assert after.status == pb.POST_STATUS_PUBLISHED
    assert not after.HasField("delete_time")


def test_a_pending_post_can_only_be_cancelled(api, tenant, held_claims):
    post = api.create(tenant, status=PUBLISH)
    held_claims.wait_arrival(post.post_id)

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, text="too late")

    assert failure.kind == ("FAILED_PRECONDITION", "INVALID_TRANSITION")
    assert failure.metadata["currentStatus"] == "POST_STATUS_PENDING"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("platform", pb.PLATFORM_LINKEDIN),
        ("post_type", pb.POST_TYPE_THREAD),
        ("account_id", "other-account"),
    ],
)
def test_platform_account_and_post_type_are_not_editable(api, tenant, field, value):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))
    if value == "other-account":
        value = tenant.add_account("x", handle="second")

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **{field: value})

    assert failure.kind == ("INVALID_ARGUMENT", "FIELD_IMMUTABLE")
    assert failure.fields == {field}
    after = api.get(tenant, post.post_id)
    assert after.etag == post.etag
    assert (after.platform, after.post_type, after.account_id) == (
        pb.PLATFORM_X,
        pb.POST_TYPE_TWEET,
        tenant.account_id,
    )


def test_repeating_the_same_platform_account_and_post_type_is_accepted(api, tenant):
    post = api.create(tenant, status=DRAFT)

    edited = api.update(
        tenant,
        post.post_id,
        platform=pb.PLATFORM_X,
        account_id=tenant.account_id,
        post_type=pb.POST_TYPE_TWEET,
        text="Same identity, new words",
    )

    assert edited.text == "Same identity, new words"


# ---------------------------------------------------------------- update_mask


def test_an_update_mask_changes_exactly_the_named_fields_and_can_clear_one(api, tenant):
    post = api.create(tenant, text="keep me", title="a title", status=DRAFT)

    edited = api.update(
        tenant,
        post.post_id,
        text="ignored: not in the mask",
        title="",
        update_mask={"paths": ["title"]},
    )

    assert edited.title == ""
    assert edited.text == "keep me"


@pytest.mark.parametrize(
    "paths",
    [["title", "scheduled_at"], ["title", "scheduledAt"], ["scheduledAt", "scheduled_at", "title"]],
)
def test_mask_paths_may_be_written_in_snake_case_or_as_json_names(paths, api, tenant):
    post = api.create(
        tenant, text="keep me", title="old", status=SCHEDULED, scheduled_at=in_seconds(3600)
    )
    later = in_seconds(7200)

    edited = api.update(
        tenant,
        post.post_id,
        text="ignored",
        title="new",
        scheduled_at=later,
        update_mask={"paths": paths},
    )

    assert (edited.title, edited.text) == ("new", "keep me")
    assert as_datetime(edited.scheduled_at) == later


# --------------------------------------------------------------------- delete


def test_a_deleted_post_is_cancelled_hidden_from_lists_but_still_readable(api, tenant, ledger):
    # Given a scheduled post and a draft
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1))
    kept = api.create(tenant, status=DRAFT)

    # When the scheduled post is deleted
    deleted = api.delete(tenant, post.post_id)

    # Then it is CANCELLED with a delete_time, still readable
    assert deleted.status == pb.POST_STATUS_CANCELLED
    assert deleted.HasField("delete_time")
    read = api.get(tenant, post.post_id)
    assert read.status == pb.POST_STATUS_CANCELLED
    assert read.delete_time == deleted.delete_time

    # And hidden from ListPosts unless show_deleted
    assert [p.post_id for p in api.list_all(tenant)] == [kept.post_id]
    assert {p.post_id for p in api.list_all(tenant, show_deleted=True)} == {
        kept.post_id,
        post.post_id,
    }

    # And it never fires
    later = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(1.2))
    api.wait_published(tenant, later.post_id)
    assert ledger.sends(post_id=post.post_id) == []


def test_deleting_a_deleted_post_succeeds_and_changes_nothing(api, tenant):
    post = api.create(tenant, status=DRAFT)
    deleted = api.delete(tenant, post.post_id)

    again = api.delete(tenant, post.post_id)

    assert again.etag == deleted.etag
    assert again.delete_time == deleted.delete_time


def test_a_cancelled_post_can_be_deleted(api, tenant):
    post = api.create(tenant, status=DRAFT)
    api.update(tenant, post.post_id, status=CANCELLED)

    deleted = api.delete(tenant, post.post_id)

    assert deleted.status == pb.POST_STATUS_CANCELLED
    assert deleted.HasField("delete_time")


# ---------------------------------------------------------------- idempotency


def test_creating_twice_with_the_same_key_answers_the_same_post(api, tenant):
    request = api.create_request(tenant, text="Once only", idempotency_key="launch-42")

    first = api.create(tenant, **_fields(request))
    second = api.create(tenant, **_fields(request))

    assert second.post_id == first.post_id
    assert second.idempotency_key == "launch-42"
    assert [p.post_id for p in api.list_all(tenant)] == [first.post_id]


def test_the_same_key_with_a_different_request_is_refused(api, tenant):
    api.create(tenant, text="Once only", idempotency_key="launch-43")

    failure = api.refused("CreatePost", tenant, text="Something else", idempotency_key="launch-43")

    assert failure.kind == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert len(api.list_all(tenant)) == 1


def test_the_same_key_answers_its_post_even_after_its_scheduled_time_passed(api, tenant, ledger):
    request = api.create_request(
        tenant, status=SCHEDULED, scheduled_at=in_seconds(1), idempotency_key="timed-1"
    )
    first = api.create(tenant, **_fields(request))
    api.wait_published(tenant, first.post_id)

    again = api.create(tenant, **_fields(request))

    assert again.post_id == first.post_id
    assert again.status == pb.POST_STATUS_PUBLISHED
    assert len(ledger.sends(post_id=first.post_id)) == 1


def test_idempotency_keys_are_scoped_to_the_workspace(api, make_tenant):
    one, two = make_tenant("one"), make_tenant("two")

    first = api.create(one, idempotency_key="shared-key")
    second = api.create(two, idempotency_key="shared-key")

    assert first.post_id != second.post_id


def _fields(request: pb.CreatePostRequest) -> dict:
    """A request's set fields as keyword arguments (so the same request can be re-sent)."""
    return {field.name: value for field, value in request.ListFields()}


# ----------------------------------------------------------------------- etag


def test_a_stale_etag_is_aborted_and_changes_nothing(api, tenant):
    post = api.create(tenant, text="v1", status=DRAFT)
    current = api.update(tenant, post.post_id, text="v2", etag=post.etag)
    assert current.etag != post.etag

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, text="v3", etag=post.etag)
    delete_failure = api.refused("DeletePost", tenant, post_id=post.post_id, etag=post.etag)

    assert failure.kind == ("ABORTED", "ETAG_MISMATCH")
    assert delete_failure.kind == ("ABORTED", "ETAG_MISMATCH")
    after = api.get(tenant, post.post_id)
    assert (after.text, after.etag, after.status) == ("v2", current.etag, pb.POST_STATUS_DRAFT)
    assert not after.HasField("delete_time")


def test_the_current_etag_is_accepted(api, tenant):
    post = api.create(tenant, status=DRAFT)

    deleted = api.delete(tenant, post.post_id, etag=post.etag)

    assert deleted.status == pb.POST_STATUS_CANCELLED


def test_the_etag_changes_when_the_worker_publishes(api, tenant, held_claims):
    post = api.create(tenant, status=PUBLISH)
    held_claims.wait_arrival(post.post_id)
    pending = api.get(tenant, post.post_id)
    held_claims.release()

    live = api.wait_published(tenant, post.post_id)

    assert live.etag != pending.etag
    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, text="x", etag=pending.etag)
    assert failure.kind == ("ABORTED", "ETAG_MISMATCH")


def test_status_shows_each_item_of_a_thread_as_it_goes_live(api, tenant, delivery_hooks):
    # Given a thread whose worker stops before sending each item
    arrived = [threading.Event(), threading.Event()]
    go_on = [threading.Event(), threading.Event()]

    def hold(post_id, item_index):
        arrived[item_index].set()
        go_on[item_index].wait(DEFAULT_WAIT)

    delivery_hooks.before_send(hold)
    thread = api.create(
        tenant, post_type=pb.POST_TYPE_THREAD, items=[item("one"), item("two")], status=PUBLISH
    )
    try:
        assert arrived[0].wait(DEFAULT_WAIT), "the worker never reached the first item"
        before = api.get(tenant, thread.post_id)
        go_on[0].set()
        assert arrived[1].wait(DEFAULT_WAIT), "the worker never reached the second item"
        # When the status is read between the two sends (twice: answers may be cached)
        between = [api.get(tenant, thread.post_id) for _ in range(2)]
    finally:
        for event in go_on:
            event.set()
    # Then it shows the first item live and the second not yet, under a new etag
    assert not before.items[0].platform_post_id
    for read in between:
        assert read.status == pb.POST_STATUS_PROCESSING
        assert read.items[0].status == pb.POST_STATUS_PUBLISHED and read.items[0].platform_post_id
        assert read.items[1].status == pb.POST_STATUS_PROCESSING
        assert not read.items[1].platform_post_id
        assert read.etag != before.etag
    # And once the second is live, so is the post
    assert_live(api.wait_published(tenant, thread.post_id))


# ----------------------------------------------------------------------- list


def test_list_pages_newest_first_with_page_tokens(api, tenant):
    created = [api.create(tenant, text=f"post {n}").post_id for n in range(5)]

    pages, token = [], ""
    while True:
        page = api.list(tenant, page_size=2, page_token=token)
        pages.append([post.post_id for post in page.posts])
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10, "pagination does not end"

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [post_id for page in pages for post_id in page] == created[::-1]


def test_list_filters_by_status_account_and_platform(api, tenant):
    other_account = tenant.add_account("mastodon")
    draft = api.create(tenant, status=DRAFT)
    scheduled = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))
    toot = api.create(tenant, account_id=other_account, post_type=pb.POST_TYPE_POST)

    def ids(**filters):
        return [post.post_id for post in api.list_all(tenant, **filters)]

    assert ids(statuses=[pb.POST_STATUS_SCHEDULED]) == [scheduled.post_id]
    assert ids(statuses=[pb.POST_STATUS_DRAFT]) == [toot.post_id, draft.post_id]
    assert ids(account_id=other_account) == [toot.post_id]
    assert ids(platform=pb.PLATFORM_X) == [scheduled.post_id, draft.post_id]


def _flip_middle_character(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda token: "not-a-page-token", id="garbage"),
        pytest.param(lambda token: token[: len(token) // 2], id="truncated"),
        pytest.param(_flip_middle_character, id="one-character-changed"),
    ],
)
def test_a_tampered_page_token_is_invalid_argument(api, tenant, tamper):
    for n in range(3):
        api.create(tenant, text=f"post {n}")
    token = api.list(tenant, page_size=1).next_page_token
    assert token

    failure = api.refused("ListPosts", tenant, page_size=1, page_token=tamper(token))

    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"page_token"}
