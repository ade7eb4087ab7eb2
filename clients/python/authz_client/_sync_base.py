"""The blocking client's channel, stubs and call runners: the twin of _aio_base.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import grpc

from authz_client import _core, _results
from authz_client._core import ClientCore, PemSource
from authz_client._ops import Collect, Stream, Unary
from authz_client._stubs import (
    audit_pb2_grpc,
    core_pb2,
    keys_pb2_grpc,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2_grpc,
    service_accounts_pb2_grpc,
    tenancy_pb2_grpc,
    tenants_pb2_grpc,
)
from authz_client.retry import Backoff
from authz_client.types import WatchEvent

__all__ = ["SyncBase", "Timeout"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")
Timeout = float | Literal["default"] | None


class SyncBase:
    """Construction and call mechanics of AuthzClient (see its docstring)."""

    def __init__(
        self,
        target: str,
        *,
        tenant: str | None = None,
        api_key: str | None = None,
        tls: bool | grpc.ChannelCredentials = False,
        tls_ca: PemSource | None = None,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        tls_server_name: str | None = None,
        retries: int = 3,
        backoff: tuple[float, float] | Backoff = (0.05, 1.0),
        timeout: float | None = 5.0,
        max_batch: int = _core.MAX_BATCH,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._core = ClientCore(
            tenant=tenant, api_key=api_key, retries=retries, backoff=backoff, timeout=timeout
        )
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._max_batch = max_batch
        credentials, tls_options = _core.channel_security(
            tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, tls_server_name=tls_server_name
        )
        channel_options = [*_core.CHANNEL_OPTIONS, *tls_options, *options]
        channel = (
            grpc.insecure_channel(target, channel_options)
            if credentials is None
            else grpc.secure_channel(target, credentials, channel_options)
        )
        self._channel = grpc.intercept_channel(channel, *interceptors)
        self._permissions = permissions_pb2_grpc.PermissionsServiceStub(self._channel)
        self._relationships = relationships_pb2_grpc.RelationshipsServiceStub(self._channel)
        self._schema = schema_pb2_grpc.SchemaServiceStub(self._channel)
        self._stubs: dict[str, Any] = {
            "PermissionsService": self._permissions,
            "RelationshipsService": self._relationships,
            "SchemaService": self._schema,
            "TenantService": tenants_pb2_grpc.TenantServiceStub(self._channel),
            "KeysService": keys_pb2_grpc.KeysServiceStub(self._channel),
            "TenancyService": tenancy_pb2_grpc.TenancyServiceStub(self._channel),
            "AuditService": audit_pb2_grpc.AuditServiceStub(self._channel),
            "ServiceAccountsService": service_accounts_pb2_grpc.ServiceAccountsServiceStub(
                self._channel
            ),
        }

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def last_token(self, tenant: str | None = None) -> str | None:
        """The token of this client's last write in the tenant, if any."""
        return self._core.last_token(self._core.tenant(tenant))

    # -- runners ----------------------------------------------------------------------------

    def _run(self, op: Unary[T], timeout: Timeout) -> T:
        method = getattr(self._stubs[op.service], op.method)
        response = self._unary(method, op.request, timeout=timeout, idempotent=op.idempotent)
        if op.tenant is not None and op.written is not None:
            self._core.remember(op.tenant, op.written(response))
        return op.convert(response)

    def _run_stream(self, op: Stream[T], timeout: Timeout) -> Iterator[T]:
        method = getattr(self._stubs[op.service], op.method)
        return self._stream(method, op.request, op.convert, timeout=timeout)

    def _collect(self, op: Collect[T], timeout: Timeout) -> T:
        method = getattr(self._stubs[op.service], op.method)
        deadline = self._core.deadline(timeout)
        retry = 0
        while True:
            call = method(op.request, timeout=deadline.remaining(), metadata=self._core.metadata)
            try:
                return op.convert(list(call))
            except grpc.RpcError as exc:
                delay = self._core.retry_delay(exc, retry, idempotent=True, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            finally:
                call.cancel()
            retry += 1
            time.sleep(delay)  # backoff between attempts, not synchronisation

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        timeout: Timeout,
        idempotent: bool = True,
    ) -> Resp:
        deadline = self._core.deadline(timeout)
        retry = 0
        while True:
            try:
                return method(request, timeout=deadline.remaining(), metadata=self._core.metadata)
            except grpc.RpcError as exc:
                delay = self._core.retry_delay(exc, retry, idempotent=idempotent, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            retry += 1
            time.sleep(delay)  # backoff between attempts, not synchronisation

    def _stream(
        self,
        method: grpc.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        convert: Callable[[Resp], T],
        *,
        timeout: Timeout,
    ) -> Iterator[T]:
        """Stream converted responses; after UNAVAILABLE, resume from the last cursor (or
        start again if nothing was yielded yet)."""
        deadline = self._core.deadline(timeout)
        limit: int = getattr(request, "limit", 0)
        cursor = core_pb2.Cursor()
        yielded = retry = 0
        while _core.resume(request, cursor, limit, yielded):
            call = method(request, timeout=deadline.remaining(), metadata=self._core.metadata)
            try:
                for response in call:
                    yield convert(response)
                    yielded += 1
                    cursor = getattr(response, "cursor", cursor)
                return
            except grpc.RpcError as exc:
                # Without a cursor, a stream that already yielded cannot go on where it
                # stopped: reading it again would repeat results, so the drop is raised.
                resumable = not yielded or _core.has_cursor(request)
                delay = self._core.retry_delay(exc, retry, idempotent=resumable, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            finally:
                # A consumer that stops early must not leave the call open. (grpc-stubs
                # leaves the stream call's cancel() untyped.)
                call.cancel()  # type: ignore[no-untyped-call]
            retry += 1
            time.sleep(delay)  # backoff between attempts, not synchronisation

    def _watch(
        self, request: relationships_pb2.WatchRequest, *, timeout: Timeout
    ) -> Iterator[WatchEvent]:
        """Stream revisions; after a drop, reopen after the last revision received."""
        deadline = self._core.deadline(timeout)
        retry = 0
        while True:
            call = self._relationships.Watch(
                request, timeout=deadline.remaining(), metadata=self._core.metadata
            )
            try:
                for response in call:
                    retry = 0  # the budget is for consecutive failures, not a lifetime
                    event = _results.watch_event(response)
                    request.after.token = event.token
                    yield event
                # A watch has no natural end: a server that closes it is going away
                # (draining for a restart), which is the same as a drop.
                delay = self._core.resume_delay(retry, deadline)
            except grpc.RpcError as exc:
                delay = self._core.retry_delay(exc, retry, idempotent=True, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            finally:
                call.cancel()  # type: ignore[no-untyped-call]
            if delay is None:
                raise self._core.ended("Watch")
            retry += 1
            time.sleep(delay)  # backoff between attempts, not synchronisation
