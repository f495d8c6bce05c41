"""Per-account pacing (workers.pacing): an account at its posting limit waits,
PENDING, for the window to end, without spending an attempt."""

import datetime as dt

import pytest

from service import config as service_config
from service import db, lifecycle
from service.lifecycle import Event, Status
from service.models import Post, PostEvent, PostItem
from tests.support import DEFAULT_WAIT, wait_for
from workers import pacing

# isort: split
from posts.v1 import posts_pb2 as pb

LIMIT, WINDOW = 2, 3.0
pytestmark = pytest.mark.server_env(POSTS_PACING_OVERRIDES=f"x={LIMIT}/{WINDOW:g}s")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# ---------------------------------------------------------------- pure parts


def test_paced_gives_the_attempt_back_and_waits_with_a_new_token():
    job = lifecycle.Job(
        Status.PROCESSING,
        job_token="t0",
        attempts=1,
        lease_expires_at=NOW + dt.timedelta(seconds=30),
    )
    outcome = lifecycle.decide(job, Event.PACED, NOW, new_token="t1", wait=90)
    assert outcome.job.status is Status.PENDING and not outcome.enqueue
    assert outcome.job.attempts == 0 and outcome.job.lease_expires_at is None
    assert outcome.job.job_token == "t1"
    assert outcome.job.next_attempt_at == NOW + dt.timedelta(seconds=90)


def test_overrides_replace_the_table_account_first():
    overrides = service_config.pacing_overrides("x=50/15m, acc_1=3/2s, mastodon=10/1h")
    assert overrides == (("x", 50, 900.0), ("acc_1", 3, 2.0), ("mastodon", 10, 3600.0))
    assert pacing.limits_for("acc_1", "x", overrides) == ((3, 2.0),)
    assert pacing.limits_for("acc_2", "x", overrides) == ((50, 900.0),)
    assert pacing.limits_for("acc_2", "bluesky", overrides) == pacing.LIMITS["bluesky"]
    assert pacing.limits_for("acc_2", "webhook", overrides) == ()
    # The sandbox reaches no network: only an override paces it.
    assert pacing.limits_for("acc_2", "bluesky", overrides, sandbox=True) == ()
    assert pacing.limits_for("acc_2", "x", overrides, sandbox=True) == ((50, 900.0),)


@pytest.mark.parametrize("raw", ["x=50", "x=0/1m", "x=5/0s", "x=5/15y", "=5/1m"])
def test_a_malformed_override_is_refused(raw):
    with pytest.raises(service_config.ConfigError, match="POSTS_PACING_OVERRIDES"):
        service_config.pacing_overrides(raw)


# ------------------------------------------------------------ through a server


def _row(post_id: str) -> Post:
    with db.connection():
        return Post.get_by_id(post_id)


def _first_item_live_at(post_id: str) -> dt.datetime:
    with db.connection():
        return PostItem.get(PostItem.post == post_id).published_at


def _paced(post_id: str) -> bool:
    with db.connection():
        return (
            PostEvent.select()
            .where((PostEvent.post == post_id) & (PostEvent.cause == Event.PACED.value))
            .exists()
        )


def test_the_post_over_the_limit_waits_for_the_window_then_goes_out(api, tenant, ledger):
    # One at a time: deliveries racing for one account may both pass the check.
    first, _second = (
        api.wait_published(
            tenant, api.create(tenant, text=f"post {n}", status=pb.STATUS_CHANGE_PUBLISH).post_id
        )
        for n in (1, 2)
    )
    window_end = _first_item_live_at(first.post_id) + dt.timedelta(seconds=WINDOW)
    last = api.create(tenant, text="post 3", status=pb.STATUS_CHANGE_PUBLISH)
    wait_for(lambda: _paced(last.post_id), message="the third post paced")
    row = _row(last.post_id)
    assert dt.datetime.now(dt.UTC) < window_end, "the machine was too slow for the window"
    assert row.status == Status.PENDING.value
    assert row.attempts == 0 and row.lease_expires_at is None
    assert row.next_attempt_at == window_end
    assert ledger.sends(last.post_id) == []
    published = api.wait_published(tenant, last.post_id, timeout=WINDOW + DEFAULT_WAIT)
    assert published.status == pb.POST_STATUS_PUBLISHED
    assert _first_item_live_at(last.post_id) >= window_end
    assert _row(last.post_id).attempts == 1  # the paced round was not counted
