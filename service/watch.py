"""WatchPostEvents: one hub per server process, fanning committed events out to
every open stream of the process, with no thread per stream.

The server is gRPC's synchronous one, whose unary calls run on its thread pool
at full speed. A stream uses its *non-blocking* mode (as gRPC's own health
Watch does): the handler registers a ``Watcher`` with the hub and returns at
once, and the hub's threads send through the stream's callback later.

- **One poller per process.** A thread reads the events table after its cursor
  every POSTS_EVENT_POLL_INTERVAL (all workspaces, one query per poll, not one
  per watcher) and offers each batch to every watcher: each keeps the events
  its filter wants, in a bounded queue.
- **A few senders.** ``SENDERS`` threads send what the watchers have queued, one
  watcher at a time each (a send waits for the client's flow control). A
  stream's replay is sent the same way, one page at a time.
- **No gap or repeat at the join.** A watcher registers first (from then on its
  queue gets every event above the hub's cursor at that moment, ``join``),
  replays from the database after its ``after_event_id`` up to ``join``, then
  sends its queued events above the last one it replayed.
- **Ends.** A watcher whose queue overflows (``max_queued``) ends
  RESOURCE_EXHAUSTED / WATCHER_TOO_SLOW, never silently thinned; draining ends
  every stream UNAVAILABLE / SERVER_DRAINING. Both name the last event_id sent,
  to resume from. A client that stops reading for ``STUCK_SECONDS`` while a
  send waits on it has its call cancelled: it holds a sender no longer.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from posts.v1 import posts_pb2 as pb

from service import db, errors, events

log = logging.getLogger(__name__)

#: Events one watcher may have waiting to be sent; past it the stream ends WATCHER_TOO_SLOW.
MAX_QUEUED = 10_000
#: Events one poll reads (the hub reads again at once while they come full).
POLL_PAGE = 1000
#: Events one replay read fetches (then the sender moves on to another watcher).
REPLAY_PAGE = 500
#: Threads sending to the streams.
SENDERS = 4
#: Seconds a send may wait on a client that does not read before its call is cancelled.
STUCK_SECONDS = 30.0

EVERYTHING = events.Filter(None)

_running: Hub | None = None


@dataclasses.dataclass
class Hooks:
    """Named points where tests can step in.

    ``before_offer(watched, after, upto)`` runs in the poller once it has read
    the events after ``after`` up to ``upto`` of the ``watched`` workspaces,
    before it offers them.
    """

    before_offer: list = dataclasses.field(default_factory=list)


hooks = Hooks()


def running_hub() -> Hub | None:
    """This process's started hub (None when no server runs here)."""
    return _running


class Watcher:
    """One open stream: what it wants, what waits to be sent, where it stands.

    Its fields are the hub's to change, under the hub's lock; a sender works on
    one watcher at a time (``busy``).
    """

    def __init__(self, which: events.Filter, send: Callable, context, after: int | None, join: int):
        if which.workspace_id is None:  # every workspace: only the hub's own read
            raise ValueError("a stream watches one workspace")
        self.which = which
        self.workspace_id = which.workspace_id
        self.send = send  # the stream's callback: a response, or None to end it
        self.context = context
        self.queue: collections.deque[pb.PostEvent] = collections.deque()
        #: Replay from the database after ``last`` up to ``join`` first (None: no replay).
        self.join = join if after is not None and after < join else None
        self.last = after if after is not None else join  # the last event_id sent
        self.ended: errors.ServiceError | None = None  # set: the status to end with
        self.busy_since: float | None = None  # when a sender took it (None: idle)
        self.scheduled = False  # in the hub's ready queue
        self.closed = False  # the call is over: nothing more to do

    def has_work(self) -> bool:
        return not self.closed and (
            bool(self.queue) or self.join is not None or self.ended is not None
        )


class Hub:
    """The process's one poller, its senders and its watchers.

    ``start()`` before serving (the cursor starts at the newest event),
    ``drain()`` to end every stream, ``stop()`` after the server has stopped.
    """

    def __init__(self, interval: float, max_queued: int | None = None, senders: int = SENDERS):
        self.interval = interval
        self.max_queued = max_queued or MAX_QUEUED
        self._senders_count = senders
        self._lock = threading.Condition()
        self._watchers: set[Watcher] = set()
        self._by_workspace: dict[str, set[Watcher]] = {}  # the same watchers, by workspace
        self._ready: collections.deque[Watcher] = collections.deque()  # has work, not busy
        self._through = 0  # the newest event_id offered to the watchers
        self._draining = False
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def watchers(self) -> int:
        """How many streams this process follows."""
        return len(self._watchers)

    @property
    def through(self) -> int:
        """The newest event_id offered to the watchers."""
        return self._through

    def start(self) -> None:
        global _running
        self._through = events.last_event_id()
        self._threads = [threading.Thread(target=self._poll, name="event-hub", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send, name=f"event-sender-{n}", daemon=True)
            for n in range(self._senders_count)
        ]
        for thread in self._threads:
            thread.start()
        _running = self

    def poke(self) -> None:
        """Polls now rather than at the next interval."""
        self._poke.set()

    def drain(self) -> None:
        """Ends every open stream SERVER_DRAINING, and refuses new ones; returns
        once each has been sent its end (or ``STUCK_SECONDS`` have passed)."""
        with self._lock:
            self._draining = True
            for watcher in self._watchers:
                self._end(watcher, errors.ServerDraining)
            deadline = time.monotonic() + STUCK_SECONDS
            while self._watchers and time.monotonic() < deadline:
                self._lock.wait(0.1)

    def stop(self) -> None:
        global _running
        if _running is self:
            _running = None
        self._stop.set()
        self._poke.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- a stream opens ------------------------------------------------------

    def follow(self, which: events.Filter, after: int | None, send: Callable, context) -> None:
        """Starts sending ``which``'s events after ``after`` (None: from now on)
        through the stream callback ``send``, then live ones, until the call
        ends. Returns at once. Raises EventCursorExpired for a pruned cursor,
        ServerDraining while draining."""
        if after:
            pruned = events.pruned_through()
            if after < pruned:
                raise errors.EventCursorExpired(after, pruned)
        with self._lock:
            if self._draining:
                raise errors.ServerDraining(after if after is not None else self._through)
            # Registered at ``through``: from here its queue gets every event above it.
            watcher = Watcher(which, send, context, after, self._through)
            self._watchers.add(watcher)
            self._by_workspace.setdefault(watcher.workspace_id, set()).add(watcher)
            if watcher.has_work():
                self._schedule(watcher)
        if not context.add_callback(lambda: self._closed(watcher)):
            self._closed(watcher)  # the call ended already

    def _closed(self, watcher: Watcher) -> None:
        """The call is over (ended here, cancelled or gone): forget the watcher."""
        with self._lock:
            self._forget(watcher)

    # -- under the lock ------------------------------------------------------

    def _forget(self, watcher: Watcher) -> None:
        watcher.closed = True
        watcher.queue.clear()
        self._watchers.discard(watcher)
        workspace = self._by_workspace.get(watcher.workspace_id)
        if workspace is not None:
            workspace.discard(watcher)
            if not workspace:
                del self._by_workspace[watcher.workspace_id]
        self._lock.notify_all()

    def _schedule(self, watcher: Watcher) -> None:
        if watcher.busy_since is None and not watcher.scheduled:
            watcher.scheduled = True
            self._ready.append(watcher)
            self._lock.notify_all()

    def _end(self, watcher: Watcher, why: Callable[[int], errors.ServiceError]) -> None:
        """Ends the stream with ``why`` at its next send; what was queued is
        dropped (the client resumes from the last event it was sent)."""
        if watcher.ended is None and not watcher.closed:
            watcher.ended = why(watcher.last)
            watcher.queue.clear()
            watcher.join = None
            self._schedule(watcher)

    # -- the poller ------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            read = 0
            try:
                read = self._poll_once()
            except db.UNAVAILABLE as error:
                log.warning("event hub: database unavailable (%s); reading again", error)
            except Exception:
                log.exception("event hub: reading events failed")
            self._cancel_stuck()
            if read < POLL_PAGE:
                self._poke.wait(self.interval)
                self._poke.clear()

    def _poll_once(self) -> int:
        """Reads the events after the hub's cursor, of the workspaces someone
        watches, and offers them; how many it read."""
        events.sequence(wait=False)
        upto = events.last_event_id(numbered=True)
        with self._lock:
            watched = frozenset(self._by_workspace)
            after = self._through
        batch = []
        if watched and upto > after:
            batch = events.read(after, EVERYTHING, POLL_PAGE, upto=upto, workspaces=watched)
            if len(batch) == POLL_PAGE:
                upto = batch[-1].event_id
        for hook in hooks.before_offer:
            hook(watched, after, upto)
        self._offer(batch, watched, upto)
        return len(batch)

    def _offer(self, batch: list[pb.PostEvent], watched: frozenset[str], upto: int) -> None:
        """Offers ``batch`` (the events of the ``watched`` workspaces up to
        ``upto``) to the watchers, and moves the hub's cursor to ``upto``."""
        with self._lock:
            if upto <= self._through:
                return
            by_workspace = collections.defaultdict(list)
            for event in batch:
                by_workspace[event.workspace_id].append(event)
            for workspace, watchers in self._by_workspace.items():
                if workspace not in watched:
                    # Registered since the read, whose workspace it skipped: those
                    # events come from its replay, which now reaches ``upto``.
                    for watcher in watchers:
                        if watcher.ended is None and watcher.last < upto:
                            watcher.join = max(watcher.join or 0, upto)
                            self._schedule(watcher)
                    continue
                for watcher in watchers:
                    self._queue(watcher, by_workspace.get(workspace, ()))
            self._through = upto

    def _queue(self, watcher: Watcher, batch) -> None:
        if watcher.ended is not None:
            return
        which, queue = watcher.which, watcher.queue
        for event in batch:
            if which.matches(event):
                if len(queue) >= self.max_queued:
                    self._end(watcher, errors.WatcherTooSlow)
                    return
                queue.append(event)
        if queue:
            self._schedule(watcher)

    def _cancel_stuck(self) -> None:
        """Cancels the calls whose send has waited on the client for too long."""
        now = time.monotonic()
        with self._lock:
            stuck = [
                w
                for w in self._watchers
                if w.busy_since is not None and now - w.busy_since > STUCK_SECONDS
            ]
        for watcher in stuck:
            log.warning("a WatchPostEvents client stopped reading: its call is cancelled")
            watcher.context.cancel()

    # -- the senders -----------------------------------------------------------

    def _send(self) -> None:
        while True:
            with self._lock:
                while not self._ready and not self._stop.is_set():
                    self._lock.wait()
                if self._stop.is_set():
                    return
                watcher = self._ready.popleft()
                watcher.scheduled = False
                if not watcher.has_work():
                    continue
                watcher.busy_since = time.monotonic()
                ended, join = watcher.ended, watcher.join
                live = []
                if join is None:  # replayed: the queue is next
                    live = list(watcher.queue)
                    watcher.queue.clear()
            try:
                if ended is not None:
                    self._finish(watcher, ended)
                elif join is not None:
                    self._replay_page(watcher, join)
                else:
                    self._send_live(watcher, live)
            except Exception:
                log.exception("WatchPostEvents: sending failed; the stream ends")
                watcher.context.cancel()
            with self._lock:
                watcher.busy_since = None
                if not watcher.context.is_active():
                    self._forget(watcher)
                elif watcher.has_work():
                    self._schedule(watcher)

    def _send_live(self, watcher: Watcher, live: list) -> None:
        """Sends the events taken from ``watcher``'s queue that it has not had yet."""
        for event in live:
            if event.event_id > watcher.last:
                watcher.send(pb.WatchPostEventsResponse(event=event))
                watcher.last = event.event_id

    def _replay_page(self, watcher: Watcher, join: int) -> None:
        """Sends one page of the replay (events after ``watcher.last`` up to ``join``)."""
        with db.connection():
            page = events.read(watcher.last, watcher.which, REPLAY_PAGE)
        for event in page:
            if event.event_id > join:  # the queue has it
                break
            watcher.send(pb.WatchPostEventsResponse(event=event))
            watcher.last = event.event_id
        else:
            if len(page) == REPLAY_PAGE and watcher.last < join:
                return  # more to replay: the next page on the next turn
        with self._lock:
            if watcher.join == join:
                watcher.join = None  # replayed: its queue follows

    def _finish(self, watcher: Watcher, ended: errors.ServiceError) -> None:
        """Ends the stream with ``ended``'s status (its rich details included)."""
        status = errors.to_status(ended)
        watcher.context.set_code(status.code)
        watcher.context.set_details(status.details)
        watcher.context.set_trailing_metadata(status.trailing_metadata)
        watcher.send(None)
        with self._lock:
            self._forget(watcher)
