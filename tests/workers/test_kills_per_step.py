"""A delivery whose worker is SIGKILLed at each step of a network's publish flow
ends with the post live once on the network (Instagram, TikTok, YouTube).

The fake holds the step's request in flight; the worker (on the embedded
default, the server it lives in; on PostgreSQL with Redis, the worker
processes) is killed then, and the held request is let through afterwards, so
the dead worker never learns what it did. The restarted worker takes the post
over once its lease expires.

- Instagram: a container made, a poll read, the quota read, the post
  published, its permalink read. The recorded container is resumed, and a
  publish that went through is found rather than sent again: always PUBLISHED.
- TikTok: the creator info read, the init (which makes the post: its answer
  lost, nothing can tell, so the post FAILS as DELIVERY_OUTCOME_UNKNOWN and is
  never sent again), the status read (the recorded publish_id is polled again).
- YouTube: the session's creation (its answer lost: a new session is made), a
  chunk half-way through the upload and the last one (the recorded session is
  asked where it stands and the upload goes on from there, or is found done):
  the video's session receives every byte once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grpc
import pytest

from tests.fakes.base import FakeNetwork, Request
from tests.fakes.instagram import USER_ID, FakeInstagram
from tests.fakes.tiktok import FakeTikTok
from tests.fakes.youtube import UPLOAD_PATH, FakeYouTube
from tests.processes import (
    FAKES_EGRESS_ALLOW,
    ServerProcess,
    WorkerProcess,
    provision_tenant,
)
from tests.support import Api, wait_for
from workers.adapters.youtube import CHUNK

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

TOKEN = "kill-token"
ENV = {
    # A killed worker's post is taken over at the next sweep after this.
    "POSTS_LEASE_SECONDS": "4",
    "POSTS_SWEEP_INTERVAL": "0.5",
    "POSTS_RETRY_BASE": "0.1",
    "POSTS_MAX_ATTEMPTS": "10",
    "POSTS_DISPATCH_INTERVAL": "0.05",
    "POSTS_SECRET_KEY": "kill-secret-key-0123456789abcdef-0123456789",
    "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
}


Predicate = Callable[[Request], bool]


def _get_of(ids) -> Predicate:
    return lambda r: r.method == "GET" and r.path.rsplit("/", 1)[-1] in ids


def _post_to(path: str) -> Predicate:
    return lambda r: r.method == "POST" and r.path.endswith(path)


@dataclasses.dataclass(frozen=True)
class Network:
    """A network's fake, account, post, and the steps of its publish flow."""

    platform: str
    fake: Callable[[], FakeNetwork]
    account: Callable[[FakeNetwork], tuple[str, ...]]
    post: Callable[[FakeNetwork, str], dict]
    #: step -> which request of the flow to hold (given the running fake)
    steps: dict[str, Callable[[FakeNetwork], Predicate]]
    #: the steps after which the post cannot be told apart from not sent
    unknown_at: tuple[str, ...] = ()


def _instagram_account(fake: FakeNetwork) -> tuple[str, ...]:
    return (
        "--platform",
        "instagram",
        "--handle",
        USER_ID,
        "--base-url",
        fake.base_url,
        "--token",
        TOKEN,
    )


def _instagram_post(fake: FakeNetwork, step: str) -> dict:
    image = pb.Media(url=fake.media_url("photo.jpg"), kind=pb.MEDIA_KIND_IMAGE)
    return {"post_type": pb.POST_TYPE_FEED, "text": f"killed at {step}", "media": [image]}


def _tiktok_account(fake: FakeNetwork) -> tuple[str, ...]:
    return ("--platform", "tiktok", "--base-url", fake.base_url, "--token", TOKEN)


def _tiktok_post(fake: FakeNetwork, step: str) -> dict:
    clip = pb.Media(url=fake.media_url("clip.mp4"), kind=pb.MEDIA_KIND_VIDEO)
    return {"post_type": pb.POST_TYPE_VIDEO, "text": f"killed at {step}", "media": [clip]}


INSTAGRAM = Network(
    "instagram",
    lambda: FakeInstagram(TOKEN, processing_polls=0),
    _instagram_account,
    _instagram_post,
    {
        "container": lambda fake: _post_to("/media"),
        "processing": lambda fake: _get_of(fake.containers),
        "quota": lambda fake: lambda r: r.path.endswith("/content_publishing_limit"),
        "publish": lambda fake: _post_to("/media_publish"),
        "permalink": lambda fake: _get_of(fake.media),
    },
)
TIKTOK = Network(
    "tiktok",
    lambda: FakeTikTok(TOKEN, processing_polls=1),
    _tiktok_account,
    _tiktok_post,
    {
        "creator_info": lambda fake: _post_to("/creator_info/query/"),
        "init": lambda fake: _post_to("/video/init/"),
        "status": lambda fake: _post_to("/status/fetch/"),
    },
    unknown_at=("init",),
)


def _youtube_fake() -> FakeYouTube:
    fake = FakeYouTube(TOKEN)
    fake.add_file("clip.mp4", "v" * (CHUNK * 5 // 2))  # two chunks and a half
    return fake


def _youtube_account(fake: FakeNetwork) -> tuple[str, ...]:
    return ("--platform", "youtube", "--base-url", fake.base_url, "--token", TOKEN)


def _youtube_post(fake: FakeNetwork, step: str) -> dict:
    clip = pb.Media(url=fake.media_url("clip.mp4"), kind=pb.MEDIA_KIND_VIDEO)
    return {"post_type": pb.POST_TYPE_VIDEO, "title": f"killed at {step}", "media": [clip]}


def _chunk_from(offset: int) -> Predicate:
    return lambda r: (
        r.method == "PUT" and r.headers.get("content-range", "").startswith(f"bytes {offset}-")
    )


YOUTUBE = Network(
    "youtube",
    _youtube_fake,
    _youtube_account,
    _youtube_post,
    {
        "session": lambda fake: _post_to(UPLOAD_PATH),
        "half_way": lambda fake: _chunk_from(CHUNK),
        "last_chunk": lambda fake: _chunk_from(2 * CHUNK),
    },
)
CASES = [
    pytest.param(network, step, id=f"{network.platform}-{step}")
    for network in (INSTAGRAM, TIKTOK, YOUTUBE)
    for step in network.steps
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["sqlite", "postgres-redis"])
@pytest.mark.parametrize(("network", "step"), CASES)
def test_a_worker_killed_at_each_step_leaves_the_post_live_once(
    request, tmp_path, backend, network, step
):
    fake = network.fake().start()
    env = {
        **ENV,
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
    }
    if backend == "postgres-redis":
        postgres, redis = (
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("redis_server"),
        )
        redis.flush()
        env["POSTS_DATABASE_URL"] = postgres.create_database(f"kill_{network.platform}_{step}")
        env["POSTS_BROKER_URL"] = redis.url_for(3)
    tenant = provision_tenant(env, "killed", *network.account(fake), migrate=True)
    server = ServerProcess(env, str(tmp_path / "server.log"))
    workers = (
        WorkerProcess(env, str(tmp_path / "workers.log"), processes=1, threads=2)
        if backend == "postgres-redis"
        else None
    )

    try:
        server.start()
        server.wait_serving(timeout=60)
        if workers:
            workers.start()
            workers.wait_ready()
        fake.hold_when(network.steps[step](fake))
        with grpc.insecure_channel(server.address) as channel:
            api = Api(posts_pb2_grpc.PostServiceStub(channel))
            post = api.create(
                tenant,
                account_id=tenant.account_id,
                status=pb.STATUS_CHANGE_PUBLISH,
                **network.post(fake, step),
            )

            # When the worker is killed while the step's request is in flight
            wait_for(lambda: fake.held >= 1, timeout=30, message=f"the {step} request held")
            (workers or server).kill()
            # and that request then goes through, its answer lost
            fake.release_held()
            wait_for(lambda: fake.in_flight == 0, timeout=10, message="the held request served")
            if workers:
                workers.start()
                workers.wait_ready()
            else:
                server.start()
                server.wait_serving(timeout=60)

            # Then the post ends, live once on the network
            done = api.wait_status(
                tenant,
                post.post_id,
                pb.POST_STATUS_FAILED if step in network.unknown_at else pb.POST_STATUS_PUBLISHED,
                timeout=60,
            )
    finally:
        fake.release_held()
        if workers:
            workers.stop()
        server.stop()
        fake.stop()

    assert len(fake.live) == 1, fake.live
    if step in network.unknown_at:
        assert done.error.code == "DELIVERY_OUTCOME_UNKNOWN", done.error
        return
    assert done.delivery.attempts == 2
    if network is INSTAGRAM:
        assert len(fake.publishes()) == 1
        assert done.platform_post_id == fake.live[0]["id"]
        assert done.platform_url == f"https://www.instagram.com/p/{fake.live[0]['id']}/"
        if step != "container":
            # The recorded container was resumed, not made again
            assert len(fake.containers) == 1, fake.containers
        if step in ("publish", "permalink"):
            # The publish that went through was found among the account's media
            (published,) = fake.publishes()
            assert [a for a in fake.calls(f"/{USER_ID}/media", "GET") if a.at > published.at]
    elif network is TIKTOK:
        (publish,) = fake.publishes.values()
        assert done.platform_post_id == publish["post_id"]
        assert len(fake.inits()) == 1
    else:
        assert done.platform_post_id == fake.live[0]["id"]
        made = [s for s in fake.sessions.values() if s["video_id"]]
        assert len(made) == 1 and fake.overlaps == 0
        (session,) = made
        # The video's session got every byte once, in order
        assert bytes(session["data"]) == fake.served("clip.mp4")
        ends = [0] + [end for _, end in session["ranges"]]
        assert [start for start, _ in session["ranges"]] == ends[:-1], session["ranges"]
        if step != "session":
            assert len(fake.sessions) == 1, "the upload was not resumed on its session"
