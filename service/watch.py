"""WatchPostEvents: one hub per server process, fanning committed events out to
every open stream of the process.

The hub polls the database for new events (every POSTS_EVENT_POLL_INTERVAL,
all workspaces, one query per poll, not one per watcher) in a thread of its
own, and hands each batch to the event loop, which offers it to every watcher
of the process. Everything about the watchers (the set, their queues, the
cursor they join at) is touched only on the event loop's thread.

A watcher never skips or repeats an event: it registers with the hub first
(its queue buffers what the hub fans out from then on, every event above the
hub's cursor at that moment), replays from the database the events after its
``after_event_id`` up to that cursor, then delivers its buffered events above
the last one it replayed.

A watcher's queue is bounded (``MAX_QUEUED``): one that cannot keep up has its
stream ended RESOURCE_EXHAUSTED / ``WATCHER_TOO_SLOW`` naming the last event_id
it was sent, never silently thinned. Draining ends every stream UNAVAILABLE /
``SERVER_DRAINING``, also naming it: the client resumes from there.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator
from concurrent import futures

import grpc
from posts.v1 import posts_pb2 as pb

from service import errors, events

log = logging.getLogger(__name__)

#: Events one watcher may have waiting to be sent; past it the stream ends WATCHER_TOO_SLOW.
MAX_QUEUED = 10_000
#: Events one poll reads (the hub reads again at once while they come full).
POLL_PAGE = 1000
#: Events one replay read fetches.
REPLAY_PAGE = 500

EVERYTHING = events.Filter(None)

_running: Hub | None = None


def running_hub() -> Hub | None:
    """This process's started hub (None when no server runs here)."""
    return _running


class Watcher:
    """One stream's queue of live events (event-loop thread only)."""

    __slots__ = ("_queue", "_ready", "ended", "max_queued", "which")

    def __init__(self, which: events.Filter, max_queued: int):
        self.which = which
        self.max_queued = max_queued
        self.ended: type[errors.ServiceError] | None = None
        self._queue: collections.deque[pb.PostEvent] = collections.deque()
        self._ready = asyncio.Event()

    def offer(self, batch: list[pb.PostEvent]) -> None:
        if self.ended is not None:
            return
        which, queue = self.which, self._queue
        for event in batch:
            if which.matches(event):
                if len(queue) >= self.max_queued:
                    self.end(errors.WatcherTooSlow)
                    return
                queue.append(event)
        if queue:
            self._ready.set()

    def end(self, why: type[errors.ServiceError]) -> None:
        """Ends the stream at its next wait: it raises ``why``; what was queued is dropped
        (the client resumes from the last event it was sent)."""
        if self.ended is None:
            self.ended = why
            self._queue.clear()
            self._ready.set()

    async def take(self, last_event_id: int) -> list[pb.PostEvent]:
        """Every queued event, waiting for one; raises the end's error when ended."""
        while not self._queue:
            if self.ended is not None:
                raise self.ended(last_event_id)
            self._ready.clear()
            await self._ready.wait()
        taken = list(self._queue)
        self._queue.clear()
        return taken


class Hub:
    """The process's one poller and its watchers.

    ``start(loop)`` before serving (the cursor starts at the newest event),
    ``drain()`` on the loop to end every stream, ``stop()`` after the server
    has stopped. ``executor`` runs the replay's database reads (the server's
    thread pool).
    """

    def __init__(self, interval: float, executor: futures.Executor | None = None,
                 max_queued: int | None = None):  # fmt: skip
        self.interval = interval
        self.max_queued = max_queued or MAX_QUEUED
        self._executor = executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[Watcher] = set()  # loop thread only
        self._through = 0  # the newest event_id fanned out to the watchers (loop thread only)
        self._cursor = 0  # the newest event_id read (poller thread)
        self._draining = False
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def watchers(self) -> int:
        """How many streams this process follows."""
        return len(self._watchers)

    @property
    def through(self) -> int:
        """The newest event_id handed to the watchers."""
        return self._through

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        global _running
        self._loop = loop
        self._cursor = self._through = events.last_event_id()
        self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
        self._thread.start()
        _running = self

    def poke(self) -> None:
        """Polls now rather than at the next interval (an in-process writer committed)."""
        self._poke.set()

    def drain(self) -> None:
        """Ends every open stream SERVER_DRAINING, and any opened from now on (loop thread)."""
        self._draining = True
        for watcher in self._watchers:
            watcher.end(errors.ServerDraining)

    def stop(self) -> None:
        global _running
        if _running is self:
            _running = None
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- the poller (its own thread) ----------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = []
            try:
                events.sequence(wait=False)
                batch = events.read(self._cursor, EVERYTHING, POLL_PAGE)
            except Exception:
                log.exception("event hub: reading events failed")
            if batch:
                self._cursor = batch[-1].event_id
                try:
                    self._loop.call_soon_threadsafe(self._fan_out, batch)
                except RuntimeError:  # the loop is closed: the server has stopped
                    return
            if len(batch) < POLL_PAGE:
                self._poke.wait(self.interval)
                self._poke.clear()

    # -- the event loop's side ----------------------------------------------

    def _fan_out(self, batch: list[pb.PostEvent]) -> None:
        for watcher in self._watchers:
            watcher.offer(batch)
        self._through = batch[-1].event_id

    async def follow(self, which: events.Filter, after: int | None) -> AsyncIterator[pb.PostEvent]:
        """The events ``which`` wants after ``after`` (None: from now on), then
        live ones, until the client cancels or the stream is ended."""
        if self._draining:
            raise errors.ServerDraining(after if after is not None else self._through)
        watcher = Watcher(which, self.max_queued)
        # Registered first: from here the watcher's queue gets every event above ``through``.
        self._watchers.add(watcher)
        through = self._through
        try:
            last = through if after is None else after
            if after is not None:
                loop = asyncio.get_running_loop()
                pruned = await loop.run_in_executor(self._executor, events.pruned_through)
                if after and after < pruned:
                    raise errors.EventCursorExpired(after, pruned)
                while last < through:
                    page = await loop.run_in_executor(self._executor, events.read, last, which,
                                                      REPLAY_PAGE)  # fmt: skip
                    for event in page:
                        if event.event_id > through:  # the queue has it
                            break
                        if watcher.ended is not None:  # drained (or too slow) mid-replay
                            raise watcher.ended(last)
                        yield event
                        last = event.event_id
                    else:
                        if len(page) == REPLAY_PAGE:
                            continue
                    break
            while True:
                for event in await watcher.take(last):
                    if event.event_id > last:
                        yield event
                        last = event.event_id
        finally:
            self._watchers.discard(watcher)
