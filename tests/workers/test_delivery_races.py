"""Edits, reschedules and cancels hitting many posts while the workers deliver them.

Posts go to a fake webhook consumer that takes a moment per request, so
deliveries overlap the RPCs. The posts are made through the API an hour ahead
(making them takes longer than the race lasts), then brought forward in the
database in one go, due over the next two seconds (some at once), as several
client threads start together. The clients pick posts at random (seeded) and
reschedule them (into the near future or the past), edit their text, publish
them now, cancel or delete them, recording every RPC that succeeded. The
test's own RPCs on one post are never in flight together (a lock per post), so
"the last successful edit" of a post is well defined; the race is between
those RPCs and the dispatcher, sweeper and workers.

Once every post has settled, the consumer's ``arrivals`` (every request that
reached it, not only the deduplicated ``live`` entries) must show that no
(post, item) went out under two idempotency keys, that no cancelled post sent
anything, that every published post has each item live exactly once with the
text of its last successful edit, and the last successful cancel or delete
must agree with where the post ended.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import json
import random
import threading
import time

import grpc
import pytest

from tests.fakes.webhook import FakeWebhook
from tests.support import STATUS_NAMES, Failure, in_seconds, item, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb

pytestmark = pytest.mark.server_env(POSTS_DISPATCH_INTERVAL="0.05")

SECRET = "whsec_delivery-races"
SEED = 20240611
POSTS = 60
CLIENTS = 4
DUE_WITHIN = 2.5  # seconds: the posts fall due over this time once the clients start
CLIENT_SECONDS = 3.0  # how long the clients keep hitting the posts
SETTLE_TIMEOUT = 40.0  # for every post to settle (generous: a loaded machine is slow)
SETTLED = {pb.POST_STATUS_PUBLISHED, pb.POST_STATUS_FAILED, pb.POST_STATUS_CANCELLED}
ACTIONS = ["edit"] * 9 + ["reschedule"] * 7 + ["publish"] * 2 + ["cancel", "delete"] * 2
CANCELS = {"cancel", "delete"}


@dataclasses.dataclass
class Tracked:
    """One post as the clients know it: its successful RPCs, in order."""

    post_id: str
    thread: bool  # a multi-item thread (else a single item)
    texts: list[str]  # the content of the last successful edit (or of the create)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    done: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (action, status)


@pytest.fixture
def fake():
    network = FakeWebhook(SECRET)
    network.delay = 0.02  # each request takes a moment: deliveries overlap the RPCs
    network.start()
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture
def hook(make_tenant, fake):
    tenant = make_tenant("delivery-races")
    account_id = tenant.add_account(
        "webhook",
        sandbox=False,
        handle="consumer",
        base_url=fake.base_url + "/hooks/races",
        token=SECRET,
    )
    return tenant, account_id


def create_posts(api, tenant, account_id, rng: random.Random) -> list[Tracked]:
    """Scheduled posts, some of them threads, all an hour ahead for now."""
    specs = []
    for n in range(POSTS):
        is_thread = rng.random() < 0.35
        specs.append(
            (is_thread, [f"p{n} v0 i{i}" for i in range(rng.randint(2, 4) if is_thread else 1)])
        )

    def create(spec) -> Tracked:
        is_thread, texts = spec
        post = api.create(
            tenant,
            account_id=account_id,
            post_type=pb.POST_TYPE_THREAD if is_thread else pb.POST_TYPE_POST,
            items=[item(text) for text in texts],
            status=pb.STATUS_CHANGE_SCHEDULED,
            scheduled_at=in_seconds(3600),
        )
        return Tracked(post.post_id, is_thread, texts)

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(create, specs))


def act(api, tenant, post: Tracked, action: str, rng: random.Random, stamp: str) -> pb.Post:
    """Sends one RPC for ``action``; raises grpc.RpcError when it is refused."""
    if action == "edit":
        if post.thread and rng.random() < 0.5:
            texts = [f"{stamp} i{i}" for i in range(rng.randint(2, 4))]  # full replacement
            answer = api.update(tenant, post.post_id, items=[item(text) for text in texts])
        else:
            texts = [f"{stamp} i0", *post.texts[1:]]  # the first item's text only
            answer = api.update(tenant, post.post_id, text=texts[0])
        assert [i.text for i in answer.items] == texts, (post.post_id, answer)
        post.texts = texts
        return answer
    if action == "reschedule":
        return api.update(tenant, post.post_id, scheduled_at=in_seconds(rng.uniform(-0.5, 1.5)))
    if action == "publish":
        return api.update(tenant, post.post_id, status=pb.STATUS_CHANGE_PUBLISH)
    if action == "cancel":
        return api.update(tenant, post.post_id, status=pb.STATUS_CHANGE_CANCELLED)
    return api.delete(tenant, post.post_id)


#: What a successful RPC may answer: the post's status right after it.
ANSWERS = {
    "edit": {pb.POST_STATUS_SCHEDULED, pb.POST_STATUS_PENDING},  # PENDING: its time had come
    "reschedule": {pb.POST_STATUS_SCHEDULED, pb.POST_STATUS_PENDING},  # PENDING: into the past
    "publish": {pb.POST_STATUS_PENDING},
    "cancel": {pb.POST_STATUS_CANCELLED},
    "delete": {pb.POST_STATUS_CANCELLED},
}


def bring_forward(posts: list[Tracked], rng: random.Random) -> None:
    """Makes the posts due over the next DUE_WITHIN seconds, some of them at once.

    Straight in the database, in one transaction: a SCHEDULED post has no
    message in the broker (the dispatcher sends it when due), so this is the
    post as if it had been made with that time.
    """
    from service import db
    from service.models import Post

    now = db.utcnow()
    with db.connection(), db.write():
        for post in posts:
            due = 0.0 if rng.random() < 0.15 else rng.uniform(0.2, DUE_WITHIN)
            moved = (
                Post.update(scheduled_at=now + dt.timedelta(seconds=due))
                .where((Post.id == post.post_id) & (Post.status == "scheduled"))
                .execute()
            )
            assert moved == 1, post.post_id


def client(
    api, tenant, posts: list[Tracked], seed: int, start: threading.Barrier, problems: list
) -> None:
    """One client: random RPCs on random posts for CLIENT_SECONDS."""
    rng = random.Random(seed)
    start.wait()
    until = time.monotonic() + CLIENT_SECONDS
    n = 0
    while time.monotonic() < until:
        post = rng.choice(posts)
        if not post.lock.acquire(blocking=False):
            continue  # another client has an RPC in flight on it: pick another
        try:
            n += 1
            attempt(api, tenant, post, rng.choice(ACTIONS), rng, f"c{seed}n{n}", problems)
        finally:
            post.lock.release()


def attempt(api, tenant, post: Tracked, action: str, rng, stamp: str, problems: list) -> None:
    """Sends one RPC (the caller holds the post's lock) and records it if it succeeded."""
    try:
        answer = act(api, tenant, post, action, rng, stamp)
    except grpc.RpcError as error:
        failure = Failure.of(error)
        if failure.kind != ("FAILED_PRECONDITION", "INVALID_TRANSITION"):
            problems.append((post.post_id, action, failure))
        return
    if answer.status not in ANSWERS[action]:
        problems.append((post.post_id, action, STATUS_NAMES(answer.status)))
    post.done.append((action, answer.status))


def test_edits_reschedules_and_cancels_racing_delivery_never_send_twice(api, hook, fake, request):
    tenant, account_id = hook
    rng = random.Random(SEED)

    # Given many posts, some of them threads
    posts = create_posts(api, tenant, account_id, rng)
    by_id = {post.post_id: post for post in posts}

    # When they fall due over the next seconds (some at once) while several
    # clients hit them at random and the workers deliver them
    problems: list = []
    start = threading.Barrier(CLIENTS + 1, timeout=10)
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        clients = [
            pool.submit(client, api, tenant, posts, SEED + c, start, problems)
            for c in range(CLIENTS)
        ]
        bring_forward(posts, rng)
        start.wait()
        for done in clients:
            done.result(timeout=CLIENT_SECONDS + 40)  # a client's error fails the test here
    assert not problems, f"unexpected answers: {problems[:10]}"

    # And every post settles
    def settled():
        listed = api.list_all(tenant, show_deleted=True, page_size=500)
        final = {p.post_id: p for p in listed if p.post_id in by_id}
        return final if all(p.status in SETTLED for p in final.values()) else None

    final = wait_for(settled, SETTLE_TIMEOUT, interval=0.1, message="every post to settle")
    assert set(final) == set(by_id)
    api.settle(tenant)  # any message still queued for these posts has run (and been dropped)

    # Then, from every request that reached the consumer...
    keys = collections.defaultdict(set)  # (post_id, item_index) -> idempotency keys
    sent_texts = collections.defaultdict(set)  # (post_id, item_index) -> texts sent
    requests = collections.Counter()  # post_id -> requests
    with fake.lock:
        arrivals, live_entries = list(fake.arrivals), list(fake.live)
    for arrival in arrivals:
        body = json.loads(arrival.request.body)
        post_id, index = body["post"]["postId"], body["itemIndex"]
        assert arrival.key == body["idempotencyKey"], arrival
        keys[post_id, index].add(arrival.key)
        sent_texts[post_id, index].add(body["post"]["items"][index]["text"])
        requests[post_id] += 1
    assert set(requests) <= set(by_id), "the consumer got requests for unknown posts"

    # ...no (post, item) went out under two keys: no post went out twice
    twice = {key: sorted(ks) for key, ks in keys.items() if len(ks) > 1}
    assert not twice, f"items sent under more than one idempotency key: {twice}"
    changed = {key: texts for key, texts in sent_texts.items() if len(texts) > 1}
    assert not changed, f"items sent with different texts: {changed}"

    live = collections.defaultdict(list)  # post_id -> live entries
    for entry in live_entries:
        live[entry["post_id"]].append(entry)
    outcomes = collections.Counter()
    for post_id, post in by_id.items():
        status = final[post_id].status
        outcomes[STATUS_NAMES(status)] += 1
        actions = [action for action, _ in post.done]
        cancels = [n for n, action in enumerate(actions) if action in CANCELS]
        if status == pb.POST_STATUS_CANCELLED:
            # ...a cancelled post sent nothing at all, and a cancel or delete made it so
            assert requests[post_id] == 0, (post_id, actions, requests[post_id])
            assert live[post_id] == [], post_id
            assert cancels, f"{post_id} ended CANCELLED with no successful cancel: {actions}"
        else:
            assert not cancels, (
                f"{post_id} ended {STATUS_NAMES(status)} after a successful cancel: {actions}"
            )
        if cancels:
            # ...after a successful cancel or delete, only cancels and deletes succeed
            after = actions[cancels[0] :]
            assert set(after) <= CANCELS, (post_id, actions)
            deleted = final[post_id].HasField("delete_time")
            assert deleted == ("delete" in after), (post_id, actions, final[post_id].delete_time)
        if status == pb.POST_STATUS_PUBLISHED:
            # ...a published post has each item live exactly once, with its last edit's text
            entries = sorted(live[post_id], key=lambda entry: entry["item_index"])
            assert [entry["item_index"] for entry in entries] == list(range(len(post.texts))), (
                post_id,
                post.texts,
                entries,
            )
            assert [
                entry["body"]["post"]["items"][entry["item_index"]]["text"] for entry in entries
            ] == post.texts, post_id
            assert [i.text for i in final[post_id].items] == post.texts, post_id
            assert [i.platform_post_id for i in final[post_id].items] == [
                entry["id"] for entry in entries
            ], post_id
        assert status != pb.POST_STATUS_FAILED, (post_id, final[post_id].error)

    succeeded = collections.Counter(action for post in posts for action, _ in post.done)
    request.node.user_properties.extend([*outcomes.items(), *succeeded.items()])
    print(dict(outcomes), dict(succeeded), f"requests={sum(requests.values())}")
    # The mix is what makes this a race test: both ends, and edits that won (how
    # many of each RPC win depends on the machine's speed; these always do)
    assert outcomes["POST_STATUS_PUBLISHED"] and outcomes["POST_STATUS_CANCELLED"], outcomes
    assert succeeded["edit"] and succeeded["reschedule"], succeeded
