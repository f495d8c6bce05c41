"""A worker killed (SIGKILL) in the middle of threads, again and again.

On the embedded default the worker lives in the server process, so the server
is what gets killed; each restart takes over what the dead one had claimed.
Networks that honour idempotency keys (the webhook, Mastodon) end with every
item live exactly once and every post PUBLISHED; the others (X and Bluesky look
posts up, LinkedIn cannot) never show an item twice, and each post is
PUBLISHED or FAILED with DELIVERY_OUTCOME_UNKNOWN.
"""

from __future__ import annotations

import time

import grpc
import pytest

from tests.fakes.bluesky import FakeBluesky
from tests.fakes.linkedin import AUTHOR, FakeLinkedIn
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.webhook import FakeWebhook
from tests.fakes.x import FakeX
from tests.processes import ServerProcess
from tests.support import wait_for

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

KILLS = 8
POSTS_PER_NETWORK = 5
THREAD_ITEMS = 3
SECRET_KEY = "chaos-secret-key-0123456789abcdef-0123456789"
UNKNOWN = "DELIVERY_OUTCOME_UNKNOWN"


@pytest.fixture
def networks():
    fakes = {
        "webhook": FakeWebhook(secret="hook-secret"),
        "mastodon": FakeMastodon(token="m-token", username="chaos"),
        "x": FakeX(token="x-token", username="chaos"),
        "bluesky": FakeBluesky(handle="chaos.test", password="b-pass"),
        "linkedin": FakeLinkedIn(token="li-token"),
    }
    for fake in fakes.values():
        fake.delay = 0.08  # slow enough that kills land between and inside sends
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


def _accounts(workspace_id: str, fakes) -> dict[str, str]:
    from service import admin

    specs = {
        "webhook": ("consumer", fakes["webhook"].base_url + "/hooks/chaos", "hook-secret"),
        "mastodon": ("chaos", fakes["mastodon"].base_url, "m-token"),
        "x": ("chaos", fakes["x"].base_url, "x-token"),
        "bluesky": ("chaos.test", fakes["bluesky"].base_url, "b-pass"),
        "linkedin": (AUTHOR, fakes["linkedin"].base_url, "li-token"),
    }
    return {
        name: admin.create_account(workspace_id, platform=name, handle=handle,
                                   base_url=url, token=token, sandbox=False)
        for name, (handle, url, token) in specs.items()
    }  # fmt: skip


def _texts(network: str, n: int) -> list[str]:
    items = 1 if network == "linkedin" else THREAD_ITEMS
    return [f"chaos {network} post {n} item {i}" for i in range(items)]


def _live_texts(name: str, fake) -> list[str]:
    with fake.lock:
        if name == "webhook":
            return [e["body"]["post"]["items"][e["item_index"]]["text"] for e in fake.live]
        return [e["text"] for e in fake.live]


def test_killed_worker_never_posts_an_item_twice(tmp_path, networks):
    from service import admin, crypto, db, migrations
    from service.config import Config

    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_RETRY_BASE": "0.1",
        "POSTS_MAX_ATTEMPTS": "100",
        "POSTS_DISPATCH_INTERVAL": "0.1",
    }
    config = Config.from_env(env)
    db.init(config)
    migrations.migrate()
    crypto.configure(config)
    workspace_id = admin.create_workspace("chaos")
    key = admin.create_api_key([workspace_id])
    accounts = _accounts(workspace_id, networks)
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    server.wait_serving()
    metadata = (("authorization", f"Bearer {key}"),)

    # Given many threads queued for delivery on every network
    expected: dict[str, tuple[str, list[str]]] = {}  # post id -> (network, texts)
    with grpc.insecure_channel(server.address) as channel:
        stub = posts_pb2_grpc.PostServiceStub(channel)
        for n in range(POSTS_PER_NETWORK):
            for name, account_id in accounts.items():
                texts = _texts(name, n)
                post = stub.CreatePost(posts_pb2.CreatePostRequest(
                    account_id=account_id,
                    post_type=posts_pb2.POST_TYPE_POST if len(texts) == 1
                    else posts_pb2.POST_TYPE_THREAD,
                    items=[posts_pb2.PostItem(text=t) for t in texts],
                    status=posts_pb2.STATUS_CHANGE_PUBLISH,
                ), metadata=metadata, timeout=10).post  # fmt: skip
                expected[post.post_id] = (name, texts)

    def requests_seen() -> int:
        return sum(len(f.requests) for f in networks.values())

    def all_settled() -> bool:
        with grpc.insecure_channel(server.address) as channel:
            stub = posts_pb2_grpc.PostServiceStub(channel)
            for post_id in expected:
                post = stub.GetPostStatus(posts_pb2.GetPostStatusRequest(post_id=post_id),
                                          metadata=metadata, timeout=10).post  # fmt: skip
                if post.status not in (posts_pb2.POST_STATUS_PUBLISHED,
                                       posts_pb2.POST_STATUS_FAILED):  # fmt: skip
                    return False
        return True

    # When the worker is killed mid-delivery again and again
    kills = 0
    deadline = time.monotonic() + 90
    while kills < KILLS and time.monotonic() < deadline:
        seen = requests_seen()
        try:
            wait_for(lambda s=seen: requests_seen() >= s + 3, timeout=15)
        except AssertionError:
            break  # nothing left to deliver
        server.kill()
        kills += 1
        server.start()
        server.wait_serving()
    try:
        wait_for(all_settled, timeout=120, interval=0.5)
        final = {}
        with grpc.insecure_channel(server.address) as channel:
            stub = posts_pb2_grpc.PostServiceStub(channel)
            for post_id in expected:
                final[post_id] = stub.GetPostStatus(
                    posts_pb2.GetPostStatusRequest(post_id=post_id), metadata=metadata, timeout=10
                ).post
    finally:
        server.stop()

    outcomes = [(expected[p][0], posts_pb2.PostStatus.Name(final[p].status), final[p].error.code)
                for p in expected]  # fmt: skip
    print(f"{kills} kills; outcomes:", sorted({(o, outcomes.count(o)) for o in outcomes}))

    # Then kills did land, and no item ever went out twice
    assert kills >= 3, f"only {kills} kills landed before the work ran out"
    live = {name: _live_texts(name, fake) for name, fake in networks.items()}
    for name, texts in live.items():
        doubles = {t for t in texts if texts.count(t) > 1}
        assert not doubles, f"{name} published {sorted(doubles)} more than once"
    for post_id, (name, texts) in expected.items():
        post = final[post_id]
        on_network = [t for t in texts if t in live[name]]
        if name in ("webhook", "mastodon"):
            # And where the network honours idempotency keys, everything went out once
            assert post.status == posts_pb2.POST_STATUS_PUBLISHED, (name, post.error)
            assert on_network == texts
        elif post.status == posts_pb2.POST_STATUS_PUBLISHED:
            assert on_network == texts
        else:
            assert post.error.code == UNKNOWN, (name, post.error)
            # Items before the unknown one are live; none after it went out.
            assert on_network == texts[: len(on_network)]
