"""Logging: one format for every process, one line for an expected outage.

``setup()`` configures a process this package starts (the command line, each
``serve --processes`` child); a ``dramatiq`` worker process is configured by
Dramatiq and gets ``quiet()`` when it sets its broker up. Both keep httpx's request lines
out of the log (they carry whole URLs, a webhook's path too) and turn the
traceback of a broker outage (connection refused or lost) into one line:
an outage is expected, and the operator needs its time and cause, not its
stack. Any other exception keeps its traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import types
import urllib.parse
from collections.abc import Mapping

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s %(message)s"
#: What each JSON line carries beside the context's fields (``bound``).
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"
#: The context a line may carry: the RPC's request id and workspace; the post,
#: job token, network and attempt being delivered. Never a secret.
CONTEXT_FIELDS = ("request_id", "workspace", "post", "job_token", "network", "attempt")

_context: contextvars.ContextVar[Mapping] = contextvars.ContextVar(
    "log_context", default=types.MappingProxyType({})
)

#: Exception types that mean a server we talk to is out of reach; the broker
#: adds its client's (``expect_outages``).
_outages: tuple[type[BaseException], ...] = (ConnectionError,)


def setup(level: int = logging.INFO) -> None:
    """Logs to stderr in ``FORMAT`` (a no-op for the root logger when it already
    has a handler), then ``quiet()``."""
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    quiet()


def quiet() -> None:
    """Keeps httpx's per-request INFO lines (full URLs) and pika's lines of each
    AMQP connection's steps out (a dozen per refused connection: workers.broker
    says in one line when the broker is reached, lost and back, with the cause),
    and gives every handler of the root logger the one-line outage filter and
    the context."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    for handler in logging.getLogger().handlers:
        for kind in (OutageFilter, ContextFilter):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())


def use_format(log_format: str) -> None:
    """POSTS_LOG_FORMAT for every handler of the root logger: ``text`` (FORMAT)
    or ``json``, one object per line with the time, level, logger, pid,
    message and the context's fields (``bound``)."""
    quiet()
    formatter: logging.Formatter
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        formatter = JsonFormatter(
            JSON_FIELDS, timestamp="time", rename_fields={"levelname": "level", "name": "logger"}
        )
    else:
        formatter = logging.Formatter(FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


@contextlib.contextmanager
def bound(**fields):
    """Adds ``fields`` (CONTEXT_FIELDS, None left out) to every line logged in
    this context (a thread, or an RPC) until the block ends."""
    token = _context.set(dict(_context.get()) | {k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields) -> None:
    """Adds ``fields`` to the current ``bound`` block's lines, from here on."""
    _context.set(dict(_context.get()) | {k: v for k, v in fields.items() if v is not None})


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record (the JSON format shows them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def expect_outages(*kinds: type[BaseException]) -> None:
    """Adds exception types that mean "out of reach" (a broker client's)."""
    global _outages
    _outages = tuple(dict.fromkeys(_outages + kinds))


def outage(error: BaseException | None) -> BaseException | None:
    """The exception in ``error``'s chain that says a server is out of reach, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _outages):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def describe(error: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: What each of Dramatiq's consumer threads says every few seconds while the
#: broker is out of reach: the broker's own lines (workers.broker) say it once.
_CONSUMER_RETRIES = frozenset(
    {"Consumer encountered a connection error: %s", "Restarting consumer in %0.2f seconds."}
)


class OutageFilter(logging.Filter):
    """A record whose exception is an outage becomes one line: its message and
    the outage's type and text, no traceback. Dramatiq's consumer retries are
    left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            isinstance(record.msg, str)
            and record.msg in _CONSUMER_RETRIES
            and record.name.startswith("dramatiq.worker.")
        ):
            return False
        if record.exc_info and record.exc_info[1] is not None:
            found = outage(record.exc_info[1])
            if found is not None:
                record.msg = f"{record.getMessage()} ({describe(found)})"
                record.args = None
                record.exc_info = None
                record.exc_text = None
        return True


def redact(url: str) -> str:
    """``url`` without its user name and password: what a log may show of a
    database or broker URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


_URL = re.compile(
    r"\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@]*@)?([^\s/?#]*)([^\s?#]*)(?:[?#]\S*?)?(?=[.,;:)]*(?:\s|$))",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """``text`` with each URL cut to its scheme, host and path: no user name,
    password, query or fragment (where signed URLs and tokens travel)."""
    return _URL.sub(r"\1\2\3", text)
