"""What a worker's log says of each delivery: one line per attempt's end (post,
network, attempt, outcome), a FAILED post included, and never a credential, a
token or the account's URL (httpx's own request lines, which carry it, are off)."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.base import Fault
from tests.fakes.webhook import FakeWebhook

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite"]
pytestmark = pytest.mark.server_env(POSTS_RETRY_BASE="0.05")

TOKEN = "outcome-logs-hook-token-0123456789"
HOOK_PATH = "/hooks/private-consumer-path"


@pytest.fixture
def hook():
    hook = FakeWebhook(secret=TOKEN).start()
    try:
        yield hook
    finally:
        hook.stop()


def outcome_lines(caplog, post_id: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "workers.delivery" and post_id in record.getMessage()
    ]


def test_each_attempt_ends_in_one_line_a_failure_too_and_none_shows_a_secret(
    api, make_tenant, hook, caplog
):
    caplog.set_level(logging.INFO)
    tenant = make_tenant("outcome-logs")
    account = tenant.add_account(
        "webhook", sandbox=False, handle="consumer", base_url=hook.base_url + HOOK_PATH, token=TOKEN
    )

    # Given a post the network rate-limits once, then takes
    hook.fail_next(Fault(status=429, body={"error": "slow down"}))
    retried = api.create(
        tenant, account_id=account, text="retried then live", status=pb.STATUS_CHANGE_PUBLISH
    )
    api.wait_published(tenant, retried.post_id)
    # And a post the network refuses for good
    hook.fail_next(Fault(status=400, body={"error": "no such channel"}))
    refused = api.create(
        tenant, account_id=account, text="refused", status=pb.STATUS_CHANGE_PUBLISH
    )
    api.wait_status(tenant, refused.post_id, pb.POST_STATUS_FAILED)

    # Then each attempt's end is one line: post, network, attempt, outcome, error
    retried_lines = outcome_lines(caplog, retried.post_id)
    assert len(retried_lines) == 2, retried_lines
    assert retried_lines[0].startswith(
        f"delivery of {retried.post_id} (webhook, attempt 1 of 5): RETRY_SCHEDULED in "
    )
    assert retried_lines[0].endswith("(retry) after 429: slow down")
    assert retried_lines[1] == f"delivery of {retried.post_id} (webhook, attempt 2 of 5): PUBLISHED"
    failed_lines = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "workers.delivery" and refused.post_id in r.getMessage()
    ]
    assert failed_lines == [
        (
            "WARNING",
            f"delivery of {refused.post_id} (webhook, attempt 1 of 5): FAILED 400: no such channel",
        )
    ]
    # And no line of the whole log shows the account's token or URL (nor a job token)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN not in text
    assert HOOK_PATH not in text
    assert not [r for r in caplog.records if r.name.startswith("httpx")]


def test_an_error_text_is_logged_with_its_urls_cut_to_scheme_host_and_path():
    from service.logs import scrub

    signed = "MEDIA_UNAVAILABLE: https://user:pw@cdn.example/a/cat.png?X-Amz-Signature=abc&t=1: 403"
    assert scrub(signed) == "MEDIA_UNAVAILABLE: https://cdn.example/a/cat.png: 403"
    assert scrub("CONNECTION_ERROR: [Errno 111] Connection refused") == (
        "CONNECTION_ERROR: [Errno 111] Connection refused"
    )


def test_a_post_failed_by_the_sweeper_is_logged_too(make_tenant, caplog):
    import datetime as dt

    from service import db
    from tests.support import stored_posts, wait_for
    from workers.scheduler import sweep

    caplog.set_level(logging.INFO)
    tenant = make_tenant("outcome-sweeper")
    # Given a post whose worker died on its last attempt (its lease has expired)
    now = db.utcnow()
    [post_id] = stored_posts(
        tenant,
        1,
        "its worker died",
        status="processing",
        attempts=5,
        last_attempt_at=now - dt.timedelta(seconds=120),
        lease_expires_at=now - dt.timedelta(seconds=1),
        queued_at=now - dt.timedelta(seconds=180),
    )
    # When a sweeper takes it over (this one, or the server's own)
    with db.connection():
        sweep(db.utcnow(), requeue_after=300.0)
    # Then its failure is logged, as a warning, like a worker's
    line = wait_for(
        lambda: [
            (r.levelname, r.getMessage())
            for r in caplog.records
            if r.name == "workers.delivery" and post_id in r.getMessage()
        ],
        timeout=10,
    )
    assert len(line) == 1 and line[0][0] == "WARNING", line
    assert line[0][1].startswith(
        f"delivery of {post_id} (x, attempt 5 of 5): FAILED DELIVERY_CRASHED: "
    ), line
