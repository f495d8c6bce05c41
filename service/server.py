"""The gRPC server: PostService, reflection and health, and on the embedded
default the delivery worker, dispatcher and sweeper in the same process.

``create_server(config)`` builds and binds; ``serve()`` runs until SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from posts.v1 import posts_pb2, posts_pb2_grpc

from service import crypto, db
from service.auth import Authenticator
from service.config import Config
from service.interceptors import PostServiceInterceptor
from service.posts import Posts
from service.servicer import PostServicer

log = logging.getLogger(__name__)

SERVICE_NAME = posts_pb2.DESCRIPTOR.services_by_name["PostService"].full_name


class PostServer:
    """A bound server; ``start`` serves, ``stop`` drains and stops everything it started."""

    def __init__(self, config: Config, server: grpc.Server, health_servicer, embedded):
        self.config = config
        self._server = server
        self._health = health_servicer
        self._embedded = embedded
        self._checkpoints = db.WalCheckpoints() if db.is_sqlite() else None

    def start(self) -> None:
        if self._checkpoints:
            self._checkpoints.start()
        if self._embedded:
            self._embedded.start()
        self._server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 10.0) -> None:
        """Drains: health turns NOT_SERVING, in-flight RPCs finish (up to ``grace``
        seconds), then the worker stops after its current job."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        if self._embedded:
            self._embedded.stop()
        if self._checkpoints:
            self._checkpoints.stop()

    def wait(self) -> None:
        self._server.wait_for_termination()


class InProcessDelivery:
    """A Dramatiq worker, dispatcher and sweeper inside the server process.

    Always on the embedded default (in-memory broker); on a real broker when
    POSTS_INPROCESS_WORKER is set.
    """

    def __init__(self, config: Config, broker):
        import dramatiq

        from workers import actors, delivery, queue_depth, scheduler

        delivery.configure(config)
        actors.configure(config, broker)
        self._embedded = config.embedded
        self._broker = broker
        self._enqueue = actors.enqueue
        self._recover = scheduler.recover_after_restart
        self._worker = dramatiq.Worker(
            broker, worker_threads=config.worker_threads, worker_timeout=100
        )
        # The in-memory queue is lost only with the process, and start() recovers
        # that: only a real broker's queue needs watching.
        depth = None if config.embedded else queue_depth.probe(broker, actors.DELIVERY_QUEUE)
        self._scheduler = scheduler.Scheduler(
            actors.enqueue, config.dispatch_interval, requeue_after=config.requeue_after,
            queue_depth=depth,
        )  # fmt: skip

    def start(self) -> None:
        if self._embedded:
            # The in-memory broker lost every message when the last process stopped.
            for post_id, token in self._recover(db.utcnow()):
                self._enqueue(post_id, token)
        self._worker.start()
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.stop()
        self._worker.stop()
        if self._embedded:
            self._broker.flush_all()


def create_server(config: Config) -> tuple[PostServer, int]:
    """Builds the server for ``config`` and binds it; returns it with the bound port."""
    db.init(config)
    keyring = crypto.configure(config)
    from workers import broker as workers_broker
    from workers.actors import enqueue

    broker = workers_broker.use(config.broker_url)
    in_process = config.embedded or config.inprocess_worker
    embedded = InProcessDelivery(config, broker) if in_process else None
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        interceptors=[PostServiceInterceptor(Authenticator())],
        options=[("grpc.so_reuseport", 1)],
    )
    posts_pb2_grpc.add_PostServiceServicer_to_server(PostServicer(Posts(keyring, enqueue)), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )  # fmt: skip
    port = _bind(server, config)
    return PostServer(config, server, health_servicer, embedded), port


def _bind(server: grpc.Server, config: Config) -> int:
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
        port = server.add_secure_port(config.listen, credentials)
    else:
        port = server.add_insecure_port(config.listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {config.listen}")
    return port


def serve(config: Config) -> None:
    """Runs the server until SIGTERM or SIGINT, then drains."""
    server, port = create_server(config)
    server.start()
    log.info("serving posts.v1.PostService on %s (port %d)", config.listen, port)
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: draining", signum)
            threading.Thread(target=server.stop, name="drain").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait()
    log.info("stopped")


def serve_processes(config: Config, processes: int) -> None:
    """Runs ``processes`` server processes on one port (SO_REUSEPORT); SIGTERM drains them all.

    Needs a real broker: embedded workers in several processes would each
    believe they alone deliver.
    """
    import multiprocessing

    if processes > 1 and config.embedded:
        from service.config import ConfigError

        raise ConfigError("--processes > 1 needs POSTS_BROKER_URL (the embedded worker is one process)")
    if processes > 1 and config.listen.endswith(":0"):
        from service.config import ConfigError

        raise ConfigError("--processes > 1 needs a fixed port in POSTS_LISTEN")
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=serve, args=(config,), name=f"server-{i}")
                for i in range(processes)]  # fmt: skip
    for child in children:
        child.start()

    def forward(signum, frame):
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
