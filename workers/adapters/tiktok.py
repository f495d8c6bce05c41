"""TikTok (Content Posting API v2, direct post): videos pulled from a URL, photo posts.

The account's token is a user access token (``video.publish`` scope); with
``--refresh-token``, ``--client-id`` (the app's client key) and
``--client-secret`` it is renewed when it expires (``POST /v2/oauth/token/``,
a refresh token TikTok replaces at each use: workers.credentials makes one
worker spend it). A post goes out in three steps:

1. ``POST /v2/post/publish/creator_info/query/``: the creator's privacy
   options (the most public one offered is used) and the longest video they may
   post (checked against the MP4's own header: VIDEO_TOO_LONG).
2. ``POST /v2/post/publish/video/init/`` (``post_info``, ``source_info
   {source: PULL_FROM_URL, video_url}``), or for photos ``POST
   /v2/post/publish/content/init/`` (``media_type: PHOTO``, 2–35
   ``photo_images``): TikTok answers a ``publish_id`` and fetches the media.
3. ``POST /v2/post/publish/status/fetch/`` until ``PUBLISH_COMPLETE`` or
   ``FAILED`` (its ``fail_reason`` mapped to permanent or transient).

Exactly once: the init makes the post; TikTok takes no idempotency key and
cannot list what an app posted, so an init whose answer was lost is
DELIVERY_OUTCOME_UNKNOWN. Its ``publish_id`` is recorded with the item as soon
as it is answered (``Lease.record_handle``): a retry or take-over polls that
one (``look_up``, then ``publish``) and inits again only if it FAILED for a
transient reason (nothing of it is live then).
"""

from __future__ import annotations

import time

import httpx

from service.lifecycle import OUTCOME_UNKNOWN
from workers import credentials
from workers.adapters.base import (
    AccountRef,
    CannotTell,
    ItemRequest,
    Lease,
    OutcomeUnknown,
    PermanentError,
    Published,
    TransientError,
)
from workers.adapters.http import (
    MESSAGE_CHARS,
    Download,
    answer,
    client,
    deadline,
    download,
    json_object,
    nothing_live_yet,
    pause,
    require_account,
    retry_after,
)

#: How long to wait for TikTok to fetch and publish before retrying later (the
#: publish_id is kept: the next attempt polls it again).
PROCESSING_DEADLINE = 120.0
PROCESSING_POLL_INTERVAL = 2.0
#: A token known to expire within this many seconds is refreshed before use.
REFRESH_MARGIN = 300.0
#: Privacy levels, most public first: a post takes the first the creator is offered.
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
#: ``fail_reason``s worth another attempt: TikTok's own trouble or a media URL
#: that did not answer this time. Any other reason is permanent.
TRANSIENT_FAIL_REASONS = frozenset({"internal", "video_pull_failed", "photo_pull_failed"})
#: API error codes that are a wait, not a refusal.
TRANSIENT_ERRORS = frozenset({"rate_limit_exceeded", "internal_error"})
TOKEN_ERRORS = frozenset({"access_token_invalid"})
#: The most characters of a photo post's title.
PHOTO_TITLE = 90


class TikTokAdapter:
    """Publishes videos and photo posts for one TikTok creator through direct post."""

    honours_idempotency_keys = False
    can_look_up = True
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account
        self._refreshed = False

    def publish(self, item: ItemRequest) -> Published:
        require_account(self._account, "TikTok", "base URL", "access token")
        lease = item.lease
        publish_id = item.handle
        if publish_id and self._died(publish_id, lease):
            publish_id = ""  # it failed before going live, for a reason worth another go
        if not publish_id:
            with nothing_live_yet("creator info"):
                if credentials.expiring(self._account, REFRESH_MARGIN):
                    self._refresh(lease)
                privacy, longest = self._creator(lease)
                if item.post_type != "photo" and longest:
                    self._check_duration(item, longest)
            path, body = self._init(item, privacy)
            lease.before_create()
            data = self._call(path, body, lease, creates=True)
            publish_id = str(data.get("publish_id") or "")
            if not publish_id:
                raise OutcomeUnknown(
                    "NO_PUBLISH_ID", "TikTok answered the init without a publish_id"
                )
            lease.record_handle(publish_id)
        with nothing_live_yet("status"):
            return self._wait_published(publish_id, lease)

    def look_up(self, item: ItemRequest) -> Published | None:
        """After an attempt that may have made the post: its publish_id's status when
        one was recorded (None while it is still on its way: ``publish`` polls on),
        CannotTell when the init's answer was lost."""
        if not item.handle:
            raise CannotTell(OUTCOME_UNKNOWN, "the init may have gone out; TikTok cannot tell")
        with nothing_live_yet("status"):
            status = self._status(item.handle, item.lease)
        return (
            _published(item.handle, status) if status.get("status") == "PUBLISH_COMPLETE" else None
        )

    # ------------------------------------------------------------------ steps
    def _creator(self, lease: Lease) -> tuple[str, float]:
        """The most public privacy level the creator is offered, and the longest
        video they may post (seconds; 0 when TikTok does not say)."""
        info = self._call("/v2/post/publish/creator_info/query/", {}, lease)
        offered = info.get("privacy_level_options") or []
        longest = info.get("max_video_post_duration_sec")
        longest = float(longest) if isinstance(longest, (int, float)) else 0.0
        for level in PRIVACY_LEVELS:
            if level in offered:
                return level, longest
        raise PermanentError(
            "PRIVACY_LEVEL_UNAVAILABLE", "TikTok offers this creator no privacy level to post with"
        )

    def _check_duration(self, item: ItemRequest, longest: float) -> None:
        """VIDEO_TOO_LONG when the video is longer than the creator may post: read
        from its MP4 header (the file downloaded, not held in memory); a video whose
        length cannot be read is left for TikTok to judge."""
        with download(item.media[0], item.lease) as medium:
            seconds = mp4_duration(medium)
        if seconds is not None and seconds > longest:
            raise PermanentError(
                "VIDEO_TOO_LONG",
                f"the video lasts {seconds:.0f} s; this creator may post {longest:.0f} s at most",
            )

    def _init(self, item: ItemRequest, privacy: str) -> tuple[str, dict]:
        kinds = {m.kind for m in item.media}
        if item.post_type == "photo":
            if kinds != {"image"}:
                raise PermanentError("PLATFORM_RULE_VIOLATED", "a TikTok photo post takes images")
            post_info = {
                "title": item.title[:PHOTO_TITLE],
                "description": item.text,
                "privacy_level": privacy,
                "disable_comment": False,
                "auto_add_music": True,
            }
            return "/v2/post/publish/content/init/", {
                "post_info": post_info,
                "source_info": {
                    "source": "PULL_FROM_URL",
                    "photo_cover_index": 0,
                    "photo_images": [m.url for m in item.media],
                },
                "post_mode": "DIRECT_POST",
                "media_type": "PHOTO",
            }
        if kinds != {"video"} or len(item.media) != 1:
            raise PermanentError("PLATFORM_RULE_VIOLATED", "a TikTok video post takes one video")
        post_info = {
            "title": item.text,
            "privacy_level": privacy,
            "disable_duet": False,
            "disable_comment": False,
            "disable_stitch": False,
        }
        return "/v2/post/publish/video/init/", {
            "post_info": post_info,
            "source_info": {"source": "PULL_FROM_URL", "video_url": item.media[0].url},
        }

    def _died(self, publish_id: str, lease: Lease) -> bool:
        """The recorded post FAILED for a transient reason: nothing of it is live."""
        with nothing_live_yet("status"):
            status = self._status(publish_id, lease)
        return (
            status.get("status") == "FAILED" and status.get("fail_reason") in TRANSIENT_FAIL_REASONS
        )

    def _status(self, publish_id: str, lease: Lease) -> dict:
        return self._call("/v2/post/publish/status/fetch/", {"publish_id": publish_id}, lease)

    def _wait_published(self, publish_id: str, lease: Lease) -> Published:
        ends_at = time.monotonic() + PROCESSING_DEADLINE
        while True:
            status = self._status(publish_id, lease)
            state = status.get("status")
            if state == "PUBLISH_COMPLETE":
                return _published(publish_id, status)
            if state == "FAILED":
                reason = str(status.get("fail_reason") or "unknown")[:MESSAGE_CHARS]
                error = TransientError if reason in TRANSIENT_FAIL_REASONS else PermanentError
                raise error(f"FAILED:{reason}", f"TikTok could not publish {publish_id}: {reason}")
            if time.monotonic() >= ends_at:
                raise TransientError(
                    "PUBLISH_PROCESSING", f"TikTok is still processing {publish_id} ({state})"
                )
            pause(PROCESSING_POLL_INTERVAL, lease)

    # ------------------------------------------------------------------ requests
    def _client(self) -> httpx.Client:
        return client(
            self._account.base_url,
            {
                "Authorization": f"Bearer {self._account.token}",
                "Content-Type": "application/json; charset=UTF-8",
            },
        )

    def _call(self, path: str, body: dict, lease: Lease, *, creates: bool = False) -> dict:
        """One API call; its ``data``. An expired token is refreshed once and the call
        made again; other refusals raise as workers.adapters.http does."""
        while True:
            with self._client() as api:
                response = answer(api, "POST", path, within=deadline(), json=body)
            payload = json_object(response)
            error = found if isinstance(found := payload.get("error"), dict) else {}
            code = str(error.get("code") or "")
            if response.is_success and code in ("", "ok"):
                data = payload.get("data")
                return data if isinstance(data, dict) else {}
            expired = code in TOKEN_ERRORS or response.status_code == 401
            if expired and not self._refreshed and self._account.refresh_token:
                self._refresh(lease)
                continue
            raise _refusal(response, code, str(error.get("message") or ""), creates)

    def _refresh(self, lease: Lease) -> None:
        self._refreshed = True
        self._account = credentials.refresh(self._account, self._exchange, lease)

    def _exchange(self, account: AccountRef) -> credentials.Renewed:
        response = credentials.refresh_token_grant(account, "/v2/oauth/token/", "client_key")
        body = json_object(response)
        if not response.is_success or "error" in body and body.get("error"):
            message = str(body.get("error_description") or body.get("error") or "")
            raise _refusal(response, str(body.get("error") or ""), message, creates=False)
        return credentials.renewed(body)


Adapter = TikTokAdapter


#: Boxes an MP4 header is read through at most (a malformed file cannot loop for ever).
MP4_BOXES = 1000


def mp4_duration(medium: Download) -> float | None:
    """An MP4 (or QuickTime) file's duration in seconds, from its ``moov/mvhd`` box;
    None when it has none (not an MP4, or malformed). Reads a few bytes per box."""
    start, end = 0, medium.size
    for _ in range(MP4_BOXES):
        if start + 8 > end:
            return None
        header = medium.read(start, 16)
        size, kind = int.from_bytes(header[:4], "big"), header[4:8]
        body = start + 8
        if size == 1 and len(header) == 16:
            size, body = int.from_bytes(header[8:16], "big"), start + 16
        elif size == 0:
            size = end - start
        if size < body - start:
            return None
        if kind == b"moov":
            start, end = body, start + size  # its children
            continue
        if kind == b"mvhd":
            fields = medium.read(body, 32)
            if fields[:1] == b"\x01":  # version 1: 64-bit times and duration
                scale, length = fields[20:24], fields[24:32]
            else:
                scale, length = fields[12:16], fields[16:20]
            timescale = int.from_bytes(scale, "big")
            return int.from_bytes(length, "big") / timescale if timescale else None
        start += size
    return None


def _published(publish_id: str, status: dict) -> Published:
    """Where a completed post is: its public id when TikTok gives one (only for a
    public post; the field is spelt so in TikTok's answer), else the publish_id."""
    ids = status.get("publicaly_available_post_id") or []
    post_id = str(ids[0]) if isinstance(ids, list) and ids else ""
    if not post_id:
        return Published(publish_id, "")
    return Published(post_id, f"https://www.tiktok.com/video/{post_id}")


def _refusal(response: httpx.Response, code: str, message: str, creates: bool) -> Exception:
    """The delivery error for a refusal (even one answered 200): TikTok's error code
    and message."""
    status = response.status_code
    label = f"{status}/{code}" if code else str(status)
    message = (message or response.reason_phrase or str(status))[:MESSAGE_CHARS]
    if creates and status >= 500:
        return OutcomeUnknown(label, message, retry_after(response))
    if status == 429 or status >= 500 or code in TRANSIENT_ERRORS:
        return TransientError(label, message, retry_after(response))
    return PermanentError(label, message)
