"""Every (status, requested change) pair of the lifecycle, allowed and refused."""

import datetime as dt

import pytest

from service import errors, lifecycle
from service.lifecycle import Event, Status

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
FUTURE = NOW + dt.timedelta(hours=1)
PAST = NOW - dt.timedelta(minutes=1)

S = Status
REFUSED = "refused"

# (current status, requested StatusChange) -> the status it ends in, "refused", or "noop".
STATUS_CHANGES = {
    (S.DRAFT, "publish"): S.PENDING,
    (S.DRAFT, "scheduled"): S.SCHEDULED,
    (S.DRAFT, "draft"): "noop",
    (S.DRAFT, "cancelled"): S.CANCELLED,
    (S.SCHEDULED, "publish"): S.PENDING,
    (S.SCHEDULED, "scheduled"): "noop",
    (S.SCHEDULED, "draft"): S.DRAFT,
    (S.SCHEDULED, "cancelled"): S.CANCELLED,
    (S.PENDING, "publish"): "noop",
    (S.PENDING, "scheduled"): REFUSED,
    (S.PENDING, "draft"): REFUSED,
    (S.PENDING, "cancelled"): S.CANCELLED,
    (S.CANCELLED, "cancelled"): "noop",
    **{
        (s, c): REFUSED
        for s in (S.PROCESSING, S.PUBLISHED, S.FAILED)
        for c in lifecycle.CHANGE_EVENTS
    },
    **{(S.CANCELLED, c): REFUSED for c in ("publish", "scheduled", "draft")},
}


def test_the_table_covers_every_pair():
    assert set(STATUS_CHANGES) == {(s, c) for s in Status for c in lifecycle.CHANGE_EVENTS}


@pytest.mark.parametrize(("current", "change"), sorted(STATUS_CHANGES, key=str))
def test_status_change(current, change):
    expected = STATUS_CHANGES[(current, change)]
    kwargs = {"edits": False, "scheduled_at": FUTURE, "now": NOW}
    if expected == REFUSED:
        with pytest.raises(errors.InvalidTransition) as caught:
            lifecycle.decide_update(current, change, **kwargs)
        assert caught.value.metadata == {"currentStatus": f"POST_STATUS_{current.name}"}
        return
    decision = lifecycle.decide_update(current, change, **kwargs)
    if expected == "noop":
        assert decision.noop and decision.status is current and not decision.new_token
    else:
        assert not decision.noop and decision.status is expected
        assert decision.enqueue == (expected is S.PENDING)
        # Any change of a queued post, or into the queue, drops the old job.
        assert decision.new_token == (current in lifecycle.QUEUED or expected in lifecycle.QUEUED)


@pytest.mark.parametrize("current", list(Status))
def test_content_edits_only_on_drafts_and_scheduled_posts(current):
    if current in lifecycle.EDITABLE:
        decision = lifecycle.decide_update(
            current, None, edits=True, scheduled_at=FUTURE, now=NOW, content_edited=True
        )
        assert decision.status is current and not decision.noop
        assert decision.check_rules == (current is S.SCHEDULED)
    else:
        with pytest.raises(errors.InvalidTransition):
            lifecycle.decide_update(current, None, edits=True, scheduled_at=FUTURE, now=NOW)


def test_an_empty_update_changes_nothing():
    decision = lifecycle.decide_update(S.PUBLISHED, None, edits=False, scheduled_at=None, now=NOW)
    assert decision.noop


def test_rescheduling_into_the_last_minute_publishes_now():
    """A minute of clock skew: a time just past is the caller's "now"."""
    decision = lifecycle.decide_update(
        S.SCHEDULED, None, edits=True, scheduled_at=PAST, now=NOW, time_moved=True
    )
    assert decision.status is S.PENDING and decision.enqueue and decision.new_token


@pytest.mark.parametrize("change", [None, "scheduled"])
def test_rescheduling_over_a_minute_into_the_past_is_refused(change):
    """Publishing cannot be undone: a time further back than the skew is a mistake
    unless the same request asks for PUBLISH."""
    with pytest.raises(errors.InvalidField) as caught:
        lifecycle.decide_update(
            S.SCHEDULED,
            change,
            edits=True,
            now=NOW,
            time_moved=True,
            scheduled_at=PAST - dt.timedelta(microseconds=1),
        )
    assert set(caught.value.violations) == {"scheduled_at"}
    assert "status: STATUS_CHANGE_PUBLISH" in caught.value.violations["scheduled_at"]


def test_rescheduling_into_the_past_with_publish_publishes_now():
    decision = lifecycle.decide_update(
        S.SCHEDULED,
        "publish",
        edits=True,
        now=NOW,
        time_moved=True,
        scheduled_at=NOW - dt.timedelta(days=30),
    )
    assert decision.status is S.PENDING and decision.enqueue


def test_an_overdue_scheduled_post_edited_without_moving_its_time_publishes_now():
    """The rule is about a time the request moves: a post already past its time
    (a dispatcher running behind) is due, whatever else is edited."""
    decision = lifecycle.decide_update(
        S.SCHEDULED,
        None,
        edits=True,
        content_edited=True,
        now=NOW,
        scheduled_at=NOW - dt.timedelta(hours=1),
    )
    assert decision.status is S.PENDING and decision.enqueue


def test_a_draft_keeps_any_past_time():
    decision = lifecycle.decide_update(
        S.DRAFT,
        None,
        edits=True,
        now=NOW,
        time_moved=True,
        scheduled_at=NOW - dt.timedelta(days=30),
    )
    assert decision.status is S.DRAFT and not decision.enqueue


def test_rescheduling_keeps_the_post_scheduled_with_a_new_token():
    decision = lifecycle.decide_update(S.SCHEDULED, None, edits=True, scheduled_at=FUTURE, now=NOW)
    assert decision.status is S.SCHEDULED and decision.new_token and not decision.enqueue


@pytest.mark.parametrize("when", [None, PAST, NOW])
def test_scheduling_a_draft_needs_a_future_time(when):
    """Even within the skew: a draft was not going out, so a past time cannot mean now."""
    with pytest.raises(errors.InvalidField) as caught:
        lifecycle.decide_update(S.DRAFT, "scheduled", edits=False, scheduled_at=when, now=NOW)
    assert "scheduled_at" in caught.value.violations


def test_a_scheduled_post_turned_draft_keeps_nothing_queued():
    decision = lifecycle.decide_update(
        S.SCHEDULED, "draft", edits=False, scheduled_at=FUTURE, now=NOW
    )
    assert decision.status is S.DRAFT and decision.new_token and not decision.check_rules


@pytest.mark.parametrize(
    ("current", "live", "allowed"),
    [
        (S.DRAFT, False, True),
        (S.SCHEDULED, False, True),
        (S.PENDING, False, True),
        (S.PENDING, True, False),
        (S.FAILED, False, True),
        (S.FAILED, True, False),
        (S.CANCELLED, False, True),
        (S.PROCESSING, False, False),
        (S.PUBLISHED, True, False),
    ],
)
def test_delete(current, live, allowed):
    assert lifecycle.can_delete(current, live) is allowed


# The delivery side of the table: (status, event) -> status; everything else refused.
DELIVERY_EVENTS = {
    (S.SCHEDULED, Event.DUE): S.PENDING,
    (S.PENDING, Event.CLAIM): S.PROCESSING,
    (S.PENDING, Event.RETRY_DUE): S.PENDING,
    (S.PENDING, Event.LOST_MESSAGE): S.PENDING,
    (S.PENDING, Event.RESTART): S.PENDING,
    (S.PROCESSING, Event.RENEW): S.PROCESSING,
    (S.PROCESSING, Event.ITEM_LIVE): S.PROCESSING,
    (S.PROCESSING, Event.SUCCEED): S.PUBLISHED,
    (S.PROCESSING, Event.FAIL): S.FAILED,
    (S.PROCESSING, Event.RETRY): S.PENDING,
    (S.PROCESSING, Event.UNKNOWN): S.PENDING,
    (S.PROCESSING, Event.CRASH): S.PENDING,
    (S.PROCESSING, Event.TAKE_OVER): S.PENDING,
    (S.PROCESSING, Event.RESTART): S.PENDING,
    (S.PROCESSING, Event.PACED): S.PENDING,
}
SYSTEM_EVENTS = [
    e
    for e in Event
    if e not in lifecycle.CHANGE_EVENTS.values()
    and e not in (Event.CREATE, Event.EDIT, Event.DELETE)
]
POLICY = lifecycle.Policy(lease_seconds=60, max_attempts=3)
IN_FLIGHT = {
    "job_token": "t0",
    "attempts": 1,
    "last_attempt_at": PAST,
    "lease_expires_at": NOW + dt.timedelta(seconds=30),
}


def job(status: Status, **fields) -> lifecycle.Job:
    return lifecycle.Job(status, **(IN_FLIGHT if status is S.PROCESSING else {}) | fields)


def decide(status: Status, event: Event, **kwargs) -> lifecycle.Outcome:
    fields = kwargs.pop("job", {})
    return lifecycle.decide(job(status, **fields), event, NOW, POLICY, new_token="t1", **kwargs)


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("event", SYSTEM_EVENTS)
def test_every_delivery_event_in_every_status(current, event):
    expected = DELIVERY_EVENTS.get((current, event))
    if expected is None:
        with pytest.raises(errors.InvalidTransition):
            decide(current, event)
        return
    outcome = decide(current, event)
    assert outcome.job.status is expected
    before, after = job(current), outcome.job
    # Only a claim counts an attempt (PACED gives it back); only the holder's events keep a lease.
    assert after.attempts == before.attempts + (event is Event.CLAIM) - (event is Event.PACED)
    holds = event in (Event.CLAIM, Event.RENEW, Event.ITEM_LIVE)
    assert (after.lease_expires_at is not None) == holds, after
    if holds:
        assert after.lease_expires_at == NOW + dt.timedelta(seconds=POLICY.lease_seconds)
    # Into PENDING (with no wait asked), a message goes out at once: with a new
    # token, except a lost one, re-sent as it was.
    assert outcome.enqueue == (expected is S.PENDING), outcome
    if outcome.enqueue:
        assert after.queued_at == after.next_attempt_at == NOW
        kept = event is Event.LOST_MESSAGE
        assert after.job_token == (before.job_token if kept else "t1")


@pytest.mark.parametrize("event", [Event.RETRY, Event.UNKNOWN, Event.CRASH])
def test_a_failed_attempt_waits_with_a_new_token(event):
    outcome = decide(S.PROCESSING, event, error=("HTTP_503", "busy"), wait=30)
    assert outcome.job.status is S.PENDING and not outcome.enqueue
    assert outcome.job.job_token == "t1"
    assert outcome.job.next_attempt_at == NOW + dt.timedelta(seconds=30)
    assert outcome.job.queued_at is None  # before next_attempt_at: waiting, not sent
    assert outcome.job.error_code == "HTTP_503"


@pytest.mark.parametrize("event", [Event.CRASH, Event.TAKE_OVER, Event.RESTART])
def test_the_last_attempt_dying_fails_the_post_as_crashed(event):
    outcome = decide(S.PROCESSING, event, job={"attempts": POLICY.max_attempts})
    assert outcome.job.status is S.FAILED and not outcome.enqueue
    assert outcome.job.error_code == lifecycle.CRASHED
    assert outcome.job.lease_expires_at is None
    # One attempt fewer, and it is tried again.
    again = decide(S.PROCESSING, event, job={"attempts": POLICY.max_attempts - 1})
    assert again.job.status is S.PENDING


def test_the_last_transient_failure_fails_with_its_own_code():
    outcome = decide(
        S.PROCESSING, Event.RETRY, job={"attempts": POLICY.max_attempts}, error=("HTTP_503", "busy")
    )
    assert (outcome.job.status, outcome.job.error_code) == (S.FAILED, "HTTP_503")


def test_an_unknown_outcome_the_network_cannot_resolve_fails_at_once():
    outcome = decide(S.PROCESSING, Event.UNKNOWN, error=("NO_ANSWER", "timeout"), resolvable=False)
    assert (outcome.job.status, outcome.job.error_code) == (S.FAILED, lifecycle.OUTCOME_UNKNOWN)
    resolvable = decide(S.PROCESSING, Event.UNKNOWN, error=("NO_ANSWER", "timeout"), wait=5)
    assert resolvable.job.status is S.PENDING


def test_a_take_over_may_wait_a_fence_before_the_next_send():
    outcome = decide(S.PROCESSING, Event.TAKE_OVER, wait=60)
    assert outcome.job.status is S.PENDING and not outcome.enqueue
    assert outcome.job.next_attempt_at == NOW + dt.timedelta(seconds=60)


@pytest.mark.parametrize("event", [Event.CREATE, Event.PUBLISH, Event.DELETE, Event.SCHEDULE])
def test_a_queued_post_always_gets_a_new_token(event):
    status = {Event.CREATE: S.PENDING, Event.DELETE: S.CANCELLED}.get(event)
    outcome = decide(S.SCHEDULED, event, target=status) if status else decide(S.SCHEDULED, event)
    assert outcome.job.job_token == "t1"
    assert outcome.enqueue == (outcome.job.status is S.PENDING)
    assert (outcome.job.deleted_at == NOW) == (event is Event.DELETE)


def test_a_thread_waiting_to_retry_with_a_live_item_cannot_be_cancelled():
    with pytest.raises(errors.InvalidTransition):
        lifecycle.decide_update(
            S.PENDING, "cancelled", edits=False, scheduled_at=None, now=NOW, has_live_item=True
        )
    # Cancelling what is already cancelled still changes nothing.
    decision = lifecycle.decide_update(
        S.CANCELLED, "cancelled", edits=False, scheduled_at=None, now=NOW, has_live_item=True
    )
    assert decision.noop


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("event", [e for e in Event if e is not Event.CREATE])
def test_decide_follows_the_table_for_every_status_and_event(current, event):
    # Every (status, event) pair: refused where the table has none, else its status
    # (or FAILED where an attempt ends on the last one allowed).
    expected = lifecycle.TRANSITIONS[current].get(event)
    if expected is None:
        with pytest.raises(errors.InvalidTransition):
            decide(current, event)
        return
    assert decide(current, event).job.status is expected
    last = decide(current, event, job={"attempts": POLICY.max_attempts}).job.status
    ends = current is S.PROCESSING and event in (
        Event.RETRY,
        Event.UNKNOWN,
        Event.CRASH,
        Event.TAKE_OVER,
        Event.RESTART,
    )
    assert last is (S.FAILED if ends else expected)
