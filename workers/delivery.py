"""Delivering one post: claim it, send its items, record each result.

Every write after the claim is a compare-and-set on (post id, job token,
PROCESSING): a worker whose post was taken over (lease expired) or whose
message was superseded changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import random

from google.protobuf import json_format

from service import crypto, db, errors, lifecycle, posts, rules
from service.config import Config
from service.lifecycle import Event, Status
from service.models import Post, PostItem, micros
from service.servicer import encode_post
from workers.adapters import adapter_for
from workers.adapters.base import (
    AccountRef,
    DeliveryError,
    ItemRequest,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    Published,
    TransientError,
)

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN = "DELIVERY_OUTCOME_UNKNOWN"


@dataclasses.dataclass
class Hooks:
    """Named points where tests (and instrumentation) can step in.

    ``before_claim(post_id, token)`` runs just before the claim's
    compare-and-set and ``after_claim(post_id, token, claimed)`` just after it;
    ``before_send(post_id, item_index)`` before each send.
    """

    before_claim: list = dataclasses.field(default_factory=list)
    after_claim: list = dataclasses.field(default_factory=list)
    before_send: list = dataclasses.field(default_factory=list)


hooks = Hooks()
_config = Config()


def configure(config: Config) -> None:
    """Sets the lease and attempt limits deliveries use."""
    global _config
    _config = config


class LeaseLost(Exception):
    """The post is no longer this worker's (taken over, or its token changed)."""


def delivery_key(post: Post, index: int) -> str:
    """The idempotency key sent to the network for one item of one content revision."""
    base = f"{post.idempotency_key or post.id}:{post.content_revision}:{index}"
    return hashlib.sha256(base.encode()).hexdigest()[:32]


def compute_backoff(attempts: int, retry_after: float | None = None,
                    base: float = 2.0, cap: float = 600.0) -> float:  # fmt: skip
    """Seconds to wait before the next attempt: exponential, with jitter, at least Retry-After."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = random.uniform(delay / 2, delay)
    return max(delay, retry_after or 0.0)


def deliver(post_id: str, token: str) -> None:
    """Delivers ``post_id`` if ``token`` is still its job token; drops the message otherwise."""
    for hook in hooks.before_claim:
        hook(post_id, token)
    with db.connection():
        post = claim(post_id, token, db.utcnow())
        for hook in hooks.after_claim:
            hook(post_id, token, post is not None)
        if post is None:
            log.info("dropped message for %s: token %s is no longer current", post_id, token)
            return
        try:
            _send_items(post, token)
        except LeaseLost:
            log.warning("lost %s while delivering (token %s)", post_id, token)
        except Exception as exc:  # a bug or an unexpected answer: retry from the database
            log.exception("delivery of %s failed unexpectedly", post_id)
            _retry(post_id, token, TransientError("INTERNAL", str(exc) or type(exc).__name__))


_JOB = db.Compiled(
    lambda post_id, token, status: db.locked(
        Post.select().where(
            (Post.id == post_id) & (Post.job_token == token) & (Post.status == status)
        )
    )
)
_OWNED = db.Compiled(
    lambda post_id, token, status: Post.select(Post.id).where(
        (Post.id == post_id) & (Post.job_token == token) & (Post.status == status)
    )
)


_NEW_VERSION = db.Compiled(
    lambda step, now, post_id: Post.update(version=Post.version + step, updated_at=now).where(
        Post.id == post_id
    )
)


def _job(post_id: str, token: str, status: Status) -> Post | None:
    """The post if ``token`` is its job and it is in ``status``, its row locked."""
    rows = _JOB.rows(Post, post_id, token, status.value)
    return rows[0] if rows else None


def claim(post_id: str, token: str, now: dt.datetime) -> Post | None:
    """PENDING with this token -> PROCESSING; the claimed post, or None.

    The read holds the row (the write lock on SQLite, FOR UPDATE on PostgreSQL)
    and the write is a compare-and-set on its version, so one claim wins.
    """
    with db.write():
        post = _job(post_id, token, Status.PENDING)
        if post is None:
            return None
        post.status = lifecycle.next_status(Status.PENDING, Event.CLAIM).value
        post.attempts += 1
        post.last_attempt_at = now
        post.lease_expires_at = now + dt.timedelta(seconds=_config.lease_seconds)
        post.next_attempt_at = None
        try:
            posts.save(post, now)
        except errors.EtagMismatch:
            return None
        posts.record_event(post, Status.PENDING.value, "claim")
    return post


def _send_items(post: Post, token: str) -> None:
    loaded = posts.with_items(post)
    post_id = post.id
    account = posts.find_account(post.account_id, post.workspace_id)
    items = [posts.ItemInput(i.text, tuple(ms)) for i, ms in loaded.items]
    violations = rules.check(post.platform, post.post_type, post.title, items)
    if violations:
        detail = "; ".join(f"{k}: {v}" for k, v in violations.items())
        return _finish(post_id, token, Event.FAIL, "PLATFORM_RULE_VIOLATED", detail)
    ref = AccountRef(
        account.id, account.platform, account.handle, account.base_url,
        crypto.keyring().decrypt(account.credentials) if account.credentials else "",
    )  # fmt: skip
    adapter = adapter_for(ref, account.sandbox)
    if adapter is None:
        return _finish(post_id, token, Event.FAIL, "PLATFORM_NOT_SUPPORTED",
                       f"{post.platform} has no adapter yet")  # fmt: skip
    # Only the webhook sends the whole post; encoding it is wasted work for the rest.
    post_json = (json_format.MessageToDict(encode_post(loaded))
                 if getattr(adapter, "needs_post_json", False) else None)  # fmt: skip
    reply_to, finished = None, False
    for index, (item, media) in enumerate(loaded.items):
        if item.platform_post_id:
            reply_to = item.platform_post_id
            continue
        request = ItemRequest(
            post_id=post.id,
            post_type=post.post_type,
            title=post.title,
            item_index=index,
            item_count=len(loaded.items),
            text=item.text,
            media=tuple(MediaRef(m.url, m.kind, m.mime_type, m.alt_text) for m in media),
            reply_to=reply_to,
            idempotency_key=delivery_key(post, index),
            post_json=post_json,
            send_started_at=item.send_started_at,
        )
        try:
            published = _send_one(adapter, item, request, token)
        except TransientError as exc:
            return _retry(post_id, token, exc)
        except OutcomeUnknown as exc:
            if adapter.honours_idempotency_keys or adapter.can_look_up:
                return _retry(post_id, token, exc)
            return _finish(post_id, token, Event.FAIL, OUTCOME_UNKNOWN, exc.message)
        except PermanentError as exc:
            return _finish(post_id, token, Event.FAIL, exc.code, exc.message)
        if published is None:
            return _finish(post_id, token, Event.FAIL, OUTCOME_UNKNOWN,
                           f"item {index} may have gone out; the network cannot tell")  # fmt: skip
        finished = index == len(loaded.items) - 1  # the last item finishes the post
        _record_live(item, published, post_id, token, finish=finished)
        reply_to = published.platform_post_id
    if not finished:  # every item was already live
        _finish(post_id, token, Event.SUCCEED)


def _send_one(adapter, item: PostItem, request: ItemRequest, token: str) -> Published | None:
    """Sends one item, or finds it where an earlier attempt's outcome is unknown.

    Returns None when the item may be live and nothing can tell.
    """
    if item.send_started_at is not None and not adapter.honours_idempotency_keys:
        if not adapter.can_look_up:
            return None
        found = adapter.look_up(request)
        if found:
            return found
    for hook in hooks.before_send:
        hook(request.post_id, request.item_index)
    if adapter.honours_idempotency_keys:
        # A repeat is harmless, so no mark to write (one transaction less per item).
        if not _owns(request.post_id, token):
            raise LeaseLost(request.post_id)
        return adapter.publish(request)
    mark = PostItem.update(send_started_at=db.utcnow()).where(PostItem.id == item.id)
    _guarded(mark, request.post_id, token)
    try:
        return adapter.publish(request)
    except TransientError:
        # The network said no, or the request never left: not live, so the next
        # attempt sends again instead of treating the outcome as unknown.
        unmark = PostItem.update(send_started_at=None).where(PostItem.id == item.id)
        _guarded(unmark, request.post_id, token)
        raise


def _guarded(query, post_id: str, token: str) -> None:
    """Runs an item write only while the post is still this worker's."""
    with db.write():
        if not _owns(post_id, token):
            raise LeaseLost(post_id)
        query.execute()


def _owns(post_id: str, token: str) -> bool:
    return bool(_OWNED.rows(Post, post_id, token, Status.PROCESSING.value))


def _record_live(item: PostItem, published: Published, post_id: str, token: str,
                 finish: bool) -> None:  # fmt: skip
    """Records an item live and, after the last, the post PUBLISHED, in one transaction.

    The item is recorded whatever else happens (it *is* live): if the lease was
    lost meanwhile, or finishing fails, the item still commits.
    """
    item.platform_post_id = published.platform_post_id
    item.platform_url = published.url
    item.published_at = db.utcnow()
    failure = None
    with db.write():
        db.update_changed(item)
        finished = False
        if finish:
            try:
                with db.database.atomic():  # a savepoint: a failed finish keeps the item
                    finished = _finish_owned(post_id, token, Event.SUCCEED)
            except Exception as exc:  # noqa: BLE001 (raised again once the item commits)
                failure = exc
        if not finished:
            # No save bumped the version, yet what GetPostStatus answers changed.
            _NEW_VERSION.execute(1, micros(item.published_at), post_id)
        owned = finished if finish else _owns(post_id, token)
    if failure is not None:
        raise failure
    if not owned:
        raise LeaseLost(post_id)


def _retry(post_id: str, token: str, error: DeliveryError) -> None:
    post = Post.get_by_id(post_id)
    if post.attempts >= _config.max_attempts:
        return _finish(post_id, token, Event.FAIL, error.code, error.message)
    delay = compute_backoff(post.attempts, getattr(error, "retry_after", None), _config.retry_base)
    _finish(post_id, token, Event.RETRY, error.code, error.message,
            next_attempt_at=db.utcnow() + dt.timedelta(seconds=delay))  # fmt: skip


def _finish(post_id: str, token: str, event: Event, code: str = "", message: str = "",
            next_attempt_at: dt.datetime | None = None) -> None:  # fmt: skip
    """PROCESSING -> PUBLISHED, FAILED or PENDING (retry), if the post is still ours."""
    with db.write():
        owned = _finish_owned(post_id, token, event, code, message, next_attempt_at)
    if not owned:
        raise LeaseLost(post_id)


def _finish_owned(post_id: str, token: str, event: Event, code: str = "", message: str = "",
                  next_attempt_at: dt.datetime | None = None) -> bool:  # fmt: skip
    """``_finish`` within the caller's transaction; False if the post is no longer ours."""
    now = db.utcnow()
    post = _job(post_id, token, Status.PROCESSING)
    if post is None:
        return False
    post.status = lifecycle.next_status(Status.PROCESSING, event).value
    post.lease_expires_at = None
    post.error_code, post.error_message = code, message[:2000]
    if event is Event.SUCCEED:
        post.published_at = now
    if event is Event.RETRY:
        post.job_token = posts.new_token()
        post.next_attempt_at = next_attempt_at
    posts.save(post, now)
    posts.record_event(post, Status.PROCESSING.value, event.value + (f":{code}" if code else ""))
    return True
