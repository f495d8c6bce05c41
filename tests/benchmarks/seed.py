"""Bulk inserts straight into the database, through the service's models.

Rows are what the service itself writes (service.posts.Posts._insert): a post,
its one item, and its 'create' event, with a job token where the status needs
one. Times are UTCTimeField values: integer microseconds since the epoch.
"""

from __future__ import annotations

import time

from service import db, ids
from service.models import Post, PostEvent, PostItem
from service.store import new_token
from tests.benchmarks.common import TEXT

POST_FIELDS = [
    Post.id,
    Post.workspace,
    Post.account,
    Post.platform,
    Post.post_type,
    Post.title,
    Post.status,
    Post.scheduled_at,
    Post.idempotency_key,
    Post.version,
    Post.content_revision,
    Post.job_token,
    Post.attempts,
    Post.last_attempt_at,
    Post.next_attempt_at,
    Post.lease_expires_at,
    Post.queued_at,
    Post.published_at,
    Post.error_code,
    Post.error_message,
    Post.created_at,
    Post.updated_at,
    Post.deleted_at,
]
ITEM_FIELDS = [
    PostItem.post,
    PostItem.position,
    PostItem.text,
    PostItem.platform_post_id,
    PostItem.platform_url,
    PostItem.published_at,
    PostItem.send_handle,
]
EVENT_FIELDS = [
    PostEvent.workspace,
    PostEvent.post,
    PostEvent.at,
    PostEvent.type,
    PostEvent.from_status,
    PostEvent.to_status,
    PostEvent.cause,
    PostEvent.origin,
    PostEvent.attempt,
    PostEvent.error_code,
    PostEvent.error_message,
    PostEvent.job_token,
]
CREATED = 1  # posts.v1.POST_EVENT_TYPE_CREATED

QUEUED = ("scheduled", "pending")


def micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


class Batch:
    """Collects posts (with their item and 'create' event) and writes them in big
    transactions of ``per_transaction`` posts (on PostgreSQL ``chunk`` rows per INSERT)."""

    def __init__(
        self,
        workspace_id: str,
        account_id: str,
        platform: str = "x",
        post_type: str = "tweet",
        chunk: int = 1000,
        per_transaction: int = 50_000,
    ):
        self.workspace_id = workspace_id
        self.account_id = account_id
        self.platform = platform
        self.post_type = post_type
        self.chunk = chunk
        self.per_transaction = per_transaction
        self.posts: list[tuple] = []
        self.items: list[tuple] = []
        self.events: list[tuple] = []
        self.written = 0
        self.seconds = 0.0

    def add(
        self,
        status: str,
        created_us: int,
        scheduled_us: int | None = None,
        published_us: int | None = None,
        deleted_us: int | None = None,
    ) -> str:
        post_id = ids.new(ids.POST)
        token = new_token() if status in QUEUED else ""
        self.posts.append(
            (
                post_id,
                self.workspace_id,
                self.account_id,
                self.platform,
                self.post_type,
                "",
                status,
                scheduled_us,
                "",
                1,
                1,
                token,
                1 if published_us else 0,
                published_us,
                None,
                None,
                published_us,
                published_us,
                "PLATFORM_RULE_VIOLATED" if status == "failed" else "",
                "",
                created_us,
                published_us or created_us,
                deleted_us,
            )
        )
        self.items.append(
            (
                post_id,
                0,
                TEXT,
                f"sbx_{post_id[4:]}" if published_us else "",
                f"https://sandbox.invalid/x/bench/{post_id}" if published_us else "",
                published_us,
                "",
            )
        )
        created_as = "draft" if status == "draft" else "scheduled"
        self.events.append(
            (
                self.workspace_id,
                post_id,
                created_us,
                CREATED,
                "",
                created_as,
                "create",
                "api",
                0,
                "",
                "",
                token,
            )
        )
        if len(self.posts) >= self.per_transaction:
            self.flush()
        return post_id

    def flush(self) -> None:
        if not self.posts:
            return
        started = time.perf_counter()
        with db.connection(), db.write():
            for model, fields, rows in (
                (Post, POST_FIELDS, self.posts),
                (PostItem, ITEM_FIELDS, self.items),
                (PostEvent, EVENT_FIELDS, self.events),
            ):
                if db.is_sqlite():
                    # Peewee writes the INSERT; sqlite3's executemany runs it for every
                    # row (7x faster than insert_many building SQL for each chunk).
                    sql, _ = model.insert_many(rows[:1], fields=fields).sql()
                    db.database.cursor().executemany(sql, rows)
                    continue
                for i in range(0, len(rows), self.chunk):
                    model.insert_many(rows[i : i + self.chunk], fields=fields).execute()
        self.written += len(self.posts)
        self.posts, self.items, self.events = [], [], []
        self.seconds += time.perf_counter() - started
