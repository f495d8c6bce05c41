r"""A fake LinkedIn (versioned ``/rest`` APIs): Posts, Images, Documents, Videos.

Speaks the shapes the LinkedIn adapter uses: ``POST /rest/posts`` answering
201 with the post URN in ``x-restli-id``; ``POST /rest/{images,documents}
?action=initializeUpload`` answering ``{"value": {"uploadUrl", "image" |
"document"}}``; ``POST /rest/videos?action=initializeUpload`` (upload
instructions) and ``?action=finalizeUpload`` (the parts' ETags); ``GET
/rest/videos/<urn>`` and ``GET /rest/documents/<urn>`` (``status``);
``PUT /upload/<id>`` (the upload URLs it hands out). A finalized video or an
uploaded document is PROCESSING for ``processing_seconds``, then AVAILABLE; a
post naming an asset that is not AVAILABLE is refused (422).
Every API route checks the bearer token (401 otherwise) and the
``LinkedIn-Version`` header (YYYYMM); ``/rest/posts`` also the Rest.li protocol
header. ``GET /media/<name>`` serves media files for tests, no token needed.

The commentary is parsed as LinkedIn documents its "little" text format
(``parse_little``), not as any adapter writes it: the reserved characters
``| { } @ [ ] ( ) < > # \ * _ ~`` are plain text only when backslash-escaped;
unescaped they must form markup: a mention ``@[Name](urn:li:organization:1)``,
a hashtag template ``{hashtag|\#|tag}``, or a hashtag ``#tag``. Anything else
is malformed and the post is refused (422). LinkedIn itself often takes such a
commentary and silently cuts it at that character; refusing it here makes the
mistake fail every test that meets it, not only those that read the text back.

``live`` holds every post that went live (``text`` as readers see it, with
its ``hashtags`` and ``mentions``); ``log`` every request with the time it
arrived (the base's ``arrivals``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import time
import urllib.parse
from typing import ClassVar

from tests.fakes.base import MEDIA_ROUTE, Arrival, FakeNetwork, Request, Response

AUTHOR = "urn:li:person:8675309"
RESERVED = frozenset("|{}@[]()<>#\\*_~")
HASHTAG_SIGNS = ("\\#", "#", "\uff03")  # the documented signs: # (escaped or not) or ＃
_MENTION_URN = re.compile(r"urn:li:(?:person|organization):[^\s:]+")


class MalformedLittle(ValueError):
    """A commentary that is not little text; ``offset`` is where it goes wrong."""

    def __init__(self, offset: int, problem: str):
        super().__init__(f"{problem} at offset {offset}")
        self.offset = offset


@dataclasses.dataclass
class Little:
    """A parsed commentary: what readers see, and the markup in it."""

    text: str
    hashtags: list[str]
    mentions: list[tuple[str, str]]  # (name shown, URN)


def parse_little(commentary: str) -> Little:
    """Parses ``commentary`` by LinkedIn's little grammar; raises MalformedLittle."""
    out: list[str] = []
    hashtags: list[str] = []
    mentions: list[tuple[str, str]] = []
    i = 0
    while i < len(commentary):
        char = commentary[i]
        if char not in RESERVED:
            out.append(char)
            i += 1
        elif char == "\\":
            out.append(_escaped(commentary, i))
            i += 2
        elif commentary.startswith("@[", i):  # @[Name](urn)
            name, i = _text_until(commentary, i + 2, "]")
            _expect(commentary, i + 1, "(")
            urn, i = _text_until(commentary, i + 2, ")")
            if not name or not _MENTION_URN.fullmatch(urn):
                raise MalformedLittle(i, f"mention of {urn!r} as {name!r}")
            out.append(name)
            mentions.append((name, urn))
            i += 1
        elif commentary.startswith("{hashtag|", i):  # {hashtag|sign|tag}
            i += len("{hashtag|")
            sign = next((s for s in HASHTAG_SIGNS if commentary.startswith(s + "|", i)), None)
            if sign is None:
                raise MalformedLittle(i, "hashtag template without a hashtag sign")
            tag, i = _text_until(commentary, i + len(sign) + 1, "}")
            if not tag or any(c.isspace() for c in tag):
                raise MalformedLittle(i, f"hashtag {tag!r}")
            out.append(sign.lstrip("\\") + tag)
            hashtags.append(tag)
            i += 1
        elif char == "#" and commentary[i + 1 : i + 2].isalnum():  # #tag
            end = i + 1
            while commentary[end : end + 1].isalnum():
                end += 1
            out.append(commentary[i:end])
            hashtags.append(commentary[i + 1 : end])
            i = end
        else:
            raise MalformedLittle(i, f"unescaped reserved character {char!r}")
    return Little("".join(out), hashtags, mentions)


def visible(commentary: str) -> str:
    """What readers see of a little commentary (raises MalformedLittle if it is not one)."""
    return parse_little(commentary).text


def _escaped(commentary: str, at: int) -> str:
    """The character the backslash at ``at`` escapes: a backslash escapes only reserved ones."""
    if commentary[at + 1 : at + 2] not in RESERVED:
        raise MalformedLittle(at, "unescaped reserved character '\\\\'")
    return commentary[at + 1]


def _expect(commentary: str, at: int, literal: str) -> None:
    if not commentary.startswith(literal, at):
        raise MalformedLittle(at, f"{literal!r} expected")


def _text_until(commentary: str, start: int, end: str) -> tuple[str, int]:
    """Plain text (escapes undone) from ``start`` to the next ``end``, and where that is."""
    out, i = [], start
    while commentary[i : i + 1] != end:
        if i >= len(commentary):
            raise MalformedLittle(start, f"{end!r} expected before the end")
        if commentary[i] == "\\":
            out.append(_escaped(commentary, i))
            i += 2
        elif commentary[i] in RESERVED:
            raise MalformedLittle(i, f"unescaped reserved character {commentary[i]!r}")
        else:
            out.append(commentary[i])
            i += 1
    return "".join(out), i


def error(status: int, message: str, code: str = "", service_code: int = 0) -> Response:
    body: dict = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service_code:
        body["serviceErrorCode"] = service_code
    return Response(status, body)


def rest(handler):
    """Checks the bearer token and the version header of a ``/rest`` call."""

    @functools.wraps(handler)
    def checked(self, request: Request, *args):
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        if not re.fullmatch(r"\d{6}", request.headers.get("linkedin-version", "")):
            return error(
                400,
                "A version must be present. Please specify a version by adding "
                "the LinkedIn-Version header.",
                "VERSION_MISSING",
            )
        return handler(self, request, *args)

    return checked


class FakeLinkedIn(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/rest/posts", "create_post"),
        ("POST", r"/rest/images", "images_action"),
        ("POST", r"/rest/documents", "documents_action"),
        ("POST", r"/rest/videos", "videos_action"),
        ("GET", r"/rest/videos/([^/]+)", "video_status"),
        ("GET", r"/rest/documents/([^/]+)", "document_status"),
        ("PUT", r"/upload/(\w+)", "upload"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(self, token: str = "li-token", author: str = AUTHOR):
        super().__init__()
        self.token = token
        self.author = author
        self.assets: dict[str, dict] = {}  # media URN -> kind, uploaded bytes, status
        #: Seconds a finalized video or an uploaded document is PROCESSING.
        self.processing_seconds = 0.0
        self._uploads: dict[str, tuple[str, int]] = {}  # upload id -> (URN, part number)
        self._ids = itertools.count(7_100_000_000_000_000_000)

    # ------------------------------------------------------------ test helpers
    def posts(self) -> list[Arrival]:
        """Every ``POST /rest/posts`` that arrived, answered or not."""
        return self.seen("POST", "/rest/posts")

    # ------------------------------------------------------------------- posts
    @rest
    def create_post(self, request: Request) -> Response:
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return error(400, "X-Restli-Protocol-Version 2.0.0 is required")
        body = request.json or {}
        required = ("author", "commentary", "visibility", "distribution", "lifecycleState")
        missing = [name for name in required if name not in body]
        if missing:
            return error(
                422,
                "".join(
                    f"ERROR :: /{name} :: field is required but not found "
                    "and has no default value\n"
                    for name in missing
                ),
            )
        if body["author"] != self.author:
            return error(
                403, f"Not enough permissions to post as {body['author']}", "ACCESS_DENIED", 100
            )
        try:
            little = parse_little(body["commentary"])
        except MalformedLittle as exc:
            return error(422, f"ERROR :: /commentary :: {exc}")
        media_ids = self._media_ids(body.get("content") or {})
        with self.lock:
            for urn in media_ids:
                asset = self.assets.get(urn)
                if asset is None or self._status(asset) != "AVAILABLE":
                    return error(422, f"{urn} is not an uploaded, available asset")
            urn = f"urn:li:share:{next(self._ids)}"
            self.live.append(
                {
                    "id": urn,
                    "text": little.text,
                    "hashtags": little.hashtags,
                    "mentions": little.mentions,
                    "commentary": body["commentary"],
                    "reply_to": None,
                    "media_ids": media_ids,
                    "content": body.get("content"),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
        return Response(201, None, {"x-restli-id": urn})

    @staticmethod
    def _media_ids(content: dict) -> list[str]:
        if "media" in content:
            return [content["media"]["id"]]
        if "multiImage" in content:
            return [image["id"] for image in content["multiImage"]["images"]]
        return []

    # ------------------------------------------------------------------- media
    @rest
    def images_action(self, request: Request) -> Response:
        return self._initialize(request, "image")

    @rest
    def documents_action(self, request: Request) -> Response:
        return self._initialize(request, "document")

    @rest
    def videos_action(self, request: Request) -> Response:
        action = urllib.parse.parse_qs(request.query).get("action", [""])[0]
        if action == "finalizeUpload":
            return self._finalize_video(request)
        if action != "initializeUpload":
            return error(400, f"unknown action {action!r}")
        body = (request.json or {}).get("initializeUploadRequest") or {}
        if body.get("owner") != self.author or not body.get("fileSizeBytes"):
            return error(400, "owner and fileSizeBytes are required")
        size = int(body["fileSizeBytes"])
        with self.lock:
            urn = f"urn:li:video:D{next(self._ids)}"
            half = max(size // 2, 1)
            ranges = [(0, half - 1), (half, size - 1)] if size > 1 else [(0, 0)]
            instructions = []
            for number, (first, last) in enumerate(ranges):
                upload_id = str(next(self._ids))
                self._uploads[upload_id] = (urn, number)
                instructions.append(
                    {
                        "uploadUrl": f"{self.base_url}/upload/{upload_id}",
                        "firstByte": first,
                        "lastByte": last,
                    }
                )
            self.assets[urn] = {
                "kind": "video",
                "size": size,
                "parts": {},
                "status": "WAITING_UPLOAD",
            }
        return Response(
            200,
            {
                "value": {
                    "video": urn,
                    "uploadInstructions": instructions,
                    "uploadToken": "",
                    "uploadUrlsExpireAt": 0,
                }
            },
        )

    def _finalize_video(self, request: Request) -> Response:
        body = (request.json or {}).get("finalizeUploadRequest") or {}
        with self.lock:
            asset = self.assets.get(body.get("video", ""))
            if asset is None:
                return error(400, f"no video {body.get('video')}")
            etags = [asset["parts"].get(n, {}).get("etag") for n in range(len(asset["parts"]))]
            if not etags or body.get("uploadedPartIds") != etags:
                return error(400, "uploadedPartIds do not match the uploaded parts")
            if sum(p["size"] for p in asset["parts"].values()) != asset["size"]:
                return error(400, "the parts do not add up to fileSizeBytes")
            self._process(asset)
        return Response(200, None)

    @rest
    def video_status(self, request: Request, urn: str) -> Response:
        return self._asset_status(urn, "video")

    @rest
    def document_status(self, request: Request, urn: str) -> Response:
        return self._asset_status(urn, "document")

    def _asset_status(self, urn: str, kind: str) -> Response:
        urn = urllib.parse.unquote(urn)
        with self.lock:
            asset = self.assets.get(urn)
            if asset is None or asset["kind"] != kind:
                return error(404, f"no {kind} {urn}")
            return Response(200, {"id": urn, "status": self._status(asset)})

    def _process(self, asset: dict) -> None:
        """Starts processing an uploaded asset (lock held): AVAILABLE once it is done."""
        asset["status"] = "PROCESSING" if self.processing_seconds > 0 else "AVAILABLE"
        asset["ready_at"] = time.monotonic() + self.processing_seconds

    @staticmethod
    def _status(asset: dict) -> str:
        """The asset's status now (lock held)."""
        if asset["status"] == "PROCESSING" and time.monotonic() >= asset["ready_at"]:
            asset["status"] = "AVAILABLE"
        return asset["status"]

    def _initialize(self, request: Request, kind: str) -> Response:
        action = urllib.parse.parse_qs(request.query).get("action", [""])[0]
        if action != "initializeUpload":
            return error(400, f"unknown action {action!r}")
        owner = ((request.json or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.author:
            return error(403, f"Not enough permissions to upload as {owner}", "ACCESS_DENIED")
        with self.lock:
            urn = f"urn:li:{kind}:C{next(self._ids)}"
            upload_id = str(next(self._ids))
            self._uploads[upload_id] = (urn, 0)
            self.assets[urn] = {"kind": kind, "size": None, "parts": {}, "status": "WAITING_UPLOAD"}
        return Response(
            200,
            {
                "value": {
                    "uploadUrl": f"{self.base_url}/upload/{upload_id}",
                    kind: urn,
                    "uploadUrlExpiresAt": 0,
                }
            },
        )

    def upload(self, request: Request, upload_id: str) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        with self.lock:
            if upload_id not in self._uploads:
                return error(404, f"no upload {upload_id}")
            urn, number = self._uploads.pop(upload_id)
            asset = self.assets[urn]
            etag = f"etag-{upload_id}"
            asset["parts"][number] = {"size": len(request.body), "etag": etag}
            if asset["kind"] == "image":
                asset["size"], asset["status"] = len(request.body), "AVAILABLE"
            elif asset["kind"] == "document":
                asset["size"] = len(request.body)
                self._process(asset)
        return Response(201, None, {"etag": etag})
