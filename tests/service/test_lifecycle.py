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
    **{(s, c): REFUSED for s in (S.PROCESSING, S.PUBLISHED, S.FAILED) for c in lifecycle.CHANGE_EVENTS},
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


def test_rescheduling_into_the_past_publishes_now():
    decision = lifecycle.decide_update(S.SCHEDULED, None, edits=True, scheduled_at=PAST, now=NOW)
    assert decision.status is S.PENDING and decision.enqueue and decision.new_token


def test_rescheduling_keeps_the_post_scheduled_with_a_new_token():
    decision = lifecycle.decide_update(S.SCHEDULED, None, edits=True, scheduled_at=FUTURE, now=NOW)
    assert decision.status is S.SCHEDULED and decision.new_token and not decision.enqueue


@pytest.mark.parametrize("when", [None, PAST])
def test_scheduling_a_draft_needs_a_future_time(when):
    with pytest.raises(errors.InvalidField) as caught:
        lifecycle.decide_update(S.DRAFT, "scheduled", edits=False, scheduled_at=when, now=NOW)
    assert "scheduled_at" in caught.value.violations


def test_a_scheduled_post_turned_draft_keeps_nothing_queued():
    decision = lifecycle.decide_update(S.SCHEDULED, "draft", edits=False, scheduled_at=FUTURE, now=NOW)
    assert decision.status is S.DRAFT and decision.new_token and not decision.check_rules


@pytest.mark.parametrize(
    ("current", "live", "allowed"),
    [(S.DRAFT, False, True), (S.SCHEDULED, False, True), (S.PENDING, False, True),
     (S.PENDING, True, False), (S.FAILED, False, True), (S.FAILED, True, False),
     (S.CANCELLED, False, True), (S.PROCESSING, False, False), (S.PUBLISHED, True, False)],
)  # fmt: skip
def test_delete(current, live, allowed):
    assert lifecycle.can_delete(current, live) is allowed


# The delivery side of the table: (status, event) -> status; everything else refused.
DELIVERY_EVENTS = {
    (S.SCHEDULED, Event.DUE): S.PENDING,
    (S.PENDING, Event.CLAIM): S.PROCESSING,
    (S.PROCESSING, Event.SUCCEED): S.PUBLISHED,
    (S.PROCESSING, Event.FAIL): S.FAILED,
    (S.PROCESSING, Event.RETRY): S.PENDING,
    (S.PROCESSING, Event.TAKE_OVER): S.PENDING,
}
WORKER_EVENTS = (Event.DUE, Event.CLAIM, Event.SUCCEED, Event.FAIL, Event.RETRY, Event.TAKE_OVER)


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("event", WORKER_EVENTS)
def test_delivery_events(current, event):
    expected = DELIVERY_EVENTS.get((current, event))
    if expected is None:
        with pytest.raises(errors.InvalidTransition):
            lifecycle.next_status(current, event)
    else:
        assert lifecycle.next_status(current, event) is expected


def test_a_thread_waiting_to_retry_with_a_live_item_cannot_be_cancelled():
    with pytest.raises(errors.InvalidTransition):
        lifecycle.decide_update(S.PENDING, "cancelled", edits=False, scheduled_at=None, now=NOW,
                                has_live_item=True)  # fmt: skip
    # Cancelling what is already cancelled still changes nothing.
    decision = lifecycle.decide_update(S.CANCELLED, "cancelled", edits=False, scheduled_at=None,
                                       now=NOW, has_live_item=True)  # fmt: skip
    assert decision.noop
