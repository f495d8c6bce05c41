"""API keys: making them, checking them (revocation, expiry, last use), and which
workspaces a caller reaches."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import logging
import secrets
import threading
import time

import peewee

from service import db, errors, ids
from service.crypto import hash_secret
from service.models import ApiKey, ApiKeyGrant

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: an API key and the workspaces it reaches."""

    key_id: str
    workspace_ids: frozenset[str]

    def workspace(self, requested: str) -> str:
        """The workspace a request acts on.

        Raises WorkspaceAccessDenied for a workspace not granted, and
        WorkspaceRequired when none is named and the key reaches several.
        """
        if requested:
            if requested not in self.workspace_ids:
                raise errors.WorkspaceAccessDenied(requested)
            return requested
        if len(self.workspace_ids) == 1:
            return next(iter(self.workspace_ids))
        raise errors.WorkspaceRequired(sorted(self.workspace_ids))


def new_key_secret(key_id: str) -> str:
    """A high-entropy secret naming its key: ``key_….<random>``."""
    return f"{key_id}.{secrets.token_urlsafe(32)}"


class Authenticator:
    """Checks bearer secrets against stored hashes, with a short cache.

    The cache holds only the hash of a verified secret, for ``ttl`` seconds (one
    by default) and never past the key's expiry: a key revoked by any process
    stops working on every server within that time, for one read per key and
    server a second.
    """

    def __init__(self, ttl: float = 1.0):
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        """The Principal for an ``authorization`` header; raises ApiKeyInvalid."""
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise errors.ApiKeyInvalid()
        secret = secret.strip()
        digest = hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        key_id = secret.partition(".")[0]
        if not ids.is_valid(key_id, ids.KEY):
            raise errors.ApiKeyInvalid()
        key = ApiKey.get_or_none(ApiKey.id == key_id)
        if key is None or not hmac.compare_digest(key.secret_hash, digest):
            raise errors.ApiKeyInvalid()
        wall = db.utcnow()
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= wall):
            raise errors.ApiKeyInvalid()
        if key.last_used_at is None or wall - key.last_used_at >= LAST_USE_RESOLUTION:
            record_use(key_id, wall)
        grants = ApiKeyGrant.select(ApiKeyGrant.workspace).where(ApiKeyGrant.api_key == key_id)
        principal = Principal(key_id, frozenset(g.workspace_id for g in grants))
        until = now + self._ttl
        if key.expires_at is not None:
            until = min(until, now + (key.expires_at - wall).total_seconds())
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (until, principal)
        return principal


#: A key's last use is written at most this often: a write on every call would
#: make every read a write.
LAST_USE_RESOLUTION = dt.timedelta(minutes=1)


def record_use(key_id: str, now: dt.datetime) -> None:
    """Sets the key's last use to ``now`` unless it was set less than a minute ago."""
    stale = ApiKey.last_used_at.is_null() | (ApiKey.last_used_at <= now - LAST_USE_RESOLUTION)
    try:
        with db.write():
            # Conditional: of the processes that all read the same old time, one writes.
            ApiKey.update(last_used_at=now).where((ApiKey.id == key_id) & stale).execute()
    except peewee.DatabaseError:
        # Bookkeeping: a caller whose key checked out is not refused for it.
        log.warning("could not record the last use of %s", key_id, exc_info=True)
