"""An Instagram delivery whose worker is SIGKILLed at each step of the publish
flow is published exactly once.

The fake Instagram holds the step's request in flight; the worker (on the
embedded default, the server it lives in; on PostgreSQL with Redis, the worker
processes) is killed then, and the held request is let through afterwards, so
the dead worker never learns what it did: a container made, a poll read, the
quota read, the post published, its permalink read. The restarted worker takes
the post over once its lease expires and must end with one post live: resuming
the recorded container where one exists, and finding a publish that went
through instead of publishing again.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.fakes.base import Request
from tests.fakes.instagram import USER_ID, FakeInstagram
from tests.processes import (
    FAKES_EGRESS_ALLOW,
    ServerProcess,
    WorkerProcess,
    provision_tenant,
    run_cli,
)
from tests.support import Api, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

TOKEN = "ig-kill-token"
ENV = {
    # A killed worker's post is taken over at the next sweep after this.
    "POSTS_LEASE_SECONDS": "4",
    "POSTS_RETRY_BASE": "0.1",
    "POSTS_MAX_ATTEMPTS": "10",
    "POSTS_DISPATCH_INTERVAL": "0.05",
    "POSTS_SECRET_KEY": "ig-kill-secret-key-0123456789abcdef-012345",
    "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
}


def _step(fake: FakeInstagram, name: str):
    """Which request of the publish flow to hold: the step the worker dies in."""

    def get_of(ids) -> Callable[[Request], bool]:
        return lambda r: r.method == "GET" and r.path.rsplit("/", 1)[-1] in ids

    return {
        "container": lambda r: r.method == "POST" and r.path.endswith("/media"),
        "processing": get_of(fake.containers),
        "quota": lambda r: r.path.endswith("/content_publishing_limit"),
        "publish": lambda r: r.path.endswith("/media_publish"),
        "permalink": get_of(fake.media),
    }[name]


STEPS = ["container", "processing", "quota", "publish", "permalink"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["sqlite", "postgres-redis"])
@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_each_step_publishes_once(request, tmp_path, backend, step):
    fake = FakeInstagram(TOKEN, processing_polls=0).start()
    env = {**ENV, "POSTS_VAR_DIR": str(tmp_path),
           "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db"}  # fmt: skip
    if backend == "postgres-redis":
        postgres, redis = (request.getfixturevalue("postgres_server"),
                           request.getfixturevalue("redis_server"))  # fmt: skip
        redis.flush()
        env["POSTS_DATABASE_URL"] = postgres.create_database(f"ig_kill_{step}")
        env["POSTS_BROKER_URL"] = redis.url_for(3)
    assert run_cli(env, "migrate").returncode == 0
    tenant = provision_tenant(env, "igkill", "--platform", "instagram", "--handle", USER_ID,
                              "--base-url", fake.base_url, "--token", TOKEN)  # fmt: skip
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = (WorkerProcess(env, str(tmp_path / "workers.log"), processes=1, threads=2)
               if backend == "postgres-redis" else None)  # fmt: skip
    dies = workers or server

    def start() -> None:
        if dies is server:
            server.start()
            server.wait_serving(timeout=60)
        else:
            workers.start()
            workers.wait_ready()

    try:
        server.start()
        server.wait_serving(timeout=60)
        if workers:
            workers.start()
            workers.wait_ready()
        fake.hold_when(_step(fake, step))
        with grpc.insecure_channel(server.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            image = pb.Media(url=fake.media_url("photo.jpg"), kind=pb.MEDIA_KIND_IMAGE)
            post = api.create(tenant, account_id=tenant.account_id, post_type=pb.POST_TYPE_FEED,
                              text=f"killed at {step}", media=[image],
                              status=pb.STATUS_CHANGE_PUBLISH)  # fmt: skip

            # When the worker is killed while the step's request is in flight
            wait_for(lambda: fake.held >= 1, timeout=30, message=f"the {step} request held")
            dies.kill()
            # and that request then goes through, its answer lost
            fake.release_held()
            wait_for(lambda: fake.in_flight == 0, timeout=10, message="the held request served")
            start()

            # Then the post is published, once
            done = api.wait_published(tenant, post.post_id, timeout=60)
    finally:
        fake.release_held()
        if workers:
            workers.stop()
        server.stop()
        fake.stop()

    assert len(fake.live) == 1 and len(fake.publishes()) == 1, fake.live
    assert done.platform_post_id == fake.live[0]["id"]
    assert done.platform_url == f"https://www.instagram.com/p/{fake.live[0]['id']}/"
    assert done.delivery.attempts == 2
    if step != "container":
        # The recorded container was resumed, not made again
        assert len(fake.containers) == 1, fake.containers
    if step in ("publish", "permalink"):
        # The publish that went through was found among the account's media
        (published,) = fake.publishes()
        assert [a for a in fake.calls(f"/{USER_ID}/media", "GET") if a.at > published.at]
