"""Abuse limits on authentication (docs/auth.md "Failed attempts"): backoff per peer and
per key id, aggregated WARNING lines, the failure metric, the unknown-key negative cache.

The flood runs over real gRPC, with the good client's connection coming from 127.0.0.2
(a relay), so the server sees two peer addresses; the backoff arithmetic is shown at the
Authenticator level with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from authz_service.api.auth import Authenticator
from authz_service.api.gen.authz.v1 import schema_pb2, schema_pb2_grpc
from authz_service.api.limits import FailureLimiter
from authz_service.app import App
from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.errors import LimitExceeded, Unauthenticated
from authz_service.store.memory_keys import MemoryKeyStore
from tests.api.conftest import server_settings, start_app

FLOOD = 10_000
POOL = 64
LIMITER_LOG = "authz_service.api.limits"


class CountingKeys(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return await super().get(key_id)


def _wrong_token(good: str) -> str:
    """`good` with its secret replaced: a known key id, a wrong secret."""
    prefix, key_id, _ = good.split("_", 2)
    return f"{prefix}_{key_id}_{'A' * 43}"


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, auth_fail_threshold=10, auth_backoff_max_s=60.0
    )
    running = await start_app(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def _read_schema(channel: grpc.aio.Channel, token: str) -> grpc.StatusCode:
    stub = schema_pb2_grpc.SchemaServiceStub(channel)
    try:
        await stub.ReadSchema(
            schema_pb2.ReadSchemaRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@asynccontextmanager
async def _from_other_address(port: int) -> AsyncIterator[int]:
    """A TCP relay to 127.0.0.1:`port` whose outgoing connections come from 127.0.0.2, so
    the server sees another peer address (grpc clients cannot choose their source)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.2", 0)
        )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_ten_thousand_wrong_keys_from_one_peer_are_limited_and_logged_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    record, good = new_key(tenant="*", scopes=[Scope.CHECK])
    await app.store.keys.create(record)
    wrong = _wrong_token(good)
    caplog.set_level(logging.WARNING, logger=LIMITER_LOG)
    codes: dict[grpc.StatusCode, int] = {}
    good_codes: list[grpc.StatusCode] = []
    started = time.monotonic()
    async with (
        _from_other_address(app.port) as relay_port,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as bad_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{relay_port}") as good_channel,
    ):
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(FLOOD):
            queue.put_nowait(i)

        async def attacker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                code = await _read_schema(bad_channel, wrong)
                codes[code] = codes.get(code, 0) + 1
                if i % 1000 == 999:  # the good key, ten times during the flood
                    good_codes.append(await _read_schema(good_channel, good))

        async with asyncio.timeout(300):  # bounded: a hang fails, it does not stall
            await asyncio.gather(*(attacker() for _ in range(POOL)))
        good_codes.append(await _read_schema(good_channel, good))
    elapsed = time.monotonic() - started
    assert sum(codes.values()) == FLOOD
    assert grpc.StatusCode.OK not in codes  # deny by default, limited or not
    assert codes.get(grpc.StatusCode.RESOURCE_EXHAUSTED, 0) > FLOOD * 0.9
    # Authenticated and answered: NOT_FOUND is ReadSchema's answer while no schema exists.
    assert set(good_codes) == {grpc.StatusCode.NOT_FOUND}
    assert len(good_codes) == FLOOD // 1000 + 1
    lines = [r for r in caplog.records if r.name == LIMITER_LOG]
    assert all(r.levelno == logging.WARNING for r in lines)
    assert all("127.0.0.1" in r.getMessage() for r in lines)
    assert all("AAAA" not in r.getMessage() for r in lines)  # never the secret
    # One line per peer per interval (60 s); the flood's peer is one ip:port.
    assert 1 <= len(lines) <= 1 + int(elapsed // 60)
    assert record.key_id in lines[0].getMessage()
    exposition = app.telemetry.metrics.registry.get_sample_value
    refused = exposition("authz_auth_failures_total", {"reason": "refused"})
    limited = exposition("authz_auth_failures_total", {"reason": "limited"})
    assert refused is not None
    assert limited is not None
    assert refused + limited == FLOOD
    assert limited == codes[grpc.StatusCode.RESOURCE_EXHAUSTED]


async def test_backoff_doubles_per_peer_and_spares_other_peers() -> None:
    now = [0.0]
    keys = CountingKeys()
    limiter = FailureLimiter(threshold=3, max_backoff_s=60, clock=lambda: now[0])
    auth = Authenticator(keys, negative_ttl_s=0, limiter=limiter, clock=lambda: now[0])
    record, good = new_key(tenant="acme", scopes=[Scope.CHECK])
    other, other_good = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    await keys.create(other)
    wrong = f"Bearer {_wrong_token(good)}"
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(wrong, peer="ipv4:10.0.0.1:5000")
    reads = keys.reads
    # Blocked: refused before the store or the secret is looked at, even a good key.
    with pytest.raises(LimitExceeded, match="peer"):
        await auth.authenticate(f"Bearer {other_good}", peer="ipv4:10.0.0.1:5000")
    assert keys.reads == reads
    # Another peer with another key is untouched.
    assert (await auth.authenticate(f"Bearer {other_good}", peer="ipv4:10.0.0.2:1")).key_id
    now[0] += 1.01  # the first backoff is 1 s
    with pytest.raises(Unauthenticated):
        await auth.authenticate(wrong, peer="ipv4:10.0.0.1:5000")
    now[0] += 1.5  # the second failure past the threshold doubled it to 2 s
    with pytest.raises(LimitExceeded):
        await auth.authenticate(f"Bearer {other_good}", peer="ipv4:10.0.0.1:5000")
    now[0] += 0.6
    assert await auth.authenticate(f"Bearer {other_good}", peer="ipv4:10.0.0.1:5000")


async def _one_key_limited() -> tuple[list[float], Authenticator, ApiKey, str]:
    """An authenticator over one key, limited after 3 failures, on a clock `now[0]`."""
    now = [0.0]
    keys = MemoryKeyStore()
    limiter = FailureLimiter(threshold=3, max_backoff_s=60, clock=lambda: now[0])
    auth = Authenticator(keys, limiter=limiter, clock=lambda: now[0])
    record, good = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    return now, auth, record, good


async def test_a_key_id_under_attack_refuses_failed_peers_but_not_its_holder() -> None:
    now, auth, record, good = await _one_key_limited()
    for i in range(3):  # three peers, one guess each: no peer is over its threshold
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {_wrong_token(good)}", peer=f"ipv4:10.0.0.{i}:1")
    # A peer that failed before is refused unchecked, even with the right secret ...
    with pytest.raises(LimitExceeded, match="api key"):
        await auth.authenticate(f"Bearer {good}", peer="ipv4:10.0.0.1:2")
    # ... the holder on a clean address is not locked out by the guessing.
    assert (await auth.authenticate(f"Bearer {good}", peer="ipv4:10.0.0.9:1")).key_id
    # A re-check (an open stream's, a console session's) is the holder's too: never held off.
    rechecked = await auth.authenticate(f"Bearer {good}", fresh=True, recheck=True)
    assert rechecked.key_id == record.key_id
    assert (await auth.authenticate(f"Bearer {good}", recheck=True)).key_id == record.key_id
    now[0] += 1.01
    assert await auth.authenticate(f"Bearer {good}", peer="ipv4:10.0.0.1:2")


async def test_a_holder_whose_address_failed_long_ago_is_not_locked_out() -> None:
    # docs/auth.md: a subject without a failure for max_backoff_s "starts again from
    # zero", and a key id under attack refuses only peers that have failed before. A
    # peer stayed "failed before" for good: one typo a minute earlier let an attacker
    # elsewhere lock the holder out of its own key, indefinitely.
    now, auth, record, good = await _one_key_limited()
    holder = "ipv4:10.0.0.2:1"
    with pytest.raises(Unauthenticated):  # the holder's one old mistake
        await auth.authenticate(f"Bearer {_wrong_token(good)}", peer=holder)
    now[0] += 65.0
    for i in range(3):  # then guessing at its key id from elsewhere
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {_wrong_token(good)}", peer=f"ipv4:10.9.0.{i}:1")
    assert (await auth.authenticate(f"Bearer {good}", peer=holder)).key_id == record.key_id


async def test_unknown_key_ids_are_answered_from_a_negative_cache() -> None:
    now = [0.0]
    keys = CountingKeys()
    limiter = FailureLimiter(threshold=1_000_000, clock=lambda: now[0])
    auth = Authenticator(keys, negative_ttl_s=2.0, limiter=limiter, clock=lambda: now[0])
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK])  # not stored yet
    for _ in range(100):
        with pytest.raises(Unauthenticated, match="invalid api key"):
            await auth.authenticate(f"Bearer {token}", peer="ipv4:10.0.0.1:1")
    assert keys.reads == 1
    # Created through this replica's API: usable at once, the negative entry dropped.
    await keys.create(record)
    auth.changed(record.key_id)
    assert (await auth.authenticate(f"Bearer {token}")).key_id == record.key_id
    assert keys.reads == 2
    # An id unknown past the TTL is asked again (a key created elsewhere shows up).
    other, other_token = new_key(tenant="acme", scopes=[Scope.CHECK])
    with pytest.raises(Unauthenticated):
        await auth.authenticate(f"Bearer {other_token}")
    await keys.create(other)
    now[0] += 2.01
    assert (await auth.authenticate(f"Bearer {other_token}")).key_id == other.key_id
    assert keys.reads == 4


async def test_the_failure_tables_stay_bounded() -> None:
    limiter = FailureLimiter(threshold=1, max_entries=5, log_interval_s=3600)
    for i in range(50):
        limiter.failed(f"ipv4:10.0.{i}.1:1", f"key{i:08d}")
    assert len(limiter._peers) <= 5
    assert len(limiter._key_ids) <= 5


def test_a_peer_is_counted_by_its_address_whatever_its_port_or_spelling() -> None:
    """grpc writes IPv6 peers `ipv6:%5B::1%5D:PORT`; `ipv6:[::1]:PORT` and a peer without
    a port name the same address. Before: `ipv6:[::1]` and `ipv6:%5B::1%5D` were two
    counts, and every peer without a port (the console's) was one count: `ipv4`."""
    limiter = FailureLimiter(threshold=2, log_interval_s=3600, clock=lambda: 0.0)
    limiter.failed("ipv6:%5B::1%5D:5000", None)
    limiter.failed("ipv6:[::1]:6000", None)
    for spelling in ("ipv6:[::1]:7000", "ipv6:%5B::1%5D:7001", "ipv6:[::1]"):
        with pytest.raises(LimitExceeded):
            limiter.check(spelling, None)
    limiter.check("ipv6:[::2]:5000", None)  # other addresses are untouched
    limiter.check("ipv6:%5B::1:0%5D:5000", None)
    limiter.check("ipv4:10.0.0.1:5000", None)
    limiter.failed("ipv4:10.0.0.1", None)
    limiter.failed("ipv4:10.0.0.1:5001", None)
    with pytest.raises(LimitExceeded):
        limiter.check("ipv4:10.0.0.1:5002", None)
    limiter.check("ipv4:10.0.0.2", None)
    limiter.check("ipv4:10.0.0.2:5000", None)


async def test_calls_without_a_key_are_refused_but_never_block_the_address() -> None:
    """A client without its key (a probe, a service not configured yet) behind a shared
    address must not lock out the other callers there; it presents nothing to guess."""
    now = [0.0]
    keys = MemoryKeyStore()
    limiter = FailureLimiter(threshold=3, max_backoff_s=60, clock=lambda: now[0])
    auth = Authenticator(keys, negative_ttl_s=0, limiter=limiter, clock=lambda: now[0])
    record, good = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    for authorization in [None, "", "Basic dXNlcjpwYXNz"] * 10:
        with pytest.raises(Unauthenticated):
            await auth.authenticate(authorization, peer="ipv4:10.0.0.1:5000")
    assert await auth.authenticate(f"Bearer {good}", peer="ipv4:10.0.0.1:5001")
    # Presenting something that is not a key is a failed attempt, as before.
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await auth.authenticate("Bearer not-a-key", peer="ipv4:10.0.0.1:5002")
    with pytest.raises(LimitExceeded, match="peer"):
        await auth.authenticate(f"Bearer {good}", peer="ipv4:10.0.0.1:5003")
