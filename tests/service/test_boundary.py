"""The error boundary and the write lock, over a real channel on every backend:
unexpected errors answer INTERNAL with an error id, the platform rules run
outside any write transaction, and racing UpdatePosts share an idempotency key
correctly."""

import logging
import threading

import grpc
import pytest

from service import db, rules
from service import posts as service_posts
from tests.support import DEFAULT_WAIT, Failure, in_seconds

# isort: split
from posts.v1 import posts_pb2 as pb

DRAFT = pb.STATUS_CHANGE_DRAFT
SCHEDULED = pb.STATUS_CHANGE_SCHEDULED
PUBLISH = pb.STATUS_CHANGE_PUBLISH


# ----------------------------------------------------------- unexpected errors


def test_an_unexpected_error_is_internal_with_an_id_the_log_has_too(
    api, tenant, monkeypatch, caplog
):
    post = api.create(tenant, text="readable")

    def broken(*args, **kwargs):
        raise RuntimeError("password=hunter2 in the driver's text")

    monkeypatch.setattr(service_posts, "load", broken)
    with caplog.at_level(logging.ERROR, logger="service.interceptors"):
        failure = api.refused("GetPostStatus", tenant, post_id=post.post_id)

    assert failure.kind == ("INTERNAL", "INTERNAL_ERROR")
    error_id = failure.metadata["errorId"]
    assert len(error_id) == 12 and error_id in failure.message
    assert "hunter2" not in failure.message + str(failure.metadata)
    [logged] = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged.exc_info and "hunter2" in str(logged.exc_info[1])


# ------------------------------------------------------------ rules, no lock


@pytest.fixture
def rule_checks(monkeypatch):
    """Records, for every rules.check, whether a database transaction was open."""
    seen: list[bool] = []
    check = rules.check

    def recording(*args, **kwargs):
        if threading.current_thread().name.startswith("rpc"):  # not the in-process worker's
            seen.append(db.database.in_transaction())
        return check(*args, **kwargs)

    monkeypatch.setattr(rules, "check", recording)
    return seen


def test_the_platform_rules_are_checked_outside_any_write_transaction(api, tenant, rule_checks):
    # Created queued: a tweet over the limit is refused, a fine one published
    over = api.refused("CreatePost", tenant, text="a" * 281, status=PUBLISH)
    api.create(tenant, text="fine", status=PUBLISH)
    # A draft published, a scheduled post's text and items edited
    draft = api.create(tenant, text="a draft")
    api.update(tenant, draft.post_id, status=PUBLISH)
    scheduled = api.create(tenant, text="later", status=SCHEDULED, scheduled_at=in_seconds(3600))
    edited = api.refused("UpdatePost", tenant, post_id=scheduled.post_id, text="a" * 281)
    api.update(tenant, scheduled.post_id, items=[pb.PostItem(text="still later")])

    assert over.kind == edited.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert len(rule_checks) >= 5
    assert not any(rule_checks), rule_checks


def test_rules_checked_before_an_edit_that_lands_meanwhile_are_checked_again(
    api, tenant, stub, rule_checks, monkeypatch
):
    """The rules are checked on the post as read before the lock; another request's
    edit landing between that read and the lock is caught by the post's version."""
    draft = api.create(tenant, text="fine")
    landed = threading.Event()
    check = rules.check

    def edit_meanwhile(platform, post_type, title, items):
        # Only the UpdatePost under test: the in-process worker checks rules too.
        ours = threading.current_thread().name.startswith("rpc") and [i.text for i in items] == [
            "fine"
        ]
        if ours and not landed.is_set():
            landed.set()
            # Given an edit over the limit landing right after the check read "fine"
            other = threading.Thread(
                target=api.update, args=(tenant, draft.post_id), kwargs={"text": "a" * 281}
            )
            other.start()
            other.join(DEFAULT_WAIT)
            assert not other.is_alive(), "the edit waited: a lock was held during the check"
        return check(platform, post_type, title, items)

    monkeypatch.setattr(rules, "check", edit_meanwhile)

    failure = api.refused("UpdatePost", tenant, post_id=draft.post_id, status=PUBLISH)

    assert failure.kind == ("INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert len(rule_checks) == 2 and not any(rule_checks)
    after = api.get(tenant, draft.post_id)
    assert after.status == pb.POST_STATUS_DRAFT and len(after.text) == 281


# ------------------------------------------------------- the idempotency key race


@pytest.fixture
def key_reads_meet(server, monkeypatch):
    """On PostgreSQL, holds each UpdatePost that finds a ``race-`` key free until the
    other has found it free too, so both insert it: the race, every time. (SQLite
    runs one write at a time: there the second finds the key taken.) Returns the
    number of reads of each key."""
    reads: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=DEFAULT_WAIT)
    key_record = service_posts._key_record

    def meeting(workspace_id, key):
        record = key_record(workspace_id, key)
        if not key.startswith("race-"):
            return record
        with lock:
            reads[key] = reads.get(key, 0) + 1
            first = reads[key] <= 2
        if record is None and first and server.backend != "sqlite":
            barrier.wait()
        return record

    monkeypatch.setattr(service_posts, "_key_record", meeting)
    return reads


def test_two_posts_taking_one_key_at_once_give_it_to_one(api, server, tenant, key_reads_meet):
    races = 15
    for n in range(races):
        one, two = api.create(tenant, text=f"one {n}"), api.create(tenant, text=f"two {n}")
        key = f"race-{n}"
        start = threading.Barrier(2, timeout=DEFAULT_WAIT)
        outcomes: dict[str, object] = {}

        def take(post_id, key=key, start=start, outcomes=outcomes):
            start.wait()
            try:
                outcomes[post_id] = api.update(tenant, post_id, idempotency_key=key)
            except grpc.RpcError as error:
                outcomes[post_id] = Failure.of(error)

        threads = [threading.Thread(target=take, args=(p.post_id,)) for p in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEFAULT_WAIT * 2)

        won = [p for p, o in outcomes.items() if isinstance(o, pb.Post)]
        lost = [o for o in outcomes.values() if isinstance(o, Failure)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].kind == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED"), lost[0]
        assert lost[0].metadata["postId"] == won[0]
        keys = {p: api.get(tenant, p).idempotency_key for p in (one.post_id, two.post_id)}
        assert keys[won[0]] == key and list(keys.values()).count(key) == 1
    # On PostgreSQL both found the key free, and the loser read it again once its
    # insert failed; on SQLite the loser found it taken
    assert set(key_reads_meet.values()) == {2 if server.backend == "sqlite" else 3}
