"""Bluesky (AT Protocol): ``createSession``, then ``createRecord`` of ``app.bsky.feed.post``.

Against the account's PDS (``base_url``), logging in with the account's handle
and app password (``token``):

- Sessions. ``com.atproto.server.createSession`` answers an access and a
  refresh token and the account's DID. Sessions are kept per account in this
  process (``SESSIONS``, thread-safe) and reused by every delivery, as
  createSession is tightly rate limited. A call refused for its session (400
  ``ExpiredToken`` or ``InvalidToken``, or 401) renews it once with
  ``com.atproto.server.refreshSession`` (Bearer: the refresh token) or, when
  that is refused too, with a fresh createSession, and is sent again (it was
  refused, so nothing went live). A bad password is 401
  ``AuthenticationRequired`` from createSession: a permanent failure.
- Items. Each image is downloaded and uploaded with
  ``com.atproto.repo.uploadBlob``, then embedded (``app.bsky.embed.images``,
  with its alt text); links in the text get link facets. A reply (a thread's
  next item) reads its parent with ``com.atproto.repo.getRecord`` for the
  parent's cid and the thread's root (the parent's own root, or the parent).
  ``com.atproto.repo.createRecord`` answers the record's ``uri`` and ``cid``:
  the item's platform id is the ``at://`` uri, its url
  ``https://bsky.app/profile/<handle>/post/<rkey>``.
- Exactly once. The record key is derived from the item's delivery key
  (``record_key``), so an item always lands at the same ``at://`` uri: a
  repeated create cannot make a second post, and ``look_up`` finds a post whose
  send had an unknown outcome with getRecord. This is not the network honouring
  idempotency keys: a repeat does not answer the first result but fails (the
  reference PDS answers 500, others 400 or 409), so ``honours_idempotency_keys``
  is False and the worker looks up before sending again (``can_look_up``). When
  a create fails in a way a duplicate can cause (a 5xx, which ``creates=True``
  makes an unknown outcome, or a 400 or 409), the adapter checks with getRecord
  and takes an existing record as the success it is.
- Leases. Image downloads renew the worker's lease; the create (and its resend
  after a session renewal) goes out only once the lease is proven
  (``before_create``).
- Record keys. ``app.bsky.feed.post`` records are keyed by TIDs (the lexicon's
  ``"key": "tid"``; the App View does not show posts with other keys), so the
  key is a TID, made deterministic: its time is the second the post was created
  (from the post's ULID id), its sub-second part and clock id come from the
  item index and a hash of the delivery key. Items of one post never share a
  key; revisions of one item practically never do.

Errors map as every HTTP adapter's do (workers.adapters.http); an XRPC error
answer (4xx with ``{"error", "message"}``) is permanent with the status as
code and the network's message; the shared map also reads a 429's
``RateLimit-Reset`` (unix seconds) in place of a missing Retry-After.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading

import httpx
import regex
from ulid import ULID

from workers.adapters import http
from workers.adapters.base import (
    AccountRef,
    DeliveryError,
    ItemRequest,
    Lease,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    Published,
)

POST = "app.bsky.feed.post"
APP_URL = "https://bsky.app"
#: XRPC errors that mean "this session is no good", on a call that carried it.
SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_FALLBACK_EPOCH = 1_704_067_200  # 2024-01-01: posts whose id carries no time
_LINK = regex.compile(r"https?://[^\s<>\"]+")
_LINK_TRAILING = ".,:;!?'\")]}"


# ---------------------------------------------------------------------- sessions


@dataclasses.dataclass(frozen=True)
class Session:
    access_jwt: str
    refresh_jwt: str
    did: str
    handle: str


class Sessions:
    """Sessions per account, shared by every delivery of this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[tuple, Session] = {}
        self._account_locks: dict[tuple, threading.Lock] = {}

    def lock(self, key: tuple) -> threading.Lock:
        """The lock one account's session is made and renewed under."""
        with self._lock:
            return self._account_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple) -> Session | None:
        with self._lock:
            return self._sessions.get(key)

    def put(self, key: tuple, session: Session | None) -> None:
        with self._lock:
            if session is None:
                self._sessions.pop(key, None)
            else:
                self._sessions[key] = session

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()


SESSIONS = Sessions()


class XrpcError(PermanentError):
    """An XRPC error answer (4xx): ``code`` the HTTP status, ``error`` the XRPC error name."""

    def __init__(self, status: int, error: str, message: str, authenticated: bool):
        super().__init__(str(status), message or error)
        self.status = status
        self.error = error
        #: The refused request carried a session (Authorization).
        self.authenticated = authenticated

    @property
    def session_refused(self) -> bool:
        return self.authenticated and (self.status == 401 or self.error in SESSION_ERRORS)


# ---------------------------------------------------------------------- record keys


def record_key(request: ItemRequest) -> str:
    """The item's record key: a TID, the same for the same delivery key.

    Time: the post's creation second; microseconds: ``item_index * 10_000`` plus
    a hash of the key (so a post's items never collide); clock id: the hash too.
    """
    digest = int.from_bytes(hashlib.sha256(request.idempotency_key.encode()).digest()[:8], "big")
    seconds = _created_second(request.post_id, digest)
    micros = (request.item_index % 100) * 10_000 + digest % 10_000
    clock_id = (digest >> 20) % 1024
    value = ((seconds * 1_000_000 + micros) << 10) | clock_id
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _created_second(post_id: str, digest: int) -> int:
    try:
        return ULID.from_str(post_id.rpartition("_")[2]).milliseconds // 1000
    except ValueError:
        return _FALLBACK_EPOCH + digest % 31_536_000


def parse_at_uri(uri: str) -> tuple[str, str, str]:
    """``at://<repo>/<collection>/<rkey>`` as (repo, collection, rkey)."""
    parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
    if len(parts) != 3 or not all(parts):
        raise PermanentError("BAD_REPLY_TARGET", f"not the at:// uri of a record: {uri!r}")
    return parts[0], parts[1], parts[2]


def link_facets(text: str) -> list[dict]:
    """Link facets for the http(s) URLs in ``text`` (byte offsets in UTF-8)."""
    facets = []
    for match in _LINK.finditer(text):
        url = match.group().rstrip(_LINK_TRAILING)
        start = len(text[: match.start()].encode())
        facets.append(
            {
                "index": {"byteStart": start, "byteEnd": start + len(url.encode())},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }
        )
    return facets


# ---------------------------------------------------------------------- the adapter


class BlueskyAdapter:
    """Publishes app.bsky.feed.post records to the account's PDS."""

    honours_idempotency_keys = False  # a repeated create fails; it does not answer the first
    can_look_up = True  # the record key is known in advance: getRecord finds it
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account
        secret = hashlib.sha256(account.token.encode()).hexdigest()
        self._key = (account.account_id, account.base_url.rstrip("/"), secret)

    def publish(self, request: ItemRequest) -> Published:
        self._check_account()
        rkey = record_key(request)
        with self._client() as client:
            session = self._session(client)
            record: dict = {"$type": POST, "text": request.text, "createdAt": _now()}
            facets = link_facets(request.text)
            if facets:
                record["facets"] = facets
            if request.reply_to:
                record["reply"] = self._reply_refs(client, request.reply_to)
            if request.media:
                images = [self._image(client, media, request.lease) for media in request.media]
                record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
            body = {"repo": session.did, "collection": POST, "rkey": rkey, "record": record}
            try:
                answer = self._call(
                    client,
                    "POST",
                    "com.atproto.repo.createRecord",
                    json=body,
                    creates=True,
                    before_send=request.lease.before_create,
                )
            except DeliveryError as exc:
                if not _may_be_duplicate(exc):
                    raise
                try:  # the record may be there already: a repeat of a create that went live
                    found = self._get_record(client, session.did, POST, rkey)
                except DeliveryError:
                    found = None
                if found is None:
                    raise exc from None
                answer = found
        uri = answer.get("uri")
        if not isinstance(uri, str) or not uri:
            raise PermanentError("BAD_ANSWER", "Bluesky answered createRecord without a uri")
        return Published(uri, self._url(rkey))

    def look_up(self, request: ItemRequest) -> Published | None:
        self._check_account()
        rkey = record_key(request)
        with self._client() as client:
            session = self._session(client)
            found = self._get_record(client, session.did, POST, rkey)
        return Published(found["uri"], self._url(rkey)) if found else None

    # ------------------------------------------------------------------ sessions
    def _session(self, client: httpx.Client) -> Session:
        with SESSIONS.lock(self._key):
            session = SESSIONS.get(self._key)
            if session is None:
                session = self._create_session(client)
                SESSIONS.put(self._key, session)
            return session

    def _renew(self, client: httpx.Client, stale: Session) -> Session:
        """A session in place of ``stale``: refreshed, or made anew if refreshing is refused."""
        with SESSIONS.lock(self._key):
            current = SESSIONS.get(self._key)
            if current is not None and current != stale:
                return current  # another delivery renewed it meanwhile
            try:
                session = self._refresh_session(client, stale)
            except PermanentError:  # the refresh token is refused too: log in again
                SESSIONS.put(self._key, None)
                session = self._create_session(client)
            SESSIONS.put(self._key, session)
            return session

    def _create_session(self, client: httpx.Client) -> Session:
        credentials = {
            "identifier": self._account.handle.lstrip("@"),
            "password": self._account.token,
        }
        with http.nothing_live_yet():  # logging in twice is harmless
            response = http.request(
                client, "POST", "/xrpc/com.atproto.server.createSession", json=credentials
            )
        return _session_from(_json(response))

    def _refresh_session(self, client: httpx.Client, stale: Session) -> Session:
        with http.nothing_live_yet():
            response = http.request(
                client,
                "POST",
                "/xrpc/com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {stale.refresh_jwt}"},
            )
        return _session_from(_json(response))

    # ------------------------------------------------------------------ calls
    def _call(
        self, client: httpx.Client, method: str, nsid: str, before_send=None, **kwargs
    ) -> dict:
        """One XRPC call with the account's session, renewed once if it is refused;
        ``before_send()`` runs before each send (a renewal may take a while)."""
        extra = kwargs.pop("headers", None) or {}
        session = self._session(client)
        for last in (False, True):
            headers = {**extra, "Authorization": f"Bearer {session.access_jwt}"}
            if before_send is not None:
                before_send()
            try:
                response = http.request(client, method, f"/xrpc/{nsid}", headers=headers, **kwargs)
                return _json(response)
            except XrpcError as exc:
                if last or not exc.session_refused:
                    raise
            session = self._renew(client, session)
        raise AssertionError("unreachable")

    def _get_record(
        self, client: httpx.Client, repo: str, collection: str, rkey: str
    ) -> dict | None:
        params = {"repo": repo, "collection": collection, "rkey": rkey}
        with http.nothing_live_yet():  # a read changes nothing
            try:
                return self._call(client, "GET", "com.atproto.repo.getRecord", params=params)
            except XrpcError as exc:
                if exc.error == "RecordNotFound" or exc.status == 404:
                    return None
                raise

    def _reply_refs(self, client: httpx.Client, parent_uri: str) -> dict:
        repo, collection, rkey = parse_at_uri(parent_uri)
        parent = self._get_record(client, repo, collection, rkey)
        if parent is None or not parent.get("cid"):
            raise PermanentError("REPLY_TARGET_NOT_FOUND", f"{parent_uri} is not on Bluesky")
        parent_ref = {"uri": parent.get("uri") or parent_uri, "cid": parent["cid"]}
        value = found if isinstance(found := parent.get("value"), dict) else {}
        reply = found if isinstance(found := value.get("reply"), dict) else {}
        root = reply.get("root")
        if not (isinstance(root, dict) and root.get("uri") and root.get("cid")):
            root = parent_ref
        return {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent_ref}

    def _image(self, client: httpx.Client, media: MediaRef, lease: Lease) -> dict:
        # A temporary file, streamed up from there (again whole if the session is
        # renewed); a blob nobody references is harmless: try again.
        with http.download(media, lease) as medium, http.nothing_live_yet():
            body = medium.body()
            answer = self._call(
                client,
                "POST",
                "com.atproto.repo.uploadBlob",
                content=body,
                headers={"Content-Type": medium.mime_type, **body.headers},
            )
        blob = answer.get("blob")
        if not isinstance(blob, dict):
            raise PermanentError("BAD_ANSWER", "Bluesky answered uploadBlob without a blob")
        return {"alt": media.alt_text, "image": blob}

    # ------------------------------------------------------------------ helpers
    def _check_account(self) -> None:
        http.require_account(self._account, "Bluesky", "PDS URL", "app password")

    def _client(self) -> httpx.Client:
        client = http.client(self._account.base_url)
        client.event_hooks["response"].append(_raise_xrpc_error)
        return client

    def _url(self, rkey: str) -> str:
        return f"{APP_URL}/profile/{self._account.handle.lstrip('@')}/post/{rkey}"


def _may_be_duplicate(exc: DeliveryError) -> bool:
    """Whether a failed create may be the network refusing a record that exists
    already: a 5xx (the reference PDS's answer to a repeat; an unknown outcome, as
    the create is sent with ``creates=True``), a 400 or a 409. An unanswered create
    is left to the next attempt's look-up."""
    if isinstance(exc, OutcomeUnknown):
        return exc.code.startswith("5")
    return isinstance(exc, PermanentError) and exc.code in ("400", "409")


def _session_from(answer: dict) -> Session:
    try:
        return Session(
            answer["accessJwt"], answer["refreshJwt"], answer["did"], answer.get("handle", "")
        )
    except (KeyError, TypeError) as exc:
        raise PermanentError("BAD_ANSWER", f"Bluesky answered a session without {exc}") from exc


def _json(response: httpx.Response) -> dict:
    return http.json_answer(response, "Bluesky")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _raise_xrpc_error(response: httpx.Response) -> None:
    """Raises XrpcError for a 4xx XRPC error answer (429 is left to the shared map)."""
    if not 400 <= response.status_code < 500 or response.status_code == 429:
        return
    response.read()
    body = http.json_object(response)
    if not isinstance(body.get("error"), str):
        return
    message = found if isinstance(found := body.get("message"), str) else ""
    authenticated = "authorization" in response.request.headers
    raise XrpcError(
        response.status_code,
        http.network_text(body["error"]),
        http.network_text(message),
        authenticated,
    )


Adapter = BlueskyAdapter
