"""Abuse limits on authentication: backoff after failures, aggregated warnings (docs/auth.md).

Failed authentications are counted per peer (the caller's IP address from
`context.peer()`, without the port)
and per key id. Past `threshold` failures, the peer or key id is blocked for a backoff
that doubles with every further failure, up to `max_backoff_s`; a blocked caller is
refused (RESOURCE_EXHAUSTED) before its key is looked up or its secret compared, so a
flood costs neither database round trips nor hashing. A blocked key id refuses only
peers that have failed before: key ids are not secret, and an attacker must not be able
to lock a key's holder out by guessing at its id. A subject with no failure for
`max_backoff_s` starts again from zero. A good key from another peer is never affected.

Failures are logged at WARNING, at most one line per peer per `log_interval_s`, with
the number of failures since the previous line and the last key id tried (never the
secret): 10,000 failures write one line, not 10,000.

The tables are bounded (`max_entries` each; the oldest entry is dropped), so spraying
random key ids or addresses cannot grow memory without bound.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from authz_service.errors import LimitExceeded, echo

__all__ = ["FailureLimiter", "http_peer", "peer_address"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0  # time of the last failure
    blocked_until: float = 0.0
    unreported: int = 0  # failures not yet in a log line (per peer only)
    reported_at: float = -math.inf
    key_id: str = ""


def http_peer(host: str, port: int) -> str:
    """An HTTP client (console, SCIM) named as gRPC names peers (`ipv4:10.0.0.1:5123`,
    `ipv6:[::1]:5123`), so that its failures share the count of its address's gRPC
    calls. An IPv4 client of a dual-stack listener is `ipv4:`, as gRPC says."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # not an address (a Unix socket's name): counted as it is
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        return f"ipv4:{address}:{port}"
    return f"ipv6:[{address}]:{port}"


def peer_address(peer: str | None) -> str | None:
    """The peer's address without its port, spelled one way: a new connection must not
    start a new count, and a console sign-in (console/app.py) must share the count of
    the gRPC calls from its address (the console caps its sessions per address by it
    too). `ipv4:10.0.0.1:5123` -> `ipv4:10.0.0.1`;
    `ipv6:%5B::1%5D:5123` (grpc percent-encodes the brackets) and `ipv6:[::1]:5123` ->
    `ipv6:[::1]`. A peer without a port is its address already (never cut at its last
    `:`, which would leave `ipv4`: one count for every client)."""
    if peer is None:
        return None
    if peer.startswith("ipv4:"):
        return "ipv4:" + peer[5:].partition(":")[0]
    if peer.startswith("ipv6:"):
        host = unquote(peer[5:])
        if host.startswith("["):
            host = host[1:].partition("]")[0]
        return f"ipv6:[{host}]"
    return peer


class FailureLimiter:
    """Per-peer and per-key-id failure counters with exponential backoff."""

    BASE_BACKOFF_S: Final = 1.0

    def __init__(
        self,
        *,
        threshold: int = 10,
        max_backoff_s: float = 60.0,
        log_interval_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self._threshold = threshold
        self._max_backoff = max_backoff_s
        self._interval = log_interval_s
        self._max = max_entries
        self._clock = clock
        self._on_failure = on_failure
        # Oldest insertion first; OrderedDicts, because a plain dict walks past the holes
        # its evicted first entries leave (cache/lru.py), which a flood of peers makes.
        self._peers: OrderedDict[str, _Failures] = OrderedDict()
        self._key_ids: OrderedDict[str, _Failures] = OrderedDict()

    def check(self, peer: str | None, key_id: str | None) -> None:
        """LimitExceeded if the peer or the key id is in its backoff; counted as `limited`."""
        now = self._clock()
        peer = peer_address(peer)
        blocked = self._blocked(self._peers, peer, now)
        what = "peer"
        if blocked is None and (peer is None or self._failed_lately(peer, now)):
            # A key id under attack refuses only callers that have failed before: its
            # holder, on a clean address, still gets its secret compared.
            blocked, what = self._blocked(self._key_ids, key_id, now), "api key"
        if blocked is None:
            return
        self._on_failure("limited")
        if peer is not None:
            self._report(peer, key_id or "", now)
        wait = math.ceil(blocked - now)
        raise LimitExceeded(f"too many failed authentications from this {what}; retry in {wait} s")

    def _failed_lately(self, peer: str, now: float) -> bool:
        """Whether `peer` failed within `max_backoff_s`: past that it starts again from
        zero (`_count`), and is as clean as a peer that never failed."""
        entry = self._peers.get(peer)
        return entry is not None and entry.count > 0 and now - entry.last <= self._max_backoff

    @staticmethod
    def _blocked(table: dict[str, _Failures], name: str | None, now: float) -> float | None:
        entry = table.get(name) if name is not None else None
        if entry is None or entry.blocked_until <= now:
            return None
        return entry.blocked_until

    def failed(self, peer: str | None, key_id: str | None) -> None:
        """Count one refused authentication (`refused` in the metric)."""
        now = self._clock()
        peer = peer_address(peer)
        self._on_failure("refused")
        if peer is not None:
            self._count(self._peers, peer, now)
            self._report(peer, key_id or "", now)
        if key_id is not None:
            self._count(self._key_ids, key_id, now)

    def _entry(self, table: OrderedDict[str, _Failures], name: str) -> _Failures:
        entry = table.get(name)
        if entry is None:
            if len(table) >= self._max:
                table.popitem(last=False)  # the oldest insertion
            entry = table[name] = _Failures()
        return entry

    def _count(self, table: OrderedDict[str, _Failures], name: str, now: float) -> None:
        entry = self._entry(table, name)
        if now - entry.last > self._max_backoff:
            entry.count = 0  # quiet long enough: forgiven
        entry.count += 1
        entry.last = now
        over = entry.count - self._threshold
        if over >= 0:
            backoff = self.BASE_BACKOFF_S * 2 ** min(over, 32)
            entry.blocked_until = now + min(backoff, self._max_backoff)

    def _report(self, peer: str, key_id: str, now: float) -> None:
        entry = self._entry(self._peers, peer)
        entry.unreported += 1
        entry.key_id = key_id
        if now - entry.reported_at < self._interval:
            return
        blocked = entry.blocked_until - now
        state = f"blocked for {blocked:.1f} s" if blocked > 0 else "not blocked"
        log.warning(
            "failed authentication: %d from peer %s since the last report (last key id `%s`); %s",
            entry.unreported,
            echo(peer),
            echo(key_id) if key_id else "-",
            state,
        )
        entry.unreported = 0
        entry.reported_at = now
