"""Peewee models: workspaces, keys, accounts, posts, items, media, events, idempotency.

Times are stored as UTC microseconds since the epoch (UTCTimeField), which
compares and indexes the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import peewee

from service.db import database

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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

    class Meta:
        indexes = ((("api_key", "workspace"), True),)


class Account(BaseModel):
    """One connected network identity in a workspace."""

    id = peewee.CharField(primary_key=True, max_length=30)
    workspace = peewee.ForeignKeyField(Workspace, backref="accounts")
    platform = peewee.CharField(max_length=16)
    handle = peewee.TextField()
    base_url = peewee.TextField(default="")
    credentials = peewee.TextField(default="")  # encrypted (service.crypto)
    sandbox = peewee.BooleanField(default=False)
    created_at = UTCTimeField()

    class Meta:
        indexes = ((("workspace", "platform", "handle"), False),)


class Post(BaseModel):
    """A post. ``version`` is bumped by every change and makes the etag."""

    id = peewee.CharField(primary_key=True, max_length=30)
    workspace = peewee.ForeignKeyField(Workspace, backref="posts")
    account = peewee.ForeignKeyField(Account, backref="posts")
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

    post = peewee.ForeignKeyField(Post, backref="items", on_delete="CASCADE")
    position = peewee.IntegerField()
    text = peewee.TextField(default="")
    platform_post_id = peewee.TextField(default="")
    platform_url = peewee.TextField(default="")
    send_started_at = UTCTimeField(null=True)  # set before a send: a crash leaves it
    published_at = UTCTimeField(null=True)

    class Meta:
        indexes = ((("post", "position"), True),)


class Media(BaseModel):
    """A media reference attached to an item."""

    id = peewee.CharField(primary_key=True, max_length=30)
    item = peewee.ForeignKeyField(PostItem, backref="media", on_delete="CASCADE")
    position = peewee.IntegerField()
    url = peewee.TextField()
    kind = peewee.CharField(max_length=16)
    mime_type = peewee.TextField(default="")
    alt_text = peewee.TextField(default="")

    class Meta:
        indexes = ((("item", "position"), True),)


class PostEvent(BaseModel):
    """One transition of a post: when, from what to what, why, under which job token."""

    post = peewee.ForeignKeyField(Post, backref="events", on_delete="CASCADE")
    at = UTCTimeField()
    from_status = peewee.CharField(max_length=16, default="")
    to_status = peewee.CharField(max_length=16)
    cause = peewee.TextField()
    job_token = peewee.CharField(max_length=32, default="")

    class Meta:
        indexes = ((("post", "at"), False),)


class IdempotencyRecord(BaseModel):
    """A workspace's idempotency key and the request it first answered."""

    workspace = peewee.ForeignKeyField(Workspace, on_delete="CASCADE")
    key = peewee.CharField(max_length=128)
    request_hash = peewee.CharField(max_length=64, default="")  # empty: set by UpdatePost
    post = peewee.ForeignKeyField(Post, on_delete="CASCADE")
    created_at = UTCTimeField()

    class Meta:
        indexes = ((("workspace", "key"), True),)


class SchemaVersion(BaseModel):
    """Which migrations have run."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.TextField()
    applied_at = UTCTimeField()


MODELS = [
    Workspace, ApiKey, ApiKeyGrant, Account, Post, PostItem, Media, PostEvent,
    IdempotencyRecord,
]  # fmt: skip
