"""X (API v2): tweets, threads as replies, media through the v2 media upload endpoints.

X does not honour idempotency keys, but it lets us look a tweet up: after a send
whose outcome is unknown, ``look_up`` searches the account's recent tweets for
one with the same text replying to the same tweet.

Nothing is live before ``POST /2/tweets``: a step before it (media download,
upload, user lookup) that gets no answer is a transient failure, not an unknown
outcome. The create itself is unknown when unanswered or answered 5xx (X has
made tweets it answered 503 to), and is sent only once the lease is proven
(``before_create``): uploads and processing, renewing it, may outlast it.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
import unicodedata

import httpx

from workers.adapters.base import (
    AccountRef,
    ItemRequest,
    Lease,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    Published,
    TransientError,
)
from workers.adapters.http import (
    Download,
    client,
    download,
    filename,
    json_field,
    network_text,
    nothing_live_yet,
    pause,
    request,
)

#: Videos and GIFs go up in chunks of this size (X accepts up to 5 MB per APPEND).
CHUNK_BYTES = 4 * 1024 * 1024
#: How long to wait for X to process an uploaded video or GIF before retrying later.
PROCESSING_DEADLINE = 120.0
#: How far back ``look_up`` accepts a matching tweet (X itself refuses duplicate
#: text posted close together; older identical tweets are someone else's send).
LOOK_UP_WINDOW = dt.timedelta(hours=24)
TWEET_FIELDS = "conversation_id,in_reply_to_user_id,referenced_tweets,created_at"
CATEGORY = {"image": "tweet_image", "gif": "tweet_gif", "video": "tweet_video"}

_URL = re.compile(r"https?://\S+")
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


class XAdapter:
    """Publishes tweets for one account through X API v2 (OAuth 2.0 user token)."""

    honours_idempotency_keys = False
    can_look_up = True
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account

    # ------------------------------------------------------------------ publish
    def publish(self, item: ItemRequest) -> Published:
        with self._client() as api:
            with nothing_live_yet("media"):
                media_ids = [self._upload(api, media, item.lease) for media in item.media]
            body: dict = {}
            if item.text or not media_ids:
                body["text"] = item.text
            if item.reply_to:
                body["reply"] = {"in_reply_to_tweet_id": item.reply_to}
            if media_ids:
                body["media"] = {"media_ids": media_ids}
            item.lease.before_create()
            response = request(api, "POST", "/2/tweets", json=body, creates=True)
        try:
            tweet_id = str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OutcomeUnknown(
                "NO_TWEET_ID", f"X answered {response.status_code} without a tweet id"
            ) from exc
        return self._published(tweet_id)

    # ------------------------------------------------------------------ look up
    def look_up(self, item: ItemRequest) -> Published | None:
        """The account's recent tweet with the same text and the same reply target, if any."""
        with self._client() as api, nothing_live_yet("look-up"):
            user_id = json_field(request(api, "GET", "/2/users/me"), "data").get("id")
            if not user_id:
                raise TransientError("NO_USER_ID", "X did not say who the account is")
            response = request(
                api,
                "GET",
                f"/2/users/{user_id}/tweets",
                params={"max_results": 100, "tweet.fields": TWEET_FIELDS},
            )
        tweets = response.json().get("data") or []
        # Only a tweet made since the earlier send can be ours (a minute's grace for clock skew).
        since = (
            item.send_started_at - dt.timedelta(minutes=1)
            if item.send_started_at
            else dt.datetime.now(dt.UTC) - LOOK_UP_WINDOW
        )
        for tweet in tweets:  # newest first
            if _created_at(tweet) < since:
                continue
            if _replied_to(tweet) == item.reply_to and _same_text(tweet.get("text", ""), item.text):
                return self._published(str(tweet["id"]))
        return None

    # ------------------------------------------------------------------ helpers
    def _client(self) -> httpx.Client:
        return client(self._account.base_url, {"Authorization": f"Bearer {self._account.token}"})

    def _published(self, tweet_id: str) -> Published:
        handle = self._account.handle.lstrip("@")
        return Published(tweet_id, f"https://x.com/{handle}/status/{tweet_id}")

    def _upload(self, api: httpx.Client, media: MediaRef, lease: Lease) -> str:
        with download(media, lease) as medium:  # a temporary file, streamed up from there
            mime = medium.mime_type
            kind = media.kind if media.kind in CATEGORY else "image"
            if kind == "image":
                response = request(
                    api,
                    "POST",
                    "/2/media/upload",
                    data={"media_category": CATEGORY[kind], "media_type": mime},
                    files={"media": (filename(media.url), medium.file, mime)},
                )
                media_id = _media_id(response)
            else:
                media_id = self._upload_chunked(api, medium, CATEGORY[kind], lease)
        if media.alt_text and kind != "video":
            request(
                api,
                "POST",
                "/2/media/metadata",
                json={"id": media_id, "metadata": {"alt_text": {"text": media.alt_text}}},
            )
        return media_id

    def _upload_chunked(
        self, api: httpx.Client, medium: Download, category: str, lease: Lease
    ) -> str:
        """INIT, one APPEND per CHUNK_BYTES (only that chunk in memory), FINALIZE."""
        init = request(
            api,
            "POST",
            "/2/media/upload/initialize",
            json={
                "media_type": medium.mime_type,
                "total_bytes": medium.size,
                "media_category": category,
            },
        )
        media_id = _media_id(init)
        for index, start in enumerate(range(0, medium.size, CHUNK_BYTES)):
            lease.renew()
            request(
                api,
                "POST",
                f"/2/media/upload/{media_id}/append",
                data={"segment_index": str(index)},
                files={
                    "media": ("chunk", medium.read(start, CHUNK_BYTES), "application/octet-stream")
                },
            )
        final = request(api, "POST", f"/2/media/upload/{media_id}/finalize")
        self._wait_processed(api, media_id, json_field(final, "data").get("processing_info"), lease)
        return media_id

    def _wait_processed(
        self, api: httpx.Client, media_id: str, info: dict | None, lease: Lease
    ) -> None:
        deadline = time.monotonic() + PROCESSING_DEADLINE
        while info and info.get("state") in ("pending", "in_progress"):
            if time.monotonic() >= deadline:
                raise TransientError("MEDIA_PROCESSING", f"X is still processing media {media_id}")
            after = info.get("check_after_secs")
            pause(min(max(1.0 if after is None else float(after), 0.1), 10.0), lease)
            status = request(
                api, "GET", "/2/media/upload", params={"command": "STATUS", "media_id": media_id}
            )
            info = json_field(status, "data").get("processing_info")
        if info and info.get("state") == "failed":
            error = info.get("error") or {}
            raise PermanentError(
                "MEDIA_PROCESSING_FAILED",
                network_text(str(error.get("message") or ""))
                or f"X could not process media {media_id}",
            )


Adapter = XAdapter


# ---------------------------------------------------------------------- helpers


def _media_id(response: httpx.Response) -> str:
    media_id = json_field(response, "data").get("id")
    if not media_id:
        raise TransientError("NO_MEDIA_ID", "X accepted the upload without a media id")
    return str(media_id)


def _created_at(tweet: dict) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(tweet["created_at"])
    except (KeyError, AttributeError, ValueError):
        return dt.datetime.now(dt.UTC)  # unknown: treat as recent


def _replied_to(tweet: dict) -> str | None:
    for ref in tweet.get("referenced_tweets") or []:
        if ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _normalized(text: str) -> str:
    """Text as compared: X HTML-escapes ``&<>`` and turns links (and attached media) into t.co."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    return " ".join(_URL.sub(" ", text).split())


def _same_text(theirs: str, ours: str) -> bool:
    theirs, ours = _normalized(theirs), _normalized(ours)
    if theirs == ours:
        return True
    # Replies may come back with the reply's @mentions in front of the text.
    return not _LEADING_MENTIONS.match(ours) and _LEADING_MENTIONS.sub("", theirs) == ours
