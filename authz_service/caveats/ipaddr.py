"""The `ipaddress` caveat type and its `in_cidr` method.

The CEL library only accepts its own value kinds (no custom Python objects), so an
`ipaddress` travels through CEL as its packed form: 4 bytes for IPv4, 16 for IPv6. Bytes
rather than the text form keep an address from comparing equal to, or being usable as, a
string. `in_cidr` is registered as a CEL function; CEL treats `ip.in_cidr(c)` as
`in_cidr(ip, c)`, so the SpiceDB member-call syntax works unchanged.

Containment is modelled on Go's `netip.Prefix.Contains`, the Go standard library's
answer for a Go-based SpiceDB: host bits in the CIDR are allowed (`10.1.2.3/8` means
`10.0.0.0/8`), and an address never lies in a prefix of the other family (an
IPv4-mapped IPv6 address is IPv6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["IP_FUNCTIONS", "SAMPLE_IP_FUNCTIONS", "in_cidr", "pack_ip_address"]


def pack_ip_address(text: str) -> bytes:
    """The packed form of an IPv4 or IPv6 address; ValueError when `text` is not one."""
    return ipaddress.ip_address(text).packed


@lru_cache(maxsize=4096)
def _parse_cidr(cidr: str) -> tuple[int, int, int]:
    """(address length in bytes, network bits, mask) for fast integer containment."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"`{cidr}` is not a valid cidr") from None
    mask = int(network.netmask)
    return network.max_prefixlen // 8, int(network.network_address) & mask, mask


def _check_operands(address: Any, cidr: Any) -> None:
    if not isinstance(address, bytes) or len(address) not in (4, 16):
        raise TypeError("in_cidr must be called on an ipaddress")
    if not isinstance(cidr, str):
        raise TypeError("in_cidr expects a string argument")


def in_cidr(address: Any, cidr: Any) -> bool:
    """`address.in_cidr(cidr)`: whether the address lies in the CIDR block."""
    _check_operands(address, cidr)
    length, network, mask = _parse_cidr(cidr)
    if len(address) != length:
        return False
    return int.from_bytes(address, "big") & mask == network


def _in_cidr_types_only(address: Any, cidr: Any) -> bool:
    _check_operands(address, cidr)
    return False


IP_FUNCTIONS: dict[str, Callable[..., Any]] = {"in_cidr": in_cidr}
"""CEL functions registered on every caveat that calls them."""

SAMPLE_IP_FUNCTIONS: dict[str, Callable[..., Any]] = {"in_cidr": _in_cidr_types_only}
"""Stand-ins for the write-time sample check: the sample cidr `""` is invalid, and the
library logs a warning for every failing Python function, so only operand types are
checked there."""
