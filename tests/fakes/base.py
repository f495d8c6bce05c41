"""A small local HTTP server that speaks one network's API shape.

Subclasses declare routes; the base records every request, keeps a ledger of
what went live, and injects faults on demand (503, 429 with Retry-After, 401,
a dropped connection after the post went live, or a 5xx after it went live, as
a gateway that gave up waiting answers: unknown outcomes).

It also stamps every request on arrival (``arrivals``, faults included, before
``delay``), so tests can measure the gaps between attempts (``calls``,
``seen``), and serves media files at ``GET /media/<name>`` to subclasses that
list ``MEDIA_ROUTE`` (``add_file``, ``media_url``, ``served``).
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import http.server
import json
import re
import threading
import time
from collections.abc import Callable
from typing import ClassVar


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body or b"null")


@dataclasses.dataclass
class Response:
    status: int
    body: object = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Fault:
    """``status``: answer this instead of running the route (with ``live``: after
    running it, so the post goes live all the same); ``drop``: run the route (the
    post goes live) then close the connection without answering."""

    status: int = 0
    body: object = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    drop: bool = False
    path: str = ""  # only requests whose path contains this
    live: bool = False


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One request as it arrived: ``at`` is ``time.monotonic()`` then."""

    at: float
    request: Request

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def query(self) -> str:
        return self.request.query

    @property
    def headers(self) -> dict[str, str]:
        return self.request.headers

    @property
    def key(self) -> str:
        """The request's Idempotency-Key ("" without one)."""
        return self.request.headers.get("idempotency-key", "")


Route = Callable[[Request], Response]
#: The route serving media files (``serve_media``), for a subclass's ``routes``.
MEDIA_ROUTE = ("GET", r"/media/([^/]+)", "serve_media")


def multipart(request: Request) -> dict[str, dict]:
    """The parts of a multipart/form-data body by name: ``{"data", "filename", "type"}``."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        return {}
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = {
            "data": part.get_payload(decode=True) or b"",
            "filename": part.get_filename(),
            "type": part.get_content_type(),
        }
    return parts


class FakeNetwork:
    """Base of the fakes: ``routes`` maps (method, path regex) to a handler."""

    routes: ClassVar[list[tuple[str, str, str]]] = []  # (method, regex, method name)
    #: ``GET /media/<name>`` serves any name (made-up contents), not only added files.
    serves_any_file: ClassVar[bool] = False

    def __init__(self):
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.arrivals: list[Arrival] = []  # every request, stamped as it arrived
        self.live: list[dict] = []  # what the network published, in order
        self._files: dict[str, str] = {}  # media file name -> contents
        self._faults: list[Fault] = []
        #: Seconds each request takes before the route runs (to land kills mid-send).
        self.delay = 0.0
        #: Requests arrived whose route has not finished yet (a client killed now
        #: never learns their outcome).
        self.in_flight = 0
        self._open = threading.Event()  # cleared by ``hold()``
        self._open.set()
        self._hold_timeout = 0.0
        self._hold_predicate: Callable[[Request], bool] | None = None
        self._hold_for = 0.0
        self._released = threading.Event()
        self.held = 0  # requests ``hold_when`` held
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # stop()'s shutdown() waits for the loop's next poll: a short one keeps it quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeNetwork:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *faults: Fault) -> None:
        """Queues faults, used one per matching request, in order."""
        with self.lock:
            self._faults.extend(faults)

    def hold(self, timeout: float = 10.0) -> None:
        """Holds every request from now on, before its route runs, until
        ``release()``: a send stays in flight as long as a test needs. Never
        longer than ``timeout`` seconds, so a failing test cannot hang."""
        self._hold_timeout = timeout
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def hold_when(self, predicate: Callable[[Request], bool], timeout: float = 60.0) -> None:
        """Holds each request ``predicate`` picks, before its route runs, until
        ``release_held()`` (never longer than ``timeout`` seconds); ``held`` counts them."""
        with self.lock:
            self._hold_predicate, self._hold_for = predicate, timeout
            self._released.clear()

    def release_held(self) -> None:
        with self.lock:
            self._hold_predicate = None
        self._released.set()

    def _take_fault(self, request: Request) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self._faults):
                if fault.path in request.path:
                    return self._faults.pop(i)
        return None

    # ------------------------------------------------------------ arrivals
    @property
    def log(self) -> list[Arrival]:
        """The arrivals so far (a copy)."""
        with self.lock:
            return list(self.arrivals)

    def calls(self, path: str, method: str = "") -> list[Arrival]:
        """Arrivals whose path contains ``path`` (and of ``method``, if given)."""
        with self.lock:
            return [a for a in self.arrivals if path in a.path and method in ("", a.method)]

    def seen(self, method: str, path: str) -> list[Arrival]:
        """Arrivals of ``method`` to exactly ``path``."""
        with self.lock:
            return [a for a in self.arrivals if a.method == method and a.path == path]

    def _arrive(self, request: Request) -> None:
        with self.lock:
            self.arrivals.append(Arrival(time.monotonic(), request))

    # ------------------------------------------------------------ media files
    def add_file(self, name: str, content: str | bytes = "") -> str:
        """Serves ``content`` (made up if empty; bytes as they are, a string as JSON)
        at ``GET /media/<name>``; returns the URL."""
        with self.lock:
            self._files[name] = content or _made_up(name)
        return self.media_url(name)

    def media_url(self, name: str) -> str:
        return f"{self.base_url}/media/{name}"

    def served(self, name: str) -> bytes:
        """The exact bytes ``GET /media/<name>`` answers (contents given as a string
        are served as a JSON string)."""
        content = self._file(name)
        return content if isinstance(content, bytes) else json.dumps(content).encode()

    def serve_media(self, request: Request, name: str) -> Response:
        content = self._file(name)
        if content is None:
            return Response(404, {"error": "Not found"})
        return Response(200, content)

    def _file(self, name: str) -> str | bytes | None:
        with self.lock:
            content = self._files.get(name)
        return _made_up(name) if content is None and self.serves_any_file else content

    # ------------------------------------------------------------ serving
    def dispatch(self, request: Request) -> tuple[Response, bool]:
        self._arrive(request)
        if self.delay:
            time.sleep(self.delay)
        if not self._open.is_set():
            self._open.wait(self._hold_timeout)
        with self.lock:
            hold = self._hold_predicate is not None and self._hold_predicate(request)
            self.held += hold
        if hold:
            self._released.wait(self._hold_for)
        with self.lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault and fault.status and not fault.live:
            return Response(fault.status, fault.body, fault.headers), False
        for method, pattern, name in self.routes:
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match:
                response = getattr(self, name)(request, *match.groups())
                if fault and fault.status:  # ``live``: it ran, and the answer is lost
                    return Response(fault.status, fault.body, fault.headers), False
                return response, bool(fault and fault.drop)
        return Response(404, {"error": f"no route {request.method} {request.path}"}), False

    def _handler(self):
        network = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle's algorithm the
            # body waits for the client's delayed ACK (~40 ms on every answer).
            disable_nagle_algorithm = True

            def _serve(self):
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command,
                    path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with network.lock:
                    network.in_flight += 1
                try:
                    response, drop = network.dispatch(request)
                finally:
                    with network.lock:
                        network.in_flight -= 1
                if drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                raw = isinstance(response.body, bytes)
                body = (
                    response.body
                    if raw
                    else b""
                    if response.body is None
                    else json.dumps(response.body).encode()
                )
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header(
                    "content-type", "application/octet-stream" if raw else "application/json"
                )
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


def _made_up(name: str) -> str:
    return f"contents of {name} " * 8
