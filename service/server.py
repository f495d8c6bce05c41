"""The gRPC server: PostService, reflection and health, and the delivery side
its caller hands it (on the embedded default the delivery worker, dispatcher
and sweeper run in the same process).

``create_server(config, enqueue, delivery)`` builds and binds; ``serve(config,
wire)`` runs until SIGTERM. The delivery side comes in through ``Delivery`` and
``Wire`` so that this package never imports the workers.

Unary calls run on the server's thread pool (POSTS_MAX_WORKERS threads).
WatchPostEvents streams hold no thread: they are gRPC's non-blocking streams,
sent to by the process's event hub (service.watch).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from posts.v1 import posts_pb2, posts_pb2_grpc

from service import crypto, db, logs, metrics, ratelimit, watch
from service.auth import Authenticator
from service.config import Config, ConfigError
from service.interceptors import PostServiceInterceptor
from service.posts import Posts
from service.servicer import PostServicer

log = logging.getLogger(__name__)

SERVICE_NAME = posts_pb2.DESCRIPTOR.services_by_name["PostService"].full_name

#: The largest request the server reads, and the largest answer it sends (bytes).
#: The largest valid request, 25 items of 64 KiB of text with 35 media each and
#: every string at its limit in 4-byte characters, is 13.9 MiB; its post as an
#: answer (the first item twice: in ``items`` and as ``text``/``media``) 14.4
#: MiB; a ListPosts page stops near 4 MB (servicer.MAX_PAGE_BYTES).
MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024

#: Sends the delivery message of a committed job: ``enqueue(post_id, token)``.
Enqueue = Callable[[str, str], None]


class Delivery(Protocol):
    """Delivery running inside the server process: started before the server
    serves, stopped after it has drained."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


#: Sets up a server process's delivery side for ``config``: its Enqueue, and its
#: Delivery when the worker runs in this process (else None). A module-level
#: function: ``serve_processes`` hands it to each child process by name.
Wire = Callable[[Config], tuple[Enqueue, Delivery | None]]


class PostServer:
    """A bound server; ``start`` serves, ``stop`` drains and stops everything it started."""

    def __init__(
        self,
        config: Config,
        server: grpc.Server,
        health_servicer,
        delivery: Delivery | None,
        hub: watch.Hub,
    ):
        self.config = config
        self.hub = hub
        self._server = server
        self._health = health_servicer
        self._delivery = delivery
        self._checkpoints = db.WalCheckpoints() if db.is_sqlite() else None
        self._stopping = threading.Event()
        self._probe = threading.Thread(target=self._probe_database, name="health", daemon=True)

    def start(self) -> None:
        if self._checkpoints:
            self._checkpoints.start()
        if self._delivery:
            self._delivery.start()
        self.hub.start()
        self._server.start()
        self._set_health(serving=True)
        self._probe.start()

    def _set_health(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)  # ignored once draining

    def _probe_database(self) -> None:
        """Health follows the database: NOT_SERVING while it does not answer
        (a load balancer then sends elsewhere), SERVING again once it does."""
        serving = True
        while not self._stopping.wait(self.config.health_interval):
            answers = db.reachable()
            if answers != serving:
                serving = answers
                if serving:
                    log.warning("the database answers again: health SERVING")
                else:
                    log.warning("the database does not answer: health NOT_SERVING")
                self._set_health(serving)

    def stop(self, grace: float = 10.0) -> None:
        """Drains: health turns NOT_SERVING, open WatchPostEvents streams end
        UNAVAILABLE (SERVER_DRAINING, naming the event_id to resume from),
        in-flight RPCs finish (up to ``grace`` seconds), then the event hub
        stops and the worker stops after its current job."""
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        self.hub.drain()
        self._server.stop(grace).wait()
        self.hub.stop()
        if self._delivery:
            self._delivery.stop()
        if self._checkpoints:
            self._checkpoints.stop()

    def wait(self) -> None:
        self._server.wait_for_termination()


def create_server(
    config: Config, enqueue: Enqueue, delivery: Delivery | None = None, *, share_port: bool = False
) -> tuple[PostServer, int]:
    """Builds the server for ``config`` and binds it; returns it with the bound port.

    Committed jobs go to ``enqueue``; ``delivery`` starts and stops with the server.
    ``share_port``: SO_REUSEPORT, for ``serve --processes``' children only. gRPC
    turns it on by default, which would let a second server started by mistake
    share the port silently; off, it is refused (ConfigError, address in use).
    """
    db.init(config)
    keyring = crypto.configure(config)
    if not share_port:
        _refuse_a_taken_address(config.listen)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        interceptors=[PostServiceInterceptor(Authenticator(), ratelimit.from_config(config))],
        options=[
            ("grpc.so_reuseport", 1 if share_port else 0),
            ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ],
    )
    hub = watch.Hub(config.event_poll_interval)
    posts_pb2_grpc.add_PostServiceServicer_to_server(
        PostServicer(Posts(keyring, enqueue), hub=hub), server
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = _bind(server, config)
    return PostServer(config, server, health_servicer, delivery, hub), port


def _bind(server: grpc.Server, config: Config) -> int:
    credentials = None
    if config.tls_cert:
        with open(config.tls_cert, "rb") as c, open(config.tls_key, "rb") as k:
            pair = [(k.read(), c.read())]
        client_ca = None
        if config.tls_client_ca:
            with open(config.tls_client_ca, "rb") as ca:
                client_ca = ca.read()
        credentials = grpc.ssl_server_credentials(
            pair, root_certificates=client_ca, require_client_auth=client_ca is not None
        )
    try:
        if credentials is not None:  # config.tls_cert
            port = server.add_secure_port(config.listen, credentials)
        else:
            port = server.add_insecure_port(config.listen)
    except RuntimeError:  # "Failed to bind to address": gRPC has logged why
        port = 0
    if port == 0:
        raise ConfigError(f"cannot listen on {config.listen} (gRPC's error above says why)")
    return port


def _refuse_a_taken_address(listen: str) -> None:
    """ConfigError when something listens on ``listen`` already: one clear line
    before gRPC tries (and logs its own bind error).

    The probe sets SO_REUSEADDR, as gRPC does, so connections of an earlier
    server still closing (TIME_WAIT) do not count; a listener does.
    """
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return  # gRPC says what is wrong with the address
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"cannot listen on {listen}: address already in use (another server"
                        " runs there; set POSTS_LISTEN to another port, or stop it)"
                    ) from None


def serve(config: Config, wire: Wire, *, share_port: bool = False) -> None:
    """Runs the server, with the delivery side ``wire`` sets up, until SIGTERM or
    SIGINT, then drains. ``share_port``: see ``create_server`` (a child of
    ``serve_processes``, whose parent serves the metrics its children record)."""
    if config.metrics_listen:
        metrics.start()
        if not share_port:
            metrics.expose(config.metrics_listen)
    server, port = create_server(config, *wire(config), share_port=share_port)
    server.start()
    log.info(
        "serving posts.v1.PostService on %s (port %d; %s)",
        config.listen,
        port,
        describe_backend(config),
    )
    stopping = threading.Event()
    drains: list[threading.Thread] = []

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: draining", signum)
            drain = threading.Thread(target=server.stop, name="drain")
            drains.append(drain)
            drain.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait()
    # The RPCs have ended; the drain goes on to the worker, which ends after its job.
    for drain in drains:
        drain.join()
    log.info("stopped")


def describe_backend(config: Config) -> str:
    """The database and broker ``config`` names, without credentials, for a log line."""
    broker = logs.redact(config.broker_url) if config.broker_url else "none (worker in process)"
    return f"database {logs.redact(config.database_url)}, broker {broker}"


def serve_processes(config: Config, processes: int, wire: Wire) -> int:
    """Runs ``processes`` server processes on one port (SO_REUSEPORT); SIGTERM
    drains them all. Returns 0, or the exit code of a child that failed.

    Needs a real broker: embedded workers in several processes would each
    believe they alone deliver.
    """
    import multiprocessing

    config.require_broker("--processes > 1")
    if config.listen.endswith(":0"):
        raise ConfigError("--processes > 1 needs a fixed port in POSTS_LISTEN")
    # The children share the port with each other, never with another server.
    _refuse_a_taken_address(config.listen)
    if config.metrics_listen:  # the parent serves what every child records
        metrics.prepare()
        metrics.expose(config.metrics_listen)
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_serve_child, args=(config, wire), name=f"server-{i}")
        for i in range(processes)
    ]
    for child in children:
        child.start()
    log.info(
        "serving posts.v1.PostService with %d processes on %s (pids %s; %s)",
        processes,
        config.listen,
        ", ".join(str(child.pid) for child in children),
        describe_backend(config),
    )

    def forward(signum, frame):
        log.info("signal %d: draining the %d server processes", signum, processes)
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    codes = [child.exitcode for child in children]
    log.info(
        "stopped: the %d server processes exited (codes %s)", processes, ", ".join(map(str, codes))
    )
    return next((code for code in codes if code), 0)


def _serve_child(config: Config, wire: Wire) -> None:
    """One ``serve --processes`` child: logs as its parent does; a configuration
    error is one line and exit code 2, as on the command line."""
    logs.setup()
    logs.use_format(config.log_format)
    try:
        serve(config, wire, share_port=True)
    except ConfigError as error:
        log.error("%s", error)
        raise SystemExit(2) from None
