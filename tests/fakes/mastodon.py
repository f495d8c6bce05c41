"""A Mastodon instance: statuses with the native Idempotency-Key, media uploads.

Routes (Mastodon's REST API shapes):

- ``POST /api/v1/statuses`` (JSON or form: ``status``, ``in_reply_to_id``,
  ``media_ids`` / ``media_ids[]``) answers the Status entity. An
  ``Idempotency-Key`` seen before from the same token within ``window``
  seconds answers the status made the first time and publishes nothing.
  401 for a bad token, 422 for a blank or too long text, too many media, media
  not yours or still processing, 404 for an unknown ``in_reply_to_id``.
- ``POST /api/v2/media`` (multipart ``file``, ``description``) answers the
  MediaAttachment: 200, or 202 with ``url: null`` when ``processing_polls`` > 0,
  after which ``GET /api/v1/media/:id`` answers 206 that many times, then 200.
- ``GET /media/<name>``: files registered with ``add_file`` (the base's media
  files; ``served(name)`` is the exact bytes).

Every accepted status is one entry of ``live``; every request that reaches the
fake is stamped on arrival (the base's ``arrivals`` and ``calls``), faults
included.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, FakeNetwork, Request, Response, multipart

MAX_CHARS = 500
MAX_MEDIA = 4
WINDOW = 3600.0  # Mastodon keeps an Idempotency-Key for an hour
PROCESSING = "Cannot attach files that have not finished processing. Try again in a moment!"


class FakeMastodon(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/api/v1/statuses", "create_status"),
        ("POST", r"/api/v2/media", "upload_media"),
        ("GET", r"/api/v1/media/(\w+)", "get_media"),
        MEDIA_ROUTE,
    ]

    def __init__(
        self,
        token: str = "mastodon-token",
        username: str = "alice",
        window: float = WINDOW,
        processing_polls: int = 0,
    ):
        super().__init__()
        self.accounts: dict[str, str] = {token: username}  # token -> username
        self.window = window
        self.processing_polls = processing_polls
        self.statuses: dict[str, dict] = {}
        self.media: dict[str, dict] = {}
        self._keys: dict[tuple[str, str], tuple[float, str]] = {}  # (token, key) -> (t, id)
        self._next_id = 109_000_000_000_000_000

    # ------------------------------------------------------------------ for tests
    def status_url(self, username: str, status_id: str) -> str:
        return f"{self.base_url}/@{username}/{status_id}"

    # ------------------------------------------------------------------ routes
    def create_status(self, request: Request) -> Response:
        token, refusal = self._authenticate(request)
        if refusal:
            return refusal
        key = request.headers.get("idempotency-key", "")
        now = time.monotonic()
        with self.lock:
            seen = self._keys.get((token, key)) if key else None
            if seen and now - seen[0] < self.window:
                return Response(200, self.statuses[seen[1]])
            fields = self._fields(request)
            text = fields.get("status") or ""
            media_ids = [str(m) for m in fields.get("media_ids") or []]
            reply_to = fields.get("in_reply_to_id") or None
            if not text.strip() and not media_ids:
                return _invalid("Text can't be blank")
            if len(text) > MAX_CHARS:
                return _invalid(f"Text character limit of {MAX_CHARS} exceeded")
            if len(media_ids) > MAX_MEDIA:
                return _invalid(f"Cannot attach more than {MAX_MEDIA} files")
            attachments = []
            for media_id in media_ids:
                media = self.media.get(media_id)
                if media is None or media["token"] != token or media["status_id"]:
                    return _invalid(f"Media {media_id} not found")
                if media["entity"]["url"] is None:
                    return Response(422, {"error": PROCESSING})
                attachments.append(media)
            if reply_to is not None and str(reply_to) not in self.statuses:
                return Response(404, {"error": "Record not found"})
            status_id = self._new_id()
            username = self.accounts[token]
            status = {
                "id": status_id,
                "uri": f"{self.base_url}/users/{username}/statuses/{status_id}",
                "url": self.status_url(username, status_id),
                "created_at": _now(),
                "content": f"<p>{text}</p>",
                "visibility": "public",
                "in_reply_to_id": str(reply_to) if reply_to else None,
                "media_attachments": [m["entity"] for m in attachments],
                "account": {"id": "1", "username": username, "acct": username},
            }
            for media in attachments:
                media["status_id"] = status_id
            self.statuses[status_id] = status
            if key:
                self._keys[(token, key)] = (now, status_id)
            self.live.append(
                {
                    "id": status_id,
                    "text": text,
                    "in_reply_to_id": status["in_reply_to_id"],
                    "media": [
                        {
                            "id": m["entity"]["id"],
                            "description": m["entity"]["description"],
                            "data": m["data"],
                            "type": m["type"],
                            "filename": m["filename"],
                        }
                        for m in attachments
                    ],
                    "idempotency_key": key,
                    "username": username,
                    "at": now,
                }
            )
            return Response(200, status)

    def upload_media(self, request: Request) -> Response:
        token, refusal = self._authenticate(request)
        if refusal:
            return refusal
        parts = multipart(request)
        file = parts.get("file")
        if not file or not file["data"]:
            return _invalid("File can't be blank")
        description = parts.get("description", {}).get("data", b"").decode()
        with self.lock:
            media_id = self._new_id()
            processing = self.processing_polls > 0
            url = f"{self.base_url}/system/media/{media_id}/original"
            entity = {
                "id": media_id,
                "type": file["type"].split("/")[0] if "/" in file["type"] else "unknown",
                "url": None if processing else url,
                "preview_url": url,
                "description": description or None,
            }
            self.media[media_id] = {
                "token": token,
                "entity": entity,
                "data": file["data"],
                "type": file["type"],
                "filename": file["filename"],
                "polls_left": self.processing_polls,
                "status_id": None,
                "final_url": url,
            }
            return Response(202 if processing else 200, dict(entity))

    def get_media(self, request: Request, media_id: str) -> Response:
        token, refusal = self._authenticate(request)
        if refusal:
            return refusal
        with self.lock:
            media = self.media.get(media_id)
            if media is None or media["token"] != token:
                return Response(404, {"error": "Record not found"})
            if media["polls_left"] > 0:
                media["polls_left"] -= 1
                return Response(206, dict(media["entity"]))
            media["entity"]["url"] = media["final_url"]
            return Response(200, dict(media["entity"]))

    # ------------------------------------------------------------------ helpers
    def _authenticate(self, request: Request) -> tuple[str, Response | None]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            if scheme.lower() != "bearer" or token not in self.accounts:
                return token, Response(401, {"error": "The access token is invalid"})
        return token, None

    def _fields(self, request: Request) -> dict:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = request.json
            return body if isinstance(body, dict) else {}
        form = urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True)
        return {
            "status": (form.get("status") or [""])[0],
            "in_reply_to_id": (form.get("in_reply_to_id") or [None])[0],
            "media_ids": form.get("media_ids[]") or form.get("media_ids") or [],
        }

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)


def _invalid(reason: str) -> Response:
    return Response(422, {"error": f"Validation failed: {reason}"})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
