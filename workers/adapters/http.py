"""What every HTTP adapter shares: one client, the map from answers to delivery
errors, media downloads, waits that keep the lease, and reading JSON answers.

Transient: connection errors before the request went out, timeouts while
connecting, 5xx, 429 (with Retry-After, or the network's own rate-limit reset
header). Permanent: other 4xx. Unknown: the request went out and no answer came
(read timeout, dropped connection); ``nothing_live_yet`` turns that into a
transient failure for the steps before anything can be live. The create of a
network that cannot dedupe (``request(..., creates=True)``) counts a 5xx as
unknown too: a gateway's 503 or 504 does not say the post was not made.

Every request has a total deadline (``deadline()``), shorter than the lease:
httpx's timeouts bound each read and write, not the call, so a server
trickling a byte at a time could hold one for ever. The clients run on a
network backend (``_DeadlineBackend``) that gives each socket read, write and
connect at most the time left, and fails it once none is left.

Every connection made here is for a user (media URLs, webhook URLs, accounts'
base URLs), so every one passes the egress guard (service.egress decides):
``_Transport`` refuses a URL that alone shows a refused destination (scheme,
userinfo, an IP literal in a refused range), and ``_DeadlineBackend`` resolves
the host once, checks every address it resolves to, and connects to a checked
address, never resolving again (the Host header, SNI and the certificate check
still use the name). A refusal is DestinationRefused (DESTINATION_REFUSED,
permanent), raised before anything is connected to. Clients ignore proxy and
netrc settings of the environment (``trust_env=False``): a proxy would resolve
and connect unchecked. Media downloads follow at most MAX_REDIRECTS redirects
by hand, each checked, and stream to a temporary file of at most
POSTS_MEDIA_MAX_BYTES (``Download``).

Error messages carry no answer bodies (GetPostStatus shows them to the
caller): the network's own error message or code field of a JSON answer from
its API, at most MESSAGE_CHARS, else the status's standard phrase; a media
URL's answer gives its status only.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import email.utils
import mimetypes
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from http import HTTPStatus
from typing import IO, Self

import httpcore
import httpx

from service import egress, store
from workers.adapters.base import (
    NO_LEASE,
    AccountRef,
    DestinationRefused,
    Lease,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: The longest one request may take, whatever the per-phase TIMEOUT allows;
#: ``deadline()`` caps it at half the lease.
REQUEST_DEADLINE = 30.0
#: The longest a media download may take: it renews the lease per chunk, so
#: unlike a single request it need not end within the lease.
DOWNLOAD_DEADLINE = 300.0
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
#: Redirects a media download follows, each checked by the egress guard.
MAX_REDIRECTS = 5
#: The most of a network's own error text an error message carries.
MESSAGE_CHARS = 200
MEDIA_TOO_LARGE = "MEDIA_TOO_LARGE"
TOO_MANY_REDIRECTS = "TOO_MANY_REDIRECTS"


def client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """An httpx client for one account's API base URL (its requests keep ``deadline()``
    and pass the egress guard); DestinationRefused when the URL alone is refused."""
    if base_url:
        refusal = egress.url_refusal(base_url, egress.allow(), max_length=None)
        if refusal:
            raise DestinationRefused(f"{_origin(base_url)}: {refusal}")
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=headers or {},
        timeout=TIMEOUT,
        transport=_Transport(),
        trust_env=False,
    )


def require_account(
    account: AccountRef, network: str, url: str, token: str, token_code: str = "NO_TOKEN"
) -> None:
    """Refuses, permanently, an account without a base URL (NO_URL) or a token
    (``token_code``); ``url`` and ``token`` name them as ``network`` does."""
    if not account.base_url:
        raise PermanentError("NO_URL", f"the {network} account has no {url}")
    if not account.token:
        raise PermanentError(token_code, f"the {network} account has no {token}")


# ------------------------------------------------------------------ requests


def deadline() -> float:
    """Seconds one request may take in all: REQUEST_DEADLINE, and at most half the
    lease, so a create sent right after renewing the lease ends before it can expire."""
    return min(REQUEST_DEADLINE, store.policy().lease_seconds / 2)


def request(
    http: httpx.Client, method: str, url: str, *, creates: bool = False, **kwargs
) -> httpx.Response:
    """Sends a request and returns a 2xx response, or raises the matching delivery error.

    ``creates``: the request makes an item live on a network that cannot dedupe:
    a 5xx is then an unknown outcome, as only a refusal (4xx, 429) or a request
    that never left proves that nothing was made.
    """
    with _answered(), _within(deadline()):
        response = http.request(method, url, **kwargs)
    check(response, creates=creates)
    return response


def answer(http: httpx.Client, method: str, url: str, *, within: float, **kwargs) -> httpx.Response:
    """Sends a request and returns its answer whatever its status, all of it within
    ``within`` seconds; raises as ``request`` does when no answer came (the
    caller judges the status, and reads the body only if it wants to)."""
    with _answered(), _within(within):
        return http.request(method, url, **kwargs)


@contextlib.contextmanager
def _answered() -> Iterator[None]:
    """Maps httpx's errors: not sent is transient, sent and unanswered is unknown."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientError("CONNECTION_ERROR", str(exc) or type(exc).__name__) from exc
    except (
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ) as exc:
        raise OutcomeUnknown("NO_ANSWER", str(exc) or type(exc).__name__) from exc


@contextlib.contextmanager
def nothing_live_yet(step: str = "") -> Iterator[None]:
    """For a step before anything can be live (uploads, look-ups, logins): a request
    that got no answer changed nothing, so its OutcomeUnknown becomes a TransientError
    (retry later), its message prefixed with ``step`` when one is given."""
    try:
        yield
    except OutcomeUnknown as exc:
        raise TransientError(exc.code, f"{step}: {exc.message}" if step else exc.message) from exc


def check(response: httpx.Response, creates: bool = False, network: bool = True) -> None:
    """Raises TransientError or PermanentError for a non-2xx response (OutcomeUnknown
    for a 5xx to a create, see ``request``). ``network``: the answer is from the
    network's API, whose JSON error fields the message may quote (``_message``);
    otherwise (a media URL) the message is the status's phrase alone."""
    if response.is_success:
        return
    code = str(response.status_code)
    message = _message(response) if network else _phrase(response.status_code)
    if creates and response.status_code >= 500:
        raise OutcomeUnknown(code, message, retry_after(response))
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
    """A refusal by the network's API, in short: the error message (or code) field of
    its JSON answer, at most MESSAGE_CHARS; else the status's phrase. Never the body."""
    body = json_object(response)
    for key in ("detail", "error_description", "message", "error", "title", "code"):
        if isinstance(body.get(key), str) and body[key].strip():
            return network_text(body[key])
    # An error object ({"error": {"message": …}}) or a list of them ({"errors": [{…}]}):
    # its text, never the object itself.
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else body.get("error")
    if isinstance(first, dict):
        for key in ("message", "detail", "description", "title", "code"):
            value = first.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return network_text(str(value))
    return _phrase(response.status_code)


def network_text(text: str) -> str:
    """A network's own error text as an error message carries it: on one line, at
    most MESSAGE_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _phrase(status: int) -> str:
    """The standard phrase of ``status`` (not the server's own reason phrase)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _origin(url: str | httpx.URL) -> str:
    """``scheme://host[:port]`` of a URL, to name it in an error: no userinfo, path or query."""
    try:
        parts = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError):
        return "the URL"
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


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


class Download:
    """A downloaded medium in an anonymous temporary file, gone once closed (use it
    as a context manager). Upload it without holding it in memory: ``file`` as a
    multipart part (httpx reads it in chunks), ``body()`` as a request's content,
    or ``read()`` a bounded slice."""

    def __init__(self, file: IO[bytes], size: int, mime_type: str):
        self.file = file
        self.size = size
        self.mime_type = mime_type

    def body(self, start: int = 0, end: int | None = None) -> FileBody:
        """Bytes ``start`` to ``end`` (exclusive; the end by default) as a request's
        content; send its ``headers`` with it (Content-Length)."""
        return FileBody(self.file, start, self.size if end is None else min(end, self.size))

    def read(self, start: int, size: int) -> bytes:
        """At most ``size`` bytes from ``start``: a bounded slice in memory."""
        self.file.seek(start)
        return self.file.read(size)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileBody:
    """Part of a Download as a request's content, read in chunks each time it is
    sent (a request sent again, as after a session renewal, sends it whole again)."""

    CHUNK = 64 * 1024

    def __init__(self, file: IO[bytes], start: int, end: int):
        self._file, self._start, self.length = file, start, max(end - start, 0)

    @property
    def headers(self) -> dict[str, str]:
        """Content-Length: httpx would send an iterable chunked, which not every
        upload endpoint takes."""
        return {"Content-Length": str(self.length)}

    def __iter__(self) -> Iterator[bytes]:
        self._file.seek(self._start)
        left = self.length
        while left > 0:
            chunk = self._file.read(min(self.CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def download(media: MediaRef, lease: Lease = NO_LEASE) -> Download:
    """The media in a temporary file (``Download``, to close), fetched without the
    account's credentials, renewing ``lease`` first and per chunk (a large file
    takes longer than the lease), within DOWNLOAD_DEADLINE in all.

    The egress guard checks the URL and every redirect (at most MAX_REDIRECTS):
    DestinationRefused. More than POSTS_MEDIA_MAX_BYTES: MEDIA_TOO_LARGE, before
    reading past the limit. Other failures are MEDIA_UNAVAILABLE: permanent when
    the URL is refused (4xx), otherwise transient (a GET changes nothing: an
    unanswered one is retried too).
    """
    lease.renew()
    file = tempfile.TemporaryFile(prefix="posts-media-")  # noqa: SIM115 (the Download closes it)
    try:
        mime_type = _fetch(media, file, lease)
        file.flush()
        return Download(file, file.tell(), mime_type)
    except BaseException:
        file.close()
        raise


def _fetch(media: MediaRef, file: IO[bytes], lease: Lease) -> str:
    """Streams the media into ``file``; returns its MIME type."""
    allowed, limit = egress.allow(), egress.media_max_bytes()
    url = media.url
    with httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        headers={"Accept-Encoding": "identity"},
        transport=_Transport(),
    ) as web:
        try:
            with _answered(), _within(DOWNLOAD_DEADLINE):
                for hop in range(MAX_REDIRECTS + 1):
                    refusal = egress.url_refusal(url, allowed)
                    if refusal:
                        where = media.url if hop == 0 else f"a redirect to {_origin(url)}"
                        raise DestinationRefused(f"{where}: {refusal}")
                    with web.stream("GET", url) as response:
                        if response.next_request is not None:  # a redirect: checked above
                            url = str(response.next_request.url)
                            continue
                        if not response.is_success:
                            _refused_media(media, response)
                        _save(media, response, file, lease, limit)
                        return _mime_type(media, response.headers.get("content-type", ""))
        except (TransientError, OutcomeUnknown) as exc:
            raise TransientError(
                "MEDIA_UNAVAILABLE", f"{media.url}: {exc.code} {exc.message}", exc.retry_after
            ) from exc
    raise PermanentError(TOO_MANY_REDIRECTS, f"{media.url}: more than {MAX_REDIRECTS} redirects")


def _refused_media(media: MediaRef, response: httpx.Response) -> None:
    """Raises for a media URL's non-2xx answer, naming its status only (its body is
    never read: it is not the network's, and could be anything)."""
    try:
        check(response, network=False)
    except PermanentError as exc:
        raise PermanentError("MEDIA_UNAVAILABLE", f"{media.url}: {exc.code} {exc.message}") from exc


def _save(
    media: MediaRef, response: httpx.Response, file: IO[bytes], lease: Lease, limit: int
) -> None:
    """Writes the answer's body to ``file``, stopping at once past ``limit`` bytes."""
    too_large = PermanentError(
        MEDIA_TOO_LARGE, f"{media.url}: larger than POSTS_MEDIA_MAX_BYTES ({limit} bytes)"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    size = 0
    for chunk in response.iter_bytes():  # as each read arrives, however slow
        lease.renew()
        size += len(chunk)
        if size > limit:
            raise too_large
        file.write(chunk)


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


def pause(seconds: float, lease: Lease) -> None:
    """Waits ``seconds`` (a processing poll's interval), renewing ``lease`` at least
    every quarter of it: a wait must not let the lease expire, however long."""
    ends_at = time.monotonic() + seconds
    step = store.policy().lease_seconds / 4
    while True:
        lease.renew()
        left = ends_at - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(step, left))


def filename(url: str) -> str:
    """The last segment of the URL's path, to name an upload by; "media" if it is empty."""
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or "media"


# ------------------------------------------------------------------ deadlines

#: When the request under way in this thread must be over (time.monotonic()).
_ends_at: contextvars.ContextVar[float | None] = contextvars.ContextVar("ends_at", default=None)
#: A write of a large body is cut in slices, each given only the time left.
_WRITE_SLICE = 64 * 1024


@contextlib.contextmanager
def _within(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread's requests must end ``seconds`` from now."""
    token = _ends_at.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _ends_at.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` capped at the time left before the deadline; ``expired`` when none is."""
    ends_at = _ends_at.get()
    if ends_at is None:
        return timeout
    left = ends_at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_SLICE):
            self._stream.write(
                buffer[start : start + _WRITE_SLICE], _left(timeout, httpcore.WriteTimeout)
            )

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, wrapped in _DeadlineStream, connected only where the
    egress guard allows: the host is resolved once here, every address it resolves
    to is checked (service.egress), and the socket connects to a checked address,
    so nothing resolves the name again. httpcore still gives TLS the name (SNI and
    the certificate check), and the request its Host header."""

    def __init__(self):
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options=None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        refusal = egress.resolution_refusal(host, port, addresses, egress.allow())
        if refusal:
            raise DestinationRefused(refusal)
        failure: Exception | None = None
        for address in addresses:  # in the resolver's order, as socket.create_connection
            left = _left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._backend.connect_tcp(
                    address, port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure or httpcore.ConnectError(f"{host}: no address to connect to")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options=None
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, once (an IP literal resolves to itself)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[str] = []
    for *_, sockaddr in found:
        address = str(sockaddr[0])  # already a str for the IPv4 and IPv6 families asked
        if address not in addresses:
            addresses.append(address)
    return addresses


class _Transport(httpx.HTTPTransport):
    """httpx's transport on _DeadlineBackend: httpx 0.28 has no total timeout and no
    argument for the network backend, so its connection pool is made here, as
    HTTPTransport() makes it, with that backend. Each request's URL passes the
    egress guard's URL check first (a redirect's too, when one is followed)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        refusal = egress.url_refusal(str(request.url), egress.allow(), max_length=None)
        if refusal:
            raise DestinationRefused(f"{_origin(request.url)}: {refusal}")
        return super().handle_request(request)

    def __init__(self):
        ssl_context = httpx.create_ssl_context()  # one per client, as before
        super().__init__(verify=ssl_context)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )
