"""The egress guard: where connections made for a user may go.

``service.egress`` decides (pure functions, tested here on addresses and URLs
that are never connected to: IP literals, and names under ``.invalid`` whose
resolution a test fakes with a monkeypatched ``socket.getaddrinfo``);
``workers/adapters/http.py`` connects (tested against loopback listeners only).
A refused destination is proven never connected to by pointing at a loopback
listener left off POSTS_EGRESS_ALLOW (127.0.0.2, while the suite allows
127.0.0.1/32) and counting the connections it accepted: none.

Integration tests go through the real service and its in-process worker to a
fake Mastodon instance or webhook URL (tests/fakes), and end FAILED.
"""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import itertools
import socket
import ssl
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Self

import pytest
from cryptography import x509

from service import config as service_config
from service import egress
from service.config import Config, ConfigError
from tests.fakes.mastodon import FakeMastodon
from tests.pki import issue
from tests.processes import FAKES_EGRESS_ALLOW
from tests.support import item
from workers.adapters import http as adapters_http
from workers.adapters.base import DestinationRefused, MediaRef, PermanentError

# isort: split
from posts.v1 import posts_pb2 as pb

#: The largest media file the module's server downloads.
SERVER_MEDIA_MAX_BYTES = 64 * 1024

pytestmark = pytest.mark.server_env(
    POSTS_RETRY_BASE="0.2",
    POSTS_MAX_ATTEMPTS="3",
    POSTS_DISPATCH_INTERVAL="0.05",
    POSTS_EGRESS_ALLOW=FAKES_EGRESS_ALLOW,
    POSTS_MEDIA_MAX_BYTES=str(SERVER_MEDIA_MAX_BYTES),
)

#: A loopback address the suite's POSTS_EGRESS_ALLOW (127.0.0.1/32) leaves out.
REFUSED_LOOPBACK = "127.0.0.2"
NOTHING_ALLOWED = service_config.EgressAllow()
MIB = 1024 * 1024
TOKEN = "mastodon-egress-token"
SECRET = "s3cr3t-body-the-caller-must-never-see"


def allow(raw: str) -> service_config.EgressAllow:
    return service_config.egress_allow({"POSTS_EGRESS_ALLOW": raw})


# ====================================================================== decisions

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),  # "this network"
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),  # documentation
    ("198.18.0.1", "private"),  # benchmarking
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),  # documentation
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped link-local"),  # the same, in hex
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:100.64.0.1", "IPv4-mapped carrier-grade NAT"),
    ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
    ("2002:a9fe:a9fe::1", "6to4 link-local"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_every_refused_range_is_refused(address, kind):
    ip = ipaddress.ip_address(address)
    assert egress.address_refusal(ip) == kind
    host = f"[{address}]" if ":" in address else address
    assert kind in egress.url_refusal(f"https://{host}/cat.png", NOTHING_ALLOWED)
    assert kind in egress.resolution_refusal("media.invalid", 443, [address], NOTHING_ALLOWED)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    ip = ipaddress.ip_address(address)
    assert egress.address_refusal(ip) is None
    host = f"[{address}]" if ":" in address else address
    assert egress.url_refusal(f"https://{host}/cat.png", NOTHING_ALLOWED) is None
    assert egress.resolution_refusal("media.invalid", 443, [address], NOTHING_ALLOWED) is None


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "127.0.0.1.", "2852039166"],
)
def test_ipv4_in_the_spellings_resolvers_read_is_refused_from_the_url(host):
    """inet_aton's forms (decimal, hex, octal, short) are IP literals too."""
    refusal = egress.url_refusal(f"http://{host}/latest/meta-data/", NOTHING_ALLOWED)
    assert refusal is not None and ("loopback" in refusal or "link-local" in refusal)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://media.invalid/cat.png", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
        ("gopher://media.invalid/", "http(s)"),
        ("media.invalid/cat.png", "http(s)"),
        ("", "http(s)"),
        ("http:///cat.png", "http(s)"),
        ("https://user:pass@media.invalid/cat.png", "credentials"),
        ("https://user@media.invalid/cat.png", "credentials"),
        ("https://media.invalid:99999/cat.png", "not a valid URL"),
        ("https://[::1/cat.png", "not a valid URL"),
        ("https://media.invalid/" + "a" * (2049 - len("https://media.invalid/")), "2048"),
    ],
)
def test_what_the_url_alone_shows_is_refused(url, says):
    refusal = egress.url_refusal(url, allow("127.0.0.0/8"))
    assert refusal is not None and says in refusal


def test_a_url_of_2048_characters_is_accepted_and_api_urls_have_no_length_limit():
    url = "https://media.invalid/" + "a" * (2048 - len("https://media.invalid/"))
    assert egress.url_refusal(url, NOTHING_ALLOWED) is None
    assert egress.url_refusal(url + "a", NOTHING_ALLOWED) is not None
    assert egress.url_refusal(url + "a", NOTHING_ALLOWED, max_length=None) is None
    assert egress.url_refusal("HTTPS://MEDIA.INVALID/cat.png", NOTHING_ALLOWED) is None


def test_one_refused_address_among_several_refuses_the_host():
    addresses = ["8.8.8.8", "2606:4700:4700::1111", "10.0.0.7"]
    refusal = egress.resolution_refusal("media.invalid", 443, addresses, NOTHING_ALLOWED)
    assert refusal is not None and "10.0.0.7" in refusal and "private" in refusal
    assert egress.resolution_refusal("media.invalid", 443, addresses[:2], NOTHING_ALLOWED) is None
    assert egress.resolution_refusal("media.invalid", 443, [], NOTHING_ALLOWED) is not None


def test_the_allow_list_lets_a_cidr_block_through():
    allowed = allow("10.1.0.0/16, fd00:1::/32")
    assert egress.url_refusal("http://10.1.2.3:8080/a.png", allowed) is None
    assert egress.url_refusal("http://10.2.0.1/a.png", allowed) is not None
    assert egress.url_refusal("http://[fd00:1::5]/a.png", allowed) is None
    assert egress.url_refusal("http://[fd00:2::5]/a.png", allowed) is not None
    assert egress.resolution_refusal("media.invalid", 443, ["10.1.0.9"], allowed) is None
    # Every address must be allowed, not just one.
    assert (
        egress.resolution_refusal("media.invalid", 443, ["10.1.0.9", "10.3.0.1"], allowed)
        is not None
    )


def test_an_ipv4_cidr_block_covers_the_ipv4_mapped_forms_of_its_addresses():
    allowed = allow("127.0.0.1/32")
    assert egress.url_refusal("http://[::ffff:127.0.0.1]:8080/a.png", allowed) is None
    assert egress.url_refusal("http://[::ffff:127.0.0.2]:8080/a.png", allowed) is not None


def test_the_allow_list_lets_a_host_and_port_through():
    allowed = allow("127.0.0.1:8080, media.invalid:8443, hooks.invalid, [::1]:9000")
    assert egress.url_refusal("http://127.0.0.1:8080/a.png", allowed) is None
    assert egress.url_refusal("http://127.0.0.1:8081/a.png", allowed) is not None
    assert egress.url_refusal("http://127.0.0.1/a.png", allowed) is not None  # port 80
    assert egress.url_refusal("http://[::1]:9000/a.png", allowed) is None
    assert egress.url_refusal("http://[::1]:9001/a.png", allowed) is not None
    # A name on the list may resolve to a non-public address, on its port only.
    assert egress.resolution_refusal("media.invalid", 8443, ["10.0.0.5"], allowed) is None
    assert egress.resolution_refusal("MEDIA.invalid.", 8443, ["10.0.0.5"], allowed) is None
    assert egress.resolution_refusal("media.invalid", 443, ["10.0.0.5"], allowed) is not None
    assert egress.resolution_refusal("hooks.invalid", 1234, ["10.0.0.5"], allowed) is None
    assert egress.resolution_refusal("other.invalid", 8443, ["10.0.0.5"], allowed) is not None


def test_egress_settings_are_parsed_in_the_configuration():
    config = Config.from_env(
        {
            "POSTS_EGRESS_ALLOW": " 10.0.0.0/8 , media.invalid:8443,[::1]:9000, 127.0.0.1,",
            "POSTS_MEDIA_MAX_BYTES": "1048576",
        }
    )
    assert config.egress_allow.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert config.egress_allow.hosts == (
        ("media.invalid", 8443),
        ("::1", 9000),
        ("127.0.0.1", None),
    )
    assert config.media_max_bytes == MIB
    default = Config.from_env({})
    assert (default.egress_allow, default.media_max_bytes) == (NOTHING_ALLOWED, 1 << 30)


@pytest.mark.parametrize(
    "env",
    [
        {"POSTS_EGRESS_ALLOW": "10.0.0.1/8"},  # host bits set: a typo, not a block
        {"POSTS_EGRESS_ALLOW": "10.0.0.0/33"},
        {"POSTS_EGRESS_ALLOW": "media.invalid:http"},
        {"POSTS_EGRESS_ALLOW": "media.invalid:"},
        {"POSTS_EGRESS_ALLOW": "user@media.invalid"},
        {"POSTS_EGRESS_ALLOW": "https://media.invalid"},
        {"POSTS_EGRESS_ALLOW": "media .invalid"},
        {"POSTS_MEDIA_MAX_BYTES": "0"},
        {"POSTS_MEDIA_MAX_BYTES": "1GiB"},
    ],
)
def test_a_malformed_egress_setting_stops_the_process(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


# ====================================================================== connecting


class Listener:
    """A TCP listener counting the connections it accepts. It answers each with a
    small image, so that a connection the guard should not have made fails the
    test quickly instead of hanging it."""

    def __init__(self, host: str = REFUSED_LOOPBACK):
        self._socket = socket.create_server((host, 0))
        self._socket.settimeout(0.05)  # accept() wakes to see ``_stop``
        self._stop = threading.Event()
        self._accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def url(self, path: str = "/cat.png", host: str = "") -> str:
        return f"http://{host or self._socket.getsockname()[0]}:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.connections()
        self._socket.close()

    def connections(self) -> int:
        """Every connection made to it so far, the ones not accepted yet included
        (a completed connect is in the backlog before accept() returns it)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.setblocking(False)
        while True:
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, OSError):
                return self._accepted
            connection.close()
            self._accepted += 1

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted += 1
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                except OSError:
                    pass


Route = Callable[[http.server.BaseHTTPRequestHandler], None]


class Site:
    """A loopback HTTP server (127.0.0.1: on the suite's allow-list) whose paths
    answer as the test says; it records each request's path and Host header."""

    def __init__(
        self, routes: dict[str, Route], host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ):
        self.routes = routes
        self.seen: list[tuple[str, str]] = []  # (path, Host)
        self.sent = 0  # body bytes written
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        # shutdown() waits for the loop's next poll: a short one keeps it quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.seen]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with site._lock:
                    site.seen.append((self.path, self.headers.get("host", "")))
                route = site.routes.get(self.path)
                if route is None:
                    answer(self, 404, b"no such path")
                else:
                    route(self)

            def log_message(self, *args):
                pass

        return Handler


def answer(handler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    for name, value in {"Content-Type": "application/octet-stream", **headers}.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def redirect(to: str) -> Route:
    return lambda handler: answer(handler, 302, b"", Location=to)


def image(body: bytes = b"\x89PNG fake image") -> Route:
    return lambda handler: answer(handler, 200, body, Content_Type="image/png")


def stream(total: int, declare: bool, site: Site | None = None) -> Route:
    """``total`` bytes in 64 KiB chunks, one bytes object reused (the server holds
    no more than that): with Content-Length when ``declare``, else chunked."""
    chunk = b"\xab" * (64 * 1024)

    def route(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        if declare:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        left = total
        try:
            while left > 0:
                part = chunk[: min(len(chunk), left)]
                if declare:
                    handler.wfile.write(part)
                else:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                left -= len(part)
                if site is not None:
                    site.sent += len(part)
            if not declare:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading: what the cap is for
            handler.close_connection = True

    return route


@pytest.fixture
def guard(monkeypatch) -> Callable[..., None]:
    """Sets the guard's settings for the tests that call the adapters' HTTP code
    directly (the process's own, from POSTS_EGRESS_ALLOW, otherwise)."""

    def set_to(allowed: str = FAKES_EGRESS_ALLOW, max_bytes: int = 1 << 30) -> None:
        monkeypatch.setattr(
            egress, "_configured", Config(egress_allow=allow(allowed), media_max_bytes=max_bytes)
        )

    set_to()
    return set_to


class FakeResolver:
    """``socket.getaddrinfo`` answering ``answers[name]`` for the names put there
    (under .invalid), and as usual for any other; ``lookups`` counts per name."""

    def __init__(self):
        self.answers: dict[str, list[str]] = {}
        self.lookups: dict[str, int] = {}
        self._real = socket.getaddrinfo

    def __setitem__(self, name: str, addresses: list[str]) -> None:
        self.answers[name] = addresses

    def getaddrinfo(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.lookups[name] = self.lookups.get(name, 0) + 1
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))
            for address in self.answers[name]
        ]


@pytest.fixture
def resolver(monkeypatch) -> FakeResolver:
    """Resolves the names a test sets (``resolver[name] = [addresses]``) in this
    process, the in-process worker's included."""
    fake = FakeResolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


def fetch(url: str, kind: str = "image") -> adapters_http.Download:
    return adapters_http.download(MediaRef(url, kind, "image/png"))


def read_all(download: adapters_http.Download) -> bytes:
    return download.read(0, download.size)


def test_a_name_resolving_to_one_refused_address_among_others_is_never_connected(guard, resolver):
    with Listener("127.0.0.1") as allowed_listener:  # on the allow-list itself
        resolver["media.invalid"] = ["127.0.0.1", "10.0.0.1"]
        with pytest.raises(DestinationRefused) as caught:
            fetch(allowed_listener.url(host="media.invalid"))
        assert caught.value.code == "DESTINATION_REFUSED"
        assert "10.0.0.1" in caught.value.message
        assert allowed_listener.connections() == 0


def test_an_allowed_name_is_resolved_once_and_connected_by_address_keeping_its_host(
    guard, resolver
):
    with Site({"/cat.png": image()}) as site:
        resolver["media.invalid"] = ["127.0.0.1"]
        with fetch(site.url("/cat.png", host="media.invalid")) as media:
            assert read_all(media) == b"\x89PNG fake image"
    assert site.seen == [("/cat.png", f"media.invalid:{site.port}")]
    assert resolver.lookups["media.invalid"] == 1


def test_a_refused_loopback_listener_is_never_connected_to(guard, resolver):
    with Listener() as refused:
        resolver["media.invalid"] = [REFUSED_LOOPBACK]
        for url in (
            refused.url(),
            refused.url(host="media.invalid"),
            refused.url(host=f"[::ffff:{REFUSED_LOOPBACK}]"),
        ):
            with pytest.raises(DestinationRefused):
                fetch(url)
        with pytest.raises(DestinationRefused), adapters_http.client(refused.url("")) as api:
            adapters_http.request(api, "GET", "/")
        api = adapters_http.client(f"http://media.invalid:{refused.port}")  # a name: resolved
        with api, pytest.raises(DestinationRefused):
            adapters_http.request(api, "POST", "/hooks/x", json={})
        assert refused.connections() == 0


def test_credentials_in_a_url_are_refused_before_connecting(guard):
    with Listener("127.0.0.1") as listener:  # on the allow-list: only the credentials are wrong
        with pytest.raises(DestinationRefused) as caught:
            adapters_http.client(f"http://user:hunter2@127.0.0.1:{listener.port}")
        assert "hunter2" not in caught.value.message
        # A URL a network's answer hands out (an upload URL) passes the same check.
        with adapters_http.client(listener.url("")) as api, pytest.raises(DestinationRefused):
            adapters_http.request(
                api,
                "PUT",
                listener.url("/upload").replace("http://", "http://user:hunter2@"),
                content=b"bytes",
            )
        assert listener.connections() == 0


@pytest.mark.parametrize("certified", ["media.invalid", "other.invalid"])
def test_https_connects_to_the_checked_address_with_sni_and_certificate_on_the_name(
    guard, resolver, monkeypatch, tmp_path, certified
):
    ca = issue(tmp_path, "egress test CA", ca=True)
    leaf = issue(tmp_path, certified, ca, san=[x509.DNSName(certified)])
    monkeypatch.setenv("SSL_CERT_FILE", ca.cert_path)  # the clients' trust (httpx reads it)
    server_names: list[str | None] = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(leaf.cert_path, leaf.key_path)
    tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    resolver["media.invalid"] = ["127.0.0.1"]
    with Site({"/cat.png": image()}, tls=tls) as site:
        url = site.url("/cat.png", host="media.invalid", scheme="https")
        if certified == "media.invalid":
            with fetch(url) as media:
                assert read_all(media) == b"\x89PNG fake image"
            assert site.seen == [("/cat.png", f"media.invalid:{site.port}")]
        else:  # the certificate is checked against the URL's name, not the address
            with pytest.raises(Exception, match="MEDIA_UNAVAILABLE") as caught:
                fetch(url)
            assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
            assert site.seen == []
    assert server_names and set(server_names) == {"media.invalid"}


def test_a_redirect_to_a_refused_address_is_refused_without_connecting_to_it(guard):
    with Listener() as refused, Site({"/cat.png": redirect(refused.url())}) as site:
        with pytest.raises(DestinationRefused) as caught:
            fetch(site.url("/cat.png"))
        assert "redirect" in caught.value.message and REFUSED_LOOPBACK in caught.value.message
        assert site.paths() == ["/cat.png"]
        assert refused.connections() == 0


@pytest.mark.parametrize(("redirects", "follows"), [(5, True), (6, False)])
def test_at_most_5_redirects_are_followed(guard, redirects, follows):
    routes: dict[str, Route] = {"/final.png": image()}
    with Site(routes) as site:
        hops = [f"/hop/{n}" for n in range(redirects)] + ["/final.png"]
        for here, there in itertools.pairwise(hops):
            routes[here] = redirect(site.url(there))  # absolute URLs, as servers send them
        if follows:
            with fetch(site.url(hops[0])) as media:
                assert read_all(media) == b"\x89PNG fake image"
            assert site.paths() == hops
        else:
            with pytest.raises(PermanentError) as caught:
                fetch(site.url(hops[0]))
            assert caught.value.code == "TOO_MANY_REDIRECTS"
            assert site.paths() == hops[:6]  # the first and 5 redirects: never the 6th


def _peak_while(action: Callable[[], object]) -> int:
    """Bytes allocated by Python at most (all threads) while ``action`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        try:
            action()
        finally:
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def test_a_download_streams_to_a_file_not_to_memory(guard):
    guard(max_bytes=16 * MIB)
    total = 8 * MIB
    downloads: list[adapters_http.Download] = []
    with Site({}) as site:
        site.routes["/big.png"] = stream(total, declare=False, site=site)
        peak = _peak_while(lambda: downloads.append(fetch(site.url("/big.png"))))
    with downloads[0] as media:
        assert media.size == total
        digest = hashlib.sha256()
        for chunk in media.body():
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(b"\xab" * total).hexdigest()
    assert peak < 2 * MIB, f"the download held {peak} bytes in memory at once"


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_a_download_over_the_cap_fails_without_holding_it(guard, declare):
    guard(max_bytes=MIB)
    caught: list[PermanentError] = []

    def download() -> None:
        try:
            fetch(site.url("/huge.png"))
        except PermanentError as exc:
            caught.append(exc)

    with Site({}) as site:
        site.routes["/huge.png"] = stream(256 * MIB, declare=declare, site=site)
        peak = _peak_while(download)
    [error] = caught
    assert error.code == "MEDIA_TOO_LARGE"
    assert "POSTS_MEDIA_MAX_BYTES" in error.message
    assert peak < 4 * MIB, f"the download held {peak} bytes in memory at once"
    assert site.sent < 64 * MIB  # it stopped reading: the server could not send it all


def test_a_declared_length_over_the_cap_is_refused_before_reading_the_body(guard, monkeypatch):
    """The answer's head says it is too large: no byte of its body is waited for
    (this one never sends any; reading it would end at the download's deadline)."""
    guard(max_bytes=MIB)
    monkeypatch.setattr(adapters_http, "DOWNLOAD_DEADLINE", 3.0)
    done = threading.Event()

    def head_only(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(2 * MIB))
        handler.end_headers()
        handler.wfile.flush()
        done.wait(10)  # until the test ends: the body never comes

    with Site({"/huge.png": head_only}) as site:
        try:
            with pytest.raises(PermanentError) as caught:
                fetch(site.url("/huge.png"))
        finally:
            done.set()
    assert caught.value.code == "MEDIA_TOO_LARGE"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (SECRET.encode(), "text/plain"),
        (
            b'{"error": "' + SECRET.encode() + b'", "message": "' + SECRET.encode() + b'"}',
            "application/json",
        ),
    ],
    ids=["text", "json"],
)
def test_a_media_url_refusal_names_its_status_never_its_body(guard, body, content_type):
    forbidden = lambda handler: answer(handler, 403, body, Content_Type=content_type)
    with Site({"/cat.png": forbidden}) as site, pytest.raises(PermanentError) as caught:
        fetch(site.url("/cat.png"))
    assert caught.value.code == "MEDIA_UNAVAILABLE"
    assert "403" in caught.value.message and "Forbidden" in caught.value.message
    assert SECRET not in caught.value.message


def test_a_network_refusal_quotes_its_error_field_capped_never_its_body():
    import httpx

    def refusal(status: int, **kwargs) -> PermanentError:
        response = httpx.Response(
            status, request=httpx.Request("POST", "http://127.0.0.1/x"), **kwargs
        )
        with pytest.raises(PermanentError) as caught:
            adapters_http.check(response)
        return caught.value

    long = refusal(400, json={"error": "invalid_request", "message": "m" * 5000})
    assert long.code == "400" and long.message.startswith("mmm") and len(long.message) <= 200
    coded = refusal(403, json={"errors": [{"code": 453, "extra": SECRET}]})
    assert coded.message == "453"
    for answer_body in (
        {"content": SECRET.encode()},
        {"json": {"data": SECRET}},
        {"json": [SECRET]},
        {"html": f"<h1>{SECRET}</h1>"},
    ):
        kwargs = (
            {"content": answer_body["html"].encode(), "headers": {"content-type": "text/html"}}
            if "html" in answer_body
            else answer_body
        )
        plain = refusal(401, **kwargs)
        assert (plain.code, plain.message) == ("401", "Unauthorized")


# ====================================================================== through the service


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    fake = FakeMastodon(token=TOKEN, username="alice").start()
    try:
        yield fake
    finally:
        fake.stop()


def _publish(api, tenant, account_id: str, media_url: str = "") -> pb.Post:
    media = [pb.Media(url=media_url, kind=pb.MEDIA_KIND_IMAGE, mime_type="image/png")]
    return api.create(
        tenant,
        account_id=account_id,
        post_type=pb.POST_TYPE_POST,
        status=pb.STATUS_CHANGE_PUBLISH,
        items=[item("Hello", media if media_url else [])],
    )


def _failed(api, tenant, post: pb.Post) -> pb.Post:
    return api.wait_status(tenant, post.post_id, pb.POST_STATUS_FAILED)


def test_media_on_a_loopback_listener_off_the_allow_list_fails_without_connecting(
    api, make_tenant, mastodon, resolver
):
    tenant = make_tenant("egress-media")
    account = tenant.add_account(
        "mastodon", sandbox=False, handle="alice", base_url=mastodon.base_url, token=TOKEN
    )
    with Listener() as refused:
        resolver["media.invalid"] = [REFUSED_LOOPBACK]  # the in-process worker resolves it
        failed = _failed(
            api, tenant, _publish(api, tenant, account, refused.url(host="media.invalid"))
        )
        assert refused.connections() == 0
    assert failed.error.code == "DESTINATION_REFUSED"
    assert REFUSED_LOOPBACK in failed.error.message and "loopback" in failed.error.message
    assert mastodon.live == []


def test_a_webhook_or_account_url_on_a_refused_address_fails_without_connecting(api, make_tenant):
    tenant = make_tenant("egress-accounts")
    with Listener() as refused:
        hook = tenant.add_account(
            "webhook",
            sandbox=False,
            handle="consumer",
            base_url=refused.url("/hooks/posts"),
            token="hook-secret",
        )
        instance = tenant.add_account(
            "mastodon", sandbox=False, handle="alice", base_url=refused.url(""), token=TOKEN
        )
        failures = [
            _failed(api, tenant, _publish(api, tenant, account)) for account in (hook, instance)
        ]
        assert refused.connections() == 0
    for failed in failures:
        assert failed.error.code == "DESTINATION_REFUSED"
        assert "loopback" in failed.error.message


def test_a_redirect_to_a_refused_address_fails_the_post_without_connecting(
    api, make_tenant, mastodon
):
    tenant = make_tenant("egress-redirect")
    account = tenant.add_account(
        "mastodon", sandbox=False, handle="alice", base_url=mastodon.base_url, token=TOKEN
    )
    with Listener() as refused, Site({"/cat.png": redirect(refused.url())}) as site:
        failed = _failed(api, tenant, _publish(api, tenant, account, site.url("/cat.png")))
        assert refused.connections() == 0
    assert failed.error.code == "DESTINATION_REFUSED"
    assert site.paths() == ["/cat.png"]
    assert mastodon.live == []


def test_media_over_the_cap_fails_the_post(api, make_tenant, mastodon):
    tenant = make_tenant("egress-cap")
    account = tenant.add_account(
        "mastodon", sandbox=False, handle="alice", base_url=mastodon.base_url, token=TOKEN
    )
    with Site({}) as site:
        site.routes["/big.png"] = stream(4 * SERVER_MEDIA_MAX_BYTES, declare=False)
        failed = _failed(api, tenant, _publish(api, tenant, account, site.url("/big.png")))
    assert failed.error.code == "MEDIA_TOO_LARGE"
    assert [a.path for a in mastodon.log if a.path.startswith("/api/v2/media")] == []


def test_a_media_refusal_never_shows_its_body_in_the_posts_error(api, make_tenant, mastodon):
    tenant = make_tenant("egress-secret")
    account = tenant.add_account(
        "mastodon", sandbox=False, handle="alice", base_url=mastodon.base_url, token=TOKEN
    )
    forbidden = lambda handler: answer(handler, 403, SECRET.encode(), Content_Type="text/plain")
    with Site({"/cat.png": forbidden}) as site:
        failed = _failed(api, tenant, _publish(api, tenant, account, site.url("/cat.png")))
    assert failed.error.code == "MEDIA_UNAVAILABLE"
    assert "403" in failed.error.message
    assert SECRET not in failed.error.message
    assert SECRET not in str(api.get(tenant, failed.post_id))
