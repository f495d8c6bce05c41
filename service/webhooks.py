"""Event webhooks: subscriptions and the outbox their deliveries are sent from.

A subscription sends a workspace's post events (all, or some types) to a URL,
each request signed with the subscription's secret (``whsec_…``, shown once at
creation, stored encrypted with the service's keyring like account credentials).

The outbox (``WebhookDelivery``) holds one row per event still to be sent to
one subscription. The database writes them itself, in the event's own
statement: a trigger on ``post_event`` (service/migrations/0004_*) inserts one
row per active subscription of the event's workspace that wants its type
(``event_types`` empty, or listing it as ``,<type>,``), so a committed change
always has its rows and a rolled-back one none, and no second statement goes
from Python per event. The workers
(workers/webhooks.py) send them: a dispatcher claims due rows, only the oldest
row of each (subscription, post) so one post's events reach a subscriber in
order, and a Dramatiq actor sends each one and records the result.

Every change of a row's claim and retry columns (token, next_at, tries,
first_try_at, last_error) and of a subscription's delivery state goes through
``advance``, a compare-and-set on (row id, token): the outbox's one writer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import random
import secrets
from typing import cast

from posts.v1 import posts_pb2 as pb

from service import codec, crypto, db, egress, errors, ids
from service.models import (
    PostEvent,
    WebhookDelivery,
    WebhookSubscription,
    Workspace,
    micros,
)

PREFIX = "whs"
SECRET_PREFIX = "whsec_"
#: Subscriptions a workspace may have (any state).
MAX_SUBSCRIPTIONS = 20
MAX_URL_LENGTH = egress.MAX_URL_LENGTH
MAX_DESCRIPTION_LENGTH = 300
MAX_EVENT_TYPES = 16
#: The longest backoff between two tries of one row, in seconds.
RETRY_CAP = 3600.0
#: The most rows of one subscription out (claimed, not yet answered) at once.
MAX_IN_FLIGHT = 2
#: The most characters of a failure's summary kept in last_error.
ERROR_CHARS = 200

ACTIVE, DISABLED = "active", "disabled"
_STATES = {
    ACTIVE: pb.WEBHOOK_SUBSCRIPTION_STATE_ACTIVE,
    DISABLED: pb.WEBHOOK_SUBSCRIPTION_STATE_DISABLED,
}


# ---------------------------------------------------------------- subscriptions


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_new(url: str, event_types, description: str) -> tuple[int, ...]:
    """The request's event types, deduplicated and sorted; raises InvalidField."""
    violations = {}
    if not url:
        violations["url"] = "required"
    else:
        # What the URL alone shows (scheme, userinfo, length, a refused IP
        # literal), decided as the workers' egress guard decides it.
        refusal = egress.url_refusal(url, egress.allow(), max_length=MAX_URL_LENGTH)
        if refusal:
            violations["url"] = refusal
    if len(event_types) > MAX_EVENT_TYPES:
        violations["event_types"] = f"at most {MAX_EVENT_TYPES} entries"
    else:
        for i, value in enumerate(event_types):
            if value == pb.POST_EVENT_TYPE_UNSPECIFIED or value not in pb.PostEventType.values():
                violations[f"event_types[{i}]"] = f"not a PostEventType: {value}"
    if len(description) > MAX_DESCRIPTION_LENGTH:
        violations["description"] = f"at most {MAX_DESCRIPTION_LENGTH} characters"
    if violations:
        raise errors.InvalidField(violations)
    return tuple(sorted(set(event_types)))


def create(
    workspace_id: str, url: str, event_types, description: str, now: dt.datetime | None = None
) -> tuple[WebhookSubscription, str]:
    """Makes a subscription; it and its secret (the only time the secret is
    shown). Raises InvalidField, SubscriptionLimitReached."""
    types = check_new(url, event_types, description)
    now = now or db.utcnow()
    secret = new_secret()
    subscription = WebhookSubscription(
        id=ids.new(PREFIX),
        workspace=workspace_id,
        url=url,
        event_types="".join(f",{t}" for t in types) + ("," if types else ""),
        description=description,
        state=ACTIVE,
        secret=crypto.keyring().encrypt(secret),
        last_error="",
        consecutive_failures=0,
        created_at=now,
    )
    with db.connection(), db.write():
        # The workspace's row, locked: concurrent creates count one at a time.
        list(db.locked(Workspace.select(Workspace.id).where(Workspace.id == workspace_id)))
        count = (
            WebhookSubscription.select()
            .where(WebhookSubscription.workspace == workspace_id)
            .count()
        )
        if count >= MAX_SUBSCRIPTIONS:
            raise errors.SubscriptionLimitReached(MAX_SUBSCRIPTIONS)
        db.insert(subscription)
    return subscription, secret


def list_all(workspace_id: str) -> list[WebhookSubscription]:
    """The workspace's subscriptions, oldest first."""
    with db.connection():
        return list(
            WebhookSubscription.select()
            .where(WebhookSubscription.workspace == workspace_id)
            .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
        )


def delete(workspace_id: str, subscription_id: str) -> None:
    """Removes the subscription and its undelivered rows; raises InvalidField for
    a malformed id, SubscriptionNotFound."""
    if not ids.is_valid(subscription_id, PREFIX):
        raise errors.InvalidField({"subscription_id": "not a subscription id (whs_…)"})
    with db.connection(), db.write():
        # Its undelivered rows go with it (ON DELETE CASCADE).
        gone = (
            WebhookSubscription.delete()
            .where(
                (WebhookSubscription.id == subscription_id)
                & (WebhookSubscription.workspace == workspace_id)
            )
            .execute()
        )
    if not gone:
        raise errors.SubscriptionNotFound(subscription_id)


def event_types_of(subscription: WebhookSubscription) -> list[pb.PostEventType]:
    # A cast, as in service.codec: the stored ints are the enum's values.
    return [cast("pb.PostEventType", int(t)) for t in subscription.event_types.split(",") if t]


def encode(subscription: WebhookSubscription) -> pb.WebhookSubscription:
    """A stored subscription as a posts.v1.WebhookSubscription (never its secret)."""
    message = pb.WebhookSubscription(
        subscription_id=subscription.id,
        workspace_id=subscription.workspace_id,
        url=subscription.url,
        event_types=event_types_of(subscription),
        description=subscription.description,
        state=_STATES.get(subscription.state, pb.WEBHOOK_SUBSCRIPTION_STATE_UNSPECIFIED),
        last_error=subscription.last_error,
        consecutive_failures=subscription.consecutive_failures,
        create_time=codec.timestamp(subscription.created_at),
    )
    if subscription.disabled_at is not None:
        message.disable_time.CopyFrom(codec.timestamp(subscription.disabled_at))
    return message


# ---------------------------------------------------------------- the outbox


_OUTBOX_SQL: dict[str, str] = {}


def _sql(template: str) -> str:
    """``template`` with ``?`` as this database's parameter placeholder."""
    key = f"{type(db.database.obj).__name__}:{template}"
    sql = _OUTBOX_SQL.get(key)
    if sql is None:
        sql = _OUTBOX_SQL[key] = template.replace("?", db.database.obj.param)
    return sql


class Change(enum.Enum):
    """What ``advance`` does to an outbox row."""

    CLAIM = "claim"  # the dispatcher: a new token, due again a lease from now
    START = "start"  # the sender: still its token; due again a lease from now
    DELIVERED = "delivered"  # a 2xx: the row is gone, the subscription's failures reset
    FAILED = "failed"  # retried after a backoff, or past the window the subscription disabled


@dataclasses.dataclass(frozen=True)
class Policy:
    """How long a claim holds (``lease``), the first backoff (``retry_base``,
    doubling with jitter up to RETRY_CAP), and how long after a row's first
    try it is retried (``retry_window``), all in seconds."""

    lease: float = 60.0
    retry_base: float = 10.0
    retry_window: float = 86400.0


def backoff(tries: int, base: float) -> float:
    """Seconds before the next try after ``tries`` failed ones: exponential, with jitter."""
    delay = min(RETRY_CAP, base * 2 ** max(tries - 1, 0))
    return random.uniform(delay / 2, delay)


_ROW = 'SELECT "id", "subscription_id", "event_id", "tries", "first_try_at" FROM "webhook_delivery" WHERE "id" = ? AND "token" = ?'


def advance(
    delivery_id: int, token: str, change: Change, now: dt.datetime, policy: Policy, error: str = ""
) -> str | None:
    """Applies ``change`` to the outbox row ``delivery_id`` while ``token`` is its
    token (a compare-and-set: a sender whose claim was taken over changes
    nothing); in a transaction of the caller's (``db.write()``).

    Returns the row's token from now on ('' once it is gone), or None when the
    row is not (or no longer) held with ``token``.
    """
    at = micros(now)
    if change is Change.CLAIM:
        fresh = secrets.token_hex(8)
        changed = db.database.execute_sql(
            _sql(
                'UPDATE "webhook_delivery" SET "token" = ?, "next_at" = ? WHERE "id" = ? AND "token" = ?'
            ),
            (fresh, micros(now + dt.timedelta(seconds=policy.lease)), delivery_id, token),
        ).rowcount
        return fresh if changed == 1 else None
    if change is Change.START:
        changed = db.database.execute_sql(
            _sql(
                'UPDATE "webhook_delivery" SET "next_at" = ?, "first_try_at" = COALESCE("first_try_at", ?) '
                'WHERE "id" = ? AND "token" = ?'
            ),
            (micros(now + dt.timedelta(seconds=policy.lease)), at, delivery_id, token),
        ).rowcount
        return token if changed == 1 else None
    row = db.database.execute_sql(
        _sql(_ROW + ("" if db.is_sqlite() else " FOR UPDATE")), (delivery_id, token)
    ).fetchone()
    if row is None:
        return None
    _, subscription_id, _, tries, first_try_at = row
    if change is Change.DELIVERED:
        db.database.execute_sql(
            _sql('DELETE FROM "webhook_delivery" WHERE "id" = ?'), (delivery_id,)
        )
        db.database.execute_sql(
            _sql(
                'UPDATE "webhook_subscription" SET "consecutive_failures" = 0, "last_error" = \'\' '
                'WHERE "id" = ? AND ("consecutive_failures" <> 0 OR "last_error" <> \'\')'
            ),
            (subscription_id,),
        )
        return ""
    # FAILED
    error = _summary(error)
    first = first_try_at if first_try_at is not None else at
    ends = first + int(policy.retry_window * 1_000_000)
    if at >= ends:
        # Failing for the whole window: the subscription is disabled, its rows stop.
        db.database.execute_sql(
            _sql(
                'UPDATE "webhook_subscription" SET "state" = ?, "disabled_at" = ?, "last_error" = ?, '
                '"consecutive_failures" = "consecutive_failures" + 1 WHERE "id" = ? AND "state" = ?'
            ),
            (DISABLED, at, error, subscription_id, ACTIVE),
        )
        db.database.execute_sql(
            _sql('DELETE FROM "webhook_delivery" WHERE "subscription_id" = ?'), (subscription_id,)
        )
        return ""
    wait = int(backoff(tries + 1, policy.retry_base) * 1_000_000)
    db.database.execute_sql(
        _sql(
            'UPDATE "webhook_delivery" SET "token" = \'\', "tries" = "tries" + 1, "last_error" = ?, '
            '"next_at" = ?, "first_try_at" = ? WHERE "id" = ?'
        ),
        (error, min(at + wait, ends), first, delivery_id),
    )
    db.database.execute_sql(
        _sql(
            'UPDATE "webhook_subscription" SET "consecutive_failures" = "consecutive_failures" + 1, '
            '"last_error" = ? WHERE "id" = ?'
        ),
        (error, subscription_id),
    )
    return ""


def _summary(error: str) -> str:
    error = " ".join((error or "failed").split())
    return error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 1] + "…"


_DUE_TEMPLATE = (
    'SELECT "d"."id", "d"."token", "d"."subscription_id", '
    '(SELECT COUNT(*) FROM "webhook_delivery" AS "c" WHERE "c"."subscription_id" = '
    '"d"."subscription_id" AND "c"."token" <> \'\' AND "c"."next_at" > ?) '
    'FROM "webhook_delivery" AS "d" '
    'JOIN "post_event" AS "e" ON "e"."id" = "d"."event_id" '
    'WHERE "d"."next_at" <= ? {numbered}'
    'AND NOT EXISTS (SELECT 1 FROM "webhook_delivery" AS "o" '
    'WHERE "o"."subscription_id" = "d"."subscription_id" AND "o"."post_id" = "d"."post_id" '
    'AND "o"."id" < "d"."id") '
    'ORDER BY "d"."next_at" LIMIT ? {lock}'
)


def claim_due(now: dt.datetime, policy: Policy, limit: int = 500) -> list[tuple[int, str]]:
    """Claims the due outbox rows, each the oldest of its (subscription, post) and
    its event numbered (PostgreSQL: call events.sequence first), at most
    MAX_IN_FLIGHT rows of one subscription out at once (so a slow subscriber
    holds at most that many sending threads); the (row id, token) messages to
    send once this commits. Rows another transaction holds are skipped (SKIP
    LOCKED), so dispatchers may run anywhere at once."""
    sqlite = db.is_sqlite()
    query = _sql(
        _DUE_TEMPLATE.format(
            numbered="" if sqlite else 'AND "e"."seq" IS NOT NULL ',
            lock="" if sqlite else 'FOR UPDATE OF "d" SKIP LOCKED',
        )
    )
    claimed = []
    at = micros(now)
    with db.write():
        busy: dict[str, int] = {}
        for delivery_id, token, subscription_id, out in db.database.execute_sql(
            query, (at, at, limit)
        ).fetchall():
            busy.setdefault(subscription_id, out)
            if busy[subscription_id] >= MAX_IN_FLIGHT:
                continue
            fresh = advance(delivery_id, token, Change.CLAIM, now, policy)
            if fresh is not None:
                claimed.append((delivery_id, fresh))
                busy[subscription_id] += 1
    return claimed


def release_all(now: dt.datetime) -> int:
    """Makes every claimed row due now (the embedded default's restart: its
    in-memory broker lost the messages, and no other process sends); how many."""
    with db.write():
        return db.database.execute_sql(
            _sql(
                'UPDATE "webhook_delivery" SET "token" = \'\', "next_at" = ? '
                'WHERE "token" <> \'\' AND "next_at" > ?'
            ),
            (micros(now), micros(now)),
        ).rowcount


@dataclasses.dataclass(frozen=True)
class Send:
    """One claimed row, as its sender needs it."""

    delivery_id: int
    token: str
    url: str
    secret: str
    event: pb.PostEvent


def start(delivery_id: int, token: str, now: dt.datetime, policy: Policy) -> Send | None:
    """The sender's claim: while ``token`` holds the row, its lease starts anew
    and its first try is stamped; what to send, or None (the message is stale,
    the row delivered, or its subscription gone or disabled)."""
    from service import events  # service.events imports this module

    with db.write():
        if advance(delivery_id, token, Change.START, now, policy) is None:
            return None
        row = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
        if row is None:
            return None
        subscription = WebhookSubscription.get_or_none(
            WebhookSubscription.id == row.subscription_id
        )
        event = PostEvent.get_or_none(PostEvent.id == row.event_id)
    if subscription is None or event is None or subscription.state != ACTIVE:
        return None
    return Send(
        delivery_id,
        token,
        subscription.url,
        crypto.keyring().decrypt(subscription.secret),
        events.encode(event),
    )


def record(
    delivery_id: int, token: str, error: str | None, now: dt.datetime, policy: Policy
) -> bool:
    """Records a send's result (``error`` None: delivered); False when the row was
    no longer this sender's."""
    change = Change.DELIVERED if error is None else Change.FAILED
    with db.write():
        return advance(delivery_id, token, change, now, policy, error or "") is not None
