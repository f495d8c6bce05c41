"""A small local HTTP server that speaks one network's API shape.

Subclasses declare routes; the base records every request, keeps a ledger of
what went live, and injects faults on demand (503, 429 with Retry-After, 401,
or a dropped connection after the post went live: an unknown outcome).
"""

from __future__ import annotations

import dataclasses
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
    """``status``: answer this instead of running the route; ``drop``: run the
    route (the post goes live) then close the connection without answering."""

    status: int = 0
    body: object = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    drop: bool = False
    path: str = ""  # only requests whose path contains this


Route = Callable[[Request], Response]


class FakeNetwork:
    """Base of the fakes: ``routes`` maps (method, path regex) to a handler."""

    routes: ClassVar[list[tuple[str, str, str]]] = []  # (method, regex, method name)

    def __init__(self):
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.live: list[dict] = []  # what the network published, in order
        self._faults: list[Fault] = []
        #: Seconds each request takes before the route runs (to land kills mid-send).
        self.delay = 0.0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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

    def _take_fault(self, request: Request) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self._faults):
                if fault.path in request.path:
                    return self._faults.pop(i)
        return None

    def dispatch(self, request: Request) -> tuple[Response, bool]:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault and fault.status:
            return Response(fault.status, fault.body, fault.headers), False
        for method, pattern, name in self.routes:
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match:
                response = getattr(self, name)(request, *match.groups())
                return response, bool(fault and fault.drop)
        return Response(404, {"error": f"no route {request.method} {request.path}"}), False

    def _handler(self):
        network = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command, path, query,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )  # fmt: skip
                response, drop = network.dispatch(request)
                if drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = b"" if response.body is None else json.dumps(response.body).encode()
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
