"""YouTube (Data API v3): videos and shorts through a resumable upload.

The account's base URL is the API's (``https://www.googleapis.com``); its
token an OAuth access token (``youtube.upload`` scope), renewed when it expires
with ``--refresh-token``, ``--client-id`` and ``--client-secret`` (``POST
/oauth2/v4/token``; workers.credentials makes one worker do it). A post:

1. downloads its video to a temporary file (never held in memory);
2. ``POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status``
   with the title (required, at most 100), description and privacy status
   (public): YouTube answers the upload session's URI in ``Location``, which
   is recorded with the item (``Lease.record_handle``) before any byte is sent;
3. ``PUT``\\ s the bytes to the session in chunks of CHUNK bytes, each streamed
   from the file (``Content-Range: bytes a-b/total``); YouTube answers ``308
   Resume Incomplete`` with the ``Range`` it holds after each, and the video
   resource once it has them all.

Exactly once: only the last byte makes the video, and the session says what
it holds. A retry or take-over first asks the recorded session (``PUT`` with
``Content-Range: bytes */total``): the video if it is complete (published,
never uploaded again), else the range it holds, from which the upload goes on.
A session YouTube no longer knows (404, 410) held no complete video: a new one
is made.

A short is a vertical video of at most 3 minutes: YouTube decides from the
file; the description gets ``#Shorts`` unless the title or description has it.
Quota errors (403 ``quotaExceeded``, ``dailyLimitExceeded``) wait until the
daily quota resets, at midnight Pacific time (Paced: no attempt spent).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import httpx

from workers import credentials
from workers.adapters.base import (
    AccountRef,
    ItemRequest,
    Lease,
    OutcomeUnknown,
    Paced,
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
    require_account,
    retry_after,
)

#: Bytes per upload request: a multiple of 256 KiB, as the resumable protocol asks.
CHUNK = 4 * 256 * 1024
#: A token known to expire within this many seconds is refreshed before use.
REFRESH_MARGIN = 300.0
#: Error reasons that are the daily quota: a wait until it resets.
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
#: Error reasons that are a short wait (rate limits, YouTube's own trouble).
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})
#: The default category of an upload: People & Blogs.
CATEGORY = "22"
_RANGE = re.compile(r"bytes=0-(\d+)")


class YouTubeAdapter:
    """Uploads videos and shorts for one YouTube channel."""

    honours_idempotency_keys = False
    #: ``publish`` asks the recorded session first, which tells a complete upload.
    can_look_up = True
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account
        self._refreshed = False

    def publish(self, item: ItemRequest) -> Published:
        require_account(self._account, "YouTube", "base URL", "access token")
        if len(item.media) != 1 or item.media[0].kind != "video":
            raise PermanentError("PLATFORM_RULE_VIOLATED", "a YouTube post is one video")
        lease = item.lease
        with nothing_live_yet("upload"):
            if credentials.expiring(self._account, REFRESH_MARGIN):
                self._refresh(lease)
            with download(item.media[0], lease) as medium:
                session, offset = item.handle, 0  # type: str, int | None
                if session:
                    done, offset = self._resume_at(session, medium, lease)
                    if done is not None:
                        return self._published(done, item)
                if not session or offset is None:  # none yet, or gone
                    session, offset = self._start(item, medium, lease), 0
                    lease.record_handle(session)
                return self._published(self._upload(session, medium, offset, lease), item)

    def look_up(self, item: ItemRequest) -> Published | None:
        """None: ``publish`` asks the recorded session before sending any byte, and
        takes a complete upload as the published video it is."""
        return None

    # ------------------------------------------------------------------ steps
    def _start(self, item: ItemRequest, medium: Download, lease: Lease) -> str:
        description = item.text
        if item.post_type == "short" and "#shorts" not in f"{item.title} {item.text}".lower():
            description = f"{description}\n\n#Shorts".strip()
        response = self._send(
            "POST",
            "/upload/youtube/v3/videos",
            lease,
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers={
                "X-Upload-Content-Length": str(medium.size),
                "X-Upload-Content-Type": medium.mime_type,
            },
            json={
                "snippet": {
                    "title": item.title,
                    "description": description,
                    "categoryId": CATEGORY,
                },
                "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
            },
        )
        if not response.is_success:
            raise _refusal(response)
        session = response.headers.get("location", "")
        if not session:
            raise TransientError("NO_UPLOAD_SESSION", "YouTube gave no upload session")
        return session

    def _resume_at(
        self, session: str, medium: Download, lease: Lease
    ) -> tuple[dict | None, int | None]:
        """What the session holds: (the video, _) once complete; else (None, the
        offset to go on from); (None, None) when YouTube no longer knows it."""
        response = self._send(
            "PUT",
            session,
            lease,
            headers={"Content-Length": "0", "Content-Range": f"bytes */{medium.size}"},
        )
        if response.status_code in (200, 201):
            return json_object(response), 0
        if response.status_code == 308:
            return None, _held(response)
        if response.status_code in (404, 410):
            return None, None
        raise _refusal(response)

    def _upload(self, session: str, medium: Download, offset: int, lease: Lease) -> dict:
        """Sends the bytes from ``offset`` on, a chunk per request; the video resource."""
        size = medium.size
        while True:
            end = min(offset + CHUNK, size)
            if end == size:
                lease.before_create()  # the request with the last byte makes the video
            else:
                lease.renew()
            body = medium.body(offset, end)
            response = self._send(
                "PUT",
                session,
                lease,
                content=body,
                headers={
                    "Content-Type": medium.mime_type,
                    "Content-Range": f"bytes {offset}-{end - 1}/{size}"
                    if size
                    else f"bytes */{size}",
                    **body.headers,
                },
            )
            if response.status_code in (200, 201):
                return json_object(response)
            if response.status_code == 308:
                offset = _held(response)
                continue
            if response.status_code in (404, 410):
                raise TransientError(
                    "UPLOAD_SESSION_GONE", "YouTube no longer knows the upload session"
                )
            raise _refusal(response)

    def _published(self, video: dict, item: ItemRequest) -> Published:
        video_id = str(video.get("id") or "")
        if not video_id:
            raise OutcomeUnknown("NO_VIDEO_ID", "YouTube finished the upload without a video id")
        if item.post_type == "short":
            return Published(video_id, f"https://www.youtube.com/shorts/{video_id}")
        return Published(video_id, f"https://www.youtube.com/watch?v={video_id}")

    # ------------------------------------------------------------------ requests
    def _send(self, method: str, url: str, lease: Lease, **kwargs) -> httpx.Response:
        """One request, answered whatever its status; an expired token (401) is
        refreshed once and the request sent again."""
        while True:
            with client(
                self._account.base_url, {"Authorization": f"Bearer {self._account.token}"}
            ) as api:
                response = answer(api, method, url, within=deadline(), **kwargs)
            if response.status_code == 401 and not self._refreshed and self._account.refresh_token:
                self._refresh(lease)
                continue
            return response

    def _refresh(self, lease: Lease) -> None:
        self._refreshed = True
        self._account = credentials.refresh(self._account, self._exchange, lease)

    def _exchange(self, account: AccountRef) -> credentials.Renewed:
        response = credentials.refresh_token_grant(account, "/oauth2/v4/token")
        if not response.is_success:
            body = json_object(response)
            message = str(body.get("error_description") or body.get("error") or "")
            label = f"{response.status_code}/{body['error']}" if body.get("error") else ""
            raise _refusal(response, label, message)
        return credentials.renewed(json_object(response))


Adapter = YouTubeAdapter


# ---------------------------------------------------------------------- helpers


def _held(response: httpx.Response) -> int:
    """The offset after what a 308 says the session holds (``Range: bytes=0-N``; none: 0)."""
    match = _RANGE.fullmatch(response.headers.get("range", "").strip())
    return int(match.group(1)) + 1 if match else 0


def _refusal(response: httpx.Response, label: str = "", message: str = "") -> Exception:
    """The delivery error for a refusal: the Google error's first reason and message."""
    status = response.status_code
    error = json_object(response).get("error")
    error = error if isinstance(error, dict) else {}
    errors = error.get("errors") if isinstance(error.get("errors"), list) else []
    reason = str(errors[0].get("reason") or "") if errors and isinstance(errors[0], dict) else ""
    label = label or (f"{status}/{reason}" if reason else str(status))
    message = (message or str(error.get("message") or "") or response.reason_phrase or str(status))[
        :MESSAGE_CHARS
    ]
    if reason in QUOTA_REASONS:
        return Paced(label, message, until_quota_resets())
    if status == 429 or status >= 500 or reason in TRANSIENT_REASONS:
        return TransientError(label, message, retry_after(response))
    return PermanentError(label, message)


def until_quota_resets(now: dt.datetime | None = None) -> float:
    """Seconds until the next midnight Pacific time, when YouTube's daily quota resets."""
    pacific: dt.tzinfo
    try:
        pacific = zoneinfo.ZoneInfo("America/Los_Angeles")
    except zoneinfo.ZoneInfoNotFoundError:  # no time zone data: standard time, an hour late at most
        pacific = dt.timezone(dt.timedelta(hours=-8))
    local = (now or dt.datetime.now(dt.UTC)).astimezone(pacific)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight.astimezone(dt.UTC) - local.astimezone(dt.UTC)).total_seconds()
