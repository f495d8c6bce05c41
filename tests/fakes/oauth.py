"""An OAuth 2.0 token endpoint renewing access tokens with single-use refresh tokens.

``POST <path>`` with a form body (RFC 6749 section 6): ``grant_type=refresh_token``,
``refresh_token``, and the client's id (under ``client_param``: Google's
``client_id``, TikTok's ``client_key``) and ``client_secret``. It answers
``{"access_token", "refresh_token", "expires_in", "token_type"}`` with a new
pair, and the refresh token sent is spent: sent again, or revoked
(``revoke``), or unknown, it is refused as the networks refuse it, 400
``{"error": "invalid_grant", "error_description": …}``; a wrong client is 401
``invalid_client``.

``expire_when`` makes every access token lapse when a chosen request arrives.
``exchanges`` lists every accepted refresh as (refresh token spent, access
token issued); ``refused`` every refused one. ``valid(token)`` says whether an
access token it issued (or was given with ``issue``) is still good.
"""

from __future__ import annotations

import itertools
import urllib.parse
from collections.abc import Callable
from typing import ClassVar

from tests.fakes.base import FakeNetwork, Request, Response

EXPIRES_IN = 3599


class FakeTokenEndpoint(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [("POST", r"/token", "token")]

    def __init__(
        self,
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        client_param: str = "client_id",
    ):
        super().__init__()
        self.client_id, self.client_secret, self.client_param = (
            client_id,
            client_secret,
            client_param,
        )
        self._refresh_tokens: set[str] = set()  # usable once each
        self._access_tokens: set[str] = set()
        self.exchanges: list[tuple[str, str]] = []
        self.refused: list[str] = []
        self._numbers = itertools.count(1)
        self._expire_when: Callable[[Request], bool] | None = None

    # ------------------------------------------------------------------ for tests
    def issue(self, refresh_token: str, access_token: str = "") -> None:
        """Accepts ``refresh_token`` once (and ``access_token`` until it is refreshed)."""
        with self.lock:
            self._refresh_tokens.add(refresh_token)
            if access_token:
                self._access_tokens.add(access_token)

    def expire_when(self, predicate: Callable[[Request], bool]) -> None:
        """Expires every access token when the next request ``predicate`` picks
        arrives, before it is served: they lapse mid-delivery."""
        with self.lock:
            self._expire_when = predicate

    def dispatch(self, request: Request) -> tuple[Response, bool]:
        with self.lock:
            if self._expire_when is not None and self._expire_when(request):
                self._expire_when = None
                self._access_tokens.clear()
        return super().dispatch(request)

    def revoke(self, refresh_token: str) -> None:
        with self.lock:
            self._refresh_tokens.discard(refresh_token)

    def valid(self, access_token: str) -> bool:
        with self.lock:
            return access_token in self._access_tokens

    def spent(self, refresh_token: str) -> list[str]:
        """The access tokens issued for ``refresh_token`` (one at most, if it was single-use)."""
        with self.lock:
            return [issued for spent, issued in self.exchanges if spent == refresh_token]

    # ------------------------------------------------------------------ routes
    def token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        if (form.get(self.client_param), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return Response(
                401,
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            )
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type"})
        with self.lock:
            old = form.get("refresh_token", "")
            if old not in self._refresh_tokens:
                self.refused.append(old)
                return Response(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                )
            self._refresh_tokens.discard(old)
            number = next(self._numbers)
            access, new_refresh = f"access-{number}", f"refresh-{number}"
            self._refresh_tokens.add(new_refresh)
            self._access_tokens.add(access)
            self.exchanges.append((old, access))
        return Response(
            200,
            {
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": EXPIRES_IN,
                "token_type": "Bearer",
            },
        )
