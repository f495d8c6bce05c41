"""The posts domain: create, read, edit, delete and list, on the models.

Each operation checks in a fixed order (fields, post exists, immutable
fields, etag, transition, platform rules), writes in one transaction, and only
after the commit hands new delivery jobs to ``enqueue``. Lifecycle columns
(status, job token, lease, attempts) are written by ``service.store`` alone.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypedDict

import peewee

from service import db, egress, errors, events, ids, lifecycle, platforms, rules, store
from service.crypto import Keyring
from service.lifecycle import Status
from service.models import (
    Account,
    IdempotencyRecord,
    LoadedPost,
    Media,
    Post,
    PostItem,
    load_items,
    with_items,
)

if TYPE_CHECKING:
    from posts.v1 import posts_pb2

log = logging.getLogger(__name__)

MAX_ITEMS = 25
MAX_TEXT_BYTES = 64 * 1024
MAX_MEDIA = 35
MAX_AHEAD = dt.timedelta(days=365)
DEFAULT_PAGE_SIZE = 50
#: A larger page_size is taken as this one.
MAX_PAGE_SIZE = 100
#: The longest strings a request may carry, in characters (text: MAX_TEXT_BYTES;
#: media URLs: egress.MAX_URL_LENGTH). A NUL in any string is refused too (the
#: servicer's check): PostgreSQL cannot store one.
MAX_ID_LENGTH = 64
MAX_TITLE_LENGTH = 300
MAX_ALT_TEXT_LENGTH = 1500
MAX_MIME_TYPE_LENGTH = 127
MAX_KEY_LENGTH = 128
MAX_ETAG_LENGTH = 64
MAX_PAGE_TOKEN_LENGTH = 1024
#: The most update_mask paths, and entries of a repeated ListPosts filter.
MAX_MASK_PATHS = 20
MAX_FILTER_ENTRIES = 16

#: UpdatePost fields a caller may change (update_mask paths).
EDITABLE_FIELDS = ("text", "media", "items", "title", "scheduled_at", "status", "idempotency_key")
IMMUTABLE_FIELDS = ("account_id", "platform", "post_type")


@dataclasses.dataclass(frozen=True)
class MediaInput:
    url: str
    kind: str
    mime_type: str = ""
    alt_text: str = ""


@dataclasses.dataclass(frozen=True)
class ItemInput:
    text: str
    media: tuple[MediaInput, ...] = ()


@dataclasses.dataclass(frozen=True)
class NewPost:
    """A CreatePost request, decoded. ``status`` is the StatusChange's lower-case name."""

    account_id: str
    post_type: str
    items: tuple[ItemInput, ...]
    title: str
    status: str
    scheduled_at: dt.datetime | None
    idempotency_key: str
    #: Paths of the item fields as the caller sent them ("text" or "items[0].text").
    shorthand: bool = False


class PostChanges(TypedDict, total=False):
    """The fields an UpdatePost changes, each present only when it changes."""

    text: str
    media: tuple[MediaInput, ...]
    items: tuple[ItemInput, ...]
    title: str
    scheduled_at: dt.datetime | None  # None: the time is cleared
    status: str  # a StatusChange's lower-case name
    idempotency_key: str


@dataclasses.dataclass(frozen=True)
class PostEdit:
    """An UpdatePost request, decoded: ``changes`` holds only the fields to change."""

    post_id: str
    etag: str
    changes: PostChanges
    immutable: dict[str, str]


@dataclasses.dataclass(frozen=True)
class ListQuery:
    statuses: tuple[str, ...] = ()
    account_id: str = ""
    platform: str = ""
    show_deleted: bool = False
    page_size: int = 0
    page_token: str = ""


_POST = db.Compiled(lambda post_id: Post.select().where(Post.id == post_id))
_POST_IN_WORKSPACE = db.Compiled(
    lambda post_id, workspace_id: Post.select().where(
        (Post.id == post_id) & (Post.workspace == workspace_id)
    )
)
_POST_LOCKED = db.Compiled(
    lambda post_id, workspace_id: db.locked(
        Post.select().where((Post.id == post_id) & (Post.workspace == workspace_id))
    )
)
_VERSION = db.Compiled(
    lambda post_id, workspace_id: Post.select(Post.version).where(
        (Post.id == post_id) & (Post.workspace == workspace_id)
    )
)
_ACCOUNT = db.Compiled(
    lambda account_id, workspace_id: Account.select().where(
        (Account.id == account_id) & (Account.workspace == workspace_id)
    )
)


_KEY_RECORD = db.Compiled(
    lambda workspace_id, key: IdempotencyRecord.select().where(
        (IdempotencyRecord.workspace == workspace_id) & (IdempotencyRecord.key == key)
    )
)


def _key_record(workspace_id: str, key: str) -> IdempotencyRecord | None:
    rows = _KEY_RECORD.rows(IdempotencyRecord, workspace_id, key)
    return rows[0] if rows else None


def find_account(account_id: str, workspace_id: str) -> Account | None:
    """The account, if it is in the workspace."""
    rows = _ACCOUNT.rows(Account, account_id, workspace_id)
    return rows[0] if rows else None


def post_account(post: Post) -> Account:
    """The post's account (a foreign key keeps it, in the post's workspace)."""
    account = find_account(post.account_id, post.workspace_id)
    if account is None:
        raise LookupError(f"{post.id}: its account {post.account_id} is gone")
    return account


def load(post_id: str, workspace_id: str | None = None, lock: bool = False) -> LoadedPost:
    """Reads a post with its items and media; raises PostNotFound.

    ``lock`` (with a workspace) holds the post's row until the transaction ends.
    """
    if workspace_id is None:
        rows = _POST.rows(Post, post_id)
    else:
        rows = (_POST_LOCKED if lock else _POST_IN_WORKSPACE).rows(Post, post_id, workspace_id)
    if not rows:
        raise errors.PostNotFound(post_id)
    return with_items(rows[0])


class Posts:
    """The post operations of one workspace-scoped caller.

    ``enqueue(post_id, token)`` sends a delivery message; it is called only
    after the transaction that made the job has committed.
    """

    def __init__(
        self,
        keyring: Keyring,
        enqueue: Callable[[str, str], None],
        now: Callable[[], dt.datetime] = db.utcnow,
    ):
        self._keyring = keyring
        self._enqueue = enqueue
        self._now = now

    # -- reads --------------------------------------------------------------

    def get(self, workspace_id: str, post_id: str) -> LoadedPost:
        """The post; raises InvalidField for a malformed id, PostNotFound."""
        _check_post_id(post_id)
        with db.connection():
            return load(post_id, workspace_id)

    def version(self, workspace_id: str, post_id: str) -> int:
        """The post's current version (every change to it or its items bumps it);
        raises InvalidField for a malformed id, PostNotFound."""
        _check_post_id(post_id)
        with db.connection():
            version = _VERSION.value(post_id, workspace_id)
        if version is None:
            raise errors.PostNotFound(post_id)
        return version

    def list(self, workspace_id: str, query: ListQuery) -> tuple[list[LoadedPost], str]:
        """One page of posts, newest first, and the next page's token ('' on the last).

        At most MAX_PAGE_SIZE posts: a larger ``page_size`` is taken as that.
        """
        size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        scope = _list_scope(workspace_id, query)
        cursor = self._checked_query(query, size, scope)
        select = Post.select().where(Post.workspace == workspace_id)
        if not query.show_deleted:
            select = select.where(Post.deleted_at.is_null())
        if query.statuses:
            select = select.where(Post.status.in_(sorted(set(query.statuses))))
        if query.account_id:
            select = select.where(Post.account == query.account_id)
        if query.platform:
            select = select.where(Post.platform == query.platform)
        if cursor:
            created, post_id = cursor
            # A row-value comparison: the (workspace, created_at, id) index serves it as a range.
            select = select.where(
                peewee.Tuple(Post.created_at, Post.id) < peewee.Tuple(created, post_id)
            )
        select = select.order_by(Post.created_at.desc(), Post.id.desc()).limit(size + 1)
        with db.connection():
            rows = list(select)
            page = load_items(rows[:size])
        token = self._page_token(scope, rows[size - 1]) if len(rows) > size else ""
        return page, token

    def _checked_query(self, query: ListQuery, size: int, scope: str) -> tuple[int, str] | None:
        """The cursor of ``query``'s page token (None on the first page); raises
        InvalidField for every field of the query that is wrong."""
        violations: dict[str, str] = {}
        if size < 1:
            violations["page_size"] = "must not be negative"
        if len(query.statuses) > MAX_FILTER_ENTRIES:
            violations["statuses"] = f"at most {MAX_FILTER_ENTRIES} entries"
        if query.account_id and not ids.is_valid(query.account_id, ids.ACCOUNT):
            violations["account_id"] = "not an account id (acc_…)"
        cursor = None
        if query.page_token:
            if len(query.page_token) <= MAX_PAGE_TOKEN_LENGTH:
                cursor = self._read_page_token(query.page_token, scope)
            if cursor is None:
                violations["page_token"] = "not a page token of this query"
        if violations:
            raise errors.InvalidField(violations)
        return cursor

    def page_token_after(self, workspace_id: str, query: ListQuery, post: Post) -> str:
        """The token of the page after ``post`` in ``query``'s listing: for a page
        cut short of ``list``'s (an answer growing too large)."""
        return self._page_token(_list_scope(workspace_id, query), post)

    def _page_token(self, scope: str, last: Post) -> str:
        return self._keyring.sign(
            json.dumps([scope, Post.created_at.db_value(last.created_at), last.id]).encode()
        )

    def _read_page_token(self, token: str, scope: str) -> tuple[int, str] | None:
        payload = self._keyring.verify(token)
        if payload is None:
            return None
        try:
            token_scope, created, post_id = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if token_scope != scope or not isinstance(created, int) or not isinstance(post_id, str):
            return None
        return created, post_id

    def events(
        self, which: events.Filter, page_size: int, page_token: str
    ) -> tuple[builtins.list[posts_pb2.PostEvent], str]:
        """A page of ``which.workspace_id``'s events (ListPostEvents) and the next
        page's token ('' on the last)."""
        scope = json.dumps(["events", which.workspace_id, which.post_ids, which.types])
        after = 0
        if page_token:
            payload = self._keyring.verify(page_token)
            try:
                token_scope, token_after = json.loads(payload) if payload else (None, None)
            except (ValueError, TypeError):
                token_scope, token_after = None, None
            if token_scope != scope or not isinstance(token_after, int):
                raise errors.InvalidField({"page_token": "not a token of this listing"})
            after = token_after
        with db.connection():
            found, last = events.page(which, page_size, after)
        token = self._keyring.sign(json.dumps([scope, last]).encode()) if last else ""
        return found, token

    # -- writes -------------------------------------------------------------

    def create(self, workspace_id: str, new: NewPost) -> LoadedPost:
        """Makes a post (or answers the one its idempotency key already made)."""
        now = self._now()
        _check_new_post(new, now)
        # Only a keyed create is compared with a later one: hashing the request costs time.
        fingerprint = _fingerprint(workspace_id, new) if new.idempotency_key else ""
        with db.connection():
            # Read and checked before the write lock, which every other write waits
            # for: the rules' cost grows with the text. (An account never changes
            # platform.) Their violations are answered in their turn, under the lock.
            account = find_account(new.account_id, workspace_id)
            violations = None
            if account and lifecycle.CREATE_STATUSES[new.status] in lifecycle.QUEUED:
                violations = rules.check(account.platform, new.post_type, new.title, new.items)
            try:
                with db.write():
                    replay = self._replay(workspace_id, new.idempotency_key, fingerprint)
                    if replay:
                        return load(replay)
                    loaded = self._insert(workspace_id, new, fingerprint, now, account, violations)
            except peewee.IntegrityError:
                # A concurrent create with the same key won the race: answer as a replay.
                replay = self._replay(workspace_id, new.idempotency_key, fingerprint)
                if not replay:
                    raise
                return load(replay)
        self._after_commit(loaded.post)
        return loaded

    def _replay(self, workspace_id: str, key: str, fingerprint: str) -> str | None:
        if not key:
            return None
        record = _key_record(workspace_id, key)
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise errors.IdempotencyKeyReused(key, record.post_id)
        return record.post_id

    def _insert(
        self,
        workspace_id: str,
        new: NewPost,
        fingerprint: str,
        now,
        account: Account | None,
        violations: dict | None,
    ) -> LoadedPost:
        status = lifecycle.CREATE_STATUSES[new.status]
        if status is Status.SCHEDULED:
            lifecycle.check_schedule(new.scheduled_at, now)
        if account is None:
            raise errors.AccountNotFound(new.account_id)
        if new.post_type not in platforms.ALLOWED_TYPES[account.platform]:
            raise errors.InvalidField(
                {
                    "post_type": platforms.wrong_type(
                        account.platform, new.post_type, platforms.ALLOWED_TYPES[account.platform]
                    )
                }
            )
        if status in lifecycle.QUEUED:
            _check_deliverable(
                account, new.post_type, new.title, new.items, new.shorthand, violations
            )
        post = Post(
            id=ids.new(ids.POST),
            workspace=workspace_id,
            account=account.id,
            platform=account.platform,
            post_type=new.post_type,
            title=new.title,
            scheduled_at=new.scheduled_at,
            idempotency_key=new.idempotency_key,
        )
        loaded = store.insert(
            post, status, now, lambda post: LoadedPost(post, _write_items(post, new.items))
        )
        if new.idempotency_key:
            db.insert(
                IdempotencyRecord(
                    workspace=workspace_id,
                    key=new.idempotency_key,
                    request_hash=fingerprint,
                    post=post.id,
                    created_at=now,
                )
            )
        return loaded

    def update(self, workspace_id: str, edit: PostEdit) -> LoadedPost:
        """Applies an UpdatePost; see lifecycle.decide_update for what it may do."""
        now = self._now()
        _check_edit(edit, now)
        with db.connection():
            for attempt in range(1, _UPDATE_ATTEMPTS + 1):
                # The rules are checked before the write lock, which every other
                # write waits for (their cost grows with the text), on the post as
                # read now; under the lock they stand while its version is the same.
                early = self._rules_before_lock(workspace_id, edit, now)
                try:
                    with db.write():
                        loaded, changed = self._edit(
                            workspace_id, edit, now, early, retry=attempt < _UPDATE_ATTEMPTS
                        )
                    break
                except _ChangedSinceChecked:
                    continue
        if changed:
            self._after_commit(loaded.post)
        return loaded

    def _rules_before_lock(
        self, workspace_id: str, edit: PostEdit, now
    ) -> tuple[int, rules.Violations] | None:
        """(version read, rules.check's violations) when the edit, applied to the post
        as read now, would check the platform rules; else None."""
        changes = edit.changes
        content_edited, edits = _edit_scope(changes)
        due = changes.get("scheduled_at") is not None and changes["scheduled_at"] <= now
        if not (content_edited or due or changes.get("status") in ("publish", "scheduled")):
            return None  # a reschedule, a key, a cancel: no rules (read nothing more)
        rows = _POST_IN_WORKSPACE.rows(Post, edit.post_id, workspace_id)
        if not rows:
            return None  # answered in its turn, under the lock
        post = rows[0]
        try:
            decision = lifecycle.decide_update(
                Status(post.status),
                changes.get("status"),
                edits=edits,
                scheduled_at=changes.get("scheduled_at", post.scheduled_at),
                now=now,
                content_edited=content_edited,
                time_moved=_time_moved(post, changes),
            )
        except errors.ServiceError:
            return None  # answered in its turn, under the lock
        if not decision.check_rules:
            return None
        current = with_items(post)
        items = _edited_items(current, changes)
        violations = rules.check(
            post.platform,
            post.post_type,
            changes.get("title", post.title),
            items if items is not None else as_inputs(current),
        )
        return post.version, violations

    def _edit(
        self,
        workspace_id: str,
        edit: PostEdit,
        now,
        early: tuple[int, rules.Violations] | None,
        retry: bool,
    ) -> tuple[LoadedPost, bool]:
        """The edit, in the write transaction: the post as answered, and whether it changed.

        Raises _ChangedSinceChecked, when ``retry``, if the rules are due and the
        post changed since ``early`` checked them.
        """
        changes = edit.changes
        current = load(edit.post_id, workspace_id, lock=True)
        post = current.post
        for field, value in edit.immutable.items():
            if value != getattr(post, "account_id" if field == "account_id" else field):
                raise errors.FieldImmutable(field)
        if edit.etag and edit.etag != current.etag:
            raise errors.EtagMismatch(current.etag)
        items = _edited_items(current, changes)
        title = changes.get("title", post.title)
        scheduled_at = changes.get("scheduled_at", post.scheduled_at)
        content_edited, edits = _edit_scope(changes)
        before = Status(post.status)
        decision = lifecycle.decide_update(
            before,
            changes.get("status"),
            edits=edits,
            scheduled_at=scheduled_at,
            now=now,
            content_edited=content_edited,
            has_live_item=current.has_live_item,
            time_moved=_time_moved(post, changes),
        )
        if decision.noop:
            return current, False
        if decision.check_rules:
            violations = None  # not checked before the lock (rare): checked here
            if early is not None and early[0] == post.version:
                violations = early[1]
            elif early is not None and retry:
                raise _ChangedSinceChecked()
            _check_deliverable(
                post_account(post),
                post.post_type,
                title,
                items if items is not None else as_inputs(current),
                shorthand=False,
                violations=violations,
            )
        if "idempotency_key" in changes:
            self._take_key(workspace_id, post, changes["idempotency_key"], now)
        written = current.items
        content = {"title": title, "scheduled_at": scheduled_at}
        if items is not None:
            PostItem.delete().where(PostItem.post == post.id).execute()
            written = _write_items(post, items)
            content["content_revision"] = post.content_revision + 1
        event = lifecycle.CHANGE_EVENTS.get(changes.get("status", ""), lifecycle.Event.EDIT)
        loaded = LoadedPost(post, written)
        if (
            store.apply(post, event, now, target=decision.status, content=content, loaded=loaded)
            is None
        ):
            raise errors.EtagMismatch("")  # the row is locked: cannot happen
        return loaded, True

    def _take_key(self, workspace_id: str, post: Post, key: str, now) -> None:
        if key and key != post.idempotency_key:
            owner = _key_record(workspace_id, key)
            if owner is None:
                try:
                    # A savepoint: on PostgreSQL a failed statement would spoil the
                    # whole transaction.
                    with db.database.atomic():
                        db.insert(
                            IdempotencyRecord(
                                workspace=workspace_id, key=key, post=post.id, created_at=now
                            )
                        )
                except peewee.IntegrityError:
                    # Another post's request took the key since the read (its row
                    # lock is not this one's): the key is that post's.
                    owner = _key_record(workspace_id, key)
                    if owner is None:
                        raise
            if owner is not None and owner.post_id != post.id:
                raise errors.IdempotencyKeyReused(key, owner.post_id)
        post.idempotency_key = key

    def delete(self, workspace_id: str, post_id: str, expected_etag: str) -> LoadedPost:
        """Cancels and hides a post (soft delete); a deleted post is answered as it is."""
        _check_post_id(post_id)
        if violations := _check_etag(expected_etag):
            raise errors.InvalidField(violations)
        now = self._now()
        with db.connection():
            with db.write():
                current = load(post_id, workspace_id, lock=True)
                post = current.post
                if expected_etag and expected_etag != current.etag:
                    raise errors.EtagMismatch(current.etag)
                if post.deleted_at is not None:
                    return current
                before = Status(post.status)
                if not lifecycle.can_delete(before, current.has_live_item):
                    raise errors.InvalidTransition(before.name, "deleted")
                if store.apply(post, lifecycle.Event.DELETE, now, loaded=current) is None:
                    raise errors.EtagMismatch("")  # the row is locked: cannot happen
            return current

    def _after_commit(self, post: Post) -> None:
        if post.status != Status.PENDING.value:
            return
        try:
            self._enqueue(post.id, post.job_token)
        except Exception:  # the broker is down: the sweeper sends it again
            log.exception("enqueue of %s failed; the sweeper will retry", post.id)


def _list_scope(workspace_id: str, query: ListQuery) -> str:
    """What a page token is good for: the listing of these filters in this workspace."""
    return hashlib.sha256(
        json.dumps(
            [
                workspace_id,
                sorted(query.statuses),
                query.account_id,
                query.platform,
                query.show_deleted,
            ]
        ).encode()
    ).hexdigest()[:16]


#: Rule checks before the write lock an UpdatePost makes while the post keeps
#: changing under it; the last attempt checks under the lock.
_UPDATE_ATTEMPTS = 3


class _ChangedSinceChecked(Exception):
    """The post changed between the rules' check and the write lock."""


def _write_items(post: Post, items: Sequence[ItemInput]) -> list[tuple[PostItem, list[Media]]]:
    """Inserts the post's items and media; returns them as LoadedPost.items."""
    written = []
    for position, item in enumerate(items):
        row = db.insert(PostItem(post=post.id, position=position, text=item.text))
        media = [
            db.insert(
                Media(
                    id=ids.new(ids.MEDIA),
                    item=row.id,
                    position=index,
                    url=m.url,
                    kind=m.kind,
                    mime_type=m.mime_type,
                    alt_text=m.alt_text,
                )
            )
            for index, m in enumerate(item.media)
        ]
        written.append((row, media))
    return written


def as_inputs(loaded: LoadedPost) -> tuple[ItemInput, ...]:
    return tuple(
        ItemInput(item.text, tuple(MediaInput(m.url, m.kind, m.mime_type, m.alt_text) for m in ms))
        for item, ms in loaded.items
    )


def _edit_scope(changes: PostChanges) -> tuple[bool, bool]:
    """Whether an edit's ``changes`` change the content (items or title), and
    whether they change anything besides the status."""
    content_edited = any(k in changes for k in ("items", "text", "media", "title"))
    return (
        content_edited,
        content_edited or "scheduled_at" in changes or "idempotency_key" in changes,
    )


def _time_moved(post: Post, changes: PostChanges) -> bool:
    """Whether an edit gives the post another scheduled time (a time sent again
    unchanged moves nothing)."""
    return "scheduled_at" in changes and changes["scheduled_at"] != post.scheduled_at


def _edited_items(current: LoadedPost, changes: PostChanges) -> tuple[ItemInput, ...] | None:
    """The post's items after the edit, or None when the content does not change."""
    if "items" in changes:
        return changes["items"]
    if "text" not in changes and "media" not in changes:
        return None
    items = list(as_inputs(current)) or [ItemInput("")]
    first = items[0]
    items[0] = ItemInput(changes.get("text", first.text), changes.get("media", first.media))
    return tuple(items)


def _check_deliverable(
    account: Account,
    post_type,
    title,
    items,
    shorthand: bool,
    violations: rules.Violations | None = None,
) -> None:
    """Raises what stops the content going out. ``violations``: ``rules.check``'s
    answer for it, computed before the write lock (None: computed here)."""
    if not any(item.text.strip() or item.media for item in items):
        # Nothing to send: it would sit queued, or fail at the network.
        field = "text" if shorthand else "items"
        raise errors.InvalidField(
            {field: "a post needs text or media to be published or scheduled"}
        )
    if not account.sandbox and account.platform in platforms.WITHOUT_ADAPTER:
        raise errors.PlatformNotSupported(account.platform)
    if violations is None:
        violations = rules.check(account.platform, post_type, title, items)
    if shorthand:
        violations = {k.replace("items[0].", "", 1): v for k, v in violations.items()}
    if violations:
        raise errors.PlatformRuleViolated(account.platform, violations)


def _fingerprint(workspace_id: str, new: NewPost) -> str:
    body = dataclasses.asdict(dataclasses.replace(new, idempotency_key=""))
    return hashlib.sha256(json.dumps([workspace_id, body], default=str).encode()).hexdigest()


def _check_post_id(post_id: str) -> None:
    if not ids.is_valid(post_id, ids.POST):
        raise errors.InvalidField({"post_id": "not a post id (pst_…)"})


def _check_items(items: Sequence[ItemInput], shorthand: bool) -> dict[str, str]:
    violations = {}
    allowed = egress.allow()
    if len(items) > MAX_ITEMS:
        violations["items"] = f"at most {MAX_ITEMS} items"
    for i, item in enumerate(items[:MAX_ITEMS]):
        prefix = "" if shorthand else f"items[{i}]."
        if len(item.text.encode()) > MAX_TEXT_BYTES:
            violations[f"{prefix}text"] = f"at most {MAX_TEXT_BYTES} bytes of text"
        if len(item.media) > MAX_MEDIA:
            violations[f"{prefix}media"] = f"at most {MAX_MEDIA} media"
        for j, media in enumerate(item.media[:MAX_MEDIA]):
            # What the URL alone shows (scheme, userinfo, length, a refused IP
            # literal), decided as the worker's egress guard decides it.
            refusal = egress.url_refusal(media.url, allowed)
            if refusal:
                violations[f"{prefix}media[{j}].url"] = refusal
            if not media.kind:
                violations[f"{prefix}media[{j}].kind"] = "required"
    return violations | _check_media_text(items, shorthand)


def _check_time(scheduled_at: dt.datetime | None, now: dt.datetime) -> dict[str, str]:
    if scheduled_at is not None and scheduled_at > now + MAX_AHEAD:
        return {"scheduled_at": "at most one year ahead"}
    return {}


def _check_key(key: str) -> dict[str, str]:
    if key and not (len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)):
        return {"idempotency_key": f"1 to {MAX_KEY_LENGTH} printable ASCII characters"}
    return {}


def _check_title(title: str) -> dict[str, str]:
    if len(title) > MAX_TITLE_LENGTH:
        return {"title": f"at most {MAX_TITLE_LENGTH} characters"}
    return {}


def _check_media_text(items: Sequence[ItemInput], shorthand: bool) -> dict[str, str]:
    """The length limits of the media's alt text and MIME type (URLs: _check_items)."""
    violations = {}
    for i, item in enumerate(items[:MAX_ITEMS]):
        prefix = "" if shorthand else f"items[{i}]."
        for j, media in enumerate(item.media[:MAX_MEDIA]):
            if len(media.alt_text) > MAX_ALT_TEXT_LENGTH:
                violations[f"{prefix}media[{j}].alt_text"] = (
                    f"at most {MAX_ALT_TEXT_LENGTH} characters"
                )
            if len(media.mime_type) > MAX_MIME_TYPE_LENGTH:
                violations[f"{prefix}media[{j}].mime_type"] = (
                    f"at most {MAX_MIME_TYPE_LENGTH} characters"
                )
    return violations


def _check_etag(value: str) -> dict[str, str]:
    if len(value) > MAX_ETAG_LENGTH:
        return {"etag": f"at most {MAX_ETAG_LENGTH} characters"}
    return {}


def _check_new_post(new: NewPost, now: dt.datetime) -> None:
    violations = {}
    if not new.account_id:
        violations["account_id"] = "required"
    elif not ids.is_valid(new.account_id, ids.ACCOUNT):
        violations["account_id"] = "not an account id (acc_…)"
    if not new.post_type:
        violations["post_type"] = "required"
    if new.status not in lifecycle.CREATE_STATUSES:
        violations["status"] = "required: STATUS_CHANGE_PUBLISH, _SCHEDULED or _DRAFT"
    elif new.status == "scheduled" and new.scheduled_at is None:
        violations["scheduled_at"] = "required with STATUS_CHANGE_SCHEDULED"
    violations |= _check_items(new.items, new.shorthand)
    violations |= _check_title(new.title)
    violations |= _check_time(new.scheduled_at, now)
    violations |= _check_key(new.idempotency_key)
    if violations:
        raise errors.InvalidField(violations)


def _check_edit(edit: PostEdit, now: dt.datetime) -> None:
    _check_post_id(edit.post_id)
    changes = edit.changes
    violations = {}
    if "items" in changes and ("text" in changes or "media" in changes):
        violations["items"] = "send items, or text and media, not both"
    if "items" in changes:
        violations |= _check_items(changes["items"], shorthand=False)
    if "text" in changes or "media" in changes:
        item = ItemInput(changes.get("text", ""), changes.get("media", ()))
        violations |= _check_items([item], shorthand=True)
    if "title" in changes:
        violations |= _check_title(changes["title"])
    violations |= _check_etag(edit.etag)
    violations |= _check_time(changes.get("scheduled_at"), now)
    if "idempotency_key" in changes:
        violations |= _check_key(changes["idempotency_key"]) or (
            {} if changes["idempotency_key"] else {"idempotency_key": "cannot be cleared"}
        )
    if edit.immutable.get("account_id") and not ids.is_valid(
        edit.immutable["account_id"], ids.ACCOUNT
    ):
        violations["account_id"] = "not an account id (acc_…)"
    if violations:
        raise errors.InvalidField(violations)
