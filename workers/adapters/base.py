"""The one interface every network adapter implements, and the errors it raises."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Protocol


class LeaseLost(Exception):
    """The post is no longer this worker's (taken over, or its job superseded)."""


class Lease(Protocol):
    """A worker's hold on the post it delivers, handed to adapters with each item.

    ``renew()`` moves the lease on (cheap: it writes at most every third of the
    lease); call it inside every wait (processing polls, uploads, downloads).
    ``before_create()`` proves ownership right before the request that makes the
    item live. Both raise LeaseLost when the post is no longer this worker's:
    stop at once, before any further network call.
    """

    def renew(self) -> None: ...

    def before_create(self) -> None: ...

    def record_handle(self, handle: str) -> None:
        """Stores the network's handle of the item's send under way (a container,
        an upload session) with the item, proving the lease as ``renew`` does: the
        next attempt finds it in ``ItemRequest.handle`` and resumes it."""
        ...


class _NoLease:
    """For adapters used outside a delivery (tests, tools): always held."""

    def renew(self) -> None:
        pass

    def before_create(self) -> None:
        pass

    def record_handle(self, handle: str) -> None:
        pass


NO_LEASE = _NoLease()


@dataclasses.dataclass(frozen=True)
class MediaRef:
    url: str
    kind: str
    mime_type: str = ""
    alt_text: str = ""


@dataclasses.dataclass(frozen=True)
class AccountRef:
    """The account a post goes out through, credentials decrypted."""

    account_id: str
    platform: str
    handle: str
    base_url: str
    token: str = dataclasses.field(repr=False)
    #: What renews an access token that expires (workers.credentials), where stored.
    refresh_token: str = dataclasses.field(default="", repr=False)
    client_id: str = ""
    client_secret: str = dataclasses.field(default="", repr=False)
    token_expires_at: datetime.datetime | None = None
    #: The stored credentials' version these were read at (a refresh's compare-and-set).
    credentials_version: int = 0


@dataclasses.dataclass(frozen=True)
class ItemRequest:
    """One item to publish."""

    post_id: str
    post_type: str
    title: str
    item_index: int
    item_count: int
    text: str
    media: tuple[MediaRef, ...]
    #: The network's id of the previous item of the thread, to reply to.
    reply_to: str | None
    #: Derived from the post's key, content revision and item index.
    idempotency_key: str
    #: The post as proto JSON, for adapters whose class sets ``needs_post_json = True``.
    post_json: dict | None = None
    #: When an earlier attempt started sending this item (its outcome unknown), if one did.
    send_started_at: datetime.datetime | None = None
    #: The handle an earlier attempt recorded (``Lease.record_handle``), '' if none.
    handle: str = ""
    #: This worker's hold on the post: renew it while waiting, check it before the create.
    lease: Lease = dataclasses.field(default_factory=lambda: NO_LEASE, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Published:
    """Where an item went live."""

    platform_post_id: str
    url: str


class DeliveryError(Exception):
    """A send that did not succeed; ``code`` and ``message`` are the network's."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransientError(DeliveryError):
    """Worth retrying later (timeouts, connection errors, 5xx, 429)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(code, message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Will not succeed by retrying (other 4xx, revoked credentials)."""


#: The code of a connection the egress guard refused (service.egress).
DESTINATION_REFUSED = "DESTINATION_REFUSED"


class DestinationRefused(PermanentError):
    """The egress guard refused where a request would go (service.egress): nothing
    was connected to."""

    def __init__(self, message: str):
        super().__init__(DESTINATION_REFUSED, message)


class Paced(DeliveryError):
    """The network's own posting limit is reached: wait ``retry_after`` seconds,
    nothing sent and the attempt not counted (as a posting limit of
    workers.pacing)."""

    def __init__(self, code: str, message: str, retry_after: float):
        super().__init__(code, message)
        self.retry_after = retry_after


class OutcomeUnknown(DeliveryError):
    """The request went out and no answer came: it may or may not be live.

    ``retry_after``: when a 5xx said so, the wait before the next attempt.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(code, message)
        self.retry_after = retry_after


class CannotTell(OutcomeUnknown):
    """From ``look_up``: the item may be live and the network cannot say where, so
    it must never be sent again (the post fails as DELIVERY_OUTCOME_UNKNOWN)."""


class Adapter(Protocol):
    """A network. One module per network under workers/adapters/.

    An adapter whose ``publish`` calls ``request.lease.before_create()`` itself,
    right before its create, says so with ``checks_before_create = True``. Without
    it the worker proves the lease just before ``publish`` starts: safe, but an
    upload or a processing wait may then outlast the proof.
    """

    #: The network deduplicates requests carrying the same idempotency key.
    honours_idempotency_keys: bool
    #: ``look_up`` can find an item already published with a key.
    can_look_up: bool

    def __init__(self, account: AccountRef) -> None: ...

    def publish(self, request: ItemRequest) -> Published:
        """Publishes one item; raises TransientError, PermanentError or OutcomeUnknown."""
        ...

    def look_up(self, request: ItemRequest) -> Published | None:
        """The item if it is already live on the network, else None; CannotTell
        when it may be live and the network cannot say where."""
        ...
