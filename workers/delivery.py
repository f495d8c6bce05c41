"""Delivering one post: claim it, send its items, record each result.

Every lifecycle write is a worker event applied by ``service.store`` with a
compare-and-set on (post id, job token, status): a worker whose post was taken
over (lease expired) or whose message was superseded changes nothing. The
worker renews its lease while it delivers (``Lease``), and proves it still
holds it right before each request that can make an item live.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import random
import time

from google.protobuf import json_format

from service import db, lifecycle, logs, metrics, posts, rules, store
from service.codec import encode_post
from service.config import Config
from service.lifecycle import Event, Status
from service.models import LoadedPost, Post, PostItem, micros
from workers import credentials, pacing
from workers.adapters import adapter_for
from workers.adapters.base import (
    CannotTell,
    DeliveryError,
    ItemRequest,
    LeaseLost,
    MediaRef,
    OutcomeUnknown,
    Paced,
    PermanentError,
    Published,
    TransientError,
)

log = logging.getLogger(__name__)

__all__ = ["LeaseLost", "claim", "deliver"]


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
    """Sets the lease, attempt and backoff limits deliveries use."""
    global _config
    _config = config
    store.configure(lifecycle.Policy(config.lease_seconds, config.max_attempts))


def delivery_key(post: Post, index: int) -> str:
    """The idempotency key sent to the network for one item of one content revision.

    From the post's id, which no other post shares: never the caller's
    idempotency key, which two workspaces may both use.
    """
    base = f"{post.id}:{post.content_revision}:{index}"
    return hashlib.sha256(base.encode()).hexdigest()[:32]


def compute_backoff(
    attempts: int, retry_after: float | None = None, base: float = 2.0, cap: float = 600.0
) -> float:
    """Seconds to wait before the next attempt: exponential, with jitter, at least Retry-After."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = random.uniform(delay / 2, delay)
    return max(delay, retry_after or 0.0)


def deliver(post_id: str, token: str) -> None:
    """Delivers ``post_id`` if ``token`` is still its job token; drops the message otherwise."""
    with logs.bound(post=post_id, job_token=token):
        _deliver(post_id, token)


def _deliver(post_id: str, token: str) -> None:
    for hook in hooks.before_claim:
        hook(post_id, token)
    with db.connection():
        claimed_from = time.monotonic()  # before the lease's start, read next
        loaded = claim(post_id, token, db.utcnow())
        for hook in hooks.after_claim:
            hook(post_id, token, loaded is not None)
        if loaded is None:
            log.info("dropped message for %s: token %s is no longer current", post_id, token)
            metrics.stale_message()
            return
        post = loaded.post
        logs.bind(workspace=post.workspace_id, network=post.platform, attempt=post.attempts)
        try:
            _send_items(loaded, Lease(post_id, token, claimed_from))
        except LeaseLost:
            log.warning("lost %s while delivering (token %s)", post_id, token)
        except BaseException as exc:
            # A bug, an unexpected answer, or Dramatiq's time limit (a BaseException):
            # the attempt ends here, counted, and the post waits for the next one.
            log.exception("delivery of %s ended without an answer", post_id)
            _end_quietly(
                post_id,
                token,
                Event.CRASH,
                TransientError(lifecycle.CRASHED, str(exc) or type(exc).__name__),
            )
            if not isinstance(exc, Exception):
                raise


def claim(post_id: str, token: str, now: dt.datetime) -> LoadedPost | None:
    """PENDING with this token -> PROCESSING; the claimed post with its items, or None.

    The read holds the row (the write lock on SQLite, FOR UPDATE on PostgreSQL)
    and the write is a compare-and-set on its version, so one claim wins.
    """
    with db.write():
        return store.claim(post_id, token, now)


class Lease:
    """This worker's hold on one post (see workers.adapters.base.Lease)."""

    def __init__(self, post_id: str, token: str, renewed: float):
        self.post_id = post_id
        self.token = token
        #: time.monotonic() taken before the clock reading this worker's lease last
        #: started from (its claim or renewal): the lease runs at least a lease from it.
        self._renewed = renewed
        #: The item the next create sends; whether to mark it first (the network
        #: cannot dedupe), and whether this attempt did.
        self.item: PostItem | None = None
        self.mark = False
        self.marked = False

    def renew(self) -> None:
        if time.monotonic() - self._renewed >= store.policy().lease_seconds / 3:
            self._renew()

    def before_create(self) -> None:
        """Proves the post is still this worker's for longer than the create can
        take, right before it. Where the network cannot dedupe, renews the lease
        and marks the item as being sent in one transaction (a crash from here on
        leaves the mark); elsewhere it holds while at least half the lease is left
        (a request's deadline is at most half a lease), else it renews.

        A lease this worker started less than half a lease ago is known to be held
        without a read: until it expires only this worker changes a PROCESSING
        post (the sweeper takes over expired leases only, and a restarting server
        the posts of a worker known to have stopped)."""
        if not self.mark:
            half = store.policy().lease_seconds / 2
            if time.monotonic() - self._renewed < half:
                return
            now = db.utcnow()
            left = dt.timedelta(seconds=half)
            with db.connection():
                if _HELD.value(
                    self.post_id, self.token, Status.PROCESSING.value, micros(now + left)
                ):
                    return
        self._renew(mark=self.item if self.mark else None)

    def record_handle(self, handle: str) -> None:
        """Stores ``handle`` with the item being sent, in the transaction that renews
        the lease: only while the post is this worker's (LeaseLost otherwise)."""
        started = time.monotonic()
        with db.connection(), db.write():
            if store.apply_job(self.post_id, self.token, Event.RENEW, db.utcnow()) is None:
                raise LeaseLost(self.post_id)
            if self.item is None:
                raise RuntimeError("record_handle: no item is being sent")
            _HANDLE.execute(handle, self.item.id)
        self._renewed = started

    def _renew(self, mark: PostItem | None = None) -> None:
        """Moves the lease on (and marks ``mark``, the item being sent, in the same
        transaction); LeaseLost when the post is no longer this worker's."""
        started = time.monotonic()
        with db.connection(), db.write():
            if store.apply_job(self.post_id, self.token, Event.RENEW, db.utcnow()) is None:
                raise LeaseLost(self.post_id)
            if mark is not None:
                _MARK.execute(micros(db.utcnow()), mark.id)
                self.marked = True
        self._renewed = started


_HELD = db.Compiled(
    lambda post_id, token, status, until: Post.select(Post.id).where(
        (Post.id == post_id)
        & (Post.job_token == token)
        & (Post.status == status)
        & (Post.lease_expires_at >= until)
    )
)
_MARK = db.Compiled(
    lambda at, item_id: PostItem.update(send_started_at=at).where(PostItem.id == item_id)
)
_HANDLE = db.Compiled(
    lambda handle, item_id: PostItem.update(send_handle=handle).where(PostItem.id == item_id)
)
_UNMARK = db.Compiled(
    lambda none, item_id: PostItem.update(send_started_at=none).where(PostItem.id == item_id)
)
# An item recorded live is never overwritten: the first result stands.
_LIVE = db.Compiled(
    lambda platform_post_id, url, at, item_id, empty: PostItem.update(
        platform_post_id=platform_post_id, platform_url=url, published_at=at
    ).where((PostItem.id == item_id) & (PostItem.platform_post_id == empty))
)
_NEW_VERSION = db.Compiled(
    lambda step, now, post_id: Post.update(version=Post.version + step, updated_at=now).where(
        Post.id == post_id
    )
)


def _broken_rules(post: Post, loaded: posts.LoadedPost) -> str:
    """The network's rules that the post breaks, in words ('' when it keeps them all)."""
    items = posts.as_inputs(loaded)
    violations = rules.check(post.platform, post.post_type, post.title, items)
    if not items:
        violations = {"items": "a post needs at least one item"}
    return "; ".join(f"{k}: {d}" for k, v in violations.items() for d in rules.descriptions(v))


def _send_items(loaded: LoadedPost, lease: Lease) -> None:
    post = loaded.post
    post_id, token = post.id, lease.token
    account = posts.post_account(post)
    broken = _broken_rules(post, loaded)
    if broken:
        return _end(post_id, token, Event.FAIL, PermanentError("PLATFORM_RULE_VIOLATED", broken))
    adapter = adapter_for(credentials.account_ref(account), account.sandbox)
    if adapter is None:
        return _end(
            post_id,
            token,
            Event.FAIL,
            PermanentError("PLATFORM_NOT_SUPPORTED", f"{post.platform} has no adapter yet"),
        )
    lease.mark = not adapter.honours_idempotency_keys
    # Only the webhook sends the whole post; encoding it is wasted work for the rest.
    post_json = (
        json_format.MessageToDict(encode_post(loaded))
        if getattr(adapter, "needs_post_json", False)
        else None
    )
    reply_to, finished = None, False
    for index, (item, media) in enumerate(loaded.items):
        if item.platform_post_id:
            reply_to = item.platform_post_id
            continue
        # The account's posting limit: wait for its window to end, the attempt not
        # counted. Best effort: deliveries racing for one account may both pass.
        until = pacing.ready_at(
            account.id, account.platform, db.utcnow(), _config.pacing_overrides, account.sandbox
        )
        if until is not None:
            return _end(post_id, token, Event.PACED, until=until)
        lease.renew()
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
            handle=item.send_handle,
            lease=lease,
        )
        try:
            published = _send_one(adapter, item, request, lease)
        except Paced as exc:
            log.info("%s: the network's posting limit: %s", post_id, exc.message)
            return _end(
                post_id,
                token,
                Event.PACED,
                until=db.utcnow() + dt.timedelta(seconds=exc.retry_after),
            )
        except TransientError as exc:
            return _end(post_id, token, Event.RETRY, exc)
        except OutcomeUnknown as exc:
            resolvable = adapter.honours_idempotency_keys or adapter.can_look_up
            return _end(post_id, token, Event.UNKNOWN, exc, resolvable=resolvable)
        except PermanentError as exc:
            return _end(post_id, token, Event.FAIL, exc)
        if published is None:
            return _end(
                post_id,
                token,
                Event.UNKNOWN,
                OutcomeUnknown(
                    "NO_ANSWER", f"item {index} may have gone out; the network cannot tell"
                ),
                resolvable=False,
            )
        finished = index == len(loaded.items) - 1  # the last item finishes the post
        _record_live(loaded, item, published, token, finish=finished)
        reply_to = published.platform_post_id
    if not finished:  # every item was already live
        _end(post_id, token, Event.SUCCEED)


def _send_one(adapter, item: PostItem, request: ItemRequest, lease: Lease) -> Published | None:
    """Sends one item, or finds it where an earlier attempt's outcome is unknown.

    Returns None when the item may be live and nothing can tell.
    """
    if item.send_started_at is not None and not adapter.honours_idempotency_keys:
        if not adapter.can_look_up:
            return None
        try:
            found = adapter.look_up(request)
        except CannotTell:
            return None
        if found:
            return found
    for hook in hooks.before_send:
        hook(request.post_id, request.item_index)
    lease.item, lease.marked = item, False
    if not getattr(adapter, "checks_before_create", False):
        # The safety net for an adapter that does not prove the lease itself
        # (workers.adapters.base.Adapter): proven, and the item marked, before it starts.
        lease.before_create()
    try:
        return adapter.publish(request)
    except TransientError:
        # The network said no, or the request never left: nothing went live, so the
        # next attempt sends again instead of treating the outcome as unknown.
        if lease.marked:
            with db.write():
                _UNMARK.execute(None, item.id)
        raise


def _record_live(
    loaded: LoadedPost, item: PostItem, published: Published, token: str, finish: bool
) -> None:
    """Records ``item`` (one of ``loaded``'s) live and, after the last, the post
    PUBLISHED, in one transaction.

    The item is recorded whatever else happens (it *is* live): if the lease was
    lost meanwhile, the item still commits; if finishing fails, the item is
    recorded again on its own before the failure is raised.
    """
    post_id = loaded.post.id
    now = db.utcnow()
    event = Event.SUCCEED if finish else Event.ITEM_LIVE
    try:
        with db.write():
            written = _write_live(loaded, item, published, now, token, event)
    except Exception:
        # Rare (a bug, a constraint, a dropped statement): the item alone, then
        # the failure. Cheaper than a savepoint around every finish.
        try:
            with db.write():
                _write_live(loaded, item, published, now, None, event)
        except Exception:
            log.exception("could not record item %d of %s live", item.position, post_id)
        raise
    if written is None:
        raise LeaseLost(post_id)
    if finish:
        log_outcome(written, event)


def _write_live(
    loaded: LoadedPost,
    item: PostItem,
    published: Published,
    now: dt.datetime,
    token: str | None,
    event: Event,
) -> Post | None:
    """The writes of ``_record_live``, in the caller's transaction: the item live
    (unless already), then ``event`` if ``token`` is given and still the post's
    job; the post as written, or None (and the post's version moved on)."""
    post_id = loaded.post.id
    recorded = _LIVE.execute(published.platform_post_id, published.url, micros(now), item.id, "")
    if recorded:  # as written, so the event's snapshot need not read the items again
        item.platform_post_id, item.platform_url = published.platform_post_id, published.url
        item.published_at = now
    written = None
    if token is not None:
        written = store.apply_job(
            post_id,
            token,
            event,
            now,
            item_index=item.position,
            items=loaded.items if recorded else None,
        )
    if written is None:
        # No lifecycle change bumped the version, yet what GetPostStatus answers changed.
        _NEW_VERSION.execute(1, micros(now), post_id)
    return written


def log_outcome(post: Post, event: Event, wait: float | None = None) -> None:
    """One line for the end of a delivery attempt, once it committed: the post,
    network, attempt and what became of it (PUBLISHED, FAILED with its error,
    RETRY_SCHEDULED with the wait and the error, PACED). ``post`` as written.
    Never a credential or a token; an error's URLs are cut to scheme, host and path."""
    status = Status(post.status)
    where = (
        f"delivery of {post.id} ({post.platform}, attempt {post.attempts} of"
        f" {store.policy().max_attempts})"
    )
    error = logs.scrub(f"{post.error_code}: {post.error_message}") if post.error_code else ""
    if status is Status.PUBLISHED:
        log.info("%s: PUBLISHED", where)
    elif status is Status.FAILED:
        log.warning("%s: FAILED %s", where, error)
    elif event is Event.PACED:
        log.info("%s: PACED, the account's posting limit: next attempt in %.1f s", where, wait or 0)
    else:
        after = f" after {error}" if error else ""
        log.info("%s: RETRY_SCHEDULED in %.1f s (%s)%s", where, wait or 0, event.value, after)


def _end(
    post_id: str,
    token: str,
    event: Event,
    error: DeliveryError | None = None,
    resolvable: bool = True,
    until: dt.datetime | None = None,
) -> None:
    """Ends the attempt with ``event`` (PUBLISHED, FAILED, or PENDING for the next
    one) if the post is still this worker's; raises LeaseLost otherwise.
    ``until``: for PACED, when the account's posting window ends."""
    decision: dict = {"resolvable": resolvable}
    if error is not None:
        decision["error"] = (error.code, error.message)
    now = db.utcnow()
    with db.connection(), db.write():
        post = store.job(post_id, token, Status.PROCESSING)
        if post is None:
            raise LeaseLost(post_id)
        if event in (Event.RETRY, Event.UNKNOWN, Event.CRASH):
            retry_after = getattr(error, "retry_after", None)
            decision["wait"] = compute_backoff(post.attempts, retry_after, _config.retry_base)
        if until is not None:
            decision["wait"] = max((until - now).total_seconds(), 0.0)
        if store.apply(post, event, now, **decision) is None:
            raise LeaseLost(post_id)
    log_outcome(post, event, decision.get("wait"))


def _end_quietly(post_id: str, token: str, event: Event, error: DeliveryError) -> None:
    """``_end`` from an attempt that is dying: the lease takes over if even this fails."""
    try:
        _end(post_id, token, event, error)
    except LeaseLost:
        pass
    except Exception:
        log.exception("could not record the end of %s; its lease will expire", post_id)
