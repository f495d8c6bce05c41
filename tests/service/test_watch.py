"""WatchPostEvents over real gRPC channels: a post's life in order, replay then
live with nothing skipped or repeated at the join, resume and expired cursors,
workspace isolation and authentication, a thousand streams on one process,
a slow watcher ended rather than thinned (on every backend of the ``server``
fixture unless a test says otherwise).

Draining and the multi-process topology, which need server processes, are in
tests/test_watch_processes.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import grpc
import pytest

from tests.support import DEFAULT_WAIT, Failure, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

T = pb.PostEventType


class Stream:
    """A WatchPostEvents call read by a thread of its own into ``events``, until
    it ends (``error`` then holds its Failure, if it failed)."""

    def __init__(self, stub, key: str | None, **fields):
        request = pb.WatchPostEventsRequest(**fields)
        metadata = () if key is None else (("authorization", f"Bearer {key}"),)
        self.call = stub.WatchPostEvents(request, metadata=metadata, timeout=120)
        self.events: list[pb.PostEvent] = []
        self.error: Failure | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for answer in self.call:
                self.events.append(answer.event)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = Failure.of(error)
        finally:
            self.ended.set()

    @property
    def ids(self) -> list[int]:
        return [e.event_id for e in list(self.events)]

    def wait(self, predicate, timeout: float = DEFAULT_WAIT, message: str = ""):
        """Waits until ``predicate(events)``; fails early if the stream ended."""

        def reached():
            if self.ended.is_set() and not predicate(list(self.events)):
                raise AssertionError(f"the stream ended ({self.error}) waiting for {message}")
            return predicate(list(self.events))

        return wait_for(reached, timeout, message=message)

    def wait_for_post(self, post_id: str, event_type: int, timeout: float = DEFAULT_WAIT):
        self.wait(
            lambda found: any(e.post_id == post_id and e.type == event_type for e in found),
            timeout,
            f"{T.Name(event_type)} of {post_id}",
        )

    def wait_end(self, timeout: float = DEFAULT_WAIT) -> Failure | None:
        assert self.ended.wait(timeout), "the stream did not end"
        return self.error

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(DEFAULT_WAIT)


@pytest.fixture
def streams():
    opened: list[Stream] = []

    def open_stream(stub, key, **fields) -> Stream:
        stream = Stream(stub, key, **fields)
        opened.append(stream)
        return stream

    try:
        yield open_stream
    finally:
        for stream in opened:
            stream.cancel()


def stored_events(workspace_id: str, after: int = 0, **filters) -> list[pb.PostEvent]:
    """The workspace's events after ``after`` as the database has them, in order."""
    from service import events

    events.sequence()
    return events.read(after, events.Filter(workspace_id, **filters), 1_000_000)


def live(stream: Stream, api, tenant) -> None:
    """Waits until ``stream`` follows live events: a draft made now reaches it."""
    marker = api.create(tenant, text="marker")
    stream.wait_for_post(marker.post_id, T.POST_EVENT_TYPE_CREATED)


def published_life(api, tenant, text: str = "watched") -> str:
    post = api.create(tenant, text=text, status=pb.STATUS_CHANGE_PUBLISH)
    api.wait_published(tenant, post.post_id)
    return post.post_id


#: A tweet created with STATUS_CHANGE_PUBLISH and delivered by the sandbox.
#: CREATED carries its status PENDING; the sandbox makes the one item live.
PUBLISHED_LIFE = [
    T.POST_EVENT_TYPE_CREATED,
    T.POST_EVENT_TYPE_PROCESSING,
    T.POST_EVENT_TYPE_ITEM_PUBLISHED,
    T.POST_EVENT_TYPE_PUBLISHED,
]


def expected_life() -> list[int]:
    """The event types of a tweet created to publish: the list test's helper when
    it is there, else this module's."""
    try:
        from tests.service import test_events
    except ImportError:
        return PUBLISHED_LIFE
    helper = getattr(test_events, "expected_published_life", None)
    return list(helper()) if callable(helper) else PUBLISHED_LIFE


# ------------------------------------------------------------------ the tests


def test_a_stream_opened_before_a_post_gets_its_life_in_order(stub, api, tenant, streams):
    # Given a stream following the workspace from now on
    stream = streams(stub, tenant.key)
    live(stream, api, tenant)

    # When a post is created to publish, and delivered
    post_id = published_life(api, tenant)
    stream.wait_for_post(post_id, T.POST_EVENT_TYPE_PUBLISHED)

    # Then the stream has its events, in order, as the database has them
    got = [e for e in stream.events if e.post_id == post_id]
    assert [e.type for e in got] == expected_life()
    assert [e.event_id for e in got] == [
        e.event_id for e in stored_events(tenant.workspace_id, post_ids=(post_id,))
    ]
    assert got[-1].post.status == pb.POST_STATUS_PUBLISHED
    assert got[-1].status == pb.POST_STATUS_PUBLISHED
    assert all(e.workspace_id == tenant.workspace_id for e in stream.events)


def test_replay_then_live_neither_skips_nor_repeats_at_the_join(stub, api, tenant, streams):
    # Given writers committing events all the time
    stop = threading.Event()
    failures = []

    def write():
        n = 0
        try:
            while not stop.is_set():
                api.create(tenant, text=f"race {n}")
                n += 1
        except Exception as error:  # noqa: BLE001 (surfaced below)
            failures.append(error)

    writers = [threading.Thread(target=write, daemon=True) for _ in range(3)]
    for writer in writers:
        writer.start()
    try:
        wait_for(lambda: len(stored_events(tenant.workspace_id)) >= 60 or failures)
        for iteration in range(25):
            # When a stream starts a little way back, so that its replay runs
            # while new events commit
            stored = stored_events(tenant.workspace_id)
            after = stored[-min(len(stored), 5 + 7 * iteration)].event_id
            target = stored[-1].event_id + 1
            stream = streams(stub, tenant.key, after_event_id=after)
            # ... and reads until it is past events committed after it opened
            try:
                stream.wait(
                    lambda found, t=target: found and found[-1].event_id > t + 20,
                    message=f"iteration {iteration}: live events",
                )
            except AssertionError as timeout:
                # Say which side stalled: the writers, the events' numbering, or the stream.
                ids = stream.ids
                raise AssertionError(
                    f"{timeout}; the stream's last event {ids[-1] if ids else None} of"
                    f" {len(ids)}, wanted past {target + 20}; the workspace's last stored"
                    f" event {stored_events(tenant.workspace_id)[-1].event_id}; writers"
                    f" failed: {failures[:1]}"
                ) from None
            stream.cancel()
            got = stream.ids
            # Then it got exactly the events after its cursor, in order
            expected = [
                e.event_id
                for e in stored_events(tenant.workspace_id, after)
                if e.event_id <= got[-1]
            ]
            assert got == expected, (iteration, _difference(got, expected))
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=DEFAULT_WAIT)
    assert not failures, failures[0]


def _difference(got: list[int], expected: list[int]) -> str:
    repeated = sorted({i for i in got if got.count(i) > 1})
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    return f"repeated {repeated[:10]}, missing {missing[:10]}, unexpected {extra[:10]}"


def test_a_resumed_stream_gets_exactly_the_rest(stub, api, make_tenant, streams):
    tenant = make_tenant("resume")
    post_id = published_life(api, tenant)
    history = stored_events(tenant.workspace_id)
    middle = history[len(history) // 2].event_id
    rest = [e.event_id for e in history if e.event_id > middle]

    # When a stream resumes from the middle of the workspace's history
    stream = streams(stub, tenant.key, after_event_id=middle)
    stream.wait(lambda found: len(found) >= len(rest), message="the rest")
    # ... and a sentinel committed after
    sentinel = api.create(tenant, text="sentinel")
    stream.wait_for_post(sentinel.post_id, T.POST_EVENT_TYPE_CREATED)

    # Then it got the rest, then the sentinel, nothing else
    assert stream.ids[:-1] == rest
    assert stream.events[-1].post_id == sentinel.post_id
    assert post_id in {e.post_id for e in stream.events[:-1]}


def test_the_first_watcher_of_a_workspace_opened_mid_poll_misses_nothing(
    server, stub, api, make_tenant, streams
):
    """A poll reads only the workspaces someone watches. A stream of a workspace
    nobody watched, registering after that read began, gets the events the
    read skipped from its replay: the poll stretches the replay to what it read."""
    if server.backend != "sqlite":
        pytest.skip("one backend is enough: the poller is the process's")
    from service import watch

    hub = watch.running_hub()
    tenant = make_tenant("mid-poll")
    first = api.create(tenant, text="before the stream")
    first_id = stored_events(tenant.workspace_id)[-1].event_id
    wait_for(lambda: hub.through >= first_id)
    opened: list[Stream] = []
    gap: list[int] = []

    def open_mid_poll(watched, after, upto):
        # The poll that reads the gap event, without the workspace: open the stream now.
        if not opened and gap and tenant.workspace_id not in watched and after < gap[0] <= upto:
            count = hub.watchers
            opened.append(streams(stub, tenant.key, after_event_id=first_id))
            wait_for(lambda: hub.watchers > count, message="the stream registered")

    watch.hooks.before_offer.append(open_mid_poll)
    try:
        in_gap = api.create(tenant, text="in the gap")
        gap.append(stored_events(tenant.workspace_id)[-1].event_id)
        wait_for(lambda: opened, message="a poll met the gap event")
    finally:
        watch.hooks.before_offer.remove(open_mid_poll)
    [stream] = opened
    stream.wait_for_post(in_gap.post_id, T.POST_EVENT_TYPE_CREATED)
    live(stream, api, tenant)

    assert stream.ids[0] == gap[0] and first.post_id not in {e.post_id for e in stream.events}
    assert stream.ids == [e.event_id for e in stored_events(tenant.workspace_id, first_id)]


def test_a_stream_filters_by_post_and_type(stub, api, tenant, streams):
    post_id = published_life(api, tenant, "filtered")
    other = published_life(api, tenant, "other")

    stream = streams(
        stub,
        tenant.key,
        after_event_id=0,
        post_ids=[post_id, other],
        types=[T.POST_EVENT_TYPE_PUBLISHED],
    )
    stream.wait(lambda found: len(found) >= 2, message="both PUBLISHED")
    one_more = published_life(api, tenant, "unwatched")
    live(streams(stub, tenant.key), api, tenant)  # the hub has fanned out past it

    assert [(e.post_id, e.type) for e in stream.events] == [
        (post_id, T.POST_EVENT_TYPE_PUBLISHED),
        (other, T.POST_EVENT_TYPE_PUBLISHED),
    ]
    assert one_more not in {e.post_id for e in stream.events}


def test_another_workspaces_events_never_appear(stub, api, make_tenant, make_key, streams):
    ours, theirs = make_tenant("ours"), make_tenant("theirs")
    replayed = streams(stub, ours.key, after_event_id=0)
    following = streams(stub, ours.key)
    live(following, api, ours)

    for n in range(5):
        api.create(theirs, text=f"theirs {n}")
    published_life(api, theirs)
    mine = api.create(ours, text="ours")
    for stream in (replayed, following):
        stream.wait_for_post(mine.post_id, T.POST_EVENT_TYPE_CREATED)

    for stream in (replayed, following):
        assert {e.workspace_id for e in stream.events} == {ours.workspace_id}
    # A key of both workspaces must say which; one of theirs alone is refused.
    both = make_key(ours.workspace_id, theirs.workspace_id)
    refused = streams(stub, both).wait_end()
    assert refused.kind == ("INVALID_ARGUMENT", "WORKSPACE_REQUIRED")
    denied = streams(stub, ours.key, workspace_id=theirs.workspace_id).wait_end()
    assert denied.kind == ("PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")


@pytest.mark.parametrize("key", [None, "key_nope.secret"])
def test_a_stream_without_a_valid_key_is_refused(stub, key, streams):
    failure = streams(stub, key, after_event_id=0).wait_end()

    assert failure.kind == ("UNAUTHENTICATED", "API_KEY_INVALID")


def test_a_bad_request_is_refused(stub, tenant, streams):
    failure = streams(stub, tenant.key, types=[999]).wait_end()
    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    failure = streams(stub, tenant.key, after_event_id=-1).wait_end()
    assert failure.fields == {"after_event_id"}


# ------------------------------------------------- one process, many streams


class AsyncStreams:
    """``count`` WatchPostEvents streams opened by a grpc.aio client on an event
    loop of its own (one thread), each read into its own list."""

    def __init__(
        self,
        address: str,
        key: str,
        count: int,
        channels: int = 10,
        after_event_id: int | None = None,
    ):
        self.received: list[list[pb.PostEvent]] = [[] for _ in range(count)]
        self._request = pb.WatchPostEventsRequest(after_event_id=after_event_id)
        self.errors: list[BaseException] = []
        self._address, self._key, self._channels = address, key, channels
        self._loop = asyncio.new_event_loop()
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self._thread.start()

    async def _main(self) -> None:
        self._done = asyncio.Event()
        channels = [grpc.aio.insecure_channel(self._address) for _ in range(self._channels)]
        metadata = (("authorization", f"Bearer {self._key}"),)

        async def read(n: int) -> None:
            stub = posts_pb2_grpc.PostServiceStub(channels[n % len(channels)])
            call = stub.WatchPostEvents(self._request, metadata=metadata)
            try:
                async for answer in call:
                    self.received[n].append(answer.event)
            except grpc.aio.AioRpcError as error:
                self.errors.append(error)

        tasks = [asyncio.ensure_future(read(n)) for n in range(len(self.received))]
        await self._done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()

    def close(self) -> None:
        wait_for(lambda: self._done is not None)
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout=DEFAULT_WAIT * 3)
        self._loop.close()


def test_a_thousand_streams_on_one_process_each_get_every_event(server, api, tenant):
    if server.backend != "sqlite":
        pytest.skip("the embedded server is the one that holds them all")
    from service import watch

    hub = watch.running_hub()
    before = hub.watchers
    # The process also runs this test and what earlier modules left behind: the
    # streams must add no thread per stream (the client's reader thread and its
    # gRPC pollers are a handful).
    baseline = threading.active_count()
    streams = AsyncStreams(server.address, tenant.key, 1000)
    try:
        # When a thousand streams are open (registered with the process's hub)
        wait_for(
            lambda: hub.watchers >= before + 1000 or streams.errors,
            timeout=60,
            message="1000 watchers",
        )
        assert not streams.errors, streams.errors[0]
        threads = threading.active_count()
        # ... and a post is created after they all opened
        post = api.create(tenant, text="to everyone")

        # Then every one of them gets its event, and the process holds few threads
        wait_for(
            lambda: all(any(e.post_id == post.post_id for e in got) for got in streams.received),
            timeout=30,
            message="the event on all 1000 streams",
        )
        assert all([e.post_id for e in got] == [post.post_id] for got in streams.received)
        threads = max(threads, threading.active_count())
        print(f"1000 streams: {threads} threads in the process, {baseline} before")
        assert threads - baseline <= 8
    finally:
        streams.close()
    wait_for(lambda: hub.watchers == before, message="the streams' watchers gone")


def test_a_watcher_too_slow_to_keep_up_is_ended_and_resumes_without_loss(
    server, stub, api, make_tenant, streams, monkeypatch
):
    if server.backend != "sqlite":
        pytest.skip("one backend is enough: the queue is the process's")
    from service import watch

    hub = watch.running_hub()
    monkeypatch.setattr(hub, "max_queued", 5)
    tenant = make_tenant("slow")
    # Given a client that opens a stream and does not read it
    request = pb.WatchPostEventsRequest(after_event_id=0)
    call = stub.WatchPostEvents(
        request, metadata=(("authorization", f"Bearer {tenant.key}"),), timeout=120
    )
    wait_for(lambda: hub.watchers >= 1)
    # When far more events commit than the flow-control windows and its queue hold
    for n in range(120):
        api.create(tenant, text=f"{n:03d} " + "x" * 60_000)
    stored = stored_events(tenant.workspace_id)
    wait_for(lambda: hub.through >= stored[-1].event_id)

    # Then it reads some events, in order, then RESOURCE_EXHAUSTED naming the last one
    got = []
    with pytest.raises(grpc.RpcError) as raised:
        for answer in call:
            got.append(answer.event.event_id)
    failure = Failure.of(raised.value)
    assert failure.kind == ("RESOURCE_EXHAUSTED", "WATCHER_TOO_SLOW")
    assert got == [e.event_id for e in stored][: len(got)]
    assert len(got) < len(stored)
    assert failure.metadata["lastEventId"] == str(got[-1] if got else 0)
    assert "after_event_id" in failure.message
    # ... and a stream resumed from there gets the rest
    monkeypatch.setattr(hub, "max_queued", watch.MAX_QUEUED)
    resumed = streams(stub, tenant.key, after_event_id=got[-1] if got else 0)
    resumed.wait(lambda found: len(found) >= len(stored) - len(got), timeout=30)
    assert got + resumed.ids == [e.event_id for e in stored]


def test_a_pruned_cursor_is_out_of_range(stub, api, make_tenant, streams):
    """Last in the module: it prunes every event of its database."""
    from service import events

    tenant = make_tenant("pruned")
    published_life(api, tenant)
    first = stored_events(tenant.workspace_id)[0].event_id
    events.sequence()
    assert events.prune(before=dt.datetime(2999, 1, 1, tzinfo=dt.UTC), max_batches=10_000)

    failure = streams(stub, tenant.key, after_event_id=first).wait_end()

    assert failure.kind == ("OUT_OF_RANGE", "EVENT_CURSOR_EXPIRED")
    assert failure.metadata["afterEventId"] == str(first)
    # From the start (0) or from now on is still fine
    for fields in ({"after_event_id": 0}, {}):
        stream = streams(stub, tenant.key, **fields)
        live(stream, api, tenant)
