"""Post events (ListPostEvents): every path a post can take gives exactly its
expected events, in order, each with the post as it stood after it.

The paths run end to end through the real worker and dispatcher; EXPECTED
names each path's events as (type, status, cause), the contract a watcher
(tests/service/test_watch.py) is held to as well.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from service import db, events, posts
from service.models import PostEvent
from tests.service.test_watch import Stream
from tests.support import DEFAULT_WAIT, call, in_seconds, item
from workers.adapters.base import TransientError

# isort: split
import itertools

from posts.v1 import posts_pb2 as pb

T = pb.PostEventType
S = pb.PostStatus

#: Each path's events: (type, status after, cause) and, for items, the item index.
EXPECTED = {
    "draft, edited, scheduled, rescheduled, published": [
        ("CREATED", "DRAFT", "api"),
        ("UPDATED", "DRAFT", "api"),
        ("SCHEDULED", "SCHEDULED", "api"),
        ("UPDATED", "SCHEDULED", "api"),
        ("QUEUED", "PENDING", "dispatcher"),
        ("PROCESSING", "PROCESSING", "worker"),
        # The last item goes live in the transaction that publishes the post.
        ("ITEM_PUBLISHED", "PUBLISHED", "worker", 0),
        ("PUBLISHED", "PUBLISHED", "worker"),
    ],
    "a 3-item thread with one transient failure": [
        ("CREATED", "PENDING", "api"),
        ("PROCESSING", "PROCESSING", "worker"),
        ("ITEM_PUBLISHED", "PROCESSING", "worker", 0),
        ("RETRY_SCHEDULED", "PENDING", "worker"),
        ("QUEUED", "PENDING", "dispatcher"),
        ("PROCESSING", "PROCESSING", "worker"),
        ("ITEM_PUBLISHED", "PROCESSING", "worker", 1),
        ("ITEM_PUBLISHED", "PUBLISHED", "worker", 2),
        ("PUBLISHED", "PUBLISHED", "worker"),
    ],
    "cancelled": [
        ("CREATED", "SCHEDULED", "api"),
        ("CANCELLED", "CANCELLED", "api"),
    ],
    "deleted": [
        ("CREATED", "DRAFT", "api"),
        ("DELETED", "CANCELLED", "api"),
    ],
}


def shape(event: pb.PostEvent) -> tuple:
    """An event as EXPECTED writes it."""
    found = (
        T.Name(event.type).removeprefix("POST_EVENT_TYPE_"),
        S.Name(event.status).removeprefix("POST_STATUS_"),
        event.cause,
    )
    return (*found, event.item_index) if event.HasField("item_index") else found


def list_events(api, tenant, **fields) -> list[pb.PostEvent]:
    """Every page of ListPostEvents."""
    found, token = [], ""
    while True:
        answer = call(
            api.stub.ListPostEvents,
            api.request("ListPostEvents", tenant, page_token=token, **fields),
            tenant.key,
        )
        found += answer.events
        token = answer.next_page_token
        if not token:
            return found


def run_path(name: str, api, tenant, delivery_hooks, held_claims) -> str:
    """Takes a post through the path ``name``; returns its id once it settled."""
    if name.startswith("draft"):
        post = api.create(tenant, text="draft", status=pb.STATUS_CHANGE_DRAFT)
        api.update(tenant, post.post_id, text="edited")
        api.update(
            tenant, post.post_id, status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(30)
        )
        api.update(tenant, post.post_id, scheduled_at=in_seconds(1))
        held_claims.release()
        api.wait_published(tenant, post.post_id)
        return post.post_id
    if name.startswith("a 3-item"):
        failed, mine = threading.Event(), []

        def fail_item_1_once(post_id, item_index):
            if post_id in mine and item_index == 1 and not failed.is_set():
                failed.set()
                raise TransientError("503", "the network is busy")

        delivery_hooks.before_send(fail_item_1_once)
        post = api.create(
            tenant,
            post_type=pb.POST_TYPE_THREAD,
            status=pb.STATUS_CHANGE_PUBLISH,
            items=[item("one"), item("two"), item("three")],
        )
        mine.append(post.post_id)
        held_claims.release()  # its delivery waited for ``mine``
        api.wait_published(tenant, post.post_id)
        assert failed.is_set()
        return post.post_id
    if name == "cancelled":
        post = api.create(
            tenant, text="later", status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(3600)
        )
        api.update(tenant, post.post_id, status=pb.STATUS_CHANGE_CANCELLED)
        return post.post_id
    post = api.create(tenant, text="to delete", status=pb.STATUS_CHANGE_DRAFT)
    api.delete(tenant, post.post_id)
    return post.post_id


# ------------------------------------------------------------------ the paths


@pytest.mark.parametrize("path", list(EXPECTED))
def test_each_path_gives_exactly_its_events_in_order(
    path, api, make_tenant, delivery_hooks, held_claims
):
    tenant = make_tenant("events")
    stream = Stream(api.stub, tenant.key, after_event_id=0)  # opened before the post exists
    try:
        post_id = run_path(path, api, tenant, delivery_hooks, held_claims)

        found = list_events(api, tenant, post_id=post_id)
        stream.wait(lambda got: len(got) >= len(found), message="the stream's events")
    finally:
        stream.cancel()

    assert [shape(e) for e in found] == EXPECTED[path]
    assert list(stream.events) == found  # the same events, in the same order, on the stream
    ids = [e.event_id for e in found]
    assert ids == sorted(set(ids)) and ids[0] > 0
    for event in found:
        assert event.post_id == post_id and event.workspace_id == tenant.workspace_id
        # The post as it stood after the event.
        assert event.post.post_id == post_id
        assert event.post.status == event.status, shape(event)
        assert event.HasField("create_time")
    last = found[-1].post
    assert last == api.get(tenant, post_id)  # the last event's post is the post now
    if path.startswith("a 3-item"):
        attempts = [e.attempt for e in found if e.type == T.POST_EVENT_TYPE_PROCESSING]
        assert attempts == [1, 2]
        retry = next(e for e in found if e.type == T.POST_EVENT_TYPE_RETRY_SCHEDULED)
        assert (retry.error.code, retry.error.message) == ("503", "the network is busy")
        assert retry.post.items[0].platform_post_id and not retry.post.items[1].platform_post_id
    if path.startswith("draft"):
        texts = [e.post.text for e in found[:2]]
        assert texts == ["draft", "edited"]


def test_the_workspace_listing_pages_and_filters(api, make_tenant):
    tenant = make_tenant("listing")
    made = [api.create(tenant, text=f"post {n}") for n in range(3)]
    for post in made:
        api.update(tenant, post.post_id, text="again")
        api.delete(tenant, post.post_id)

    everything = list_events(api, tenant)
    paged = list_events(api, tenant, page_size=2)
    deleted = list_events(api, tenant, types=[T.POST_EVENT_TYPE_DELETED, T.POST_EVENT_TYPE_CREATED])

    assert len(everything) == 9
    assert [e.event_id for e in paged] == [e.event_id for e in everything]
    assert [e.event_id for e in everything] == sorted(e.event_id for e in everything)
    assert [e.event_id for e in deleted] == [
        e.event_id for e in everything if e.type != T.POST_EVENT_TYPE_UPDATED
    ]


@pytest.mark.parametrize(
    ("rpc", "module", "field"),
    [
        ("ListPostEvents", events, "events"),
        ("ListPosts", posts, "posts"),
    ],
)
def test_a_page_size_over_the_maximum_is_taken_as_the_maximum(
    api, make_tenant, monkeypatch, rpc, module, field
):
    """AIP-158: a larger page_size is clamped, not refused (the maximum made small
    here; tests/service/test_limits.py pages 101 posts at the real one)."""
    monkeypatch.setattr(module, "MAX_PAGE_SIZE", 2)
    tenant = make_tenant("clamped")
    for n in range(3):
        api.create(tenant, text=f"post {n}")
    method = getattr(api.stub, rpc)

    first = call(method, api.request(rpc, tenant, page_size=2**31 - 1), tenant.key)
    second = call(
        method,
        api.request(rpc, tenant, page_size=2**31 - 1, page_token=first.next_page_token),
        tenant.key,
    )

    assert len(getattr(first, field)) == 2 and first.next_page_token
    assert len(getattr(second, field)) == 1 and not second.next_page_token


def test_another_workspaces_events_are_never_listed(api, make_tenant):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")
    own = api.create(mine, text="mine")
    other = api.create(theirs, text="theirs")

    assert {e.post_id for e in list_events(api, mine)} == {own.post_id}
    assert list_events(api, mine, post_id=other.post_id) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"types": [0]}, "types[0]"),
        ({"types": [99]}, "types[0]"),
        ({"types": [1] * 17}, "types"),
        ({"post_id": "pst_nope"}, "post_id"),
        ({"page_token": "forged"}, "page_token"),
    ],
)
def test_a_malformed_listing_is_invalid_field(fields, field, api, tenant):
    failure = api.refused("ListPostEvents", tenant, **fields)

    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {field}


def test_a_page_token_of_another_listing_is_refused(api, tenant):
    for n in range(3):
        api.create(tenant, text=f"post {n}")
    answer = call(
        api.stub.ListPostEvents, api.request("ListPostEvents", tenant, page_size=1), tenant.key
    )

    failure = api.refused(
        "ListPostEvents",
        tenant,
        page_token=answer.next_page_token,
        types=[T.POST_EVENT_TYPE_CREATED],
    )

    assert failure.fields == {"page_token"}


# ------------------------------------------------------------------ commit order


def read_while_writing(api, tenant, writers: int, per_writer: int) -> tuple[list[int], list[int]]:
    """``writers`` threads create ``per_writer`` posts each while this thread
    reads the workspace's events after its cursor, over and over; the event_ids
    read, and the events' insertion ids in event_id order."""
    start = threading.Barrier(writers + 1)
    done = threading.Event()

    def write():
        start.wait()
        for n in range(per_writer):
            api.create(tenant, text=f"post {n}")

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    which = events.Filter(tenant.workspace_id)
    start.wait()
    threading.Thread(target=lambda: ([t.join() for t in threads], done.set())).start()
    deadline = time.monotonic() + 6 * DEFAULT_WAIT
    with db.connection():
        while len(seen) < writers * per_writer and time.monotonic() < deadline:
            if done.is_set():  # the last commits: a few more reads, not a minute
                deadline = min(deadline, time.monotonic() + 3.0)
            events.sequence(wait=False)
            cursor = seen[-1] if seen else 0
            seen += [e.event_id for e in events.read(cursor, which, 1000)]
        rows = (
            PostEvent.select(PostEvent.id, PostEvent.seq)
            .where(PostEvent.workspace == tenant.workspace_id)
            .order_by(events.cursor_field())
        )
        inserted = [row.id for row in rows]
    return seen, inserted


def test_event_ids_never_go_back_while_concurrent_writers_commit(api, make_tenant, server):
    """A reader that reads after its cursor over and over, while 8 threads
    create posts, ends with exactly every event, each once, in event_id order:
    an event committed late never gets an id below one already read.

    On PostgreSQL commits land out of insertion order (the numbering after
    commit is what this catches): rounds go on, each checked, until one has
    seen that happen (a few events in 200 most rounds). On SQLite they cannot.
    """
    writers, per_writer = 8, 25
    overtaken = []
    for _ in range(5):
        tenant = make_tenant("order")
        seen, inserted = read_while_writing(api, tenant, writers, per_writer)

        final = [e.event_id for e in list_events(api, tenant)]
        assert len(final) == writers * per_writer
        assert seen == final
        # Both outcomes: some events committed after a later insertion was numbered.
        overtaken.append(sum(1 for a, b in itertools.pairwise(inserted) if b < a))
        if server.backend == "sqlite" or overtaken[-1]:
            break
    print(
        f"{server.backend}: events committed out of insertion order, per round of "
        f"{writers * per_writer}: {overtaken}"
    )
    if server.backend != "sqlite":
        assert overtaken[-1] > 0
    else:
        assert overtaken == [0]


# ------------------------------------------------------------------ retention (last: prunes all)


def test_a_pruned_cursor_is_out_of_range(api, make_tenant):
    tenant = make_tenant("pruned")
    for n in range(3):
        api.create(tenant, text=f"post {n}")
    answer = call(
        api.stub.ListPostEvents, api.request("ListPostEvents", tenant, page_size=1), tenant.key
    )
    assert answer.next_page_token

    with db.connection():
        pruned = events.prune(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    failure = api.refused("ListPostEvents", tenant, page_size=1, page_token=answer.next_page_token)

    assert pruned >= 3
    assert failure.kind == ("OUT_OF_RANGE", "EVENT_CURSOR_EXPIRED")
    assert list_events(api, tenant) == []  # a listing from the start is not refused
    later = api.create(tenant, text="after the pruning")
    assert [e.post_id for e in list_events(api, tenant)] == [later.post_id]
