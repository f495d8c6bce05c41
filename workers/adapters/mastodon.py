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
again with the same key. Uploads are not protected, but an unattached upload is
harmless (Mastodon removes orphaned media), so a failed download or upload is
a transient failure, never an unknown outcome.

Errors map as every HTTP adapter's do (workers.adapters.http); Mastodon's
429 carries ``X-RateLimit-Reset`` (an ISO 8601 time) rather than
``Retry-After``, which is turned into the wait before the next attempt.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import posixpath
import time
import urllib.parse

import httpx

from workers.adapters import http
from workers.adapters.base import (
    AccountRef,
    ItemRequest,
    MediaRef,
    OutcomeUnknown,
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

    def __init__(self, account: AccountRef):
        self._account = account

    def publish(self, request: ItemRequest) -> Published:
        if not self._account.base_url:
            raise PermanentError("NO_URL", "the Mastodon account has no instance URL")
        if not self._account.token:
            raise PermanentError("NO_TOKEN", "the Mastodon account has no access token")
        with self._client() as client:
            media_ids = [self._upload(client, media) for media in request.media]
            body: dict = {"status": request.text}
            if request.reply_to:
                body["in_reply_to_id"] = request.reply_to
            if media_ids:
                body["media_ids"] = media_ids
            response = http.request(
                client, "POST", "/api/v1/statuses", json=body,
                headers={"Idempotency-Key": request.idempotency_key},
            )  # fmt: skip
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
        client = http.client(
            self._account.base_url, {"Authorization": f"Bearer {self._account.token}"}
        )
        client.event_hooks["response"].append(_retry_after_from_rate_limit)
        return client

    def _fallback_url(self, status_id) -> str:
        handle = self._account.handle.lstrip("@").split("@")[0]
        return f"{self._account.base_url.rstrip('/')}/@{handle}/{status_id}"

    def _upload(self, client: httpx.Client, media: MediaRef) -> str:
        content, mime_type = download(media)
        filename = posixpath.basename(urllib.parse.urlsplit(media.url).path) or "media"
        try:
            response = http.request(
                client, "POST", "/api/v2/media",
                files={"file": (filename, content, mime_type)},
                data={"description": media.alt_text} if media.alt_text else None,
            )  # fmt: skip
        except OutcomeUnknown as exc:  # an upload nobody attached is harmless: try again
            raise TransientError(exc.code, exc.message) from exc
        attachment = _json(response)
        media_id = attachment.get("id")
        if media_id in (None, ""):
            raise PermanentError("BAD_ANSWER", "Mastodon answered a media upload without an id")
        if response.status_code == 202 or attachment.get("url") is None:
            self._wait_processed(client, str(media_id))
        return str(media_id)

    def _wait_processed(self, client: httpx.Client, media_id: str) -> None:
        """Polls an upload still being processed until Mastodon can attach it."""
        deadline = time.monotonic() + MEDIA_PROCESSING_TIMEOUT
        while True:
            try:
                response = http.request(client, "GET", f"/api/v1/media/{media_id}")
            except OutcomeUnknown as exc:
                raise TransientError(exc.code, exc.message) from exc
            if response.status_code == 200 and _json(response).get("url") is not None:
                return
            if time.monotonic() >= deadline:
                raise TransientError("MEDIA_PROCESSING", f"media {media_id} is still processing")
            time.sleep(MEDIA_POLL_INTERVAL)


def download(media: MediaRef) -> tuple[bytes, str]:
    """The media's bytes and MIME type; a failure is transient unless the URL is refused."""
    with httpx.Client(timeout=http.TIMEOUT, follow_redirects=True) as client:
        try:
            response = http.request(client, "GET", media.url)
        except OutcomeUnknown as exc:  # a GET changes nothing: safe to try again
            raise TransientError(exc.code, f"media {media.url}: {exc.message}") from exc
        except PermanentError as exc:
            raise PermanentError(exc.code, f"media {media.url}: {exc.message}") from exc
    mime_type = (
        media.mime_type
        or response.headers.get("content-type", "").split(";")[0].strip()
        or mimetypes.guess_type(media.url)[0]
        or "application/octet-stream"
    )
    return response.content, mime_type


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        raise PermanentError("BAD_ANSWER", f"Mastodon answered non-JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PermanentError("BAD_ANSWER", "Mastodon answered JSON that is not an object")
    return body


def _retry_after_from_rate_limit(response: httpx.Response) -> None:
    """Mastodon's 429 says when the limit resets (X-RateLimit-Reset, ISO 8601), not
    Retry-After: put that in Retry-After so the shared error map honours it."""
    if response.status_code != 429 or "retry-after" in response.headers:
        return
    reset = response.headers.get("x-ratelimit-reset")
    if not reset:
        return
    try:
        when = dt.datetime.fromisoformat(reset)
    except ValueError:
        return
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    wait = max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    response.headers["retry-after"] = str(round(wait, 3))


Adapter = MastodonAdapter
