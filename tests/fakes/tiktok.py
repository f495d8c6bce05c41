"""A fake TikTok: the Content Posting API v2 (direct post) and its OAuth token endpoint.

Routes, in TikTok's shapes (JSON bodies; every answer ``{"data": …, "error":
{"code": "ok" | <code>, "message", "log_id"}}``):

- ``POST /v2/post/publish/creator_info/query/``: the creator's
  ``privacy_level_options`` (``privacy_options``) and
  ``max_video_post_duration_sec``.
- ``POST /v2/post/publish/video/init/``: ``post_info`` (``title`` at most
  2,200 characters, a ``privacy_level`` the creator is offered) and
  ``source_info {source: PULL_FROM_URL, video_url}``; answers a ``publish_id``.
- ``POST /v2/post/publish/content/init/``: ``media_type: PHOTO``,
  ``post_mode: DIRECT_POST``, ``source_info.photo_images`` (2–35 URLs).
- ``POST /v2/post/publish/status/fetch/`` with ``publish_id``: each read
  moves the post on, ``PROCESSING_DOWNLOAD`` for ``processing_polls`` reads,
  then ``PUBLISH_COMPLETE`` (with ``publicaly_available_post_id``, spelt as
  TikTok spells it, for a public post) or, after ``fail_next_publish``,
  ``FAILED`` with that ``fail_reason``. The post is live from its init on (it
  is TikTok's, not the app's, to finish): ``live`` lists each init accepted.
- ``POST /v2/oauth/token/`` (the base FakeTokenEndpoint, ``client_key``): a
  refresh token works once.

Media URLs must be ones the fake serves (``media_url``); otherwise the post
fails with ``video_pull_failed`` / ``photo_pull_failed``. Every API route
checks the bearer token: an unknown or ``expire``\\ d one (``expire_when``: all
of them, once a chosen request arrives) is 401 ``access_token_invalid``.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, Request, Response
from tests.fakes.oauth import FakeTokenEndpoint

MAX_CAPTION = 2200
PUBLIC = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]


def _answer(
    data: dict | None = None, status: int = 200, code: str = "ok", message: str = ""
) -> Response:
    return Response(
        status,
        {"data": data or {}, "error": {"code": code, "message": message, "log_id": "2026120100"}},
    )


class FakeTikTok(FakeTokenEndpoint):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/v2/post/publish/creator_info/query/", "creator_info"),
        ("POST", r"/v2/post/publish/video/init/", "video_init"),
        ("POST", r"/v2/post/publish/content/init/", "content_init"),
        ("POST", r"/v2/post/publish/status/fetch/", "status_fetch"),
        ("POST", r"/v2/oauth/token/", "token"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(
        self,
        token: str = "tt-token",
        client_key: str = "tt-client",
        client_secret: str = "tt-secret",
        processing_polls: int = 1,
    ):
        super().__init__(client_key, client_secret, client_param="client_key")
        self._access_tokens.add(token)
        self.processing_polls = processing_polls
        self.privacy_options = list(PUBLIC)
        self.publishes: dict[str, dict] = {}
        self._fail_reasons: list[str] = []
        self._ids = itertools.count(7_300_000_000_000_000_001)

    # ------------------------------------------------------------------ for tests
    def expire(self, access_token: str) -> None:
        with self.lock:
            self._access_tokens.discard(access_token)

    def fail_next_publish(self, reason: str) -> None:
        """The next post accepted ends FAILED with ``fail_reason`` ``reason``."""
        with self.lock:
            self._fail_reasons.append(reason)

    def inits(self) -> list:
        """The init requests that arrived (video and photo)."""
        return [a for a in self.log if a.path.endswith("/init/")]

    # ------------------------------------------------------------------ checks
    def _refusal(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not self.valid(token):
            return _answer(
                status=401,
                code="access_token_invalid",
                message="The access token is invalid or not found in the request.",
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _answer(status=400, code="invalid_params", message="Content-Type must be JSON")
        return None

    def _served(self, url: str) -> bool:
        return url.startswith(f"{self.base_url}/media/")

    # ------------------------------------------------------------------ routes
    def creator_info(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal:
            return refusal
        return _answer(
            {
                "creator_username": "creator",
                "creator_nickname": "Creator",
                "privacy_level_options": list(self.privacy_options),
                "comment_disabled": False,
                "duet_disabled": False,
                "stitch_disabled": False,
                "max_video_post_duration_sec": 600,
            }
        )

    def _start(self, kind: str, caption: str, privacy: str, urls: list[str]) -> Response:
        if len(caption) > MAX_CAPTION:
            return _answer(status=400, code="invalid_params", message="The title is too long.")
        if privacy not in self.privacy_options:
            return _answer(
                status=400,
                code="privacy_level_option_mismatch",
                message="The privacy level is not one of the creator's options.",
            )
        with self.lock:
            publish_id = f"v_pub_url~v2.{next(self._ids)}"
            fail = self._fail_reasons.pop(0) if self._fail_reasons else ""
            if not fail and not all(self._served(u) for u in urls):
                fail = "video_pull_failed" if kind == "VIDEO" else "photo_pull_failed"
            self.publishes[publish_id] = {
                "kind": kind,
                "caption": caption,
                "privacy": privacy,
                "urls": urls,
                "polls_left": self.processing_polls,
                "fail": fail,
                "post_id": "",
            }
            self.live.append(
                {
                    "publish_id": publish_id,
                    "kind": kind,
                    "caption": caption,
                    "privacy": privacy,
                    "media": urls,
                }
            )
        return _answer({"publish_id": publish_id})

    def video_init(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal:
            return refusal
        body = request.json or {}
        post, source = body.get("post_info") or {}, body.get("source_info") or {}
        if source.get("source") != "PULL_FROM_URL" or not source.get("video_url"):
            return _answer(status=400, code="invalid_params", message="source_info is invalid")
        return self._start(
            "VIDEO", post.get("title", ""), post.get("privacy_level", ""), [source["video_url"]]
        )

    def content_init(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal:
            return refusal
        body = request.json or {}
        post, source = body.get("post_info") or {}, body.get("source_info") or {}
        images = source.get("photo_images") or []
        if (
            (body.get("media_type"), body.get("post_mode")) != ("PHOTO", "DIRECT_POST")
            or not (2 <= len(images) <= 35)
            or source.get("source") != "PULL_FROM_URL"
        ):
            return _answer(status=400, code="invalid_params", message="photo post is invalid")
        if len(post.get("title", "")) > 90:
            return _answer(status=400, code="invalid_params", message="The title is too long.")
        return self._start(
            "PHOTO", post.get("description", ""), post.get("privacy_level", ""), images
        )

    def status_fetch(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal:
            return refusal
        publish_id = (request.json or {}).get("publish_id", "")
        with self.lock:
            publish = self.publishes.get(publish_id)
            if publish is None:
                return _answer(
                    status=400, code="invalid_publish_id", message="The publish_id does not exist."
                )
            if publish["polls_left"] > 0:
                publish["polls_left"] -= 1
                return _answer({"status": "PROCESSING_DOWNLOAD", "uploaded_bytes": 0})
            if publish["fail"]:
                return _answer({"status": "FAILED", "fail_reason": publish["fail"]})
            if not publish["post_id"] and publish["privacy"] == "PUBLIC_TO_EVERYONE":
                publish["post_id"] = str(next(self._ids))
            ids = [int(publish["post_id"])] if publish["post_id"] else []
        return _answer({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": ids})
