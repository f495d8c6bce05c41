"""Instagram (Graph API content publishing): feed posts, reels, stories, carousels.

The account's handle is its Instagram user id (the professional account's
numeric id); its token a long-lived Instagram user access token. A post is
published in three steps:

1. ``POST /{ig-user-id}/media`` makes a container: ``image_url``, or
   ``video_url`` with ``media_type`` ``REELS`` (a reel, or a feed video shared
   to the feed: Instagram no longer takes feed ``VIDEO``s) or ``STORIES``; a
   carousel makes one child per medium (``is_carousel_item``) and then a
   ``CAROUSEL`` container naming them. Instagram fetches the media itself.
2. ``GET /{container-id}?fields=status_code`` until ``FINISHED`` (``ERROR``
   and ``EXPIRED`` are permanent), renewing the lease meanwhile.
3. ``POST /{ig-user-id}/media_publish`` with ``creation_id``, then ``GET
   /{media-id}?fields=permalink`` for the post's URL.

Exactly once: making containers is harmless, publishing one is not
idempotent. The container's id is recorded with the item as soon as it exists
(``Lease.record_handle``), so a retry or a take-over resumes it. Before a
publish whose outcome is unknown is sent again, ``look_up`` asks the container:
not ``PUBLISHED`` means nothing went live (publish it); ``PUBLISHED`` means it
is live, and the account's recent media with the same caption, made since the
earlier send, name it; when none does, the post fails as
DELIVERY_OUTCOME_UNKNOWN (CannotTell), never published twice.

The account's ``content_publishing_limit`` (posts in the last 24 hours) is
read before publishing: a full quota is a wait (Paced), no attempt spent.

Tokens: a long-lived token lasts 60 days and is refreshed (``GET
/refresh_access_token?grant_type=ig_refresh_token``) when it is known to expire
within REFRESH_MARGIN, or when Instagram answers that it has expired (OAuth
error 190) in the middle of a delivery; the refresh is shared by all workers
(workers.credentials), and one Instagram refuses is CREDENTIALS_REVOKED.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import httpx

from service.lifecycle import OUTCOME_UNKNOWN
from workers import credentials
from workers.adapters.base import (
    AccountRef,
    CannotTell,
    ItemRequest,
    Lease,
    MediaRef,
    OutcomeUnknown,
    Paced,
    PermanentError,
    Published,
    TransientError,
)
from workers.adapters.http import (
    MESSAGE_CHARS,
    answer,
    client,
    deadline,
    json_object,
    nothing_live_yet,
    pause,
    require_account,
    retry_after,
)

#: The Graph API version this adapter speaks.
VERSION = "v21.0"
#: How long to wait for Instagram to fetch and process a container's media before
#: retrying later (the container is kept: the next attempt resumes it).
PROCESSING_DEADLINE = 120.0
PROCESSING_POLL_INTERVAL = 2.0
#: A full publishing quota waits this long before the next look: Instagram says how
#: many posts its rolling 24 hours hold, not when the oldest leaves them.
PUBLISH_LIMIT_WAIT = 3600.0
#: A token known to expire within this many seconds is refreshed before use.
REFRESH_MARGIN = 7 * 86400.0
#: Graph API error codes: an expired or invalid access token; rate limits
#: (application, user, API, and per-call); a medium not ready to publish yet.
TOKEN_ERROR = 190
RATE_LIMIT_ERRORS = frozenset({4, 17, 32, 613})
MEDIA_NOT_READY = 9007
#: Only media published since the earlier send (less this grace for clock skew) can be ours.
LOOK_UP_GRACE = dt.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class _Container:
    id: str
    status: str


class InstagramAdapter:
    """Publishes posts for one Instagram professional account through the Graph API."""

    honours_idempotency_keys = False
    can_look_up = True
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account
        self._refreshed = False

    # ------------------------------------------------------------------ publishing
    def publish(self, item: ItemRequest) -> Published:
        user_id = self._user_id()
        lease = item.lease
        with nothing_live_yet("container"):
            if credentials.expiring(self._account, REFRESH_MARGIN):
                self._refresh(lease)
            container = self._container(item) if item.handle else None
            if container is None:
                container_id = self._create(user_id, item)
                lease.record_handle(container_id)
            elif container.status == "PUBLISHED":
                # Published by an attempt that did not live to record it.
                found = self._find_published(user_id, item)
                if found is None:
                    raise PermanentError(
                        OUTCOME_UNKNOWN,
                        f"container {container.id} was published and its media cannot be found",
                    )
                return found
            else:
                container_id = container.id  # ERROR or EXPIRED: the wait raises
            self._wait_finished(container_id, lease)
            self._check_quota(user_id, lease)
        lease.before_create()
        published = self._call(
            "POST",
            f"/{user_id}/media_publish",
            lease,
            creates=True,
            data={"creation_id": container_id},
        )
        media_id = str(published.get("id") or "")
        if not media_id:
            raise OutcomeUnknown("NO_MEDIA_ID", "Instagram published without naming the media")
        return Published(media_id, self._permalink(media_id, lease))

    def look_up(self, item: ItemRequest) -> Published | None:
        """Whether an earlier publish of the item's container went through: None when
        the container is not PUBLISHED (nothing is live: publish it), the media when
        the account's recent media name it, else CannotTell."""
        if not item.handle:
            return None
        user_id = self._user_id()
        with nothing_live_yet("look-up"):
            container = self._container(item)
            if container is None or container.status != "PUBLISHED":
                return None
            found = self._find_published(user_id, item)
        if found is None:
            raise CannotTell(
                "CONTAINER_PUBLISHED",
                f"container {item.handle} was published and its media cannot be found",
            )
        return found

    # ------------------------------------------------------------------ steps
    def _user_id(self) -> str:
        require_account(self._account, "Instagram", "base URL", "access token")
        user_id = self._account.handle.strip()
        if not user_id.isdigit():
            raise PermanentError(
                "INVALID_ACCOUNT",
                f"an Instagram account's handle must be its numeric user id, not {user_id!r}",
            )
        return user_id

    def _create(self, user_id: str, item: ItemRequest) -> str:
        """Makes the item's container (a carousel's children first); its id."""
        lease = item.lease
        if item.post_type == "carousel":
            children = []
            for media in item.media:
                fields = {"is_carousel_item": "true", **_source(media, carousel=True)}
                children.append(
                    self._made(self._call("POST", f"/{user_id}/media", lease, data=fields))
                )
            for child in children:
                self._wait_finished(child, lease)
            fields = {
                "media_type": "CAROUSEL",
                "children": ",".join(children),
                "caption": item.text,
            }
        else:
            if not item.media:
                raise PermanentError("PLATFORM_RULE_VIOLATED", "an Instagram post needs a medium")
            fields = _source(item.media[0], post_type=item.post_type)
            if item.post_type != "story":  # stories take no caption
                fields["caption"] = item.text
        return self._made(self._call("POST", f"/{user_id}/media", lease, data=fields))

    @staticmethod
    def _made(body: dict) -> str:
        container_id = str(body.get("id") or "")
        if not container_id:
            raise TransientError("NO_CONTAINER_ID", "Instagram made a container without an id")
        return container_id

    def _container(self, item: ItemRequest) -> _Container | None:
        """The recorded container's status; None when Instagram no longer knows it."""
        try:
            body = self._call(
                "GET", f"/{item.handle}", item.lease, params={"fields": "status_code,status"}
            )
        except PermanentError as exc:
            if exc.code == "404" or "does not exist" in exc.message:
                return None
            raise
        return _Container(item.handle, str(body.get("status_code") or ""))

    def _wait_finished(self, container_id: str, lease: Lease) -> None:
        """Polls the container until Instagram has fetched and processed its media."""
        ends_at = time.monotonic() + PROCESSING_DEADLINE
        while True:
            body = self._call(
                "GET", f"/{container_id}", lease, params={"fields": "status_code,status"}
            )
            status = body.get("status_code")
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status in ("ERROR", "EXPIRED"):
                detail = str(body.get("status") or "")[:MESSAGE_CHARS]
                raise PermanentError(
                    f"CONTAINER_{status}",
                    f"Instagram could not use container {container_id}"
                    + (f": {detail}" if detail else ""),
                )
            if time.monotonic() >= ends_at:
                raise TransientError(
                    "MEDIA_PROCESSING", f"Instagram is still processing container {container_id}"
                )
            pause(PROCESSING_POLL_INTERVAL, lease)

    def _check_quota(self, user_id: str, lease: Lease) -> None:
        """Paced when the account's publishing quota for the last 24 hours is used up."""
        body = self._call(
            "GET",
            f"/{user_id}/content_publishing_limit",
            lease,
            params={"fields": "config,quota_usage"},
        )
        data = body.get("data") or [{}]
        limit = data[0] if isinstance(data, list) and isinstance(data[0], dict) else {}
        total = (limit.get("config") or {}).get("quota_total")
        used = limit.get("quota_usage")
        if isinstance(total, int) and isinstance(used, int) and used >= total:
            raise Paced(
                "PUBLISH_LIMIT_REACHED",
                f"the account has published {used} of its {total} posts in 24 hours",
                PUBLISH_LIMIT_WAIT,
            )

    def _permalink(self, media_id: str, lease: Lease) -> str:
        """The post's URL; "" when Instagram does not say (it is live all the same)."""
        try:
            body = self._call("GET", f"/{media_id}", lease, params={"fields": "permalink"})
        except (TransientError, PermanentError, OutcomeUnknown):
            return ""
        return str(body.get("permalink") or "")

    def _find_published(self, user_id: str, item: ItemRequest) -> Published | None:
        """The account's recent medium with the item's caption, made since the earlier send."""
        body = self._call(
            "GET",
            f"/{user_id}/media",
            item.lease,
            params={"fields": "id,caption,permalink,timestamp", "limit": 25},
        )
        since = (item.send_started_at - LOOK_UP_GRACE) if item.send_started_at else None
        caption = "" if item.post_type == "story" else item.text
        for media in body.get("data") or []:
            made = _timestamp(media.get("timestamp"))
            if since is not None and (made is None or made < since):
                continue
            if (media.get("caption") or "") == caption:
                return Published(str(media["id"]), str(media.get("permalink") or ""))
        return None

    # ------------------------------------------------------------------ requests
    def _client(self) -> httpx.Client:
        return client(
            f"{self._account.base_url.rstrip('/')}/{VERSION}",
            {"Authorization": f"Bearer {self._account.token}"},
        )

    def _call(
        self, method: str, path: str, lease: Lease, *, creates: bool = False, **kwargs
    ) -> dict:
        """One Graph API call; its JSON answer. An expired token is refreshed once and
        the call made again; other refusals raise as workers.adapters.http does."""
        while True:
            with self._client() as api:
                response = answer(api, method, path, within=deadline(), **kwargs)
            if response.is_success:
                return json_object(response)
            error = json_object(response).get("error")
            error = error if isinstance(error, dict) else {}
            if error.get("code") == TOKEN_ERROR and not self._refreshed:
                self._refresh(lease)
                continue
            raise _refusal(response, error, creates)

    def _refresh(self, lease: Lease) -> None:
        """Renews the long-lived token (once per delivery), shared among workers."""
        self._refreshed = True
        self._account = credentials.refresh(self._account, self._exchange, lease)

    def _exchange(self, account: AccountRef) -> credentials.Renewed:
        with client(account.base_url) as api:
            response = answer(
                api,
                "GET",
                "/refresh_access_token",
                within=deadline(),
                params={"grant_type": "ig_refresh_token", "access_token": account.token},
            )
        if not response.is_success:
            error = json_object(response).get("error")
            raise _refusal(response, error if isinstance(error, dict) else {}, creates=False)
        return credentials.renewed(json_object(response))  # no refresh_token: keeps the stored one


Adapter = InstagramAdapter


# ---------------------------------------------------------------------- helpers


def _source(media: MediaRef, post_type: str = "", carousel: bool = False) -> dict[str, str]:
    """Where Instagram fetches a medium from, and as what."""
    if media.kind == "video":
        if carousel:
            return {"media_type": "VIDEO", "video_url": media.url}
        kind = "STORIES" if post_type == "story" else "REELS"
        fields = {"media_type": kind, "video_url": media.url}
        if post_type == "feed":
            fields["share_to_feed"] = "true"
        return fields
    if media.kind == "image":
        fields = {"image_url": media.url}
        if post_type == "story":
            fields["media_type"] = "STORIES"
        return fields
    raise PermanentError("PLATFORM_RULE_VIOLATED", f"Instagram does not take {media.kind} media")


def _refusal(response: httpx.Response, error: dict, creates: bool) -> Exception:
    """The delivery error for a Graph API refusal: its ``error.message`` (and code)."""
    status = response.status_code
    message = str(error.get("message") or response.reason_phrase or status)[:MESSAGE_CHARS]
    code = error.get("code")
    label = f"{status}" if code is None else f"{status}/{code}"
    if creates and status >= 500:
        return OutcomeUnknown(label, message, retry_after(response))
    if status == 429 or status >= 500 or code in RATE_LIMIT_ERRORS or code == MEDIA_NOT_READY:
        return TransientError(label, message, retry_after(response))
    return PermanentError(str(status) if code is None else label, message)


def _timestamp(value) -> dt.datetime | None:
    """A Graph API time (``2026-01-31T12:00:00+0000``), aware."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
