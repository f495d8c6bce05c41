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

from service import crypto, db, lifecycle, posts, rules
from service.config import Config
from service.lifecycle import Event, Status
from service.models import Account, Post, PostItem
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
    compare-and-set; ``before_send(post_id, item_index)`` before each send.
    """

    before_claim: list = dataclasses.field(default_factory=list)
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
        if not claim(post_id, token, db.utcnow()):
            log.info("dropped message for %s: token %s is no longer current", post_id, token)
            return
        try:
            _send_items(post_id, token)
        except LeaseLost:
            log.warning("lost %s while delivering (token %s)", post_id, token)
        except Exception as exc:  # a bug or an unexpected answer: retry from the database
            log.exception("delivery of %s failed unexpectedly", post_id)
            _retry(post_id, token, TransientError("INTERNAL", str(exc) or type(exc).__name__))


def claim(post_id: str, token: str, now: dt.datetime) -> bool:
    """PENDING with this token -> PROCESSING, in one compare-and-set."""
    with db.write():
        claimed = (
            Post.update(
                status=lifecycle.next_status(Status.PENDING, Event.CLAIM).value,
                attempts=Post.attempts + 1,
                last_attempt_at=now,
                lease_expires_at=now + dt.timedelta(seconds=_config.lease_seconds),
                next_attempt_at=None,
                version=Post.version + 1,
                updated_at=now,
            )
            .where(
                (Post.id == post_id)
                & (Post.status == Status.PENDING.value)
                & (Post.job_token == token)
            )
            .execute()
        )
        if claimed:
            posts.record_event(Post.get_by_id(post_id), Status.PENDING.value, "claim")
    return bool(claimed)


def _send_items(post_id: str, token: str) -> None:
    loaded = posts.load(post_id)
    post = loaded.post
    account = Account.get_by_id(post.account_id)
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
    reply_to = None
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
        _record_live(item.id, published, post_id, token)
        reply_to = published.platform_post_id
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
    return (
        Post.select(Post.id)
        .where(
            (Post.id == post_id)
            & (Post.job_token == token)
            & (Post.status == Status.PROCESSING.value)
        )
        .exists()
    )


def _record_live(item_id: int, published: Published, post_id: str, token: str) -> None:
    # Recorded even if the lease was lost meanwhile: the item *is* live.
    with db.write():
        PostItem.update(
            platform_post_id=published.platform_post_id,
            platform_url=published.url,
            published_at=db.utcnow(),
        ).where(PostItem.id == item_id).execute()
    if not _owns(post_id, token):
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
    now = db.utcnow()
    with db.write():
        post = Post.get_or_none(
            (Post.id == post_id) & (Post.job_token == token)
            & (Post.status == Status.PROCESSING.value)
        )  # fmt: skip
        if post is None:
            raise LeaseLost(post_id)
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
