"""A redacted context value never reaches the log, also not through an error message.

A caveat that cannot use the context fails the call, and the log keeps the failed
evaluation as a denial with the error. Such an error can quote context values (a
parameter of the wrong type, a value used as a map key). The caller's own error names
the value (it is theirs); the record, whose context has that value redacted, must not.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2
from tests.api.helpers import Api, obj, rel, subj

from .helpers import LogSetup, channel_to, running

SCHEMA = """
definition user {}
caveat typed(ssn int) { ssn > 0 }
caveat keyed(ssn string, allowed map<bool>) { allowed[ssn] }
caveat carded(card int) { card > 0 }
definition document {
    relation typed_viewer: user with typed
    relation keyed_viewer: user with keyed
    relation card_viewer: user with carded
    permission typed = typed_viewer
    permission keyed = keyed_viewer
    permission carded = card_viewer
}
"""

# (permission, context, the secret in it): a mistyped parameter whose value is the
# secret, a lookup that fails on the secret as a key, and a mistyped parameter holding
# a redacted member.
CASES = (
    ("typed", {"ssn": "123-45-6789"}, "123-45-6789"),
    ("keyed", {"ssn": "987-65-4321", "allowed": {}}, "987-65-4321"),
    ("carded", {"card": {"number": "4111111111111111"}}, "4111111111111111"),
)


def _check(permission: str, context: dict[str, Any]) -> permissions_pb2.CheckRequest:
    request = permissions_pb2.CheckRequest(
        tenant="acme", resource=obj("document:d"), permission=permission, subject=subj("user:a")
    )
    request.consistency.fully_consistent = True
    request.context.update(context)
    return request


def _records(log_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(log_dir.rglob("*.jsonl"))
        if path.name != "checkpoints.jsonl"
        for line in path.read_bytes().splitlines()
    ]


async def test_an_error_quoting_a_redacted_value_is_logged_without_it(
    log_setup: LogSetup,
) -> None:
    redact = "$.ssn,$.card.number"
    async with (
        asyncio.timeout(120),
        running(log_setup, log_redact=redact) as app,
        channel_to(app) as channel,
    ):
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await api.touch(
            "acme",
            "document:d#typed_viewer@user:a[typed]",
            "document:d#keyed_viewer@user:a[keyed]",
            "document:d#card_viewer@user:a[carded]",
        )
        for permission, context, secret in CASES:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await api.permissions.Check(_check(permission, context))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert secret in (raised.value.details() or "")  # the caller's error names it

        bulk = permissions_pb2.CheckBulkRequest(tenant="acme")
        bulk.consistency.fully_consistent = True
        for permission, context, _ in CASES:
            item = bulk.items.add(resource=obj("document:d"), permission=permission)
            item.subject.CopyFrom(subj("user:a"))
            item.context.update(context)
        reply = await api.permissions.CheckBulk(bulk)
        for item, (_, _, secret) in zip(reply.items, CASES, strict=True):
            assert secret in item.error.message

    failed = [r for r in _records(log_setup.log_dir) if r["explanation"].get("error")]
    assert [(r["kind"], r["action"]) for r in failed] == [
        (kind, permission) for kind in ("check", "check_bulk_item") for permission, _, _ in CASES
    ]
    for record in failed:
        assert record["decision"] == "DENIED"
        assert record["explanation"]["error"] == "CaveatError"
        assert record["redacted"]  # the context had a redacted value ...
        assert "caveat `" in record["explanation"]["message"]  # ... and the error is kept
    for path in log_setup.log_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for _, _, secret in CASES:
                assert secret.encode() not in data, f"{secret} in {path}"


@pytest.mark.parametrize(
    "contextual",
    [
        'document:d#typed_viewer@user:a[typed:{"ssn":"555-12-3456"}]',  # a mistyped value
        'document:d#typed_viewer@user:a[typed:{"ssn":1,"pin":"555-12-3456"}]',  # no `pin`
    ],
)
async def test_a_contextual_relationship_s_caveat_context_stays_off_disk(
    log_setup: LogSetup, contextual: str
) -> None:
    """The log holds contextual relationships only as a digest, so an error quoting a value
    of their caveat context (or the relationship, context and all) must not write it out
    either."""
    async with (
        asyncio.timeout(120),
        running(log_setup, log_redact="$.ssn") as app,
        channel_to(app) as channel,
    ):
        api = Api(channel)
        await api.write_schema(SCHEMA)
        request = _check("typed", {})
        request.contextual_relationships.add().CopyFrom(rel(contextual))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.permissions.Check(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "555-12-3456" in (raised.value.details() or "")
    failed = [r for r in _records(log_setup.log_dir) if r["explanation"].get("error")]
    assert len(failed) == 1
    assert failed[0]["contextual_relationships_digest"]
    for path in log_setup.log_dir.rglob("*"):
        if path.is_file():
            assert b"555-12-3456" not in path.read_bytes(), path
