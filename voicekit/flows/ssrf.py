"""Refusing webhook destinations inside the server's own network (SSRF guard).

A flow file is configuration, but the URLs in it are templates: a variable the caller
filled can end up in a host name. Every destination is resolved first and each address
checked; the request then goes to the address that was checked (the host name still in
the ``Host`` header and the TLS server name), so a DNS answer that changes between the
check and the connection cannot slip a private address through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

import anyio

__all__ = ["Resolver", "blocked_reason", "resolve_public"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class RefusedDestination(Exception):
    """A webhook destination the flow may not call."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return blocked_reason(mapped)
    checks = (  # the most telling name first: 127.0.0.1 is private too, but loopback
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


async def resolve_public(host: str, port: int, resolve: Resolver = system_resolver) -> str:
    """The address to connect to for ``host``; raises :class:`RefusedDestination` when any
    address it resolves to is not public (a name with one private answer is refused
    whole: which answer a client picks is not ours to know)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = await resolve(host, port)
        except OSError as exc:
            raise RefusedDestination(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
    if not addresses:
        raise RefusedDestination(f"{host} has no address")
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None:
            raise RefusedDestination(
                f"{host} resolves to a {reason} address; set allow_private_networks = true "
                "in the flow to allow it"
            )
    return str(addresses[0])
