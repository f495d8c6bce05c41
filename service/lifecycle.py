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

    CREATE = "create"  # caller: a new post (its status given by CreatePost)
    PUBLISH = "publish"  # caller: queue for delivery now
    SCHEDULE = "schedule"  # caller: wait for scheduled_at
    DRAFT = "draft"  # caller: keep (or turn back into) a draft
    CANCEL = "cancel"  # caller
    DELETE = "delete"  # caller: cancel and hide
    EDIT = "edit"  # caller: content or time change, status unchanged
    DUE = "due"  # dispatcher: scheduled_at reached
    RETRY_DUE = "retry due"  # dispatcher: a failed attempt's wait is over
    CLAIM = "claim"  # worker: compare-and-set PENDING -> PROCESSING
    RENEW = "renew"  # worker: still delivering, the lease moves on
    ITEM_LIVE = "item live"  # worker: one item of the post is on the network
    SUCCEED = "succeed"  # worker: every item live
    FAIL = "fail"  # worker: permanent failure
    RETRY = "retry"  # worker: transient failure, wait for the next attempt
    UNKNOWN = "unknown"  # worker: a create got no answer; it may be live
    CRASH = "crash"  # worker: the attempt died (time limit, a bug) without an answer
    PACED = "paced"  # worker: the account's posting limit is reached; wait, attempt not counted
    LOST_MESSAGE = "message lost"  # sweeper: re-send the same message
    TAKE_OVER = "lease expired"  # sweeper: the worker's lease expired
    RESTART = "restart"  # embedded server start: its in-memory queue is gone


S, E = Status, Event

#: The whole lifecycle. A pair that is absent is refused.
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
        E.RETRY_DUE: S.PENDING,
        E.LOST_MESSAGE: S.PENDING,
        E.RESTART: S.PENDING,
    },
    S.PROCESSING: {
        E.RENEW: S.PROCESSING,
        E.ITEM_LIVE: S.PROCESSING,
        E.SUCCEED: S.PUBLISHED,
        E.FAIL: S.FAILED,
        # The attempt is over: another one, or FAILED once attempts are used up
        # (see decide); an unknown outcome fails at once where nothing can tell.
        E.RETRY: S.PENDING,
        E.UNKNOWN: S.PENDING,
        E.CRASH: S.PENDING,
        E.TAKE_OVER: S.PENDING,
        E.RESTART: S.PENDING,
        E.PACED: S.PENDING,
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

#: How far in the past a scheduled post's new time may be and still mean "now":
#: the caller's clock may run a little behind ours.
CLOCK_SKEW = dt.timedelta(minutes=1)
#: What a caller who meant "publish now" sends instead of a past time.
PUBLISH_NOW = "to publish now, send status: STATUS_CHANGE_PUBLISH"


def check_schedule(scheduled_at: dt.datetime | None, now: dt.datetime) -> None:
    """Raises errors.InvalidField unless ``scheduled_at`` can schedule a post that is
    not scheduled yet (CreatePost, or a draft): a time in the future. A past time
    never means "publish now" here: the post was not going out at all."""
    if scheduled_at is None:
        raise errors.InvalidField({"scheduled_at": "required to schedule a post"})
    if scheduled_at <= now:
        raise errors.InvalidField({"scheduled_at": f"must be in the future; {PUBLISH_NOW}"})


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
    time_moved: bool = False,
) -> Decision:
    """Decides an UpdatePost.

    ``change`` is the requested StatusChange's lower-case name (or None),
    ``edits`` whether any field besides the status is changed,
    ``scheduled_at`` the post's scheduled time after the edit,
    ``content_edited`` whether text, items, media or title change,
    ``has_live_item`` whether part of a thread is already on the network (a
    retry is pending): it can no longer be cancelled,
    ``time_moved`` whether the request gives the post another scheduled_at.

    A scheduled post whose time is moved to now or the past is published now,
    but only within CLOCK_SKEW of now: further back, the publish (which cannot
    be undone) must be asked for with PUBLISH.

    Raises errors.InvalidTransition, or errors.InvalidField when scheduling
    needs a future time that is missing, or a time is moved too far back.
    """
    event = CHANGE_EVENTS[change] if change else E.EDIT
    if event is E.EDIT and not edits:
        return Decision(current, noop=True, new_token=False, check_rules=False, enqueue=False)
    if edits and current not in EDITABLE:
        raise errors.InvalidTransition(current.name)
    if has_live_item and event is E.CANCEL and current is not S.CANCELLED:
        raise errors.InvalidTransition(current.name, "cancelled: part of it is already live")
    if event is E.SCHEDULE and current is S.DRAFT:
        check_schedule(scheduled_at, now)
    target = next_status(current, event)
    if target is S.SCHEDULED:
        # A scheduled post always has a time: nothing would ever move one without.
        if scheduled_at is None:
            raise errors.InvalidField(
                {
                    "scheduled_at": "a scheduled post needs a time; to clear "
                    "it, move the post to STATUS_CHANGE_DRAFT too"
                }
            )
        if time_moved and scheduled_at < now - CLOCK_SKEW:
            raise errors.InvalidField(
                {"scheduled_at": f"more than a minute in the past; {PUBLISH_NOW}"}
            )
        # On a scheduled post, a time now or past means publish now.
        if scheduled_at <= now:
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


# ------------------------------------------------------------- the one writer

#: A delivery that ends without an answer on its last attempt, taken over or crashed.
CRASHED = "DELIVERY_CRASHED"
#: A create that may have gone out, on a network that can neither dedupe nor tell.
OUTCOME_UNKNOWN = "DELIVERY_OUTCOME_UNKNOWN"
#: Events after which the attempt is over without success: another one, or FAILED.
_ATTEMPT_OVER = frozenset({E.RETRY, E.UNKNOWN, E.CRASH, E.TAKE_OVER, E.RESTART})


@dataclasses.dataclass(frozen=True)
class Policy:
    """The delivery limits a decision applies."""

    lease_seconds: float = 60.0
    max_attempts: int = 5


@dataclasses.dataclass(frozen=True)
class Job:
    """A post's lifecycle columns: everything ``decide`` may change, nothing else.

    PENDING has two phases, told apart by the times: its message is out when
    ``queued_at >= next_attempt_at``, else it waits for ``next_attempt_at``.
    """

    status: Status
    job_token: str = ""
    attempts: int = 0
    lease_expires_at: dt.datetime | None = None
    queued_at: dt.datetime | None = None
    next_attempt_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    error_code: str = ""
    error_message: str = ""

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return _JOB_FIELDS


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an event does: the post's new lifecycle columns, and whether to send
    its delivery message (``job.job_token``) once the change commits."""

    job: Job
    enqueue: bool
    cause: str


def decide(
    job: Job,
    event: Event,
    now: dt.datetime,
    policy: Policy = Policy(),
    *,
    target: Status | None = None,
    new_token: str = "",
    error: tuple[str, str] = ("", ""),
    wait: float = 0.0,
    resolvable: bool = True,
) -> Outcome:
    """Everything ``event`` does to a post whose lifecycle columns are ``job``.

    ``target``: the status a caller's request leads to (decide_update decides
    it; CREATE needs it). ``new_token``: the token to issue if the event issues
    one (the caller makes it: this module stays pure). ``error``: (code,
    message) of a failed attempt. ``wait``: seconds before the next attempt (a
    retry's backoff, a take-over's fence, or the end of a posting-limit window
    for PACED) or 0 to send at once.
    ``resolvable``: for UNKNOWN, whether the network can dedupe or look the
    item up; if not, the post fails rather than risk a second copy.

    Raises errors.InvalidTransition for a pair the table refuses.
    """
    before = None if event is E.CREATE else job.status
    status = target if target is not None else next_status(job.status, event)
    cause = event.value
    change: dict = {"status": status}
    enqueue_now = False
    if event in _ATTEMPT_OVER and before is S.PROCESSING:
        status, code, message = _attempt_over(job, event, status, policy, error, resolvable)
        change.update(
            status=status, lease_expires_at=None, error_code=code, error_message=message[:2000]
        )
        cause = f"{cause}:{code}" if code else cause
        if status is S.PENDING:
            change["job_token"] = new_token
            enqueue_now = _next_attempt(change, now, wait)
    elif event is E.PACED:
        # Nothing was tried: the claim's attempt is given back, so waiting out a
        # posting limit never brings a post closer to FAILED.
        change.update(attempts=max(job.attempts - 1, 0), lease_expires_at=None, job_token=new_token)
        enqueue_now = _next_attempt(change, now, wait)
    elif event is E.CLAIM:
        change.update(
            attempts=job.attempts + 1,
            last_attempt_at=now,
            next_attempt_at=None,
            lease_expires_at=now + dt.timedelta(seconds=policy.lease_seconds),
        )
    elif event in (E.RENEW, E.ITEM_LIVE):
        change["lease_expires_at"] = now + dt.timedelta(seconds=policy.lease_seconds)
    elif event is E.SUCCEED:
        change.update(lease_expires_at=None, published_at=now, error_code="", error_message="")
    elif event is E.FAIL:
        code, message = error
        change.update(lease_expires_at=None, error_code=code, error_message=message[:2000])
        cause = f"{cause}:{code}" if code else cause
    elif event is E.LOST_MESSAGE:
        enqueue_now = True  # the same token: the first copy to arrive claims
    elif event in (E.DUE, E.RETRY_DUE, E.RESTART):  # RESTART of a PENDING post
        change["job_token"] = new_token
        enqueue_now = True
    else:
        enqueue_now = _request(change, event, before, status, now, new_token)
    if enqueue_now:
        change.update(queued_at=now, next_attempt_at=now)
    if "job_token" in change and not change["job_token"]:
        raise ValueError(f"{event.value} issues a new job token: pass new_token")
    # vars() | change rather than dataclasses.replace: this runs on every write.
    return Outcome(Job(**(vars(job) | change)), enqueue=enqueue_now, cause=cause)


def _attempt_over(
    job: Job, event: Event, status: Status, policy: Policy, error: tuple[str, str], resolvable: bool
) -> tuple[Status, str, str]:
    """The status, error code and message after an attempt that ``event`` ended:
    FAILED once the attempts are spent, or when nothing can tell whether it went out."""
    code, message = error
    if event is E.UNKNOWN and not resolvable:  # nothing can tell: never send again
        return S.FAILED, OUTCOME_UNKNOWN, message
    if event in (E.CRASH, E.TAKE_OVER, E.RESTART) and job.attempts >= policy.max_attempts:
        return S.FAILED, CRASHED, message or f"{job.attempts} attempts ended without an answer"
    if job.attempts >= policy.max_attempts:
        return S.FAILED, code, message
    return status, code, message


def _request(
    change: dict,
    event: Event,
    before: Status | None,
    status: Status,
    now: dt.datetime,
    new_token: str,
) -> bool:
    """Fills in ``change`` for a caller's request; True when it queues the post now."""
    if event is E.DELETE:
        change["deleted_at"] = now
    # Any change of a queued post, or into the queue, drops the outstanding job.
    if before in QUEUED or status in QUEUED or event is E.DELETE:
        change["job_token"] = new_token
    return status is S.PENDING


def _next_attempt(change: dict, now: dt.datetime, wait: float) -> bool:
    """Sets the next attempt ``wait`` seconds from ``now`` in ``change``; True when
    there is no wait, so the job is to be enqueued at once."""
    if wait > 0:
        change["next_attempt_at"] = now + dt.timedelta(seconds=wait)
        return False
    return True
