"""A worker killed (SIGKILL) in the middle of threads, again and again.

On the embedded default the worker lives in the server process, so the server
is what gets killed, each time while a send is in flight at a fake network;
each restart takes over what the dead one had claimed. Every round queues a
fresh post per network first, so the work never runs out before the kills do.
Networks that honour idempotency keys (the webhook, Mastodon), Instagram,
whose recorded container says whether it was published, and YouTube, whose
recorded upload session says what it holds, end with every item
live exactly once and every post PUBLISHED; the others (X and Bluesky look
posts up; LinkedIn cannot, nor TikTok once its init is sent) never show an
item twice, and each post is PUBLISHED or FAILED with DELIVERY_OUTCOME_UNKNOWN.
"""

from __future__ import annotations

import grpc
import pytest

from tests.fakes.bluesky import FakeBluesky
from tests.fakes.instagram import USER_ID, FakeInstagram
from tests.fakes.linkedin import AUTHOR, FakeLinkedIn
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.tiktok import FakeTikTok
from tests.fakes.webhook import FakeWebhook
from tests.fakes.x import FakeX
from tests.fakes.youtube import FakeYouTube
from tests.processes import FAKES_EGRESS_ALLOW, ServerProcess
from tests.support import wait_for

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

KILLS = 8  # one post per network is queued before each
THREAD_ITEMS = 3
ROUND_TIMEOUT = 20.0  # seconds for a round's sends to start after a restart
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
        "instagram": FakeInstagram(token="ig-token"),
        "tiktok": FakeTikTok(token="tt-token"),
        "youtube": FakeYouTube(token="yt-token"),
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
        "instagram": (USER_ID, fakes["instagram"].base_url, "ig-token"),
        "tiktok": ("creator", fakes["tiktok"].base_url, "tt-token"),
        "youtube": ("channel", fakes["youtube"].base_url, "yt-token"),
    }
    return {
        name: admin.create_account(
            workspace_id, platform=name, handle=handle, base_url=url, token=token, sandbox=False
        )
        for name, (handle, url, token) in specs.items()
    }


#: Networks whose posts are one item (the others get threads).
SINGLE = ("linkedin", "instagram", "tiktok", "youtube")


def _texts(network: str, n: int) -> list[str]:
    items = 1 if network in SINGLE else THREAD_ITEMS
    return [f"chaos {network} post {n} item {i}" for i in range(items)]


def _live_texts(name: str, fake) -> list[str]:
    with fake.lock:
        if name == "webhook":
            return [e["body"]["post"]["items"][e["item_index"]]["text"] for e in fake.live]
        if name in ("instagram", "tiktok"):
            return [e["caption"] for e in fake.live]
        if name == "youtube":
            return [e["description"] for e in fake.live]
        return [e["text"] for e in fake.live]


def _read_posts(address: str, metadata, post_ids) -> dict[str, posts_pb2.Post]:
    """Each post of ``post_ids`` as GetPostStatus answers it now."""
    with grpc.insecure_channel(address) as channel:
        stub = posts_pb2_grpc.PostServiceStub(channel)
        return {
            post_id: stub.GetPostStatus(
                posts_pb2.GetPostStatusRequest(post_id=post_id), metadata=metadata, timeout=10
            ).post
            for post_id in post_ids
        }


def _create_request(
    networks, name: str, account_id: str, n: int, texts: list[str]
) -> posts_pb2.CreatePostRequest:
    """Round ``n``'s post on network ``name``, published at once."""
    post_type = {
        "instagram": posts_pb2.POST_TYPE_FEED,
        "tiktok": posts_pb2.POST_TYPE_VIDEO,
        "youtube": posts_pb2.POST_TYPE_VIDEO,
    }.get(name, (posts_pb2.POST_TYPE_POST if len(texts) == 1 else posts_pb2.POST_TYPE_THREAD))
    media = {
        "instagram": [
            posts_pb2.Media(
                url=networks[name].media_url(f"chaos-{n}.jpg"), kind=posts_pb2.MEDIA_KIND_IMAGE
            )
        ],
        "tiktok": [
            posts_pb2.Media(
                url=networks[name].media_url(f"chaos-{n}.mp4"), kind=posts_pb2.MEDIA_KIND_VIDEO
            )
        ],
        "youtube": [
            posts_pb2.Media(
                url=networks[name].media_url("chaos.mp4"), kind=posts_pb2.MEDIA_KIND_VIDEO
            )
        ],
    }.get(name, [])
    return posts_pb2.CreatePostRequest(
        account_id=account_id,
        post_type=post_type,
        title=f"chaos {n}" if name == "youtube" else "",
        items=[posts_pb2.PostItem(text=t, media=media) for t in texts],
        status=posts_pb2.STATUS_CHANGE_PUBLISH,
    )


def test_killed_worker_never_posts_an_item_twice(tmp_path, networks):
    from service import admin, crypto, db, migrations
    from service.config import Config
    from service.models import PostEvent

    env = {
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,
        "POSTS_RETRY_BASE": "0.1",
        "POSTS_MAX_ATTEMPTS": "100",
        "POSTS_DISPATCH_INTERVAL": "0.1",
        # YouTube's default pace (a few uploads a day per channel) is below KILLS.
        "POSTS_PACING_OVERRIDES": "youtube=100/1d",
    }
    config = Config.from_env(env)
    db.init(config)
    migrations.migrate()
    crypto.configure(config)
    workspace_id = admin.create_workspace("chaos")
    key = admin.create_api_key([workspace_id])
    accounts = _accounts(workspace_id, networks)
    server = ServerProcess(env, str(tmp_path / "server.log")).start()
    metadata = (("authorization", f"Bearer {key}"),)
    expected: dict[str, tuple[str, list[str]]] = {}  # post id -> (network, texts)

    def queue_round(n: int) -> None:
        """One thread (a post, on LinkedIn, Instagram and TikTok) per network, queued now."""
        with grpc.insecure_channel(server.address) as channel:
            stub = posts_pb2_grpc.PostServiceStub(channel)
            for name, account_id in accounts.items():
                texts = _texts(name, n)
                request = _create_request(networks, name, account_id, n, texts)
                post = stub.CreatePost(request, metadata=metadata, timeout=10).post
                expected[post.post_id] = (name, texts)

    def requests_seen() -> int:
        return sum(len(f.requests) for f in networks.values())

    def in_flight() -> int:
        return sum(f.in_flight for f in networks.values())

    def all_settled() -> bool:
        settled = (posts_pb2.POST_STATUS_PUBLISHED, posts_pb2.POST_STATUS_FAILED)
        current = _read_posts(server.address, metadata, expected)
        return all(post.status in settled for post in current.values())

    kills = mid_send = 0
    try:
        server.wait_serving()
        # When, KILLS times over, fresh threads are queued and the worker is
        # killed once it has made a few requests and one is in flight
        for n in range(KILLS):
            queue_round(n)
            seen = requests_seen()
            wait_for(
                lambda s=seen: requests_seen() >= s + 3 and in_flight() > 0,
                timeout=ROUND_TIMEOUT,
                message=f"kill {n + 1}: a send in flight",
            )
            server.kill()
            kills += 1
            # The server is dead (its group reaped): a request still in flight
            # now left it before the kill, and its answer is lost
            mid_send += in_flight() > 0
            server.start()
            server.wait_serving()
        wait_for(all_settled, timeout=120, interval=0.5)
        final = _read_posts(server.address, metadata, expected)
    finally:
        server.stop()

    # The posts the restarts took over from a dead worker (PROCESSING at the kill)
    with db.connection():
        taken_over = {
            event.post_id
            for event in PostEvent.select().where(
                PostEvent.post.in_(list(expected))
                & (PostEvent.cause == "restart")
                & (PostEvent.from_status == "processing")
            )
        }

    outcomes = [
        (expected[p][0], posts_pb2.PostStatus.Name(final[p].status), final[p].error.code)
        for p in expected
    ]
    print(
        f"{kills} kills, {mid_send} mid-send, {len(taken_over)} posts taken over; outcomes:",
        sorted({(o, outcomes.count(o)) for o in outcomes}),
    )

    # Then every kill landed, interrupting deliveries, and no item went out twice
    assert kills == KILLS
    assert mid_send >= 1, "no kill landed while a send was in flight"
    assert taken_over, "no restart took over a post its dead worker was delivering"
    live = {name: _live_texts(name, fake) for name, fake in networks.items()}
    for name, texts in live.items():
        doubles = {t for t in texts if texts.count(t) > 1}
        assert not doubles, f"{name} published {sorted(doubles)} more than once"
    for post_id, (name, texts) in expected.items():
        post = final[post_id]
        on_network = [t for t in texts if t in live[name]]
        if name in ("webhook", "mastodon", "instagram", "youtube"):
            # And where the network honours idempotency keys, or a recorded container
            # (Instagram) or upload session (YouTube) says whether it went out,
            # everything went out once
            assert post.status == posts_pb2.POST_STATUS_PUBLISHED, (name, post.error)
            assert on_network == texts
        elif post.status == posts_pb2.POST_STATUS_PUBLISHED:
            assert on_network == texts
        else:
            assert post.error.code == UNKNOWN, (name, post.error)
            # Items before the unknown one are live; none after it went out.
            assert on_network == texts[: len(on_network)]
