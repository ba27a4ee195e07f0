"""Where a webhook may be sent: public http(s) addresses only (no SSRF).

A URL is refused when its scheme is not http(s) or when its host resolves to an address
that is not globally routable — loopback, link-local (169.254.169.254, the cloud metadata
service), private, shared, reserved, multicast — unless the host is allow-listed
(`HUB_COMMUNICATION_WEBHOOK_ALLOWED_HOSTS`, `..._WEBHOOK_ALLOW_PRIVATE`). The check runs
when a webhook is set and again before every POST, and the POST goes to the address that
was checked (DNS rebinding cannot swap it between the check and the connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from subgraphs.communication.settings import CommunicationSettings

SCHEMES = {"http": 80, "https": 443}


class DestinationRefused(ValueError):
    """The URL may never be called (scheme, or a non-public address)."""


class DestinationUnresolved(OSError):
    """The host does not resolve (now): worth trying again later."""


@dataclass(frozen=True)
class Destination:
    url: str  # the URL with its host replaced by the checked address
    host_header: str
    sni_hostname: str | None


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(raw.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def resolve(url: str, settings: CommunicationSettings) -> Destination:
    """The checked address to POST `url` to; DestinationRefused / DestinationUnresolved."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise DestinationRefused(f"the URL is malformed: {error}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise DestinationRefused("the URL must be an absolute http(s) URL")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise DestinationRefused("the URL's port is not a number from 0 to 65535") from None
    host = parts.hostname.lower()
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DestinationUnresolved(f"{host} does not resolve: {error}") from None
    addresses = [_address(str(info[4][0])) for info in found]
    if not addresses:
        raise DestinationUnresolved(f"{host} does not resolve")
    trusted = settings.webhook_allow_private or host in settings.webhook_hosts_allowed
    if not trusted:
        for address in addresses:
            if not address.is_global or address.is_multicast:
                raise DestinationRefused(
                    f"{host} resolves to {address}, which is not a public address"
                )
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    pinned = parts._replace(netloc=netloc).geturl()
    return Destination(pinned, host_header, host if parts.scheme == "https" else None)
