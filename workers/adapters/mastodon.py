"""Mastodon: statuses with the native ``Idempotency-Key``; threads with ``in_reply_to_id``.

Per item, against the account's instance (``base_url``), with the account's
access token as ``Authorization: Bearer``:

1. each media URL is downloaded and uploaded with ``POST /api/v2/media``
   (multipart ``file`` and ``description`` = the alt text) for its id; an
   answer of 202 (still processing) is polled with ``GET /api/v1/media/:id``
   until the attachment is ready, as a status cannot attach it before;
2. ``POST /api/v1/statuses`` with ``status``, ``in_reply_to_id`` (the previous
   item's status id) and ``media_ids``, and the header ``Idempotency-Key`` =
   the item's delivery key. The answer is the Status entity: its ``id`` and
   ``url`` are the item's platform id and url.

Mastodon keeps the Idempotency-Key of each account for an hour and answers a
repeat with the status it made the first time, without publishing again: it
honours idempotency keys, so a send whose outcome is unknown is simply sent
again with the same key (and a 5xx is transient). Downloads and processing
polls renew the lease; the create is sent only once the lease is proven
(``before_create``). Uploads are not protected, but an unattached upload is
harmless (Mastodon removes orphaned media), so a failed download or upload is
a transient failure, never an unknown outcome.

Errors map as every HTTP adapter's do (workers.adapters.http), which also
reads the ``X-RateLimit-Reset`` (an ISO 8601 time) that Mastodon's 429 carries
rather than ``Retry-After`` as the wait before the next attempt.
"""

from __future__ import annotations

import time

import httpx

from workers.adapters import http
from workers.adapters.base import (
    AccountRef,
    ItemRequest,
    Lease,
    MediaRef,
    PermanentError,
    Published,
    TransientError,
)

#: How long to wait for an upload Mastodon is still processing (202) before retrying later.
MEDIA_PROCESSING_TIMEOUT = 60.0
MEDIA_POLL_INTERVAL = 0.5


class MastodonAdapter:
    """Publishes statuses to the account's Mastodon instance."""

    honours_idempotency_keys = True
    can_look_up = False
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account

    def publish(self, request: ItemRequest) -> Published:
        http.require_account(self._account, "Mastodon", "instance URL", "access token")
        with self._client() as client:
            media_ids = [self._upload(client, media, request.lease) for media in request.media]
            body: dict = {"status": request.text}
            if request.reply_to:
                body["in_reply_to_id"] = request.reply_to
            if media_ids:
                body["media_ids"] = media_ids
            request.lease.before_create()
            response = http.request(
                client,
                "POST",
                "/api/v1/statuses",
                json=body,
                headers={"Idempotency-Key": request.idempotency_key},
            )
        status = _json(response)
        status_id = status.get("id")
        if status_id in (None, ""):
            raise PermanentError("BAD_ANSWER", "Mastodon answered a status without an id")
        url = status.get("url") or status.get("uri") or self._fallback_url(status_id)
        return Published(str(status_id), str(url))

    def look_up(self, request: ItemRequest) -> Published | None:
        return None  # not needed: the Idempotency-Key protects a repeated send

    # ------------------------------------------------------------------ helpers
    def _client(self) -> httpx.Client:
        return http.client(
            self._account.base_url, {"Authorization": f"Bearer {self._account.token}"}
        )

    def _fallback_url(self, status_id) -> str:
        handle = self._account.handle.lstrip("@").split("@")[0]
        return f"{self._account.base_url.rstrip('/')}/@{handle}/{status_id}"

    def _upload(self, client: httpx.Client, media: MediaRef, lease: Lease) -> str:
        # A temporary file, streamed up from there; an upload nobody attached is
        # harmless: try again.
        with http.download(media, lease) as medium, http.nothing_live_yet():
            response = http.request(
                client,
                "POST",
                "/api/v2/media",
                files={"file": (http.filename(media.url), medium.file, medium.mime_type)},
                data={"description": media.alt_text} if media.alt_text else None,
            )
        attachment = _json(response)
        media_id = attachment.get("id")
        if media_id in (None, ""):
            raise PermanentError("BAD_ANSWER", "Mastodon answered a media upload without an id")
        if response.status_code == 202 or attachment.get("url") is None:
            self._wait_processed(client, str(media_id), lease)
        return str(media_id)

    def _wait_processed(self, client: httpx.Client, media_id: str, lease: Lease) -> None:
        """Polls an upload still being processed until Mastodon can attach it."""
        deadline = time.monotonic() + MEDIA_PROCESSING_TIMEOUT
        while True:
            with http.nothing_live_yet():
                response = http.request(client, "GET", f"/api/v1/media/{media_id}")
            if response.status_code == 200 and _json(response).get("url") is not None:
                return
            if time.monotonic() >= deadline:
                raise TransientError("MEDIA_PROCESSING", f"media {media_id} is still processing")
            http.pause(MEDIA_POLL_INTERVAL, lease)


def _json(response: httpx.Response) -> dict:
    return http.json_answer(response, "Mastodon")


Adapter = MastodonAdapter
