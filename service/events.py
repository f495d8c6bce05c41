"""Post events: the history of every change of a post, in commit order.

``record`` writes an event in the transaction of the change it records (the
one writer, service.store, calls it). Each event carries the whole post as it
stood after (a serialized posts.v1.Post), so that a reader never needs the
post's current row.

The public ``event_id`` increases in commit order, the order readers must see:
a watcher that has read up to N must never later meet an event below N.
- SQLite has one writer at a time, so the insertion id is already in commit order.
- PostgreSQL commits concurrent transactions in any order, so an insertion id
  can commit after a higher one was read. There ``seq`` is given out after the
  fact: ``sequence`` numbers committed rows in insertion order under the
  event_log row's lock, which it holds until its own commit, so numbered
  ranges become visible in order. Within one post insertion order is commit
  order (the post's row lock orders its changes). Readers number first, then read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import cast

from posts.v1 import posts_pb2 as pb

from service import codec, db, errors
from service.lifecycle import Event, Outcome, Status
from service.models import EventLog, LoadedPost, Post, PostEvent, load_items, micros

T = pb.PostEventType

#: Who causes each lifecycle event: ``cause`` in the API.
ORIGINS = {
    **dict.fromkeys(
        (
            Event.CREATE,
            Event.PUBLISH,
            Event.SCHEDULE,
            Event.DRAFT,
            Event.CANCEL,
            Event.DELETE,
            Event.EDIT,
        ),
        "api",
    ),
    **dict.fromkeys((Event.DUE, Event.RETRY_DUE), "dispatcher"),
    **dict.fromkeys(
        (
            Event.CLAIM,
            Event.RENEW,
            Event.ITEM_LIVE,
            Event.SUCCEED,
            Event.FAIL,
            Event.RETRY,
            Event.UNKNOWN,
            Event.CRASH,
            Event.PACED,
        ),
        "worker",
    ),
    **dict.fromkeys((Event.LOST_MESSAGE, Event.TAKE_OVER, Event.RESTART), "sweeper"),
}

#: Events that change nothing a caller sees: a lease renewed, a lost message
#: sent again, an embedded restart re-sending a PENDING post's message.
_UNRECORDED = frozenset({Event.RENEW, Event.LOST_MESSAGE})

#: Webhook type names: ``post.`` and the PostEventType's suffix in lower case.
WEBHOOK_NAMES = {
    value: "post." + T.Name(value).removeprefix("POST_EVENT_TYPE_").lower()
    for value in T.values()
    if value != T.POST_EVENT_TYPE_UNSPECIFIED
}


def recorded(event: Event, before: Status | None) -> bool:
    """Whether ``event`` on a post in ``before`` is recorded (and so reads its items)."""
    return not (event in _UNRECORDED or (event is Event.RESTART and before is Status.PENDING))


def event_type(event: Event, before: Status | None, after: Status) -> int:
    """The PostEventType of ``event`` moving a post from ``before`` to ``after``;
    UNSPECIFIED for an event that is not recorded."""
    if not recorded(event, before):
        return T.POST_EVENT_TYPE_UNSPECIFIED
    if event is Event.CREATE:
        return T.POST_EVENT_TYPE_CREATED
    if event is Event.DELETE:
        return T.POST_EVENT_TYPE_DELETED
    if after is Status.FAILED:
        return T.POST_EVENT_TYPE_FAILED
    if after is Status.CANCELLED:
        return T.POST_EVENT_TYPE_CANCELLED
    if after is Status.PUBLISHED:
        return T.POST_EVENT_TYPE_PUBLISHED
    if event is Event.ITEM_LIVE:
        return T.POST_EVENT_TYPE_ITEM_PUBLISHED
    if after is Status.PROCESSING:
        return T.POST_EVENT_TYPE_PROCESSING
    if before is Status.PROCESSING:  # the attempt ended, another follows
        return T.POST_EVENT_TYPE_RETRY_SCHEDULED
    if after is Status.PENDING:
        return T.POST_EVENT_TYPE_QUEUED
    if after is Status.SCHEDULED and before is not Status.SCHEDULED:
        return T.POST_EVENT_TYPE_SCHEDULED
    return T.POST_EVENT_TYPE_UPDATED


def record(
    post: Post,
    event: Event,
    before: Status | None,
    outcome: Outcome,
    now: dt.datetime,
    *,
    loaded: LoadedPost | None = None,
    item_index: int | None = None,
) -> None:
    """Writes the events ``event`` makes of ``post`` (already written, in this
    transaction); the database adds the webhook outbox rows they make.

    ``loaded``: the post's items as written in this transaction, when the
    caller has them (else they are read). ``item_index``: the item a SUCCEED
    found live, recorded as its ITEM_PUBLISHED before the PUBLISHED.
    """
    after = Status(post.status)
    kind = event_type(event, before, after)
    if kind == T.POST_EVENT_TYPE_UNSPECIFIED:
        return
    if loaded is None:
        loaded = load_items([post])[0]
    snapshot = PostEvent.snapshot.db_value(codec.encode_post(loaded).SerializeToString())
    kinds = [kind]
    if event is Event.SUCCEED and item_index is not None:
        kinds.insert(0, T.POST_EVENT_TYPE_ITEM_PUBLISHED)
    elif event is not Event.ITEM_LIVE:
        item_index = None
    failed = kind in (T.POST_EVENT_TYPE_RETRY_SCHEDULED, T.POST_EVENT_TYPE_FAILED)
    at = micros(now)
    params = [
        value
        for each in kinds
        for value in (
            post.workspace_id,
            post.id,
            at,
            each,
            before.value if before else "",
            post.status,
            outcome.cause,
            ORIGINS[event],
            post.attempts or 0,
            item_index if each == T.POST_EVENT_TYPE_ITEM_PUBLISHED else None,
            post.error_code if failed else "",
            post.error_message if failed else "",
            post.job_token or "",
            snapshot,
        )
    ]
    # One statement for both of a SUCCEED's events (ids in VALUES order). The
    # database writes the events' webhook outbox rows (a trigger: service.webhooks).
    _INSERT.execute(*params)


#: The columns ``record`` writes, in its parameters' order (a hot path: no
#: model instance per row).
_COLUMNS = (
    PostEvent.workspace,
    PostEvent.post,
    PostEvent.at,
    PostEvent.type,
    PostEvent.from_status,
    PostEvent.to_status,
    PostEvent.cause,
    PostEvent.origin,
    PostEvent.attempt,
    PostEvent.item_index,
    PostEvent.error_code,
    PostEvent.error_message,
    PostEvent.job_token,
    PostEvent.snapshot,
)
_INSERT = db.Compiled(
    lambda *values: PostEvent.insert_many(
        dict(zip(_COLUMNS, values[start : start + len(_COLUMNS)], strict=True))
        for start in range(0, len(values), len(_COLUMNS))
    )
)


# ---------------------------------------------------------------- reading


def cursor_field():
    """The column that holds the public event_id."""
    return PostEvent.id if db.is_sqlite() else PostEvent.seq


def event_id(row: PostEvent) -> int | None:
    return row.id if db.is_sqlite() else row.seq


def sequence(wait: bool = True, limit: int = 5000) -> int:
    """PostgreSQL: gives the committed, unnumbered events their ``seq``, in
    insertion order; how many it numbered. ``wait=False`` leaves it to whichever
    process already holds the event_log lock. A no-op on SQLite.

    Runs in a transaction of its own: call it outside any other.
    """
    if db.is_sqlite():
        return 0
    numbered = 0
    with db.connection():
        while True:
            with db.database.atomic():
                lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
                row = db.database.execute_sql(
                    f'SELECT "last_seq" FROM "event_log" WHERE "id" = 1 {lock}'
                ).fetchone()
                if row is None:
                    return numbered
                ids = [
                    r[0]
                    for r in db.database.execute_sql(
                        'SELECT "id" FROM "post_event" WHERE "seq" IS NULL ORDER BY "id" LIMIT %s',
                        (limit,),
                    )
                ]
                if not ids:
                    return numbered
                base = row[0]
                db.database.execute_sql(
                    'UPDATE "post_event" SET "seq" = %s + t.n FROM unnest(%s::bigint[]) '
                    'WITH ORDINALITY AS t(id, n) WHERE "post_event"."id" = t.id',
                    (base, ids),
                )
                db.database.execute_sql(
                    'UPDATE "event_log" SET "last_seq" = %s WHERE "id" = 1', (base + len(ids),)
                )
            numbered += len(ids)
            if len(ids) < limit:
                return numbered


def last_event_id(numbered: bool = False) -> int:
    """The newest event_id (0 when there is none): the cursor of "from now on".
    It numbers what has committed first, unless ``numbered`` (the newest numbered)."""
    if not numbered:
        sequence()
    with db.connection():
        value = PostEvent.select(cursor_field()).order_by(cursor_field().desc()).limit(1).scalar()
    return value or 0


def pruned_through() -> int:
    with db.connection():
        return EventLog.select(EventLog.pruned_through).where(EventLog.id == 1).scalar() or 0


@dataclasses.dataclass(frozen=True)
class Filter:
    """Which events a reader wants: all of a workspace's, or some posts', some types."""

    workspace_id: str | None = None  # None: every workspace (a process's fan-out)
    post_ids: tuple[str, ...] = ()
    types: tuple[int, ...] = ()

    def matches(self, event: pb.PostEvent) -> bool:
        return (
            (self.workspace_id is None or event.workspace_id == self.workspace_id)
            and (not self.post_ids or event.post_id in self.post_ids)
            and (not self.types or event.type in self.types)
        )


def read(
    after: int,
    which: Filter,
    limit: int,
    *,
    upto: int | None = None,
    workspaces: Collection[str] = (),
) -> list[pb.PostEvent]:
    """Up to ``limit`` events with an event_id above ``after`` (and at most
    ``upto``) that ``which`` wants (and of one of ``workspaces``, when given),
    oldest first. Only numbered events: call ``sequence`` first."""
    cursor = cursor_field()
    query = PostEvent.select().where(cursor > after)
    if upto is not None:
        query = query.where(cursor <= upto)
    if not db.is_sqlite():
        query = query.where(PostEvent.seq.is_null(False))
    if which.workspace_id is not None:
        query = query.where(PostEvent.workspace == which.workspace_id)
    if workspaces:
        query = query.where(PostEvent.workspace.in_(sorted(workspaces)))
    if which.post_ids:
        query = query.where(PostEvent.post.in_(which.post_ids))
    if which.types:
        query = query.where(PostEvent.type.in_(which.types))
    with db.connection():
        return [encode(row) for row in query.order_by(cursor).limit(limit)]


def encode(row: PostEvent) -> pb.PostEvent:
    """A stored event as a posts.v1.PostEvent."""
    message = pb.PostEvent(
        event_id=event_id(row),
        post_id=row.post_id,
        workspace_id=row.workspace,
        type=cast("pb.PostEventType", row.type),  # see service.codec on the casts
        status=codec.status_value(row.to_status),
        create_time=codec.timestamp(row.at),
        attempt=row.attempt,
        cause=row.origin,
    )
    if row.item_index is not None:
        message.item_index = row.item_index
    if row.error_code or row.error_message:
        message.error.CopyFrom(pb.PostError(code=row.error_code, message=row.error_message))
    if row.snapshot:
        message.post.ParseFromString(bytes(row.snapshot))
    return message


DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page(which: Filter, page_size: int, after: int) -> tuple[list[pb.PostEvent], int | None]:
    """One ListPostEvents page after event_id ``after``: its events and the
    event_id the next page starts after (None on the last page).

    Raises errors.EventCursorExpired when events after ``after`` were pruned.
    """
    sequence()
    pruned = pruned_through()
    if after and after < pruned:
        raise errors.EventCursorExpired(after, pruned)
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    found = read(after, which, size + 1)
    if len(found) > size:
        return found[:size], found[size - 1].event_id
    return found, None


# ---------------------------------------------------------------- retention


def prune(before: dt.datetime, batch: int = 500, max_batches: int = 20) -> int:
    """Deletes the oldest numbered events while they are older than ``before``,
    ``batch`` rows per transaction (short locks), and remembers the newest
    event_id it deleted; how many it deleted.

    Oldest by event_id, which follows time closely enough (no index on time:
    every change of a post writes a row): pruning stops at the first event that
    is young enough.
    """
    cursor = cursor_field()
    deleted = 0
    with db.connection():
        for _ in range(max_batches):
            with db.write():
                oldest = (
                    PostEvent.select(PostEvent.id, PostEvent.at, cursor.alias("cursor"))
                    .where(cursor.is_null(False))
                    .order_by(cursor)
                    .limit(batch)
                )
                rows = []
                for row in oldest.objects():
                    if row.at >= before:
                        break
                    # The aliased column, which .objects() sets on the row.
                    rows.append((row.id, row.cursor))  # type: ignore[attr-defined]
                if not rows:
                    break
                PostEvent.delete().where(PostEvent.id.in_([r[0] for r in rows])).execute()
                newest = rows[-1][1]
                EventLog.update(pruned_through=newest).where(
                    (EventLog.id == 1) & (EventLog.pruned_through < newest)
                ).execute()
            deleted += len(rows)
            if len(rows) < batch:
                break
    return deleted
