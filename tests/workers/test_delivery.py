"""Recording an item live (workers.delivery._record_live): the item commits
whatever happens to the rest, and what GetPostStatus answers moves on with it."""

from __future__ import annotations

import pytest

BACKENDS = ["sqlite", "postgres-redis"]


def a_draft_thread(api, tenant):
    """A draft (no worker touches it) with two items; its post id."""
    from tests.support import item

    # isort: split
    from posts.v1 import posts_pb2 as pb

    thread = api.create(tenant, post_type=pb.POST_TYPE_THREAD, items=[item("one"), item("two")])
    return thread.post_id


def record_last_item_live(post_id: str, token: str):
    """Runs _record_live for the post's last item as the worker with ``token`` would."""
    from service import db, posts
    from workers import delivery
    from workers.adapters.base import Published

    with db.connection():
        loaded = posts.load(post_id)
        last = loaded.items[-1][0]
        delivery._record_live(loaded, last, Published("net-2", "https://net/2"), token, finish=True)


def state(post_id: str):
    from service import db
    from service.models import Post, PostItem

    with db.connection():
        post = Post.get_by_id(post_id)
        items = list(PostItem.select().where(PostItem.post == post_id).order_by(PostItem.position))
    return post, [i.platform_post_id for i in items]


def test_a_worker_that_lost_its_lease_still_records_the_item_and_a_new_version(api, tenant):
    from workers.delivery import LeaseLost

    # Given a post that is not this worker's (its token is not the post's)
    post_id = a_draft_thread(api, tenant)
    before, _ = state(post_id)
    # When the worker records the last item live
    with pytest.raises(LeaseLost):
        record_last_item_live(post_id, token="not-the-posts-token")
    # Then the item is live, the post untouched but for a new version (and etag)
    after, live = state(post_id)
    assert live == ["", "net-2"]
    assert after.status == before.status == "draft"
    assert after.version == before.version + 1
    assert api.get(tenant, post_id).items[1].platform_post_id == "net-2"


def test_a_failed_finish_does_not_take_the_item_back(api, tenant, monkeypatch):
    from workers import delivery

    # Given a finish that fails (a bug, a constraint, a dropped statement)
    post_id = a_draft_thread(api, tenant)
    before, _ = state(post_id)

    def broken_finish(*args, **kwargs):
        raise RuntimeError("finish failed")

    monkeypatch.setattr(delivery.store, "apply_job", broken_finish)
    # When the last item is recorded live, the failure reaches the caller
    with pytest.raises(RuntimeError, match="finish failed"):
        record_last_item_live(post_id, token="any")
    # Then the item stays recorded live
    after, live = state(post_id)
    assert live == ["", "net-2"]
    assert after.version == before.version + 1


def test_an_item_recorded_live_is_never_overwritten(api, tenant):
    from service import db, posts
    from workers import delivery
    from workers.adapters.base import Published

    # Given a thread whose last item a worker recorded live
    post_id = a_draft_thread(api, tenant)
    with pytest.raises(delivery.LeaseLost):  # a draft is no worker's: the item still records
        record_last_item_live(post_id, token="first-worker")
    # When a second worker (a take-over that sent again) records another result for it
    with db.connection():
        loaded = posts.load(post_id)
        last = loaded.items[-1][0]
    with pytest.raises(delivery.LeaseLost), db.connection():
        delivery._record_live(
            loaded, last, Published("net-other", "https://net/other"), "second-worker", finish=True
        )
    # Then the first result stands
    _, live = state(post_id)
    assert live == ["", "net-2"]


def test_a_take_over_waits_a_lease_only_where_the_network_can_neither_dedupe_nor_tell():
    from service import store
    from workers.scheduler import _fence

    assert _fence("linkedin") == store.policy().lease_seconds  # no keys, no look-up
    assert _fence("x") == _fence("mastodon") == _fence("bluesky") == _fence("webhook") == 0.0
