"""API keys: making them, checking them, and the workspace rules of PRODUCT.md section 5."""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
import time

from service import errors, ids
from service.crypto import hash_secret
from service.models import ApiKey, ApiKeyGrant


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

    The cache holds only the hash of a verified secret, for ``ttl`` seconds, so
    a revoked key stops working within that time.
    """

    def __init__(self, ttl: float = 5.0):
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
        if key is None or key.revoked_at is not None:
            raise errors.ApiKeyInvalid()
        if not hmac.compare_digest(key.secret_hash, digest):
            raise errors.ApiKeyInvalid()
        grants = ApiKeyGrant.select(ApiKeyGrant.workspace).where(ApiKeyGrant.api_key == key_id)
        principal = Principal(key_id, frozenset(g.workspace_id for g in grants))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        return principal
