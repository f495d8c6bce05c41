"""Peewee models: workspaces, keys, accounts, posts, items, media, events, idempotency.

Times are stored as UTC microseconds since the epoch (UTCTimeField), which
compares and indexes the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import overload

import peewee

from service import db
from service.db import database

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@overload
def micros(value: dt.datetime | int) -> int: ...
@overload
def micros(value: None) -> None: ...
def micros(value: dt.datetime | int | None) -> int | None:
    """An aware datetime as stored: integer microseconds since the epoch."""
    if value is None or isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous: pass an aware UTC time")
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


class UTCTimeField(peewee.BigIntegerField):
    """An aware UTC datetime, stored as integer microseconds since the epoch."""

    def db_value(self, value):
        return micros(value)

    def python_value(self, value):
        if value is None:
            return None
        return _EPOCH + dt.timedelta(microseconds=value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Workspace(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=30)
    name = peewee.TextField()
    created_at = UTCTimeField()


class ApiKey(BaseModel):
    """An API key: only its SHA-256 hash is stored; the secret is shown once."""

    id = peewee.CharField(primary_key=True, max_length=30)
    secret_hash = peewee.CharField(max_length=64)
    created_at = UTCTimeField()
    revoked_at = UTCTimeField(null=True)
    expires_at = UTCTimeField(null=True)  # null: never
    #: When a call last used the key, to within a minute (written at most once a minute).
    last_used_at = UTCTimeField(null=True)


class ApiKeyGrant(BaseModel):
    """A workspace an API key reaches."""

    api_key = peewee.ForeignKeyField(ApiKey, backref="grants", on_delete="CASCADE")
    workspace = peewee.ForeignKeyField(Workspace, on_delete="CASCADE")
    # The foreign keys' columns, which peewee adds as ``<field>_id`` (for the type checker).
    api_key_id: str
    workspace_id: str

    class Meta:
        indexes = ((("api_key", "workspace"), True),)


class Account(BaseModel):
    """One connected network identity in a workspace."""

    id = peewee.CharField(primary_key=True, max_length=30)
    workspace = peewee.ForeignKeyField(Workspace, backref="accounts")
    workspace_id: str
    platform = peewee.CharField(max_length=16)
    handle = peewee.TextField()
    base_url = peewee.TextField(default="")
    credentials = peewee.TextField(default="")  # encrypted (service.crypto)
    sandbox = peewee.BooleanField(default=False)
    created_at = UTCTimeField()
    # What renews an access token that expires (workers.credentials), each
    # encrypted as ``credentials`` is; empty where the network needs none of them.
    refresh_token = peewee.TextField(default="")
    client_id = peewee.TextField(default="")
    client_secret = peewee.TextField(default="")
    #: When the access token expires, where the network said (null: unknown).
    token_expires_at = UTCTimeField(null=True)
    #: Bumped by every refresh: the compare-and-set that lets one refresh win.
    credentials_version = peewee.IntegerField(default=0)
    #: A refresh under way holds the account's tokens until then (its claim).
    refreshing_until = UTCTimeField(null=True)

    class Meta:
        indexes = ((("workspace", "platform", "handle"), False),)


class Post(BaseModel):
    """A post. ``version`` is bumped by every change and makes the etag."""

    id = peewee.CharField(primary_key=True, max_length=30)
    workspace = peewee.ForeignKeyField(Workspace, backref="posts")
    account = peewee.ForeignKeyField(Account, backref="posts")
    workspace_id: str
    account_id: str
    platform = peewee.CharField(max_length=16)
    post_type = peewee.CharField(max_length=16)
    title = peewee.TextField(default="")
    status = peewee.CharField(max_length=16)
    scheduled_at = UTCTimeField(null=True)
    idempotency_key = peewee.CharField(max_length=128, default="")
    version = peewee.IntegerField(default=1)
    content_revision = peewee.IntegerField(default=1)
    job_token = peewee.CharField(max_length=32, default="")
    attempts = peewee.IntegerField(default=0)
    last_attempt_at = UTCTimeField(null=True)
    next_attempt_at = UTCTimeField(null=True)
    lease_expires_at = UTCTimeField(null=True)
    queued_at = UTCTimeField(null=True)
    published_at = UTCTimeField(null=True)
    error_code = peewee.TextField(default="")
    error_message = peewee.TextField(default="")
    created_at = UTCTimeField()
    updated_at = UTCTimeField()
    deleted_at = UTCTimeField(null=True)

    class Meta:
        indexes = (
            # ListPosts: newest first within a workspace, keyset pagination.
            (("workspace", "created_at", "id"), False),
            # Dispatcher (scheduled_at), sweeper (next_attempt_at, lease_expires_at).
            (("status", "scheduled_at"), False),
            (("status", "next_attempt_at"), False),
            (("status", "lease_expires_at"), False),
        )


class PostItem(BaseModel):
    """One content item of a post (one tweet of a thread), with its own result."""

    id = peewee.AutoField()
    post = peewee.ForeignKeyField(Post, backref="items", on_delete="CASCADE")
    post_id: str
    position = peewee.IntegerField()
    text = peewee.TextField(default="")
    platform_post_id = peewee.TextField(default="")
    platform_url = peewee.TextField(default="")
    send_started_at = UTCTimeField(null=True)  # set before a send: a crash leaves it
    #: The network's handle of a send under way (an Instagram container id), recorded
    #: as soon as it exists so that the next attempt resumes it ('' for none).
    send_handle = peewee.TextField(default="")
    published_at = UTCTimeField(null=True)

    class Meta:
        indexes = ((("post", "position"), True),)


class Media(BaseModel):
    """A media reference attached to an item."""

    id = peewee.CharField(primary_key=True, max_length=30)
    item = peewee.ForeignKeyField(PostItem, backref="media", on_delete="CASCADE")
    item_id: int
    position = peewee.IntegerField()
    url = peewee.TextField()
    kind = peewee.CharField(max_length=16)
    mime_type = peewee.TextField(default="")
    alt_text = peewee.TextField(default="")

    class Meta:
        indexes = ((("item", "position"), True),)


class PostEvent(BaseModel):
    """One change of a post (service.events): what happened, who caused it, and
    the post as it stood after, written in the change's own transaction.

    ``id`` is the insertion order. The public ``event_id`` is the commit order:
    ``id`` on SQLite (one writer at a time), ``seq`` on PostgreSQL, where
    service.events numbers committed rows after the fact.
    """

    id = peewee.BigAutoField()
    seq = peewee.BigIntegerField(null=True)
    workspace = peewee.CharField(max_length=30, column_name="workspace_id")
    post = peewee.ForeignKeyField(Post, backref="events", on_delete="CASCADE")
    post_id: str
    at = UTCTimeField()
    type = peewee.SmallIntegerField(default=0)  # posts.v1.PostEventType
    from_status = peewee.CharField(max_length=16, default="")
    to_status = peewee.CharField(max_length=16)
    cause = peewee.TextField()  # the lifecycle event, with an error code: "retry:429"
    origin = peewee.CharField(max_length=16, default="")  # api, dispatcher, worker, sweeper
    attempt = peewee.IntegerField(default=0)
    item_index = peewee.IntegerField(null=True)
    error_code = peewee.TextField(default="")
    error_message = peewee.TextField(default="")
    job_token = peewee.CharField(max_length=32, default="")
    snapshot = peewee.BlobField(null=True)  # the posts.v1.Post after the event

    # Indexes (service/migrations/0003_post_events.*.sql): (workspace, event_id)
    # and (post, event_id), event_id being id on SQLite and seq on PostgreSQL;
    # few, since every change of a post writes a row.


class EventLog(BaseModel):
    """The event log's one row of state: the last ``seq`` given out (PostgreSQL)
    and the newest event_id pruned away (a cursor at or before it has expired)."""

    id = peewee.IntegerField(primary_key=True)
    last_seq = peewee.BigIntegerField(default=0)
    pruned_through = peewee.BigIntegerField(default=0)


@dataclasses.dataclass
class LoadedPost:
    """A post with its items and their media, as answered to callers."""

    post: Post
    items: list[tuple[PostItem, list[Media]]]
    #: (post version, its posts.v1.Post): service.codec encodes a version once,
    #: for the event's snapshot and the answer alike.
    encoded: tuple | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def etag(self) -> str:
        return etag(self.post)

    @property
    def has_live_item(self) -> bool:
        """Part of the post is already on the network."""
        return any(item.platform_post_id for item, _ in self.items)


def etag(post: Post) -> str:
    """The opaque etag of a post's current version."""
    return hashlib.sha256(f"{post.id}:{post.version}".encode()).hexdigest()[:20]


# Items with their media, one row per medium (an item without any: one row, its
# media columns NULL), in order.
_ITEM_FIELDS = PostItem._meta.sorted_fields
_MEDIA_FIELDS = Media._meta.sorted_fields
_ITEMS = db.Compiled(
    lambda *post_ids: (
        PostItem.select(*_ITEM_FIELDS, *_MEDIA_FIELDS)
        .join(Media, peewee.JOIN.LEFT_OUTER)
        .where(PostItem.post.in_(post_ids))
        .order_by(PostItem.post, PostItem.position, Media.position)
    )
)

#: Posts whose items one query loads at most: a bounded number of bound parameters
#: (SQLite allows 32,766) and of compiled statements.
_LOAD_CHUNK = 100


def with_items(post: Post) -> LoadedPost:
    """``post`` with its items and media."""
    return load_items([post])[0]


def load_items(posts: Sequence[Post]) -> list[LoadedPost]:
    if len(posts) > _LOAD_CHUNK:
        # One bound parameter per id: a page's worth per query, far below SQLite's
        # limit on them (32,766), and a bounded number of compiled statements.
        return [
            loaded
            for start in range(0, len(posts), _LOAD_CHUNK)
            for loaded in load_items(posts[start : start + _LOAD_CHUNK])
        ]
    if not posts:
        return []
    split = len(_ITEM_FIELDS)
    by_post: dict[str, list] = {}
    item: PostItem | None = None
    media: list[Media] = []
    for row in _ITEMS.tuples(*(p.id for p in posts)):
        if item is None or row[0] != item.id:
            item, media = db.row_of(PostItem, _ITEM_FIELDS, row[:split]), []
            by_post.setdefault(item.post_id, []).append((item, media))
        if row[split] is not None:  # the item has a medium (its id)
            media.append(db.row_of(Media, _MEDIA_FIELDS, row[split:]))
    return [LoadedPost(p, by_post.get(p.id, [])) for p in posts]


class IdempotencyRecord(BaseModel):
    """A workspace's idempotency key and the request it first answered."""

    workspace = peewee.ForeignKeyField(Workspace, on_delete="CASCADE")
    key = peewee.CharField(max_length=128)
    request_hash = peewee.CharField(max_length=64, default="")  # empty: set by UpdatePost
    post = peewee.ForeignKeyField(Post, on_delete="CASCADE")
    created_at = UTCTimeField()
    workspace_id: str
    post_id: str

    class Meta:
        indexes = ((("workspace", "key"), True),)


class SchemaVersion(BaseModel):
    """Which migrations have run."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.TextField()
    applied_at = UTCTimeField()


class SecretKeyCheck(BaseModel):
    """One per secret key this database's secrets were stored under: a digest
    derived from the key (service.crypto.Keyring.checks), never the key. A
    process refuses to start when none of its keys has one (service.admin)."""

    digest = peewee.CharField(primary_key=True, max_length=64)
    created_at = UTCTimeField()


class WebhookSubscription(BaseModel):
    """A workspace's events sent to a URL (service.webhooks). ``secret`` is the
    signing secret, encrypted with the service's keyring (service.crypto);
    ``event_types`` the PostEventType values sent, as ``",3,5,"`` ('' for all)."""

    id = peewee.CharField(primary_key=True, max_length=30)
    workspace = peewee.ForeignKeyField(Workspace, on_delete="CASCADE")
    workspace_id: str
    url = peewee.TextField()
    event_types = peewee.TextField(default="")
    description = peewee.TextField(default="")
    state = peewee.CharField(max_length=16, default="active")  # active, disabled
    secret = peewee.TextField()
    last_error = peewee.TextField(default="")
    consecutive_failures = peewee.IntegerField(default=0)
    created_at = UTCTimeField()
    disabled_at = UTCTimeField(null=True)

    class Meta:
        indexes = ((("workspace", "state"), False),)


class WebhookDelivery(BaseModel):
    """The outbox: one event still to be sent to one subscription, written in the
    event's transaction; deleted once delivered (or its subscription disabled).

    ``token`` and ``next_at`` are its claim: a row is due when ``next_at`` has
    passed; claiming it sets a new token and moves ``next_at`` a lease ahead, so
    a dead sender's row falls due again. Only service.webhooks.advance changes them.
    """

    id = peewee.BigAutoField()
    subscription = peewee.ForeignKeyField(WebhookSubscription, on_delete="CASCADE")
    event = peewee.ForeignKeyField(PostEvent, on_delete="CASCADE")  # its insertion id
    subscription_id: str
    event_id: int
    post = peewee.CharField(max_length=30, column_name="post_id")
    next_at = UTCTimeField()
    token = peewee.CharField(max_length=32, default="")
    tries = peewee.IntegerField(default=0)
    first_try_at = UTCTimeField(null=True)
    last_error = peewee.TextField(default="")

    class Meta:
        indexes = (
            (("subscription", "post", "id"), False),  # the oldest row per (subscription, post)
            (("next_at",), False),  # the due rows
        )


MODELS = [
    Workspace,
    ApiKey,
    ApiKeyGrant,
    Account,
    Post,
    PostItem,
    Media,
    PostEvent,
    EventLog,
    IdempotencyRecord,
    WebhookSubscription,
    WebhookDelivery,
]
