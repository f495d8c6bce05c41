"""Configuration, read from the environment in this one place."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import pathlib
import re
import urllib.parse
from collections.abc import Mapping

ROOT = pathlib.Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is missing or malformed; raised at start-up."""


#: POSTS_MEDIA_MAX_BYTES's default: the largest media file a worker downloads (1 GiB).
MEDIA_MAX_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class EgressAllow:
    """POSTS_EGRESS_ALLOW: destinations the egress guard (service.egress) lets
    through although their addresses are not public.

    ``networks``: CIDR blocks (any port); ``hosts``: (name or IP address, port or
    None for any port), names lowercased without a trailing dot.
    """

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: tuple[tuple[str, int | None], ...] = ()


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything the server and workers need to know about their surroundings."""

    listen: str = "127.0.0.1:50051"
    database_url: str = ""
    broker_url: str = ""
    secret_key: str = ""
    var_dir: pathlib.Path = ROOT / "var"
    max_workers: int = 16  # 4 on SQLite: see from_env
    worker_threads: int = 4
    #: On SQLite, at most this many concurrent writes of one process commit
    #: together (service.db.GroupCommit); 1: each its own transaction.
    group_commit: int = 32
    dispatch_interval: float = 0.2
    #: Seconds between sweeper rounds (lost messages, expired leases, old events).
    sweep_interval: float = 5.0
    lease_seconds: float = 60.0
    requeue_after: float = 300.0
    max_attempts: int = 5
    retry_base: float = 2.0
    #: Seconds one delivery may run before its thread is interrupted (a hung post).
    delivery_time_limit: float = 900.0
    inprocess_worker: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    #: POSTS_EGRESS_ALLOW, parsed (see service.egress).
    egress_allow: EgressAllow = EgressAllow()
    media_max_bytes: int = MEDIA_MAX_BYTES
    #: POSTS_RATE_LIMIT as (requests per second per API key, burst); None: off.
    rate_limit: tuple[float, int] | None = None
    #: POSTS_PACING_OVERRIDES: (network or account id, limit, window seconds)
    #: replacing the pacing table's limits (workers.pacing) there.
    pacing_overrides: tuple[tuple[str, int, float], ...] = ()
    #: Days post events are kept (ListPostEvents, WatchPostEvents' replay).
    event_retention_days: float = 30.0
    #: Seconds between a process's reads of new events for its watchers.
    event_poll_interval: float = 0.1
    #: Seconds between a server's checks that its database answers (its health).
    health_interval: float = 2.0
    #: host:port of the Prometheus metrics endpoint ('' = off).
    metrics_listen: str = ""
    #: POSTS_LOG_FORMAT: "text" (one line per event) or "json" (one object per line).
    log_format: str = "text"
    #: Event webhooks: seconds of the first retry's backoff (doubling, with jitter,
    #: at most service.webhooks.RETRY_CAP), and how long after a row's first try its
    #: sends keep being retried before the subscription is disabled.
    webhook_retry_base: float = 10.0
    webhook_retry_window: float = 86400.0
    #: Seconds one webhook request may take in all.
    webhook_timeout: float = 5.0
    #: Threads sending webhooks in each delivering process (their own, so a slow
    #: subscriber never holds a post's delivery).
    webhook_threads: int = 4

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: the worker runs inside the server."""
        return not self.broker_url

    def require_broker(self, what: str) -> None:
        """ConfigError unless POSTS_BROKER_URL is set: ``what`` needs a broker."""
        if self.embedded:
            raise ConfigError(
                f"{what} needs POSTS_BROKER_URL (without one, the worker runs inside the one"
                " `python -m service serve` process)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Builds a Config from ``POSTS_*`` variables; raises ConfigError on bad values."""
        env = os.environ if env is None else env
        var_dir = pathlib.Path(env.get("POSTS_VAR_DIR") or ROOT / "var")
        database_url = env.get("POSTS_DATABASE_URL") or f"sqlite:///{var_dir / 'posts.db'}"
        if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError(f"POSTS_DATABASE_URL: unsupported scheme in {database_url!r}")
        broker_url = env.get("POSTS_BROKER_URL", "")
        if broker_url and not broker_url.startswith(("redis://", "amqp://", "amqps://")):
            raise ConfigError("POSTS_BROKER_URL must be redis://… or amqp://…")
        listen = env.get("POSTS_LISTEN") or cls.listen
        if ":" not in listen:
            raise ConfigError(f"POSTS_LISTEN must be host:port, not {listen!r}")
        metrics_listen = env.get("POSTS_METRICS_LISTEN", "")
        log_format = env.get("POSTS_LOG_FORMAT", "") or cls.log_format
        if log_format not in ("text", "json"):
            raise ConfigError(f"POSTS_LOG_FORMAT must be text or json, not {log_format!r}")
        if metrics_listen and not metrics_listen.rpartition(":")[2].isdigit():
            raise ConfigError(f"POSTS_METRICS_LISTEN must be host:port, not {metrics_listen!r}")
        # On SQLite the handlers' work is CPU under the GIL: beyond a few threads
        # they only queue for it (BENCHMARKS.md has GetPostStatus on 4 and 16).
        max_workers = 4 if database_url.startswith("sqlite:") else cls.max_workers
        tls = {k: env.get(f"POSTS_TLS_{k.upper()}", "") for k in ("cert", "key", "client_ca")}
        if bool(tls["cert"]) != bool(tls["key"]):
            raise ConfigError("POSTS_TLS_CERT and POSTS_TLS_KEY go together")
        secret_key = env.get("POSTS_SECRET_KEY", "")
        if secret_key:
            secret_keys(secret_key)  # malformed: refused now, not at the first decrypt
        elif database_url.startswith("postgres") or broker_url:
            # Processes that share a database must share the key too; a key file
            # made under each machine's var/ would differ from machine to machine.
            raise ConfigError(
                "POSTS_SECRET_KEY is required with PostgreSQL or a broker (the same on every process)"
            )
        return cls(
            listen=listen,
            database_url=database_url,
            broker_url=broker_url,
            secret_key=secret_key,
            var_dir=var_dir,
            max_workers=_number(env, "POSTS_MAX_WORKERS", max_workers, int),
            worker_threads=_number(env, "POSTS_WORKER_THREADS", cls.worker_threads, int),
            group_commit=_number(env, "POSTS_GROUP_COMMIT", cls.group_commit, int),
            dispatch_interval=_number(env, "POSTS_DISPATCH_INTERVAL", cls.dispatch_interval, float),
            sweep_interval=_number(env, "POSTS_SWEEP_INTERVAL", cls.sweep_interval, float),
            lease_seconds=_number(env, "POSTS_LEASE_SECONDS", cls.lease_seconds, float),
            requeue_after=_number(env, "POSTS_REQUEUE_AFTER", cls.requeue_after, float),
            max_attempts=_number(env, "POSTS_MAX_ATTEMPTS", cls.max_attempts, int),
            retry_base=_number(env, "POSTS_RETRY_BASE", cls.retry_base, float),
            delivery_time_limit=_number(
                env, "POSTS_DELIVERY_TIME_LIMIT", cls.delivery_time_limit, float
            ),
            inprocess_worker=env.get("POSTS_INPROCESS_WORKER", "") not in ("", "0", "false"),
            tls_cert=tls["cert"],
            tls_key=tls["key"],
            tls_client_ca=tls["client_ca"],
            egress_allow=egress_allow(env),
            media_max_bytes=media_max_bytes(env),
            rate_limit=rate_limit(env.get("POSTS_RATE_LIMIT", "")),
            pacing_overrides=pacing_overrides(env.get("POSTS_PACING_OVERRIDES", "")),
            event_retention_days=_number(
                env, "POSTS_EVENT_RETENTION_DAYS", cls.event_retention_days, float
            ),
            event_poll_interval=_number(
                env, "POSTS_EVENT_POLL_INTERVAL", cls.event_poll_interval, float
            ),
            health_interval=_number(env, "POSTS_HEALTH_INTERVAL", cls.health_interval, float),
            metrics_listen=metrics_listen,
            log_format=log_format,
            webhook_retry_base=_number(
                env, "POSTS_WEBHOOK_RETRY_BASE", cls.webhook_retry_base, float
            ),
            webhook_retry_window=_number(
                env, "POSTS_WEBHOOK_RETRY_WINDOW", cls.webhook_retry_window, float
            ),
            webhook_timeout=_number(env, "POSTS_WEBHOOK_TIMEOUT", cls.webhook_timeout, float),
            webhook_threads=_number(env, "POSTS_WEBHOOK_THREADS", cls.webhook_threads, int),
        )


def _number(env: Mapping[str, str], name: str, default, kind):
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


#: The shortest accepted secret (a generated Fernet key has 44 characters).
MIN_SECRET_LENGTH = 32


def secret_keys(raw: str) -> list[str]:
    """The keys of POSTS_SECRET_KEY, comma-separated, newest (the one that encrypts) first.

    Raises ConfigError naming the bad entry's position, never its value.
    """
    keys = [key.strip() for key in raw.split(",")]
    for position, key in enumerate(keys, 1):
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"POSTS_SECRET_KEY: key {position} of {len(keys)} is shorter than"
                f" {MIN_SECRET_LENGTH} characters"
            )
    return keys


def rate_limit(raw: str) -> tuple[float, int] | None:
    """POSTS_RATE_LIMIT, ``R`` or ``R:BURST``: (rate, burst), or None when unset.

    The burst defaults to one second's worth of requests (at least 1).
    """
    raw = raw.strip()
    if not raw:
        return None
    rate_text, _, burst_text = raw.partition(":")
    try:
        rate = float(rate_text)
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(rate)
        burst = int(burst_text) if burst_text else max(1, math.ceil(rate))
    except ValueError:
        raise ConfigError(f"POSTS_RATE_LIMIT must be R or R:BURST, not {raw!r}") from None
    if burst < 1:
        raise ConfigError("POSTS_RATE_LIMIT: the rate and the burst must be positive")
    return rate, burst


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_OVERRIDE = re.compile(r"([\w-]+)=(\d+)/(\d+(?:\.\d+)?)([smhd])")


def pacing_overrides(raw: str) -> tuple[tuple[str, int, float], ...]:
    """POSTS_PACING_OVERRIDES, comma-separated ``NAME=COUNT/WINDOW`` (``x=50/15m``,
    units s, m, h, d): at most COUNT creates per account within WINDOW. NAME is a
    network (every account on it) or one account's id (that account only)."""
    found = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        match = _OVERRIDE.fullmatch(entry)
        if not match or int(match.group(2)) < 1 or float(match.group(3)) <= 0:
            raise ConfigError(
                f"POSTS_PACING_OVERRIDES: {entry!r} is not NAME=COUNT/WINDOW (like x=50/15m)"
            )
        network, count, amount, unit = match.groups()
        found.append((network, int(count), float(amount) * _WINDOW_UNITS[unit]))
    return tuple(found)


# ---------------------------------------------------------------------- egress


def egress_allow(env: Mapping[str, str] | None = None) -> EgressAllow:
    """POSTS_EGRESS_ALLOW, comma-separated ``host``, ``host:port``, IP addresses and
    CIDR blocks; raises ConfigError naming a malformed entry."""
    env = os.environ if env is None else env
    return _parse_egress_allow(env.get("POSTS_EGRESS_ALLOW", ""))


def media_max_bytes(env: Mapping[str, str] | None = None) -> int:
    """POSTS_MEDIA_MAX_BYTES: the largest media file a worker downloads."""
    env = os.environ if env is None else env
    return _number(env, "POSTS_MEDIA_MAX_BYTES", MEDIA_MAX_BYTES, int)


_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


@functools.lru_cache(maxsize=8)
def _parse_egress_allow(raw: str) -> EgressAllow:
    networks, hosts = [], []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ConfigError(
                    f"POSTS_EGRESS_ALLOW: {entry!r} is not a CIDR block ({exc})"
                ) from None
            continue
        hosts.append(_allowed_host(entry))
    return EgressAllow(tuple(networks), tuple(hosts))


def _allowed_host(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, an IP address or ``[IPv6]:port`` as (host, port)."""
    try:
        return str(ipaddress.ip_address(entry)), None  # a bare IP address (IPv6 without [])
    except ValueError:
        pass
    bad = ConfigError(f"POSTS_EGRESS_ALLOW: {entry!r} is not host, host:port or a CIDR block")
    try:
        parts = urllib.parse.urlsplit("//" + entry)
        port = parts.port
    except ValueError:
        raise bad from None
    host = (parts.hostname or "").rstrip(".")
    if "@" in entry or parts.path or parts.query or parts.fragment or entry.endswith(":"):
        raise bad
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise bad
    return host, port
