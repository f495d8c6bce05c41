"""A Bluesky PDS: sessions, app.bsky.feed.post records, blobs (the XRPC shapes).

Routes:

- ``com.atproto.server.createSession`` ``{"identifier", "password"}`` (handle or
  DID) answers ``accessJwt``, ``refreshJwt``, ``handle``, ``did``; a wrong one is
  401 ``AuthenticationRequired``.
- ``com.atproto.server.refreshSession`` (Bearer: the refresh token) rotates both
  tokens (the old refresh token is revoked); an expired one is 400
  ``ExpiredToken``, a revoked or unknown one 400 ``InvalidToken``.
- ``com.atproto.repo.createRecord`` of ``app.bsky.feed.post`` with an optional
  TID ``rkey``: checks the record (text of at most 300 graphemes, createdAt,
  reply root and parent refs that exist with their cids, image blobs uploaded
  by the same account) and answers ``uri`` and ``cid``. A record key in use is
  500 ``InternalServerError``, as the reference PDS answers it.
- ``com.atproto.repo.getRecord?repo&collection&rkey`` answers ``uri``, ``cid``,
  ``value``, or 400 ``RecordNotFound``.
- ``com.atproto.repo.uploadBlob`` (raw body) answers the blob ref.
- ``GET /media/<name>``: files registered with ``add_file`` (the base's media
  files; ``served(name)`` is the exact bytes).

Authenticated calls refuse a missing token (401 ``AuthMissing``), an unknown
one (400 ``InvalidToken``) and one made stale with ``expire_access_tokens``
(400 ``ExpiredToken``). Every created post is one entry of ``live``; every
request is stamped on arrival (the base's ``arrivals`` and ``calls``), faults
included.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import time
import urllib.parse
from typing import ClassVar

import regex

from tests.fakes.base import MEDIA_ROUTE, FakeNetwork, Request, Response

POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_IMAGES = 4
TID = regex.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def fake_cid(data: object) -> str:
    """A CID-looking string (base32 "bafyrei…") of the canonical JSON of ``data``."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")


def xrpc_error(status: int, error: str, message: str) -> Response:
    return Response(status, {"error": error, "message": message})


class FakeBluesky(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/xrpc/com\.atproto\.server\.createSession", "create_session"),
        ("POST", r"/xrpc/com\.atproto\.server\.refreshSession", "refresh_session"),
        ("POST", r"/xrpc/com\.atproto\.repo\.createRecord", "create_record"),
        ("GET", r"/xrpc/com\.atproto\.repo\.getRecord", "get_record"),
        ("POST", r"/xrpc/com\.atproto\.repo\.uploadBlob", "upload_blob"),
        MEDIA_ROUTE,
    ]

    def __init__(self, handle: str = "alice.test", password: str = "app-password"):
        super().__init__()
        self.handle = handle
        self.password = password
        self.did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        self.records: dict[tuple[str, str], dict] = {}  # (collection, rkey) -> record
        self.blobs: dict[str, dict] = {}
        self._access: dict[str, bool] = {}  # token -> expired
        self._refresh: dict[str, str] = {}  # token -> "ok" | "expired" | "revoked"
        self._counter = itertools.count(1)
        self._clock = 0

    # ------------------------------------------------------------------ for tests
    def expire_access_tokens(self) -> None:
        """Every access token handed out so far now answers 400 ExpiredToken."""
        with self.lock:
            for token in self._access:
                self._access[token] = True

    def expire_refresh_tokens(self) -> None:
        with self.lock:
            for token, state in self._refresh.items():
                if state == "ok":
                    self._refresh[token] = "expired"

    def uri(self, rkey: str) -> str:
        return f"at://{self.did}/{POST}/{rkey}"

    # ------------------------------------------------------------------ sessions
    def create_session(self, request: Request) -> Response:
        body = _json_body(request)
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            return xrpc_error(400, "InvalidRequest", "identifier and password are required")
        if identifier.lower() not in (self.handle, self.did) or password != self.password:
            return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return Response(200, self._new_session())

    def refresh_session(self, request: Request) -> Response:
        token = _bearer(request)
        with self.lock:
            state = self._refresh.get(token)
            if state == "expired":
                return xrpc_error(400, "ExpiredToken", "Token has expired")
            if state != "ok":
                return xrpc_error(400, "InvalidToken", "Token has been revoked")
            self._refresh[token] = "revoked"
            return Response(200, self._new_session())

    def _new_session(self) -> dict:
        with self.lock:
            n = next(self._counter)
            access, refresh = f"access-{n}", f"refresh-{n}"
            self._access[access] = False
            self._refresh[refresh] = "ok"
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.handle,
            "did": self.did,
            "active": True,
        }

    def _authenticate(self, request: Request, optional: bool = False) -> Response | None:
        if "authorization" not in request.headers and optional:
            return None
        token = _bearer(request)
        with self.lock:
            if not token:
                return xrpc_error(401, "AuthMissing", "Authentication Required")
            if token not in self._access:
                return xrpc_error(400, "InvalidToken", "Token could not be verified")
            if self._access[token]:
                return xrpc_error(400, "ExpiredToken", "Token has expired")
        return None

    # ------------------------------------------------------------------ repo
    def create_record(self, request: Request) -> Response:
        refusal = self._authenticate(request)
        if refusal:
            return refusal
        body = _json_body(request)
        if body.get("repo") not in (self.did, self.handle):
            return xrpc_error(401, "AuthRequired", "Repo does not belong to this session")
        if body.get("collection") != POST:
            return xrpc_error(400, "InvalidRequest", "this PDS only takes app.bsky.feed.post")
        record = body.get("record")
        with self.lock:
            rkey = body.get("rkey") or self._next_tid()
            if not isinstance(rkey, str) or not TID.fullmatch(rkey):
                return xrpc_error(400, "InvalidRequest", f"Invalid record key: {rkey!r}")
            problem = self._check_post(record)
            if problem:
                return xrpc_error(400, "InvalidRequest", f"Invalid {POST} record: {problem}")
            if (POST, rkey) in self.records:
                return xrpc_error(500, "InternalServerError", "Internal Server Error")
            cid = fake_cid(record)
            uri = self.uri(rkey)
            self.records[(POST, rkey)] = {"uri": uri, "cid": cid, "value": record}
            embed = record.get("embed") or {}
            self.live.append(
                {
                    "uri": uri,
                    "cid": cid,
                    "rkey": rkey,
                    "text": record["text"],
                    "reply": record.get("reply"),
                    "facets": record.get("facets"),
                    "images": [
                        {"alt": image["alt"], **self.blobs[image["image"]["ref"]["$link"]]}
                        for image in embed.get("images", [])
                    ],
                    "created_at": record["createdAt"],
                    "at": time.monotonic(),
                }
            )
            commit = {"cid": fake_cid([uri, cid]), "rev": self._next_tid()}
            return Response(
                200, {"uri": uri, "cid": cid, "commit": commit, "validationStatus": "valid"}
            )

    def get_record(self, request: Request) -> Response:
        refusal = self._authenticate(request, optional=True)
        if refusal:
            return refusal
        query = {k: v[0] for k, v in urllib.parse.parse_qs(request.query).items()}
        if not all(query.get(name) for name in ("repo", "collection", "rkey")):
            return xrpc_error(400, "InvalidRequest", "repo, collection and rkey are required")
        at = f"at://{query['repo']}/{query['collection']}/{query['rkey']}"
        with self.lock:
            found = self.records.get((query["collection"], query["rkey"]))
            if query["repo"] not in (self.did, self.handle) or found is None:
                return xrpc_error(400, "RecordNotFound", f"Could not locate record: {at}")
            return Response(200, dict(found))

    def upload_blob(self, request: Request) -> Response:
        refusal = self._authenticate(request)
        if refusal:
            return refusal
        if not request.body:
            return xrpc_error(400, "InvalidRequest", "empty blob")
        mime_type = request.headers.get("content-type", "application/octet-stream")
        cid = "bafkrei" + base64.b32encode(hashlib.sha256(request.body).digest()).decode().lower()
        cid = cid.rstrip("=")
        with self.lock:
            self.blobs[cid] = {
                "data": request.body,
                "mime_type": mime_type,
                "size": len(request.body),
            }
        blob = {
            "$type": "blob",
            "ref": {"$link": cid},
            "mimeType": mime_type,
            "size": len(request.body),
        }
        return Response(200, {"blob": blob})

    # ------------------------------------------------------------------ helpers
    def _check_post(self, record) -> str | None:
        """Why ``record`` is not a valid post for this repo; None when it is."""
        if not isinstance(record, dict) or record.get("$type") != POST:
            return "$type must be app.bsky.feed.post"
        text = record.get("text")
        if not isinstance(text, str):
            return "text is required"
        if len(regex.findall(r"\X", text)) > MAX_GRAPHEMES or len(text.encode()) > 3000:
            return f"text is longer than {MAX_GRAPHEMES} graphemes"
        try:
            dt.datetime.fromisoformat(record.get("createdAt") or "")
        except (TypeError, ValueError):
            return "createdAt must be a datetime"
        reply = record.get("reply")
        if reply is not None and (wrong := self._check_reply(reply)):
            return wrong
        embed = record.get("embed")
        if embed is not None:
            return self._check_embed(embed)
        return None

    def _check_reply(self, reply) -> str | None:
        """Why a post's ``reply`` is not a valid reply in this repo; None when it is."""
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not isinstance(ref, dict) or set(ref) != {"uri", "cid"}:
                return f"reply.{part} must be a strong ref"
            if not any(
                r["uri"] == ref["uri"] and r["cid"] == ref["cid"] for r in self.records.values()
            ):
                return f"reply.{part} {ref['uri']} not found"
        parent = next(r for r in self.records.values() if r["uri"] == reply["parent"]["uri"])
        own_root = (parent["value"].get("reply") or {}).get("root")
        expected = own_root or {"uri": parent["uri"], "cid": parent["cid"]}
        if reply["root"] != expected:
            return "reply.root is not the root of the parent's thread"
        return None

    def _check_embed(self, embed) -> str | None:
        """Why a post's ``embed`` is not valid (images, uploaded first); None when it is."""
        images = embed.get("images") if isinstance(embed, dict) else None
        if embed.get("$type") != "app.bsky.embed.images" or not isinstance(images, list):
            return "only app.bsky.embed.images embeds are supported"
        if not 1 <= len(images) <= MAX_IMAGES:
            return f"1 to {MAX_IMAGES} images"
        for image in images:
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                return "each image needs alt text (may be empty)"
            link = ((image.get("image") or {}).get("ref") or {}).get("$link")
            if link not in self.blobs:
                return f"blob {link} not uploaded"
        return None

    def _next_tid(self) -> str:
        self._clock = (self._clock + 1) % 1024
        value = (time.time_ns() // 1000) << 10 | self._clock
        return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else ""


def _json_body(request: Request) -> dict:
    try:
        body = request.json
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
