"""The egress guard's decisions: where a connection made for a user may go.

Every connection the workers make on a caller's behalf (media downloads, webhook
URLs, accounts' base URLs) passes two checks, both decided here by pure
functions, so that the API and the workers decide alike (``service/`` never
imports ``workers/``; the connecting side is ``workers/adapters/http.py``):

- ``url_refusal``: what the URL alone shows. Only ``http`` and ``https``, no
  userinfo (``user:password@``), a host, at most MAX_URL_LENGTH characters for
  media URLs, and no IP literal in a refused range. The API refuses such a
  media URL with INVALID_FIELD; a worker refuses it (or a redirect to it)
  without connecting.
- ``resolution_refusal``: the host resolved once, EVERY address it resolves to
  checked; the worker then connects to a checked address, never resolving again.

Refused (``address_refusal``): loopback, private (RFC 1918 and the other
special-purpose ranges Python's ``ipaddress`` knows), link-local (169.254.0.0/16,
where cloud metadata services answer), carrier-grade NAT (100.64.0.0/10),
unique-local (fc00::/7), site-local, multicast, unspecified, reserved, and any
of those reached through IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (64:ff9b::/96)
or 6to4 (2002::/16) IPv6 forms. POSTS_EGRESS_ALLOW lets some through: a
``host`` or ``host:port`` as the URL names it, or a CIDR block containing the
address (``service.config.EgressAllow``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable

from service import config as service_config
from service.config import Config, EgressAllow

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The longest media URL accepted.
MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: An IPv4 address in the forms inet_aton takes (and resolvers with it): 127.1,
#: 2130706433, 0x7f.0.0.1, 0177.0.0.1.
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")


# ---------------------------------------------------------------------- settings

_configured: Config | None = None


def configure(config: Config) -> None:
    """Makes ``config``'s POSTS_EGRESS_ALLOW and POSTS_MEDIA_MAX_BYTES this
    process's; until then they are read from the environment (service.config)."""
    global _configured
    _configured = config


def allow() -> EgressAllow:
    """This process's POSTS_EGRESS_ALLOW."""
    if _configured is not None:
        return _configured.egress_allow
    return service_config.egress_allow()


def media_max_bytes() -> int:
    """This process's POSTS_MEDIA_MAX_BYTES."""
    if _configured is not None:
        return _configured.media_max_bytes
    return service_config.media_max_bytes()


# ---------------------------------------------------------------------- decisions


def url_refusal(
    url: str, allowed: EgressAllow, max_length: int | None = MAX_URL_LENGTH
) -> str | None:
    """Why the URL alone is refused, or None when only resolving its host can tell.

    ``max_length``: None for URLs the networks' own APIs hand out (upload URLs),
    which may be longer than a media URL.
    """
    refusal = form_refusal(url, max_length)
    if refusal:
        return refusal
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""  # never empty: form_refusal refuses a URL without a host
    address = literal_address(host)
    if address is None:
        return None
    return _refused(host, parts.port or DEFAULT_PORTS[parts.scheme.lower()], [address], allowed)


def form_refusal(url: str, max_length: int | None = MAX_URL_LENGTH) -> str | None:
    """Why the URL's form is refused (not http(s), no host, credentials, too
    long), or None: what ``url_refusal`` checks before the address."""
    if max_length is not None and len(url) > max_length:
        return f"at most {max_length} characters"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # reading a malformed port raises ValueError
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in SCHEMES or not parts.netloc:
        return "an http(s) URL is required"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@)"
    if not parts.hostname:
        return "a host is required"
    return None


def resolution_refusal(
    host: str, port: int, addresses: Iterable[IPAddress | str], allowed: EgressAllow
) -> str | None:
    """Why a connection to ``host``:``port`` is refused, given every address the
    host resolved to (one refused address is enough), or None when it may go."""
    checked = []
    for address in addresses:
        try:
            checked.append(ipaddress.ip_address(address))
        except ValueError:
            return f"{host} resolved to {address!r}, not an IP address"
    if not checked:
        return f"{host} resolved to no address"
    return _refused(host, port, checked, allowed)


def address_refusal(address: IPAddress) -> str | None:
    """The kind of non-public address ``address`` is ("loopback", …), or None when
    it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded, form = _embedded_ipv4(address)
        if embedded is not None:
            kind = address_refusal(embedded)
            return f"{form} {kind}" if kind else None
    return _non_public_kind(address)


def _non_public_kind(address: IPAddress) -> str | None:
    """``address_refusal`` of an address taken as it is (no embedded IPv4 looked at)."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _CGNAT:
        return "carrier-grade NAT"
    if address in _UNIQUE_LOCAL:
        return "unique-local"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def is_allowed(host: str, port: int, address: IPAddress, allowed: EgressAllow) -> bool:
    """Whether POSTS_EGRESS_ALLOW names ``host`` (with ``port``, or any port) or a
    CIDR block containing ``address``."""
    names = {_normal_host(host), str(address)}
    embedded, _ = (
        _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else (None, "")
    )
    if embedded is not None:
        names.add(str(embedded))
    for name, allowed_port in allowed.hosts:
        if name in names and allowed_port in (None, port):
            return True
    candidates = [address] if embedded is None else [address, embedded]
    return any(
        candidate in network
        for network in allowed.networks
        for candidate in candidates
        if candidate.version == network.version
    )


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, in any form a resolver reads as one
    (``127.1``, ``2130706433``, ``0x7f.0.0.1`` too); None for a name."""
    host = host.rstrip(".") if not host.startswith("[") else host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host.lower()):
        try:  # only parses: inet_aton never looks anything up
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _refused(host: str, port: int, addresses: list[IPAddress], allowed: EgressAllow) -> str | None:
    for address in addresses:
        kind = address_refusal(address)
        if kind and not is_allowed(host, port, address, allowed):
            shown = "" if _normal_host(host) == str(address) else f"{host} resolves to "
            return (
                f"refused destination: {shown}{address} ({kind} address, not on POSTS_EGRESS_ALLOW)"
            )
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64, 6to4), and the form."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None, ""


def _normal_host(host: str) -> str:
    host = host.lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
