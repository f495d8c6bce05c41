"""A poison post (one that hangs its worker every time) ends, and harms no one else.

Its adapter never answers; Dramatiq's time limit interrupts the delivery
thread with a BaseException, delivery records the attempt as crashed, and after
POSTS_MAX_ATTEMPTS the post is FAILED with DELIVERY_CRASHED. Meanwhile another
workspace's posts all go out.
"""

from __future__ import annotations

import collections
import threading
import time

import pytest

from tests.support import DEFAULT_WAIT

# isort: split
from posts.v1 import posts_pb2 as pb

MAX_ATTEMPTS = 3
pytestmark = pytest.mark.server_env(
    POSTS_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
    POSTS_DELIVERY_TIME_LIMIT="0.5",  # Dramatiq checks its limits every second
    POSTS_RETRY_BASE="0.05",
    POSTS_DISPATCH_INTERVAL="0.05",
)


class Hang:
    """A before_send hook: a poisoned post's send never returns (until the test ends).

    Sleeps in small steps, as a thread blocked in Python does, so Dramatiq's
    interrupt can land; counts how often each post hung and was cut short.
    """

    def __init__(self):
        self.poisoned: set[str] = set()
        self.hung = collections.Counter()
        self.cut = collections.Counter()
        self._lock = threading.Lock()
        self._over = threading.Event()

    def __call__(self, post_id: str, item_index: int) -> None:
        if post_id not in self.poisoned:
            return
        with self._lock:
            self.hung[post_id] += 1
        try:
            deadline = time.monotonic() + DEFAULT_WAIT
            while not self._over.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
        except BaseException:
            with self._lock:
                self.cut[post_id] += 1
            raise

    def end(self) -> None:
        self._over.set()


@pytest.fixture
def hang(delivery_hooks):
    hook = Hang()
    delivery_hooks.before_send(hook)
    try:
        yield hook
    finally:
        hook.end()


def test_a_post_that_hangs_its_worker_fails_as_crashed_while_others_go_out(
    api, make_tenant, hang, ledger
):
    # Given one workspace's post that hangs its worker every time
    poisoner, bystander = make_tenant("poisoner"), make_tenant("bystander")
    draft = api.create(poisoner, text="never answers")
    hang.poisoned.add(draft.post_id)
    api.update(poisoner, draft.post_id, status=pb.STATUS_CHANGE_PUBLISH)

    # When another workspace publishes 20 posts meanwhile
    others = [api.create(bystander, text=f"fine {n}", status=pb.STATUS_CHANGE_PUBLISH)
              for n in range(20)]  # fmt: skip

    # Then all 20 go out, once each
    for post in others:
        api.wait_published(bystander, post.post_id)
        assert len(ledger.sends(post_id=post.post_id)) == 1

    # And the poison post ends FAILED as crashed after its attempts, each cut short
    failed = api.wait_status(poisoner, draft.post_id, pb.POST_STATUS_FAILED)
    assert failed.error.code == "DELIVERY_CRASHED", failed.error
    assert failed.delivery.attempts == MAX_ATTEMPTS
    assert hang.hung[draft.post_id] == hang.cut[draft.post_id] == MAX_ATTEMPTS
    assert ledger.sends(post_id=draft.post_id) == []
