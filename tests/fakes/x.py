"""A fake X (API v2): tweets, replies, media upload, the user's timeline.

Speaks the shapes the X adapter uses: ``POST /2/tweets`` (``text``, ``reply``,
``media``) answering ``{"data": {"id", "text"}}``; the v2 media upload
(one-shot multipart for images, initialize/append/finalize for video and GIF,
``GET /2/media/upload?command=STATUS``); ``POST /2/media/metadata`` (alt
text); ``GET /2/users/me``; ``GET /2/users/<id>/tweets`` (newest first, text
HTML-escaped and links turned into t.co links, as X returns them). Every API
route checks the bearer token (401 otherwise). ``GET /media/<name>`` serves
media files for tests, no token needed.

``live`` holds every tweet that went live; ``log`` every request with the time
it arrived (the base's ``arrivals``); ``lose_next`` closes the connection of a
request before it runs (an unknown outcome where nothing went live), unlike
``Fault(drop=True)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import itertools
import re
import time
import urllib.parse
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, Arrival, FakeNetwork, Request, Response, multipart

USER_ID = "1000"


def authorized(handler):
    """Answers 401 unless the request carries the network's bearer token."""

    @functools.wraps(handler)
    def checked(self, request: Request, *args):
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, {"title": "Unauthorized", "type": "about:blank",
                                  "status": 401, "detail": "Unauthorized"})  # fmt: skip
        return handler(self, request, *args)

    return checked


def problem(status: int, detail: str, title: str = "Invalid Request") -> Response:
    return Response(status, {"title": title, "detail": detail, "status": status,
                             "errors": [{"message": detail}]})  # fmt: skip


def form(request: Request) -> dict[str, bytes]:
    """The fields of a multipart/form-data body."""
    return {name: part["data"] for name, part in multipart(request).items()}


class FakeX(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/2/tweets", "create_tweet"),
        ("POST", r"/2/media/upload", "upload_media"),
        ("GET", r"/2/media/upload", "media_status"),
        ("POST", r"/2/media/upload/initialize", "initialize_upload"),
        ("POST", r"/2/media/upload/(\d+)/append", "append_upload"),
        ("POST", r"/2/media/upload/(\d+)/finalize", "finalize_upload"),
        ("POST", r"/2/media/metadata", "media_metadata"),
        ("GET", r"/2/users/me", "me"),
        ("GET", r"/2/users/(\d+)/tweets", "user_tweets"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(self, token: str = "x-token", username: str = "acme"):
        super().__init__()
        self.token = token
        self.username = username
        self.media: dict[str, dict] = {}  # media id -> category, mime, size, alt text
        self._ids = itertools.count(1_900_000_000_000_000_000)
        self._lose: list[str] = []

    # ------------------------------------------------------------ test helpers
    def lose_next(self, path: str) -> None:
        """Closes the connection of the next request to ``path`` before it runs."""
        with self.lock:
            self._lose.append(path)

    def posts(self) -> list[Arrival]:
        """Every ``POST /2/tweets`` that arrived, answered or not."""
        return self.seen("POST", "/2/tweets")

    def dispatch(self, request: Request) -> tuple[Response, bool]:
        with self.lock:
            if request.path in self._lose:
                self._lose.remove(request.path)
                self._arrive(request)
                self.requests.append(request)
                return Response(500), True
        return super().dispatch(request)

    # ------------------------------------------------------------------ tweets
    @authorized
    def create_tweet(self, request: Request) -> Response:
        body = request.json or {}
        text = body.get("text", "")
        media_ids = list((body.get("media") or {}).get("media_ids") or [])
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if not text and not media_ids:
            return problem(400, "Tweet needs text or media")
        if len(text) > 280:
            return problem(400, "Tweet text is too long")
        with self.lock:
            if reply_to and not any(t["id"] == reply_to for t in self.live):
                return problem(400, f"in_reply_to_tweet_id {reply_to} does not exist")
            unknown = [m for m in media_ids if m not in self.media]
            if unknown:
                return problem(400, f"media ids {unknown} were not uploaded")
            tweet = {
                "id": str(next(self._ids)),
                "text": text,
                "reply_to": reply_to,
                "media_ids": media_ids,
                "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "at": time.monotonic(),
            }
            self.live.append(tweet)
        return Response(201, {"data": {"id": tweet["id"], "text": text}})

    @authorized
    def me(self, request: Request) -> Response:
        return Response(200, {"data": {"id": USER_ID, "name": "Acme",
                                       "username": self.username}})  # fmt: skip

    @authorized
    def user_tweets(self, request: Request, user_id: str) -> Response:
        query = urllib.parse.parse_qs(request.query)
        limit = int((query.get("max_results") or ["10"])[0])
        with self.lock:
            tweets = [] if user_id != USER_ID else list(reversed(self.live))[:limit]
        data = [self._as_returned(t) for t in tweets]
        meta = {"result_count": len(data)}
        return Response(200, {"data": data, "meta": meta} if data else {"meta": meta})

    def _as_returned(self, tweet: dict) -> dict:
        text = html.escape(tweet["text"], quote=False)
        text = re.sub(r"https?://\S+", "https://t.co/abcdEFGH12", text)
        if tweet["media_ids"]:
            text = f"{text} https://t.co/MediaLink99".strip()
        returned = {
            "id": tweet["id"],
            "text": text,
            "created_at": tweet["created_at"],
            "conversation_id": self._root(tweet)["id"],
        }
        if tweet["reply_to"]:
            returned["in_reply_to_user_id"] = USER_ID
            returned["referenced_tweets"] = [{"type": "replied_to", "id": tweet["reply_to"]}]
        return returned

    def _root(self, tweet: dict) -> dict:
        by_id = {t["id"]: t for t in self.live}
        while tweet["reply_to"] in by_id:
            tweet = by_id[tweet["reply_to"]]
        return tweet

    # ------------------------------------------------------------------- media
    @authorized
    def upload_media(self, request: Request) -> Response:
        fields = form(request)
        if not fields.get("media"):
            return problem(400, "media is required")
        category = (fields.get("media_category") or b"").decode()
        if category != "tweet_image":
            return problem(400, f"one-shot upload takes tweet_image, not {category!r}")
        return self._stored(category, (fields.get("media_type") or b"").decode(),
                            len(fields["media"]), done=True)  # fmt: skip

    @authorized
    def initialize_upload(self, request: Request) -> Response:
        body = request.json or {}
        if body.get("media_category") not in ("tweet_video", "tweet_gif"):
            return problem(400, "media_category must be tweet_video or tweet_gif")
        return self._stored(body["media_category"], body.get("media_type", ""),
                            int(body.get("total_bytes") or 0), done=False)  # fmt: skip

    @authorized
    def append_upload(self, request: Request, media_id: str) -> Response:
        fields = form(request)
        with self.lock:
            upload = self.media.get(media_id)
            if upload is None or upload["done"]:
                return problem(400, f"no upload session {media_id}")
            upload["segments"][int(fields["segment_index"])] = len(fields["media"])
        return Response(204)

    @authorized
    def finalize_upload(self, request: Request, media_id: str) -> Response:
        with self.lock:
            upload = self.media.get(media_id)
            if upload is None:
                return problem(400, f"no upload session {media_id}")
            if sum(upload["segments"].values()) != upload["size"]:
                return problem(400, "the segments do not add up to total_bytes")
            upload["done"] = True
        info = {"state": "pending", "check_after_secs": 0}
        return Response(200, {"data": {"id": media_id, "processing_info": info}})

    @authorized
    def media_status(self, request: Request) -> Response:
        media_id = (urllib.parse.parse_qs(request.query).get("media_id") or [""])[0]
        if media_id not in self.media:
            return problem(400, f"no media {media_id}")
        info = {"state": "succeeded", "progress_percent": 100}
        return Response(200, {"data": {"id": media_id, "processing_info": info}})

    @authorized
    def media_metadata(self, request: Request) -> Response:
        body = request.json or {}
        with self.lock:
            if body.get("id") not in self.media:
                return problem(400, f"no media {body.get('id')}")
            alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text", "")
            self.media[body["id"]]["alt_text"] = alt
        return Response(200, {"data": {"id": body["id"], "associated_metadata": body["metadata"]}})

    def _stored(self, category: str, mime: str, size: int, done: bool) -> Response:
        with self.lock:
            media_id = str(next(self._ids))
            self.media[media_id] = {"category": category, "mime": mime, "size": size,
                                    "done": done, "segments": {}, "alt_text": ""}  # fmt: skip
        return Response(200, {"data": {"id": media_id, "media_key": f"3_{media_id}",
                                       "size": size, "expires_after_secs": 86400}})  # fmt: skip
