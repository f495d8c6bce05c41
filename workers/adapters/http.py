"""What every HTTP adapter shares: one client, and the map from answers to delivery errors.

Transient: connection errors before the request went out, timeouts while
connecting, 5xx, 429 (with Retry-After). Permanent: other 4xx. Unknown: the
request went out and no answer came (read timeout, dropped connection).
"""

from __future__ import annotations

import email.utils
import time

import httpx

from workers.adapters.base import OutcomeUnknown, PermanentError, TransientError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """An httpx client for one account's API base URL."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers or {}, timeout=TIMEOUT)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the network asks us to wait (Retry-After as seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def request(http: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """Sends a request and returns a 2xx response, or raises the matching delivery error."""
    try:
        response = http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientError("CONNECTION_ERROR", str(exc) or type(exc).__name__) from exc
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError,
            httpx.ReadError, httpx.WriteError) as exc:  # fmt: skip
        raise OutcomeUnknown("NO_ANSWER", str(exc) or type(exc).__name__) from exc
    check(response)
    return response


def check(response: httpx.Response) -> None:
    """Raises TransientError or PermanentError for a non-2xx response."""
    if response.is_success:
        return
    code = str(response.status_code)
    message = _message(response)
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(code, message, retry_after(response))
    raise PermanentError(code, message)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error_description", "message", "error", "title"):
            if isinstance(body.get(key), str):
                return body[key]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0])
    return str(body)[:500]
