"""Bad input gets INVALID_ARGUMENT (or FAILED_PRECONDITION) naming the field and value,
and a rejected write changes nothing."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    relationships_pb2,
    schema_pb2,
)
from tests.api.helpers import ALLOWED, DENIED, Api, obj, rel, subj


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def field_violations(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return [(v.field, v.description) for v in bad.field_violations]
    return []


async def rejected(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value


@pytest.mark.parametrize(
    ("resource", "permission", "subject", "field", "needle"),
    [
        (obj("document:x"), "view", subj("user:a"), "", ""),
        (
            core_pb2.ObjectReference(object_type="Doc!", object_id="x"),
            "view",
            subj("user:a"),
            "resource.object_type",
            "Doc!",
        ),
        (
            core_pb2.ObjectReference(object_type="document", object_id="a b"),
            "view",
            subj("user:a"),
            "resource.object_id",
            "a b",
        ),
        (obj("document:x"), "fly", subj("user:a"), "permission", "fly"),
        (obj("spaceship:x"), "view", subj("user:a"), "resource", "spaceship"),
    ],
)
async def test_malformed_checks_name_the_field_and_value(
    api: Api,
    resource: core_pb2.ObjectReference,
    permission: str,
    subject: core_pb2.SubjectReference,
    field: str,
    needle: str,
) -> None:
    call = api.permissions.Check(
        permissions_pb2.CheckRequest(
            tenant="acme", resource=resource, permission=permission, subject=subject
        )
    )
    if not field:
        assert (await call).decision == DENIED  # well-formed control case
        return
    err = await rejected(call)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (err.details() or "")
    violations = field_violations(err)
    assert violations, err.details()
    assert violations[0][0].startswith(field), violations


async def test_missing_tenant_is_invalid(api: Api) -> None:
    err = await rejected(
        api.permissions.Check(
            permissions_pb2.CheckRequest(
                resource=obj("document:x"), permission="view", subject=subj("user:a")
            )
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err)[0][0] == "tenant"


async def test_a_bad_update_rejects_the_whole_write(api: Api) -> None:
    ok = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
        relationship=rel("document:x#viewer@user:a"),
    )
    bad = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
        relationship=rel("document:x#viewer@folder:f"),
    )
    err = await rejected(
        api.relationships.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(tenant="acme", updates=[ok, bad])
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err)[0][0] == "updates[1].relationship"
    assert "folder:f" in (err.details() or "")
    reply = await api.check("acme", "document:x", "view", "user:a", full=True)
    assert reply.decision == DENIED


async def test_context_that_does_not_match_the_caveat_is_invalid(api: Api) -> None:
    await api.write_schema(
        """
        definition user {}
        caveat limit(n int) { n < 3 }
        definition document { relation viewer: user with limit
            permission view = viewer }
        """,
        force=True,
    )
    await api.touch("acme", "document:x#viewer@user:a[limit]")
    err = await rejected(
        api.check("acme", "document:x", "view", "user:a", full=True, context={"n": "many"})
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "many" in (err.details() or "")


async def test_an_oversize_batch_is_refused(api: Api) -> None:
    item = permissions_pb2.CheckBulkRequestItem(
        resource=obj("document:x"), permission="view", subject=subj("user:a")
    )
    err = await rejected(
        api.permissions.CheckBulk(
            permissions_pb2.CheckBulkRequest(tenant="acme", items=[item] * 1001)
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err)[0][0] == "items"


async def test_a_schema_change_that_orphans_data_is_refused_unless_forced(api: Api) -> None:
    await api.touch("acme", "document:x#banned@user:a")
    smaller = """
        definition user {}
        definition document { relation viewer: user
            permission view = viewer }
    """
    err = await rejected(api.write_schema(smaller))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "banned" in (err.details() or "")
    assert await api.write_schema(smaller, force=True)


async def test_a_malformed_schema_names_line_and_column(api: Api) -> None:
    err = await rejected(
        api.write_schema("definition user {}\ndefinition doc { relation viewer: usr }", force=True)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2:" in (err.details() or "")
    assert "`usr`" in (err.details() or "")


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        (core_pb2.RelationshipFilter(resource_type="document", relation="v" * 65), "relation"),
        (core_pb2.RelationshipFilter(resource_type="document", relation="Viewer!"), "relation"),
        (
            core_pb2.RelationshipFilter(resource_type="document", subject_relation="x" * 65),
            "subject_relation",
        ),
        (
            core_pb2.RelationshipFilter(resource_type="document", subject_relation="mem ber"),
            "subject_relation",
        ),
    ],
    ids=["relation-long", "relation-chars", "subject-relation-long", "subject-relation-chars"],
)
async def test_a_malformed_relation_in_a_filter_is_invalid(
    api: Api, flt: core_pb2.RelationshipFilter, field: str
) -> None:
    """Names in filters follow the rules of names everywhere: such a filter once matched
    nothing, and a delete with it deleted nothing, silently."""
    await api.touch("acme", "document:x#viewer@user:a")
    read = relationships_pb2.ReadRelationshipsRequest(tenant="acme", filter=flt)
    delete = relationships_pb2.DeleteRelationshipsRequest(tenant="acme", filter=flt)
    precondition = relationships_pb2.Precondition(
        operation=relationships_pb2.Precondition.OPERATION_MUST_NOT_MATCH, filter=flt
    )
    write = relationships_pb2.WriteRelationshipsRequest(tenant="acme", preconditions=[precondition])
    for call, path in [
        (_drain(api.relationships.ReadRelationships(read)), f"filter.{field}"),
        (api.relationships.DeleteRelationships(delete), f"filter.{field}"),
        (api.relationships.WriteRelationships(write), f"preconditions[0].filter.{field}"),
    ]:
        err = await rejected(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert [f for f, _ in field_violations(err)] == [path]
        assert "not a valid relation" in (err.details() or "")


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


_CAVEAT_SCHEMA = """
definition user {}
caveat ccc(n int) { %s }
definition document { relation viewer: user with ccc }
"""


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("(" * 100 + "n" + ")" * 100 + " < 3", "at 1:97: nesting too deep"),
        ("n in " + "[" * 200 + "]" * 200, "at 1:102: nesting too deep"),
        ("n == 1 '" + "z" * 3000 + "'", "at 1:8: extraneous input ''zzz"),
        ("n == 1 " + "y" * 3000, "at 1:8: extraneous input 'yyy"),
    ],
    ids=["parentheses", "lists", "long-string", "long-name"],
)
async def test_a_caveat_syntax_error_says_where_and_why_plainly(
    api: Api, expression: str, reason: str
) -> None:
    """The CEL library's own representation (`OtherError(ParseError { source: None, ...
    })`) once made the message, and a long quoted input ran it to the 1 KiB cut."""
    request = schema_pb2.WriteSchemaRequest(schema=_CAVEAT_SCHEMA % expression, force=True)
    err = await rejected(api.schema.WriteSchema(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details = err.details() or ""
    assert f"caveat `ccc` has a syntax error {reason}" in details
    for internal in ("Error(", "ParseError", "source: None", "Recursion limit"):
        assert internal not in details
    assert len(details) < 400, details


async def test_a_caveat_calling_an_undefined_function_is_refused(api: Api) -> None:
    """`startswith` for `startsWith` once compiled, and then every Check through the caveat
    failed INVALID_ARGUMENT blaming the request's context: a schema bug no request fixes."""
    expression = "string(n).startswith('1')"
    request = schema_pb2.WriteSchemaRequest(schema=_CAVEAT_SCHEMA % expression, force=True)
    err = await rejected(api.schema.WriteSchema(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details() == (
        "3:8: caveat `ccc` calls undefined function `startswith` at 1:11 "
        "(did you mean `startsWith`?)"
    )


async def test_a_caveat_dividing_doubles_is_accepted_and_nan_never_allows(api: Api) -> None:
    """`used / quota < 0.9` was refused as a type error: the write-time check ran it on
    zeros, and 0.0 / 0.0 is NaN, which CEL cannot order. SpiceDB accepts it; at check
    time a NaN fails the caveat there too ("NaN values cannot be ordered")."""
    await api.write_schema(
        """
        definition user {}
        caveat under_quota(used double, quota double) { used / quota < 0.9 }
        definition document { relation viewer: user with under_quota
            permission view = viewer }
        """,
        force=True,
    )
    await api.touch("acme", "document:x#viewer@user:a[under_quota]")
    check = ("acme", "document:x", "view", "user:a")
    reply = await api.check(*check, full=True, context={"used": 1, "quota": 2})
    assert reply.decision == ALLOWED
    err = await rejected(api.check(*check, full=True, context={"used": 0, "quota": 0}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NaN" in (err.details() or ""), err.details()
