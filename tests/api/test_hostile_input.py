"""Hostile or broken input is INVALID_ARGUMENT with a short message: never INTERNAL or
UNKNOWN, never a traceback in the log, never a trailer big enough to look like overload.

Bodies that do not decode are sent with a raw (bytes in, bytes out) call, as a client with
a broken serializer or an attacker would send them.
"""

from __future__ import annotations

import logging
import math

import grpc
import pytest
from google.protobuf import struct_pb2

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    core_pb2,
    permissions_pb2,
    relationships_pb2,
    tenancy_pb2,
)
from tests.api.helpers import DENIED, Api, obj, rel, subj
from tests.api.test_bad_input import field_violations, rejected

CHECK = "/authz.v1.PermissionsService/Check"

# A rejected value is echoed at most once in the message and once in the BadRequest detail,
# each capped: the whole trailer stays far below what clients accept by default (8 KiB).
MAX_TRAILER_BYTES = 2048


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def trailer_bytes(err: grpc.aio.AioRpcError) -> int:
    size = len((err.details() or "").encode())
    for key, value in err.trailing_metadata() or ():
        size += len(key) + len(value)
    return size


def check_request(**fields: object) -> permissions_pb2.CheckRequest:
    request = permissions_pb2.CheckRequest(
        tenant="acme", resource=obj("document:x"), permission="view", subject=subj("user:a")
    )
    for name, value in fields.items():
        if isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    return request


async def raw_check(channel: grpc.aio.Channel, body: bytes) -> grpc.aio.AioRpcError:
    call = channel.unary_unary(CHECK)(body)
    return await rejected(call)


async def still_answers(api: Api) -> None:
    assert (await api.check("acme", "document:x", "view", "user:a")).decision == DENIED


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_a_non_finite_number_in_a_context_is_invalid(api: Api, number: float) -> None:
    request = check_request()
    request.context.update({"limits": {"n": number}})
    err = await rejected(api.permissions.Check(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == "context.limits.n"


@pytest.mark.parametrize("seconds", [-62135596801, 253402300800, 2**62])
async def test_an_out_of_range_expiration_is_invalid(api: Api, seconds: int) -> None:
    relationship = rel("document:x#viewer@user:a")
    relationship.expires_at.seconds = seconds
    update = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
        relationship=relationship,
    )
    err = await rejected(
        api.relationships.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(tenant="acme", updates=[update])
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == "updates[0].relationship.expires_at"
    await still_answers(api)


async def test_an_out_of_range_time_in_grant_reach_is_invalid(
    api: Api, channel: grpc.aio.Channel
) -> None:
    from authz_service.api.gen.authz.v1 import tenancy_pb2_grpc

    relationship = rel("document:x#viewer@user:a")
    relationship.expires_at.seconds = 2**62
    err = await rejected(
        tenancy_pb2_grpc.TenancyServiceStub(channel).GrantReach(
            tenancy_pb2.GrantReachRequest(tenant="acme", relationship=relationship)
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == "relationship.expires_at"


@pytest.mark.parametrize("field", ["start_time", "end_time"])
async def test_an_out_of_range_query_time_is_invalid(channel: grpc.aio.Channel, field: str) -> None:
    from authz_service.api.gen.authz.v1 import audit_pb2_grpc

    request = audit_pb2.QueryDecisionsRequest(tenant="acme")
    getattr(request, field).seconds = -(2**62)
    err = await rejected(_first(audit_pb2_grpc.AuditServiceStub(channel).QueryDecisions(request)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == field


async def _first(stream: object) -> object:
    async for item in stream:  # type: ignore[attr-defined]
        return item
    return None


def _invalid_utf8_tenant() -> bytes:
    good = check_request(tenant="acme").SerializeToString()
    return good + b"\x0a\x03\xff\xfe\xfd"  # field 1 (tenant) again, as bytes that are not UTF-8


def _deep_context(levels: int) -> bytes:
    inner = struct_pb2.Struct()
    for _ in range(levels):
        outer = struct_pb2.Struct()
        outer.fields["a"].struct_value.CopyFrom(inner)
        inner = outer
    request = check_request()
    request.context.CopyFrom(inner)
    return request.SerializeToString()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xff\xff\xff\xff\xff", id="garbage"),
        pytest.param(b"\x0a\x10acme", id="truncated"),
        pytest.param(_invalid_utf8_tenant(), id="invalid-utf8"),
        pytest.param(_deep_context(40), id="context-40-deep"),
    ],
)
async def test_a_body_that_does_not_decode_is_invalid_without_a_traceback(
    api: Api,
    channel: grpc.aio.Channel,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
) -> None:
    with caplog.at_level(logging.DEBUG):
        err = await raw_check(channel, body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "DecodeError" not in (err.details() or "")
    assert len(err.details() or "") < 200, err.details()
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    await still_answers(api)


async def test_a_huge_id_is_echoed_capped_with_the_rule(api: Api) -> None:
    huge = "x" * 10_000 + " "
    request = check_request(
        resource=core_pb2.ObjectReference(object_type="document", object_id=huge)
    )
    err = await rejected(api.permissions.Check(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.details() or ""
    assert trailer_bytes(err) < MAX_TRAILER_BYTES, trailer_bytes(err)
    assert "x" * 64 in details
    assert "(10001 bytes)" in details
    assert "1-1024 characters of [A-Za-z0-9/_|=+-]" in details
    assert field_violations(err)[0][0] == "resource.object_id"


async def test_a_huge_id_in_a_relationship_text_is_echoed_capped(api: Api) -> None:
    huge = "document:" + "y" * 20_000 + "#viewer@user:a"
    update = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
        relationship=core_pb2.Relationship(
            resource=core_pb2.ObjectReference(object_type="document", object_id=huge),
            relation="viewer",
            subject=subj("user:a"),
        ),
    )
    err = await rejected(
        api.relationships.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(tenant="acme", updates=[update])
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer_bytes(err) < MAX_TRAILER_BYTES, trailer_bytes(err)


@pytest.mark.parametrize(
    "request_fields",
    [
        pytest.param({"tenant": "demo\n"}, id="tenant"),
        pytest.param(
            {"resource": core_pb2.ObjectReference(object_type="document", object_id="x\n")},
            id="object-id",
        ),
        pytest.param(
            {"resource": core_pb2.ObjectReference(object_type="document\n", object_id="x")},
            id="object-type",
        ),
        pytest.param({"permission": "view\n"}, id="permission"),
    ],
)
async def test_a_trailing_newline_is_not_part_of_a_valid_name(
    api: Api, request_fields: dict[str, object]
) -> None:
    err = await rejected(api.permissions.Check(check_request(**request_fields)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()


@pytest.mark.parametrize("reason", [" ", "\t\n  "])
async def test_a_whitespace_reason_for_impersonation_is_invalid(api: Api, reason: str) -> None:
    request = check_request(actor=subj("user:admin"), reason=reason)
    err = await rejected(api.permissions.Check(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == "reason"


async def test_a_request_above_the_size_limit_is_refused_and_the_server_carries_on(
    api: Api, channel: grpc.aio.Channel
) -> None:
    # docs/api.md: 8 MiB per request message; gRPC itself refuses larger ones.
    request = check_request(reason="r" * (8 * 1024 * 1024 + 1))
    err = await raw_check(channel, request.SerializeToString())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    await still_answers(api)


async def test_a_reason_above_its_limit_is_invalid(api: Api) -> None:
    request = check_request(actor=subj("user:admin"), reason="r" * 1025)
    err = await rejected(api.permissions.Check(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field_violations(err)[0][0] == "reason"
