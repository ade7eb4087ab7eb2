"""Subject lifecycle and impersonation in the decision path (memory store)."""

from __future__ import annotations

import pytest

from authz_service.api.explain import deny_reason
from authz_service.api.gen.authz.v1 import core_pb2
from authz_service.engine import CheckResult, Decision, ExplainNode
from authz_service.errors import InvalidArgument
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    FrozenContext,
    ObjectRef,
    RelationshipFilter,
    SubjectRef,
    parse_relationship,
    parse_subject,
)
from authz_service.service.audit import CallInfo
from authz_service.tenancy import SubjectStatus
from tests.tenancy.helpers import CALL, World, item, world

T = "acme"
ALICE = ObjectRef("user", "alice")
SAM = SubjectRef("user", "sam")
DATA = (
    "folder:sub#parent@folder:invoices",
    "invoice:inv1#folder@folder:sub",
    "invoice:inv1#owner@user:alice",
    "folder:pub#viewer@user:*",
    "invoice:pubinv#folder@folder:pub",
    "group:finance#member@user:alice",
    "folder:invoices#viewer@group:finance#member",
    "user:alice#support@user:sam",
)


async def populated() -> World:
    w = await world()
    await w.touch(T, *DATA)
    await w.tenancy.create_role(T, "billing", "", [("invoice", "pay")], CALL)
    await w.tenancy.create_binding(
        T, "billing", SubjectRef("user", "alice"), ObjectRef("folder", "invoices"), CALL
    )
    return w


def reason(result: CheckResult) -> int:
    return deny_reason(result)


def kinds(node: ExplainNode | None) -> list[str]:
    if node is None:
        return []
    return [node.kind] + [k for child in node.children for k in kinds(child)]


def fresh(revision: int) -> Consistency:
    return Consistency(ConsistencyMode.AT_LEAST_AS_FRESH, revision)


async def test_suspension_denies_everything_and_reactivation_restores() -> None:
    w = await populated()
    questions = [
        "invoice:inv1#view@user:alice",
        "invoice:inv1#pay@user:alice",
        "invoice:pubinv#view@user:alice",
        "group:finance#member@user:alice",
    ]
    for q in questions:
        assert (await w.check(T, q)).decision is Decision.ALLOWED, q
    revision, previous = await w.lifecycle.suspend(T, ALICE, "scim: active=false", CALL)
    assert previous is SubjectStatus.ACTIVE
    for q in questions:
        result = await w.check(T, q)
        assert result.decision is Decision.DENIED, q
        assert reason(result) == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
    # the revision before the suspension still answers as it did (replay)
    before = await w.snap(T)
    old = type(before)(T, revision - 1, before.schema, before.now)
    assert (await w.permissions.evaluate(old, item(questions[0]))).decision is Decision.ALLOWED
    # other subjects are untouched; a subject set containing alice is not alice
    assert (await w.check(T, "invoice:pubinv#view@user:bob")).decision is Decision.ALLOWED
    record, _ = await w.lifecycle.status(T, ALICE, Consistency())
    assert (record.status, record.reason) == (SubjectStatus.SUSPENDED, "scim: active=false")
    _, previous = await w.lifecycle.reactivate(T, ALICE, "scim: active=true", CALL)
    assert previous is SubjectStatus.SUSPENDED
    for q in questions:
        assert (await w.check(T, q)).decision is Decision.ALLOWED, q
    record, _ = await w.lifecycle.status(T, ALICE, Consistency())
    assert (record.status, record.reason) == (SubjectStatus.ACTIVE, "scim: active=true")


async def test_cached_answers_end_at_the_suspension_token() -> None:
    w = await populated()
    question = item("invoice:inv1#pay@user:alice")
    head = await w.store.head_revision(T)
    first = await w.permissions.check(T, question, fresh(head), CALL)
    again = await w.permissions.check(T, question, fresh(head), CALL)
    assert (first.result.decision, again.cache_hit) == (Decision.ALLOWED, True)
    revision, _ = await w.lifecycle.suspend(T, ALICE, "", CALL)
    for _ in range(2):
        outcome = await w.permissions.check(T, question, fresh(revision), CALL)
        assert outcome.result.decision is Decision.DENIED
        assert outcome.revision >= revision
    assert outcome.cache_hit  # the denial is cached too, at its own revision


async def test_lists_and_lookups_leave_inactive_subjects_out() -> None:
    w = await populated()
    await w.touch(T, "invoice:inv1#owner@user:bob", "group:finance#member@user:cat")
    revision, _ = await w.lifecycle.suspend(T, ALICE, "", CALL)
    ctx, at = FrozenContext(), fresh(revision)
    listed = await w.permissions.list_permissions(
        T, ObjectRef("invoice", "inv1"), parse_subject("user:alice"), ctx, at, CALL
    )
    assert {r.decision for _, r in listed.permissions} == {Decision.DENIED}
    _, stream = await w.permissions.lookup_resources(
        T, "invoice", "view", parse_subject("user:alice"), ctx, at, CALL
    )
    assert [r async for r in stream] == []
    _, stream = await w.permissions.lookup_subjects(
        T, ObjectRef("invoice", "inv1"), "view", "user", "", ctx, at, CALL
    )
    assert [r.subject_id async for r in stream] == ["bob", "cat"]
    _, stream = await w.permissions.lookup_subjects(
        T, ObjectRef("invoice", "pubinv"), "view", "user", "", ctx, at, CALL, limit=1
    )
    found = [r async for r in stream]
    assert [(r.subject_id, r.excluded_subject_ids) for r in found] == [("*", ("alice",))]


async def test_deprovisioning_removes_what_names_the_subject_in_one_write() -> None:
    w = await populated()
    await w.touch(T, "folder:x#viewer@group:finance#member", "invoice:i9#owner@user:alicex")
    await w.lifecycle.suspend(T, ALICE, "first", CALL)
    head = await w.store.head_revision(T)
    done = await w.lifecycle.deprovision(T, ALICE, "scim: deleted", CALL)
    assert done.revision == head + 1
    assert done.previous is SubjectStatus.SUSPENDED
    assert [str(r) for r in done.relationships] == [
        "group:finance#member@user:alice",
        "invoice:inv1#owner@user:alice",
    ]
    assert [(b.role, str(b.subject)) for b in done.bindings] == [("billing", "user:alice")]
    assert (await w.check(T, "invoice:inv1#view@user:alice")).decision is Decision.DENIED
    record, _ = await w.lifecycle.status(T, ALICE, Consistency())
    assert record.status is SubjectStatus.DEPROVISIONED
    # what she was the resource of, and other subjects, stay
    remaining = {str(r) for r in await w.store.read(T, done.revision, RelationshipFilter())}
    assert "user:alice#support@user:sam" in remaining
    assert "invoice:i9#owner@user:alicex" in remaining
    # reactivation lets new grants work; nothing removed comes back
    await w.lifecycle.reactivate(T, ALICE, "rehired", CALL)
    assert (await w.check(T, "invoice:inv1#view@user:alice")).decision is Decision.DENIED
    await w.touch(T, "invoice:inv1#owner@user:alice")
    assert (await w.check(T, "invoice:inv1#view@user:alice")).decision is Decision.ALLOWED


async def test_impersonation_rules() -> None:
    w = await populated()
    allowed = await w.check(T, "invoice:inv1#pay@user:alice", actor=SAM, explain=True)
    assert allowed.decision is Decision.ALLOWED
    assert "impersonation" in kinds(allowed.explanation)
    # the actor needs `impersonate` on the subject
    refused = await w.check(T, "invoice:inv1#pay@user:alice", actor=SubjectRef("user", "eve"))
    assert refused.decision is Decision.DENIED
    assert reason(refused) == core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED
    # a subject type without the permission cannot be impersonated at all
    group = await w.check(T, "invoice:inv1#view@group:finance#member", actor=SAM)
    assert reason(group) == core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED
    # non-delegable: denied under impersonation, allowed directly
    assert (await w.check(T, "invoice:inv1#approve@user:alice")).decision is Decision.ALLOWED
    nondelegable = await w.check(T, "invoice:inv1#approve@user:alice", actor=SAM)
    assert reason(nondelegable) == core_pb2.DENY_REASON_NON_DELEGABLE
    # the subject's own denial stays a plain denial
    plain = await w.check(T, "invoice:other#pay@user:alice", actor=SAM, explain=True)
    assert reason(plain) == core_pb2.DENY_REASON_NO_GRANT
    # a suspended actor acts for nobody
    await w.lifecycle.suspend(T, ObjectRef("user", "sam"), "", CALL)
    gone = await w.check(T, "invoice:inv1#pay@user:alice", actor=SAM)
    assert reason(gone) == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
    with pytest.raises(InvalidArgument):
        await w.check(T, "invoice:inv1#pay@user:alice", actor=parse_subject("group:g#member"))


async def test_impersonation_in_bulk_and_through_the_service() -> None:
    w = await populated()
    snap = await w.snap(T)
    items = [
        item("invoice:inv1#pay@user:alice"),
        item("invoice:inv1#approve@user:alice"),
        item("invoice:inv1#pay@user:bob"),  # sam may not impersonate bob
        item("invoice:nope#bogus@user:alice"),
    ]
    results = await w.permissions.evaluate_bulk(snap, items, actor=SAM)
    assert isinstance(results[3], InvalidArgument)
    decided = [r for r in results[:3] if isinstance(r, CheckResult)]
    assert [r.decision for r in decided] == [Decision.ALLOWED, Decision.DENIED, Decision.DENIED]
    assert [reason(r) for r in decided[1:]] == [
        core_pb2.DENY_REASON_NON_DELEGABLE,
        core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED,
    ]
    # one by one gives the same answers
    for it, result in zip(items[:3], decided, strict=True):
        assert (await w.permissions.evaluate(snap, it, actor=SAM)).decision is result.decision
    with pytest.raises(InvalidArgument):
        await w.permissions.check_bulk(T, items[:1], Consistency(), CallInfo(), actor=SAM)
    with pytest.raises(InvalidArgument):
        await w.permissions.check(T, items[0], Consistency(), CallInfo(), actor=SAM)
    done = await w.permissions.check(
        T, items[0], Consistency(), CallInfo(actor=str(SAM), reason="ticket"), actor=SAM
    )
    assert done.result.decision is Decision.ALLOWED


async def test_contextual_relationships_grant_for_one_request_and_are_never_cached() -> None:
    w = await populated()
    claim = parse_relationship("group:finance#member@user:dan")
    question = item("invoice:inv1#view@user:dan")
    head = await w.store.head_revision(T)
    with_claim = await w.permissions.check(T, question, fresh(head), CALL, contextual=[claim])
    assert with_claim.result.decision is Decision.ALLOWED
    again = await w.permissions.check(T, question, fresh(head), CALL, contextual=[claim])
    assert not again.cache_hit
    without = await w.permissions.check(T, question, fresh(head), CALL)
    assert (without.result.decision, without.cache_hit) == (Decision.DENIED, False)
    listed = await w.permissions.list_permissions(
        T,
        question.resource,
        question.subject,
        FrozenContext(),
        fresh(head),
        CALL,
        contextual=[claim],
    )
    assert {p: r.decision for p, r in listed.permissions}["view"] is Decision.ALLOWED
    _, stream = await w.permissions.lookup_resources(
        T,
        "invoice",
        "view",
        question.subject,
        FrozenContext(),
        fresh(head),
        CALL,
        contextual=[claim],
    )
    assert [r.resource_id async for r in stream] == ["inv1", "pubinv"]
    # an SSO-asserted support relation lets an actor impersonate, for this request only
    support = parse_relationship("user:alice#support@user:kim")
    kim = SubjectRef("user", "kim")
    snap = await w.snap(T)
    assert (
        await w.permissions.evaluate(
            snap, item("invoice:inv1#pay@user:alice"), actor=kim, contextual=[support]
        )
    ).decision is Decision.ALLOWED
    assert (
        await w.permissions.evaluate(snap, item("invoice:inv1#pay@user:alice"), actor=kim)
    ).decision is Decision.DENIED


async def test_deny_reasons_are_not_fooled_by_ids() -> None:
    w = await world()
    await w.touch(T, "invoice:suspended-deprovisioned#owner@user:bob")
    result = await w.check(T, "invoice:suspended-deprovisioned#view@user:zed", explain=True)
    assert reason(result) == core_pb2.DENY_REASON_NO_GRANT
    await w.touch(T, "invoice:x#owner@user:suspended-sue")
    await w.lifecycle.deprovision(T, ObjectRef("user", "suspended-sue"), "", CALL)
    result = await w.check(T, "invoice:x#view@user:suspended-sue")
    assert reason(result) == core_pb2.DENY_REASON_SUBJECT_DEPROVISIONED
