"""The post lifecycle: the whole transition table, and the decisions built on it.

Pure: no gRPC, no database. The servicer and the workers both ask this module
what a request or an event does to a post.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from service import errors


class Status(enum.Enum):
    """Where a post stands (PostStatus in the proto, lower case in the database)."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    PROCESSING = "processing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Event(enum.Enum):
    """What can happen to a post: a caller's request or a delivery event."""

    PUBLISH = "publish"  # caller: queue for delivery now
    SCHEDULE = "schedule"  # caller: wait for scheduled_at
    DRAFT = "draft"  # caller: keep (or turn back into) a draft
    CANCEL = "cancel"  # caller
    DELETE = "delete"  # caller: cancel and hide
    EDIT = "edit"  # caller: content or time change, status unchanged
    DUE = "due"  # dispatcher: scheduled_at reached
    CLAIM = "claim"  # worker: compare-and-set PENDING -> PROCESSING
    SUCCEED = "succeed"  # worker: every item live
    FAIL = "fail"  # worker: permanent failure or attempts exhausted
    RETRY = "retry"  # worker: transient failure, wait for the next attempt
    TAKE_OVER = "take_over"  # sweeper: the worker's lease expired


S, E = Status, Event

#: The whole lifecycle (PRODUCT.md section 3). A pair that is absent is refused.
TRANSITIONS: dict[Status, dict[Event, Status]] = {
    S.DRAFT: {
        E.PUBLISH: S.PENDING,
        E.SCHEDULE: S.SCHEDULED,
        E.DRAFT: S.DRAFT,
        E.EDIT: S.DRAFT,
        E.CANCEL: S.CANCELLED,
        E.DELETE: S.CANCELLED,
    },
    S.SCHEDULED: {
        E.PUBLISH: S.PENDING,
        E.SCHEDULE: S.SCHEDULED,
        E.DRAFT: S.DRAFT,
        E.EDIT: S.SCHEDULED,
        E.CANCEL: S.CANCELLED,
        E.DELETE: S.CANCELLED,
        E.DUE: S.PENDING,
    },
    S.PENDING: {
        E.PUBLISH: S.PENDING,  # asking again for what it already has
        E.CANCEL: S.CANCELLED,
        E.DELETE: S.CANCELLED,
        E.CLAIM: S.PROCESSING,
    },
    S.PROCESSING: {
        E.SUCCEED: S.PUBLISHED,
        E.FAIL: S.FAILED,
        E.RETRY: S.PENDING,
        E.TAKE_OVER: S.PENDING,
    },
    S.PUBLISHED: {},
    S.FAILED: {E.DELETE: S.CANCELLED},  # only with no live item: see can_delete
    S.CANCELLED: {E.CANCEL: S.CANCELLED, E.DELETE: S.CANCELLED},
}

#: Statuses whose content, time and status a caller may change.
EDITABLE = frozenset({S.DRAFT, S.SCHEDULED})

#: Statuses whose delivery job is live: any change issues a new job token.
QUEUED = frozenset({S.SCHEDULED, S.PENDING})

#: The caller's StatusChange (lower-case name) as a lifecycle event.
CHANGE_EVENTS = {
    "publish": E.PUBLISH,
    "scheduled": E.SCHEDULE,
    "draft": E.DRAFT,
    "cancelled": E.CANCEL,
}

#: What CreatePost's status makes of a new post.
CREATE_STATUSES = {"publish": S.PENDING, "scheduled": S.SCHEDULED, "draft": S.DRAFT}


def next_status(current: Status, event: Event) -> Status:
    """The status ``event`` moves a ``current`` post to.

    Raises errors.InvalidTransition when the table has no such transition.
    """
    try:
        return TRANSITIONS[current][event]
    except KeyError:
        raise errors.InvalidTransition(current.name) from None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What an UpdatePost does to a post."""

    status: Status
    #: Nothing changes: the request asks for what the post already is.
    noop: bool
    #: The post's outstanding job (if any) is dropped and a new token issued.
    new_token: bool
    #: The content must pass the platform rules.
    check_rules: bool
    #: The post enters PENDING: enqueue it after commit.
    enqueue: bool


def decide_update(
    current: Status,
    change: str | None,
    *,
    edits: bool,
    scheduled_at: dt.datetime | None,
    now: dt.datetime,
    content_edited: bool = False,
    has_live_item: bool = False,
) -> Decision:
    """Decides an UpdatePost.

    ``change`` is the requested StatusChange's lower-case name (or None),
    ``edits`` whether any field besides the status is changed,
    ``scheduled_at`` the post's scheduled time after the edit,
    ``content_edited`` whether text, items, media or title change,
    ``has_live_item`` whether part of a thread is already on the network (a
    retry is pending): it can no longer be cancelled.

    Raises errors.InvalidTransition, or errors.InvalidField when scheduling
    needs a future time that is missing.
    """
    event = CHANGE_EVENTS[change] if change else E.EDIT
    if event is E.EDIT and not edits:
        return Decision(current, noop=True, new_token=False, check_rules=False, enqueue=False)
    if edits and current not in EDITABLE:
        raise errors.InvalidTransition(current.name)
    if has_live_item and event is E.CANCEL and current is not S.CANCELLED:
        raise errors.InvalidTransition(current.name, "cancelled: part of it is already live")
    if event is E.SCHEDULE and current is S.DRAFT:
        if scheduled_at is None:
            raise errors.InvalidField({"scheduled_at": "required to schedule a post"})
        if scheduled_at <= now:
            raise errors.InvalidField({"scheduled_at": "must be in the future"})
    target = next_status(current, event)
    # On a scheduled post, a time now or past means publish now.
    if target is S.SCHEDULED and scheduled_at is not None and scheduled_at <= now:
        target = S.PENDING
    noop = target is current and not edits
    if noop:
        return Decision(current, noop=True, new_token=False, check_rules=False, enqueue=False)
    goes_live = target in (S.PENDING, S.SCHEDULED)
    return Decision(
        target,
        noop=False,
        new_token=current in QUEUED or target in QUEUED,
        check_rules=goes_live and (target is not current or content_edited),
        enqueue=target is S.PENDING,
    )


def can_delete(current: Status, has_live_item: bool) -> bool:
    """True when DeletePost may cancel and hide a post in ``current`` status.

    Never once part of it is live (a thread failed, or waiting to retry, halfway).
    """
    if has_live_item:
        return False
    return E.DELETE in TRANSITIONS[current]
