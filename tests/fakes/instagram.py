"""A fake Instagram Graph API (content publishing, ``/v21.0``) and its token refresh.

Routes, in Instagram's shapes (parameters in the query or a form body, as the
Graph API takes either):

- ``POST /v21.0/<ig-user-id>/media``: a container. ``image_url``, or
  ``video_url`` with ``media_type`` ``REELS`` or ``STORIES`` (``VIDEO`` only
  for a carousel child; a bare feed ``VIDEO`` is refused, as Instagram refuses
  it now), ``STORIES`` with ``image_url`` too; ``is_carousel_item=true`` for a
  carousel's child; ``media_type=CAROUSEL`` with ``children`` (2–10 ids of
  this user's unpublished carousel children). ``caption`` at most 2,200
  characters and 30 hashtags. Answers ``{"id"}``. Media URLs must be ones the
  fake serves (``add_file``, or any name when ``serves_any_file``).
- ``GET /v21.0/<container-id>?fields=status_code,status``: ``IN_PROGRESS``
  for ``processing_polls`` reads of a video container (a carousel stays
  IN_PROGRESS while a child does), then ``FINISHED``; after publishing
  ``PUBLISHED``; ``fail_container`` makes it ``ERROR``, ``expire_container``
  ``EXPIRED``. ``GET /v21.0/<media-id>?fields=permalink`` answers the media.
- ``POST /v21.0/<ig-user-id>/media_publish`` with ``creation_id``: the
  container must be FINISHED (IN_PROGRESS: 400, code 9007), not published
  already (400), and the user's ``publish_limit`` of posts in 24 hours not
  reached (400, code 9, subcode 2207042). Answers ``{"id": <media id>}``.
- ``GET /v21.0/<ig-user-id>/content_publishing_limit``: ``{"data":
  [{"config": {"quota_total", "quota_duration"}, "quota_usage"}]}``.
- ``GET /v21.0/<ig-user-id>/media``: the user's media, newest first
  (``id``, ``caption``, ``permalink``, ``timestamp`` as Instagram writes it).
- ``GET /refresh_access_token?grant_type=ig_refresh_token&access_token=…``:
  a new long-lived token (``expires_in`` 60 days). The old one keeps working
  until it expires, as on Instagram. A token ``expire``\\ d by a test is
  refused by the API (OAuth error 190, subcode 463) but may still be
  refreshed here (on Instagram it may be refreshed until its 60 days are over);
  a ``revoke``\\ d one is refused by both (190).

Every API route checks the bearer token (``Authorization: Bearer``).
The base's ``hold_when`` keeps chosen requests in flight (a worker killed
meanwhile never learns their outcome).
``live`` lists every published post (``caption``, ``media_type``,
``children``: the media URLs); ``containers`` every container.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import urllib.parse
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, FakeNetwork, Request, Response

USER_ID = "17841400000000001"
LONG_LIVED = 60 * 86400
MAX_CAPTION = 2200
MAX_HASHTAGS = 30
_HASHTAG = re.compile(r"(?<![\w#])#\w+")


def _error(
    message: str,
    code: int,
    status: int = 400,
    subcode: int | None = None,
    kind: str = "OAuthException",
) -> Response:
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Response(status, {"error": error})


def _params(request: Request) -> dict[str, str]:
    """The query's parameters and a form body's, as the Graph API reads both."""
    params = {k: v[-1] for k, v in urllib.parse.parse_qs(request.query).items()}
    if request.body and "json" not in request.headers.get("content-type", ""):
        params.update({k: v[-1] for k, v in urllib.parse.parse_qs(request.body.decode()).items()})
    return params


class FakeInstagram(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/v21\.0/(\d+)/media", "create_container"),
        ("POST", r"/v21\.0/(\d+)/media_publish", "publish"),
        ("GET", r"/v21\.0/(\d+)/content_publishing_limit", "publishing_limit"),
        ("GET", r"/v21\.0/(\d+)/media", "list_media"),
        ("GET", r"/v21\.0/(\d+)", "read_object"),
        ("GET", r"/refresh_access_token", "refresh_token"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(
        self,
        token: str = "ig-token",
        user_id: str = USER_ID,
        processing_polls: int = 1,
        publish_limit: int = 100,
    ):
        super().__init__()
        self.user_id = user_id
        self.processing_polls = processing_polls
        self.publish_limit = publish_limit
        self.tokens: dict[str, str] = {token: "valid"}  # token -> valid, expired, revoked
        self.refreshes: list[tuple[str, str]] = []  # (old token, new token)
        self.containers: dict[str, dict] = {}
        self.media: dict[str, dict] = {}
        self._ids = itertools.count(18_000_000_000_000_001)
        #: The status the next containers end in instead of FINISHED (ERROR, EXPIRED).
        self.containers_end_as = "FINISHED"
        #: The account's media list leaves out what was published (a look-up finds nothing).
        self.hide_media = False
        self._expire_on = ""

    def expire_on(self, path: str) -> None:
        """Expires the valid tokens when the next request whose path contains
        ``path`` arrives, before it is served: they expire mid-delivery."""
        with self.lock:
            self._expire_on = path

    def dispatch(self, request: Request) -> tuple[Response, bool]:
        with self.lock:
            if self._expire_on and self._expire_on in request.path:
                self._expire_on = ""
                for token, state in list(self.tokens.items()):
                    if state == "valid":
                        self.tokens[token] = "expired"
        return super().dispatch(request)

    # ------------------------------------------------------------------ for tests
    def expire(self, token: str) -> None:
        with self.lock:
            self.tokens[token] = "expired"

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens[token] = "revoked"

    def fail_container(self, container_id: str, status: str = "ERROR") -> None:
        with self.lock:
            self.containers[container_id]["status"] = status

    def publishes(self) -> list:
        """The media_publish requests that arrived."""
        return self.calls("/media_publish", "POST")

    # ------------------------------------------------------------------ checks
    def _token_refusal(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        state = self.tokens.get(token)
        if state == "valid":
            return None
        if state == "expired":
            return _error("Error validating access token: Session has expired.", 190, 400, 463)
        return _error("Invalid OAuth access token - Cannot parse access token", 190, 400)

    def _user_refusal(self, request: Request, user_id: str) -> Response | None:
        refusal = self._token_refusal(request)
        if refusal is None and user_id != self.user_id:
            refusal = _error(
                f"Unsupported request - Object with ID '{user_id}' does not exist",
                100,
                400,
                33,
                "GraphMethodException",
            )
        return refusal

    def _published_today(self) -> int:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        return sum(1 for m in self.media.values() if m["at"] >= since)

    def _media_url_ok(self, url: str) -> bool:
        return url.startswith(f"{self.base_url}/media/")

    # ------------------------------------------------------------------ routes
    def create_container(self, request: Request, user_id: str) -> Response:
        refusal = self._user_refusal(request, user_id)
        if refusal:
            return refusal
        params = _params(request)
        kind = params.get("media_type", "IMAGE" if "image_url" in params else "")
        caption = params.get("caption", "")
        child = params.get("is_carousel_item") == "true"
        if len(caption) > MAX_CAPTION:
            return _error("The caption is too long.", 100, 400, 2207015, "IGApiException")
        if len(_HASHTAG.findall(caption)) > MAX_HASHTAGS:
            return _error("The caption has too many hashtags.", 100, 400, 2207016, "IGApiException")
        with self.lock:
            if kind == "CAROUSEL":
                children = [c for c in params.get("children", "").split(",") if c]
                if not 2 <= len(children) <= 10 or any(
                    self.containers.get(c, {}).get("user") != user_id
                    or not self.containers[c]["child"]
                    or self.containers[c]["status"] == "PUBLISHED"
                    for c in children
                ):
                    return _error("Invalid parameter: children", 100)
                urls = [self.containers[c]["url"] for c in children]
                url, polls = "", 0
            else:
                children, urls = [], []
                url = params.get(
                    "video_url"
                    if kind in ("REELS", "VIDEO") or (kind == "STORIES" and "video_url" in params)
                    else "image_url",
                    "",
                )
                allowed = {"IMAGE", "REELS", "STORIES"} | ({"VIDEO"} if child else set())
                if kind not in allowed or (child and kind not in ("IMAGE", "VIDEO")):
                    return _error(f"Invalid parameter: media_type {kind or '(none)'}", 100)
                if not url or not self._media_url_ok(url):
                    return _error(
                        "Invalid parameter: the media URL cannot be fetched", 9004, 400, 2207052
                    )
                polls = self.processing_polls if "video_url" in params else 0
            container_id = str(next(self._ids))
            self.containers[container_id] = {
                "id": container_id,
                "user": user_id,
                "media_type": kind,
                "caption": caption,
                "child": child,
                "children": children,
                "urls": urls or [url],
                "url": url,
                "polls_left": polls,
                "ends_as": self.containers_end_as,
                "status": "IN_PROGRESS" if polls else self.containers_end_as,
                "share_to_feed": params.get("share_to_feed"),
            }
        return Response(200, {"id": container_id})

    def _status(self, container: dict) -> str:
        """The container's status after this read (a read moves processing on)."""
        if container["status"] == "IN_PROGRESS" and container["polls_left"] > 0:
            container["polls_left"] -= 1
            if container["polls_left"] == 0:
                container["status"] = container["ends_as"]
            return "IN_PROGRESS"
        if container["media_type"] == "CAROUSEL" and container["status"] == "FINISHED":
            children = [self.containers[c]["status"] for c in container["children"]]
            if "ERROR" in children:
                return "ERROR"
            if "IN_PROGRESS" in children:
                return "IN_PROGRESS"
        return container["status"]

    def read_object(self, request: Request, object_id: str) -> Response:
        refusal = self._token_refusal(request)
        if refusal:
            return refusal
        with self.lock:
            if object_id in self.containers:
                container = self.containers[object_id]
                status = self._status(container)
                detail = {
                    "ERROR": "Error: the media could not be processed",
                    "EXPIRED": "Expired: not published within 24 hours",
                }.get(status, status)
                return Response(200, {"id": object_id, "status_code": status, "status": detail})
            if object_id in self.media:
                media = self.media[object_id]
                return Response(200, {"id": object_id, "permalink": media["permalink"]})
        return _error(
            f"Unsupported get request. Object with ID '{object_id}' does not exist",
            100,
            400,
            33,
            "GraphMethodException",
        )

    def publish(self, request: Request, user_id: str) -> Response:
        refusal = self._user_refusal(request, user_id)
        if refusal:
            return refusal
        creation_id = _params(request).get("creation_id", "")
        with self.lock:
            container = self.containers.get(creation_id)
            if container is None or container["user"] != user_id or container["child"]:
                return _error("Invalid parameter: creation_id", 100)
            status = self._status(container)
            if status == "PUBLISHED":
                return _error(
                    "The media has already been published.", 100, 400, 2207008, "IGApiException"
                )
            if status != "FINISHED":
                return _error(
                    "Media ID is not available: the media is not ready",
                    9007,
                    400,
                    2207027,
                    "IGApiException",
                )
            if self._published_today() >= self.publish_limit:
                return _error(
                    "Application request limit reached: the account has reached"
                    " its maximum number of posts per day",
                    9,
                    400,
                    2207042,
                    "IGApiException",
                )
            media_id = str(next(self._ids))
            now = dt.datetime.now(dt.UTC)
            self.media[media_id] = {
                "id": media_id,
                "caption": container["caption"],
                "at": now,
                "permalink": f"https://www.instagram.com/p/{media_id}/",
            }
            container["status"] = "PUBLISHED"
            self.live.append(
                {
                    "id": media_id,
                    "container": creation_id,
                    "media_type": container["media_type"],
                    "caption": container["caption"],
                    "media": container["urls"],
                    "share_to_feed": container["share_to_feed"],
                }
            )
        return Response(200, {"id": media_id})

    def publishing_limit(self, request: Request, user_id: str) -> Response:
        refusal = self._user_refusal(request, user_id)
        if refusal:
            return refusal
        with self.lock:
            used = self._published_today()
        return Response(
            200,
            {
                "data": [
                    {
                        "config": {"quota_total": self.publish_limit, "quota_duration": 86400},
                        "quota_usage": used,
                    }
                ]
            },
        )

    def list_media(self, request: Request, user_id: str) -> Response:
        refusal = self._user_refusal(request, user_id)
        if refusal:
            return refusal
        with self.lock:
            shown = [] if self.hide_media else self.media.values()
            newest = sorted(shown, key=lambda m: m["at"], reverse=True)[:25]
        return Response(
            200,
            {
                "data": [
                    {
                        "id": m["id"],
                        "caption": m["caption"],
                        "permalink": m["permalink"],
                        "timestamp": m["at"].strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    }
                    for m in newest
                ]
            },
        )

    def refresh_token(self, request: Request) -> Response:
        params = _params(request)
        old = params.get("access_token", "")
        with self.lock:
            if params.get("grant_type") != "ig_refresh_token":
                return _error("Invalid parameter: grant_type", 100)
            if self.tokens.get(old) not in ("valid", "expired"):
                return _error("Invalid OAuth access token - Cannot parse access token", 190)
            new = f"ig-token-{len(self.refreshes) + 1}"
            self.tokens[new] = "valid"
            self.refreshes.append((old, new))
        return Response(
            200, {"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED}
        )
