"""The one writer of a post's lifecycle: its status, job token, lease and attempts.

Every change of those columns goes through ``apply`` (``insert`` for a new
post): it asks ``lifecycle.decide`` what the event does, writes the changed
columns with a compare-and-set on the version it read, and records the event
in the post's history (service.events) in the same transaction. A test greps the tree for any
other code that writes them.

Callers read the row first, in the same write transaction: locked (the
caller's requests), claimed (the dispatcher and sweeper), or by its job token
(the worker: ``apply_job``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

from service import db, events, lifecycle, metrics
from service.lifecycle import Event, Job, Outcome, Policy, Status
from service.models import LoadedPost, Post, with_items

_policy = Policy()


def configure(policy: Policy) -> None:
    """Sets the lease length and attempt limit every decision applies."""
    global _policy
    _policy = policy


def policy() -> Policy:
    return _policy


def new_token() -> str:
    """A fresh job token: any delivery message carrying an older one is dropped."""
    return secrets.token_hex(8)


def job_of(post: Post) -> Job:
    """``post``'s lifecycle columns."""
    data = post.__data__  # the row's values, without peewee's descriptors (a hot path)
    values = {name: data.get(name) for name in Job.fields()}
    values["status"] = Status(values["status"])
    values["attempts"] = values["attempts"] or 0
    values["job_token"] = values["job_token"] or ""
    values["error_code"] = values["error_code"] or ""
    values["error_message"] = values["error_message"] or ""
    return Job(**values)


def insert(
    post: Post, target: Status, now: dt.datetime, write_items: Callable[[Post], LoadedPost]
) -> LoadedPost:
    """Inserts a new ``post`` (content set, lifecycle columns not) in ``target``
    status, then its items (``write_items(post)``, which the event shows); the
    post as written."""
    outcome = lifecycle.decide(
        Job(target), Event.CREATE, now, _policy, target=target, new_token=new_token()
    )
    _set(post, outcome.job)
    post.created_at = post.updated_at = now
    db.insert(post)
    loaded = write_items(post)
    events.record(post, Event.CREATE, None, outcome, now, loaded=loaded)
    if metrics.enabled():
        _observe(post, Event.CREATE, Job(target), outcome, now)
    return loaded


def apply(
    post: Post,
    event: Event,
    now: dt.datetime,
    *,
    content: dict | None = None,
    loaded: LoadedPost | None = None,
    item_index: int | None = None,
    **decision,
) -> Outcome | None:
    """Applies ``event`` to ``post`` (as read in this transaction), with any
    ``content`` column changes; the outcome, or None when the post changed
    since it was read (the compare-and-set on its version lost).

    ``loaded``: the post's items as they stand in this transaction, if the
    caller has them (the event's snapshot reads them otherwise).
    ``item_index``: the item an ITEM_LIVE or SUCCEED records live.
    ``decision`` goes to ``lifecycle.decide`` (target, error, wait, resolvable).
    Raises errors.InvalidTransition for an event the post's status refuses.
    """
    if content and not content.keys().isdisjoint(Job.fields()):
        raise ValueError(f"lifecycle columns are decided, not passed: {sorted(content)}")
    job = job_of(post)
    before = job.status
    outcome = lifecycle.decide(job, event, now, _policy, new_token=new_token(), **decision)
    _set(post, outcome.job)
    for name, value in (content or {}).items():
        setattr(post, name, value)
    version = post.version
    post.version = version + 1
    post.updated_at = now
    if db.update_changed(post, version=version) != 1:
        post.version = version
        return None
    events.record(post, event, before, outcome, now, loaded=loaded, item_index=item_index)
    if metrics.enabled():
        _observe(post, event, job, outcome, now)
    return outcome


#: A worker's events that end a delivery attempt, and the outcome metrics name them by.
_ATTEMPT_ENDS = {
    Event.SUCCEED: "published",
    Event.FAIL: "failed",
    Event.RETRY: "retry",
    Event.UNKNOWN: "unknown",
    Event.CRASH: "crashed",
    Event.PACED: "paced",
    Event.TAKE_OVER: "taken over",
}


def _observe(post: Post, event: Event, before: Job, outcome: Outcome, now: dt.datetime) -> None:
    """Counts the event in the metrics once its transaction has committed."""
    after = outcome.job
    network = post.platform

    def count() -> None:
        metrics.transition(event.value, after.status.value)
        if event is Event.CLAIM:
            # Due: its scheduled time on a scheduled post's first attempt, else
            # when it was queued (published now, or a retry come due).
            due = (
                post.scheduled_at
                if post.scheduled_at and not before.attempts
                else before.next_attempt_at
            )
            if due is not None:
                metrics.lateness((now - due).total_seconds())
        elif event in _ATTEMPT_ENDS:
            started = before.last_attempt_at
            seconds = (now - started).total_seconds() if started else None
            metrics.delivery(network, _ATTEMPT_ENDS[event], seconds)
            if event is Event.TAKE_OVER:
                metrics.takeover()

    db.after_commit(count)


_JOB = db.Compiled(
    lambda post_id, token, status: db.locked(
        Post.select().where(
            (Post.id == post_id) & (Post.job_token == token) & (Post.status == status)
        )
    )
)


def job(post_id: str, token: str, status: Status) -> Post | None:
    """The post if ``token`` is its job token and it is in ``status``, its row locked."""
    rows = _JOB.rows(Post, post_id, token, status.value)
    return rows[0] if rows else None


def claim(post_id: str, token: str, now: dt.datetime) -> LoadedPost | None:
    """A worker's claim (PENDING with ``token`` -> PROCESSING): the post as written
    with its items, read once for the event's snapshot and the delivery alike
    (a PROCESSING post's items change only by its worker); None when it is not
    this job's."""
    post = job(post_id, token, Status.PENDING)
    if post is None:
        return None
    loaded = with_items(post)
    return loaded if apply(post, Event.CLAIM, now, loaded=loaded) else None


def apply_job(
    post_id: str,
    token: str,
    event: Event,
    now: dt.datetime,
    *,
    items: list | None = None,
    **decision,
) -> Post | None:
    """A worker's event: applied only while ``token`` is the post's job token and
    the post is in the status the event expects (PENDING for a claim, else
    PROCESSING); the post as written, or None when it is not this job's.

    ``items``: the post's items as they stand in this transaction, when the
    worker has them (the event's snapshot reads them otherwise)."""
    expected = Status.PENDING if event is Event.CLAIM else Status.PROCESSING
    post = job(post_id, token, expected)
    if post is None:
        return None
    loaded = LoadedPost(post, items) if items is not None else None
    return post if apply(post, event, now, loaded=loaded, **decision) else None


def _set(post: Post, job: Job) -> None:
    """Sets the columns ``job`` changes (only those: each set column is written)."""
    data = post.__data__
    for name, value in vars(job).items():
        if name == "status":
            value = value.value
        if name not in data or data[name] != value:
            setattr(post, name, value)
