"""A fake YouTube Data API v3: resumable video uploads, and Google's OAuth token endpoint.

Routes, in YouTube's shapes:

- ``POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status``
  with the video resource as JSON (``snippet.title`` required, at most 100
  characters; ``description`` at most 5,000; ``status.privacyStatus``) and
  ``X-Upload-Content-Length``: answers 200 with the session URI in
  ``Location``. With ``quota`` uploads used up: 403, reason ``quotaExceeded``.
- ``PUT <session URI>``: with ``Content-Range: bytes a-b/total`` and the
  bytes, ``a`` must be where the session stands (a byte range sent twice is
  refused, 400, and counted in ``overlaps``); what arrives is kept, even when
  the body is cut short (a client killed mid-request); ``accept_next(n)``
  keeps only ``n`` bytes of the next one. Answers ``308 Resume Incomplete``
  with ``Range: bytes=0-<last>`` (none when nothing is held) until the session
  holds ``total`` bytes, then 201 and the video resource (``id``, ``snippet``,
  ``status``), the video live. ``Content-Range: bytes */total`` with no body
  asks where the session stands: 308, or 200 and the video once complete.
  ``forget_sessions`` makes every session unknown (404).
- ``POST /oauth2/v4/token``: the base FakeTokenEndpoint (Google's refresh
  tokens stay valid across refreshes; here they work once, the stricter case).

Every API request checks the bearer token (a session request, the one it
carries, if any): an unknown or ``expire``\\ d one is 401 (reason ``authError``). ``sessions`` keeps each session's received byte
ranges (``ranges``) and bytes (``data``); ``live`` lists each video made.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, Request, Response
from tests.fakes.oauth import FakeTokenEndpoint

UPLOAD_PATH = "/upload/youtube/v3/videos"
MAX_TITLE = 100
MAX_DESCRIPTION = 5000
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _error(status: int, reason: str, message: str) -> Response:
    return Response(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "youtube", "reason": reason}],
            }
        },
    )


class FakeYouTube(FakeTokenEndpoint):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", UPLOAD_PATH, "start_upload"),
        ("PUT", UPLOAD_PATH, "put_bytes"),
        ("POST", r"/oauth2/v4/token", "token"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(
        self,
        token: str = "yt-token",
        client_id: str = "yt-client",
        client_secret: str = "yt-secret",
        quota: int = 1000,
    ):
        super().__init__(client_id, client_secret)
        self._access_tokens.add(token)
        self.quota = quota
        self.sessions: dict[str, dict] = {}
        self.overlaps = 0
        self._accept_next: int | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ for tests
    def expire(self, access_token: str) -> None:
        with self.lock:
            self._access_tokens.discard(access_token)

    def accept_next(self, count: int) -> None:
        """Keeps only ``count`` bytes of the next upload request (a partial upload)."""
        with self.lock:
            self._accept_next = count

    def forget_sessions(self) -> None:
        with self.lock:
            for session in self.sessions.values():
                session["gone"] = True

    def session_uri(self, session_id: str) -> str:
        return f"{self.base_url}{UPLOAD_PATH}?uploadType=resumable&upload_id={session_id}"

    # ------------------------------------------------------------------ routes
    def _refusal(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not self.valid(token):
            return _error(401, "authError", "Invalid Credentials")
        return None

    def start_upload(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal:
            return refusal
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(request.query).items()}
        if query.get("uploadType") != "resumable" or "snippet" not in query.get("part", ""):
            return _error(400, "invalidParameter", "uploadType must be resumable")
        video = request.json or {}
        snippet, status = video.get("snippet") or {}, video.get("status") or {}
        title = snippet.get("title") or ""
        if not title.strip() or len(title) > MAX_TITLE:
            return _error(
                400, "invalidTitle", "The request metadata specifies an invalid video title."
            )
        if len(snippet.get("description") or "") > MAX_DESCRIPTION:
            return _error(400, "invalidDescription", "The description is too long.")
        size = request.headers.get("x-upload-content-length", "")
        if not size.isdigit():
            return _error(400, "invalidParameter", "X-Upload-Content-Length is required")
        with self.lock:
            if self.quota <= 0:
                return _error(
                    403,
                    "quotaExceeded",
                    "The request cannot be completed because you have exceeded your quota.",
                )
            self.quota -= 1
            session_id = f"AUso{next(self._ids):06d}"
            self.sessions[session_id] = {
                "size": int(size),
                "data": bytearray(),
                "ranges": [],
                "snippet": snippet,
                "status": status,
                "video_id": "",
                "gone": False,
                "type": request.headers.get("x-upload-content-type", ""),
            }
        return Response(200, None, {"Location": self.session_uri(session_id)})

    def put_bytes(self, request: Request) -> Response:
        # The session URI is a credential of its own; a token sent with it must be good.
        if "authorization" in request.headers:
            refusal = self._refusal(request)
            if refusal:
                return refusal
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(request.query).items()}
        content_range = request.headers.get("content-range", "")
        with self.lock:
            session = self.sessions.get(query.get("upload_id", ""))
            if session is None or session["gone"]:
                return _error(404, "notFound", "The upload session does not exist.")
            if content_range == f"bytes */{session['size']}" and not request.body:
                return self._where(session)
            match = _RANGE.fullmatch(content_range)
            if not match or int(match.group(3)) != session["size"]:
                return _error(400, "badRequest", f"Invalid Content-Range {content_range!r}")
            start = int(match.group(1))
            if start != len(session["data"]) or session["video_id"]:
                self.overlaps += 1
                return _error(400, "badRequest", f"bytes from {start} are not expected")
            body = request.body
            if self._accept_next is not None:
                body, self._accept_next = body[: self._accept_next], None
            if body:
                session["ranges"].append((start, start + len(body)))
                session["data"] += body
            return self._where(session)

    def _where(self, session: dict) -> Response:
        held = len(session["data"])
        if held < session["size"]:
            return Response(308, None, {"Range": f"bytes=0-{held - 1}"} if held else {})
        created = not session["video_id"]
        if created:
            session["video_id"] = f"dQw4w9WgX{next(self._ids):02d}"
            self.live.append(
                {
                    "id": session["video_id"],
                    "title": session["snippet"].get("title"),
                    "description": session["snippet"].get("description"),
                    "privacy": session["status"].get("privacyStatus"),
                    "size": held,
                }
            )
        return Response(
            201 if created else 200,
            {
                "kind": "youtube#video",
                "id": session["video_id"],
                "snippet": session["snippet"],
                "status": {"uploadStatus": "uploaded", **session["status"]},
            },
        )
