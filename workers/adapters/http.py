"""What every HTTP adapter shares: one client, the map from answers to delivery
errors, media downloads, and reading JSON answers.

Transient: connection errors before the request went out, timeouts while
connecting, 5xx, 429 (with Retry-After, or the network's own rate-limit reset
header). Permanent: other 4xx. Unknown: the request went out and no answer came
(read timeout, dropped connection); ``nothing_live_yet`` turns that into a
transient failure for the steps before anything can be live.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import mimetypes
import time
import urllib.parse
from collections.abc import Iterator

import httpx

from workers.adapters.base import (
    AccountRef,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: Where a 429 without Retry-After says when the rate-limit window ends: X's
#: ``x-rate-limit-reset`` and Bluesky's ``RateLimit-Reset`` (epoch seconds),
#: Mastodon's ``X-RateLimit-Reset`` (ISO 8601).
RATE_LIMIT_RESET_HEADERS = ("x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset")
#: A downloaded medium's MIME type when neither its ref, its URL nor its host says.
DEFAULT_MIME = {
    "image": "image/jpeg",
    "gif": "image/gif",
    "video": "video/mp4",
    "document": "application/pdf",
}


def client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """An httpx client for one account's API base URL."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers or {}, timeout=TIMEOUT)


def require_account(account: AccountRef, network: str, url: str, token: str,
                    token_code: str = "NO_TOKEN") -> None:  # fmt: skip
    """Refuses, permanently, an account without a base URL (NO_URL) or a token
    (``token_code``); ``url`` and ``token`` name them as ``network`` does."""
    if not account.base_url:
        raise PermanentError("NO_URL", f"the {network} account has no {url}")
    if not account.token:
        raise PermanentError(token_code, f"the {network} account has no {token}")


# ------------------------------------------------------------------ requests


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


@contextlib.contextmanager
def nothing_live_yet(step: str = "") -> Iterator[None]:
    """For a step before anything can be live (uploads, look-ups, logins): a request
    that got no answer changed nothing, so its OutcomeUnknown becomes a TransientError
    (retry later), its message prefixed with ``step`` when one is given."""
    try:
        yield
    except OutcomeUnknown as exc:
        raise TransientError(exc.code, f"{step}: {exc.message}" if step else exc.message) from exc


def check(response: httpx.Response) -> None:
    """Raises TransientError or PermanentError for a non-2xx response."""
    if response.is_success:
        return
    code = str(response.status_code)
    message = _message(response)
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(code, message, retry_after(response))
    raise PermanentError(code, message)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the network asks us to wait: Retry-After (seconds or an HTTP date) or,
    on a 429 without it, until the rate-limit window ends (RATE_LIMIT_RESET_HEADERS)."""
    if "retry-after" in response.headers:
        value = response.headers["retry-after"]
        try:
            return max(float(value), 0.0)
        except ValueError:
            return _until(_http_date(value))
    if response.status_code == 429:
        for name in RATE_LIMIT_RESET_HEADERS:
            reset = _reset_time(response.headers.get(name, ""))
            if reset is not None:
                return _until(reset)
    return None


def _until(when: float | None) -> float | None:
    return None if when is None else max(when - time.time(), 0.0)


def _http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _reset_time(value: str) -> float | None:
    """A rate-limit reset as epoch seconds, from epoch seconds or an ISO 8601 time."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


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


# ------------------------------------------------------------------ answers


def json_object(response: httpx.Response) -> dict:
    """The answer's JSON object; {} when the body is not JSON or not an object."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def json_field(response: httpx.Response, key: str) -> dict:
    """The object under ``key`` in the answer's JSON object; {} when there is none."""
    value = json_object(response).get(key)
    return value if isinstance(value, dict) else {}


def json_answer(response: httpx.Response, network: str) -> dict:
    """The answer's JSON object; PermanentError BAD_ANSWER when it is not one."""
    try:
        body = response.json()
    except ValueError as exc:
        raise PermanentError("BAD_ANSWER", f"{network} answered non-JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PermanentError("BAD_ANSWER", f"{network} answered JSON that is not an object")
    return body


# ------------------------------------------------------------------ media


def download(media: MediaRef) -> tuple[bytes, str]:
    """The media's bytes and MIME type, fetched without the account's credentials.

    A failure is MEDIA_UNAVAILABLE: permanent when the URL is refused (4xx),
    otherwise transient (a GET changes nothing: an unanswered one is retried too).
    """
    with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as web:
        try:
            response = request(web, "GET", media.url)
        except PermanentError as exc:
            raise PermanentError("MEDIA_UNAVAILABLE",
                                 f"{media.url}: {exc.code} {exc.message}") from exc  # fmt: skip
        except (TransientError, OutcomeUnknown) as exc:
            raise TransientError("MEDIA_UNAVAILABLE", f"{media.url}: {exc.code} {exc.message}",
                                 getattr(exc, "retry_after", None)) from exc  # fmt: skip
    return response.content, _mime_type(media, response.headers.get("content-type", ""))


def _mime_type(media: MediaRef, served_as: str) -> str:
    """The ref's MIME type, else the one its URL's extension implies, else the one it
    was served as (unless generic), else DEFAULT_MIME's for its kind."""
    if media.mime_type:
        return media.mime_type
    guessed, _ = mimetypes.guess_type(urllib.parse.urlsplit(media.url).path)
    if guessed:
        return guessed
    served_as = served_as.split(";")[0].strip()
    if served_as and served_as not in ("application/octet-stream", "application/json"):
        return served_as
    return DEFAULT_MIME.get(media.kind, "application/octet-stream")


def filename(url: str) -> str:
    """The last segment of the URL's path, to name an upload by; "media" if it is empty."""
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or "media"
