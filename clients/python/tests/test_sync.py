"""The blocking client: same API, same behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from authz_client import (
    AuthzClient,
    Decision,
    InvalidArgumentError,
    RelationshipFilter,
    UnavailableError,
)
from client_support import free_port


class SyncRecorder(grpc.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    def __init__(self) -> None:
        self.codes: list[grpc.StatusCode] = []
        self.metadata: list[Any] = []
        self.requests: list[Any] = []

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        self.metadata.append(tuple(client_call_details.metadata or ()))
        self.requests.append(request)
        outcome = continuation(client_call_details, request)
        self.codes.append(outcome.code())
        return outcome


def test_check_write_and_read_your_writes(server: str, unique: str) -> None:
    recorder = SyncRecorder()
    with AuthzClient(server, tenant="demo", api_key="k-123", interceptors=[recorder]) as client:
        assert client.check("document:readme", "view", "user:alice").allowed
        assert client.check("document:roadmap", "view", "user:bob").decision is Decision.DENIED

        written = client.write_relationships([f"document:{unique}#viewer@user:erin"])
        assert client.check(f"document:{unique}", "view", "user:erin").allowed
        assert recorder.requests[-1].consistency.at_least_as_fresh.token == written.token

        only_this = RelationshipFilter(resource_type="document", resource_ids=(unique,))
        assert [r.text for r in client.read_relationships(only_this)] == [
            f"document:{unique}#viewer@user:erin"
        ]
        found = {r.resource_id for r in client.lookup_resources("document", "view", "user:erin")}
        assert unique in found
        assert client.delete_relationships(only_this).deleted_count == 1

    assert all(("authorization", "Bearer k-123") in m for m in recorder.metadata)


def test_errors_are_typed(server: str) -> None:
    with (
        AuthzClient(server, tenant="demo") as client,
        pytest.raises(InvalidArgumentError) as caught,
    ):
        client.check("document:readme", "frobnicate", "user:alice")
    assert [v.field for v in caught.value.field_violations] == ["permission"]


def test_retries_then_gives_up() -> None:
    recorder = SyncRecorder()
    with (
        AuthzClient(
            f"127.0.0.1:{free_port()}", retries=2, backoff=(0.001, 0.002), interceptors=[recorder]
        ) as client,
        pytest.raises(UnavailableError),
    ):
        client.check("document:readme", "view", "user:alice", tenant="demo")
    assert recorder.codes == [grpc.StatusCode.UNAVAILABLE] * 3


def test_tls_client_against_a_plaintext_server_fails_closed(server: str) -> None:
    with (
        AuthzClient(server, tenant="demo", tls=True, retries=0) as client,
        pytest.raises(UnavailableError),
    ):
        client.check("document:readme", "view", "user:alice")
