"""A delivery message claims its post only with the post's current job token.

Every change to a queued post issues a new token, so a message sent before the
change (still in the broker, redelivered, or re-sent by a sweeper) must be
dropped at its claim. Runs through each real broker: the message travels
through Redis or RabbitMQ (or the in-memory broker) like any other.
"""

from __future__ import annotations

import threading

from tests.support import DEFAULT_WAIT, in_seconds

# isort: split
from posts.v1 import posts_pb2 as pb


class HoldFirst:
    """A before_claim hook: holds the first message of one post until released."""

    def __init__(self, post_id: str):
        self.post_id = post_id
        self.token: str | None = None
        self._arrived = threading.Event()
        self._open = threading.Event()

    def __call__(self, post_id: str, token: str) -> None:
        if post_id != self.post_id or self._arrived.is_set():
            return
        self.token = token
        self._arrived.set()
        self._open.wait(DEFAULT_WAIT)

    def wait_arrival(self) -> str:
        assert self._arrived.wait(DEFAULT_WAIT), f"no message for {self.post_id} reached a worker"
        return self.token

    def release(self) -> None:
        self._open.set()


class Claims:
    """An after_claim hook: every claim's (token, claimed), per post, to wait on."""

    def __init__(self):
        self._done: dict[tuple[str, str], bool] = {}
        self._changed = threading.Condition()

    def __call__(self, post_id: str, token: str, claimed: bool) -> None:
        with self._changed:
            self._done[post_id, token] = claimed
            self._changed.notify_all()

    def wait(self, post_id: str, token: str) -> bool:
        with self._changed:
            assert self._changed.wait_for(lambda: (post_id, token) in self._done, DEFAULT_WAIT), (
                f"the message ({post_id}, {token}) never reached its claim"
            )
            return self._done[post_id, token]


def job_token(post_id: str) -> str:
    from service import db
    from service.models import Post

    with db.connection():
        return Post.get_by_id(post_id).job_token


def test_a_message_with_an_older_token_is_dropped_and_the_current_one_delivers_once(
    api, tenant, ledger, delivery_hooks
):
    from workers import actors

    # Given a post scheduled for later (its job token then), then published now
    post = api.create(
        tenant, text="tokens", status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(3600)
    )
    older = job_token(post.post_id)
    held = delivery_hooks.before_claim(HoldFirst(post.post_id))
    claims = delivery_hooks.after_claim(Claims())
    api.update(tenant, post.post_id, status=pb.STATUS_CHANGE_PUBLISH)
    current = held.wait_arrival()  # its message is held just before the claim
    assert current == job_token(post.post_id) != older

    try:
        # When a message with the older token reaches a worker meanwhile
        actors.enqueue(post.post_id, older)

        # Then its claim fails, and the post is still PENDING with nothing sent
        assert claims.wait(post.post_id, older) is False
        assert api.get(tenant, post.post_id).status == pb.POST_STATUS_PENDING
        assert ledger.sends(post_id=post.post_id) == []
    finally:
        held.release()

    # And the message with the current token claims it and delivers it once
    assert claims.wait(post.post_id, current) is True
    live = api.wait_published(tenant, post.post_id)
    assert live.delivery.attempts == 1
    assert len(ledger.sends(post_id=post.post_id)) == 1
