"""A poison post (one that hangs its worker every time) ends, and harms no one else.

Its adapter never answers; Dramatiq's time limit interrupts the delivery
thread with a BaseException, delivery records the attempt as crashed, and after
POSTS_MAX_ATTEMPTS the post is FAILED with DELIVERY_CRASHED. Meanwhile another
workspace's posts all go out.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time

import pytest

from tests.processes import FAKES_EGRESS_ALLOW
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
    others = [
        api.create(bystander, text=f"fine {n}", status=pb.STATUS_CHANGE_PUBLISH) for n in range(20)
    ]

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


# ------------------------------------------------ a post that kills its worker

KILL_ENV = {
    "POSTS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    # A killed worker's post is taken over at the next sweep after this; each
    # request may take half of it, so the poison's held send outlasts the aim below.
    "POSTS_LEASE_SECONDS": "6",
    "POSTS_SWEEP_INTERVAL": "0.5",
    "POSTS_RETRY_BASE": "0.05",
    "POSTS_DISPATCH_INTERVAL": "0.05",
    "POSTS_SECRET_KEY": "poison-secret-key-0123456789abcdef-0123456",
    "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,  # the fake webhooks
}
HOOK_SECRET = "poison-hook"


@pytest.mark.timeout(300)
def test_a_post_whose_worker_is_killed_on_it_each_time_fails_as_crashed(
    tmp_path, postgres_server, redis_server
):
    import grpc

    from tests.fakes.webhook import FakeWebhook
    from tests.processes import ServerProcess, WorkerProcess, provision_webhook_tenant, run_cli
    from tests.support import Api, wait_for

    # isort: split
    from posts.v1 import posts_pb2_grpc

    # Given a server, workers on PostgreSQL + Redis, and two workspaces on two
    # consumers: the poisoner's never answers (the test kills the worker instead)
    redis_server.flush()
    env = {
        **KILL_ENV,
        "POSTS_DATABASE_URL": postgres_server.create_database("poison_kill"),
        # Redis database 1: this module's in-process server (the test above, on
        # postgres-redis) may still be consuming database 0's delivery queue.
        "POSTS_BROKER_URL": redis_server.url_for(1),
        "POSTS_VAR_DIR": str(tmp_path),
    }
    poison_hook, fine_hook = FakeWebhook(HOOK_SECRET).start(), FakeWebhook(HOOK_SECRET).start()
    poison_hook.hold(timeout=60)
    assert run_cli(env, "migrate").returncode == 0

    def tenant(name: str, hook: FakeWebhook):
        return provision_webhook_tenant(env, name, hook.base_url + f"/hooks/{name}", HOOK_SECRET)

    poisoner, bystander = tenant("poisoner", poison_hook), tenant("bystander", fine_hook)
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = WorkerProcess(env, str(tmp_path / "workers.log"), processes=1, threads=4)
    kills = 0
    try:
        server.start()
        server.wait_serving(timeout=60)
        workers.start()
        workers.wait_ready()
        with grpc.insecure_channel(server.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            poison = api.create(poisoner, text="kills its worker", status=pb.STATUS_CHANGE_PUBLISH)
            others = [
                api.create(bystander, text=f"fine {n}", status=pb.STATUS_CHANGE_PUBLISH)
                for n in range(20)
            ]

            # When its worker is SIGKILLed each time it is sending that post
            def status() -> int:
                return api.get(poisoner, poison.post_id).status

            # (A killed worker's request stays held at the consumer: count arrivals.)
            while status() != pb.POST_STATUS_FAILED and kills <= MAX_ATTEMPTS:
                # Arrivals so far: one per attempt the test killed.
                wait_for(
                    lambda sent=kills: (
                        len(poison_hook.log) > sent or status() == pb.POST_STATUS_FAILED
                    ),
                    timeout=30,
                    interval=0.02,
                    message="the poison post's send in flight",
                )
                if status() == pb.POST_STATUS_FAILED:
                    break
                # Aim the kill at the poison post alone: a bystander's delivery in
                # flight would die with it and, killed on every attempt, fail too.
                with contextlib.suppress(AssertionError):
                    wait_for(
                        lambda: (
                            not [
                                p
                                for p in api.list_all(bystander)
                                if p.status == pb.POST_STATUS_PROCESSING
                            ]
                        ),
                        timeout=2,
                        interval=0.02,
                    )
                workers.kill()
                kills += 1
                workers.start()

            # Then it ends FAILED as crashed, after one attempt per kill
            failed = api.wait_status(poisoner, poison.post_id, pb.POST_STATUS_FAILED, timeout=30)
            assert failed.error.code == "DELIVERY_CRASHED", failed.error
            assert failed.delivery.attempts == kills == MAX_ATTEMPTS

            # And the other workspace's 20 posts all went out, once each
            for post in others:
                api.wait_published(bystander, post.post_id, timeout=60)
            with fine_hook.lock:
                keys = [entry["post_id"] for entry in fine_hook.live]
            assert sorted(keys) == sorted(post.post_id for post in others)
    finally:
        poison_hook.release()
        workers.stop()
        server.stop()
        poison_hook.stop()
        fine_hook.stop()
