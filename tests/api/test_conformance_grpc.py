"""The SpiceDB conformance files, through the gRPC API, against PostgreSQL.

For every file: write its schema (forced: each file replaces the previous model), write
its relationships into a tenant of its own, then run every assertion with Check and
test cross-API agreement on every (resource, permission, subject) named in the file:
CheckBulk, ListPermissions, LookupResources and LookupSubjects must all give the same
answer.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
)
from authz_service.engine import Decision
from authz_service.model import ObjectRef, Relationship, SubjectRef
from authz_service.schema import compile_schema
from authz_service.validation.files import load_file
from tests.api.helpers import Api
from tests.conformance.corpus import CORPUS as CONFORMANCE
from tests.conformance.corpus import corpus_files

FILES = corpus_files(include_skipped=False)
_DECISIONS = {
    Decision.ALLOWED: core_pb2.DECISION_ALLOWED,
    Decision.DENIED: core_pb2.DECISION_DENIED,
    Decision.CONDITIONAL: core_pb2.DECISION_CONDITIONAL,
}
FULLY = core_pb2.Consistency(fully_consistent=True)


def test_corpus_present() -> None:
    assert len(FILES) >= 50, f"conformance corpus missing or incomplete at {CONFORMANCE}"


def _obj(ref: ObjectRef) -> core_pb2.ObjectReference:
    return core_pb2.ObjectReference(object_type=ref.type, object_id=ref.id)


def _subj(ref: SubjectRef) -> core_pb2.SubjectReference:
    return core_pb2.SubjectReference(
        object=core_pb2.ObjectReference(object_type=ref.type, object_id=ref.id),
        relation=ref.relation,
    )


def _rel(rel: Relationship) -> core_pb2.Relationship:
    msg = core_pb2.Relationship(
        resource=_obj(rel.resource), relation=rel.relation, subject=_subj(rel.subject)
    )
    if rel.caveat is not None:
        msg.caveat.name = rel.caveat.name
        if rel.caveat.context:
            msg.caveat.context.update(rel.caveat.context.to_dict())
    if rel.expires_at is not None:
        msg.expires_at.FromDatetime(rel.expires_at)
    return msg


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_file_through_grpc(channel: grpc.aio.Channel, path: Path) -> None:
    loaded = load_file(str(path))
    assert not loaded.problems, loaded.problems
    tenant = re.sub(r"[^a-zA-Z0-9_-]", "-", path.stem)[:64]
    await Api(channel).create_tenants(tenant)
    schemas = schema_pb2_grpc.SchemaServiceStub(channel)
    await schemas.WriteSchema(schema_pb2.WriteSchemaRequest(schema=loaded.schema_text, force=True))
    rels = relationships_pb2_grpc.RelationshipsServiceStub(channel)
    for start in range(0, len(loaded.relationships), 500):
        chunk = loaded.relationships[start : start + 500]
        await rels.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(
                tenant=tenant,
                updates=[
                    relationships_pb2.RelationshipUpdate(
                        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
                        relationship=_rel(r),
                    )
                    for r in chunk
                ],
            )
        )
    perms = permissions_pb2_grpc.PermissionsServiceStub(channel)
    failures: list[str] = []
    for assertion in loaded.assertions:
        item = assertion.item
        request = permissions_pb2.CheckRequest(
            tenant=tenant,
            resource=_obj(item.resource),
            permission=item.permission,
            subject=_subj(item.subject),
            consistency=FULLY,
        )
        if item.context:
            request.context.update(item.context.to_dict())
        got = await perms.Check(request)
        if got.decision != _DECISIONS[assertion.expected]:
            failures.append(
                f"{assertion.text}: expected {assertion.expected.value}, got {got.decision}"
            )
    failures += await _agreement(perms, tenant, loaded.schema_text, loaded.relationships)
    assert not failures, "\n".join(failures[:20])


async def _agreement(
    perms: permissions_pb2_grpc.PermissionsServiceStub,
    tenant: str,
    schema_text: str,
    relationships: list[Relationship],
) -> list[str]:
    schema = compile_schema(schema_text)
    resources = sorted({r.resource for r in relationships}, key=str)
    subjects = sorted(
        {r.subject for r in relationships if not r.subject.is_wildcard}
        | {SubjectRef(r.resource.type, r.resource.id) for r in relationships},
        key=str,
    )
    failures: list[str] = []
    allowed: dict[tuple[str, str, str], int] = {}
    for resource in resources:
        names = [p.name for p in schema.definitions[resource.type].permissions]
        if not names:
            continue
        for subject in subjects:
            bulk = await perms.CheckBulk(
                permissions_pb2.CheckBulkRequest(
                    tenant=tenant,
                    consistency=FULLY,
                    items=[
                        permissions_pb2.CheckBulkRequestItem(
                            resource=_obj(resource), permission=n, subject=_subj(subject)
                        )
                        for n in names
                    ],
                )
            )
            listed = await perms.ListPermissions(
                permissions_pb2.ListPermissionsRequest(
                    tenant=tenant,
                    resource=_obj(resource),
                    subject=_subj(subject),
                    consistency=FULLY,
                )
            )
            by_name = {p.permission: p.decision for p in listed.permissions}
            for name, entry in zip(names, bulk.items, strict=True):
                decision = entry.result.decision
                allowed[(str(resource), name, str(subject))] = decision
                if by_name.get(name) != decision:
                    failures.append(
                        f"{resource}#{name}@{subject}: check {decision} vs list {by_name.get(name)}"
                    )
    by_lookup: dict[tuple[str, str, str], int] = defaultdict(lambda: core_pb2.DECISION_DENIED)
    for subject in subjects:
        for definition in schema.definitions.values():
            for permission in definition.permissions:
                stream = perms.LookupResources(
                    permissions_pb2.LookupResourcesRequest(
                        tenant=tenant,
                        resource_type=definition.name,
                        permission=permission.name,
                        subject=_subj(subject),
                        consistency=FULLY,
                    )
                )
                async for found in stream:
                    key = (f"{definition.name}:{found.resource_id}", permission.name, str(subject))
                    by_lookup[key] = found.decision
    for key, decision in allowed.items():
        if by_lookup[key] != decision:
            failures.append(
                f"{key[0]}#{key[1]}@{key[2]}: check {decision} vs lookup_resources {by_lookup[key]}"
            )
    for resource in resources:
        for permission in schema.definitions[resource.type].permissions:
            kinds = {(s.type, s.relation) for s in subjects}
            for subject_type, subject_relation in kinds:
                found_ids: dict[str, int] = {}
                wildcard: tuple[int, set[str]] | None = None
                stream = perms.LookupSubjects(
                    permissions_pb2.LookupSubjectsRequest(
                        tenant=tenant,
                        resource=_obj(resource),
                        permission=permission.name,
                        subject_type=subject_type,
                        subject_relation=subject_relation,
                        consistency=FULLY,
                    )
                )
                async for found in stream:
                    if found.subject_id == "*":
                        wildcard = (found.decision, set(found.excluded_subject_ids))
                    else:
                        found_ids[found.subject_id] = found.decision
                for subject in subjects:
                    if (subject.type, subject.relation) != (subject_type, subject_relation):
                        continue
                    expected = allowed.get((str(resource), permission.name, str(subject)))
                    got = found_ids.get(subject.id)
                    if got is None and wildcard is not None and subject.id not in wildcard[1]:
                        got = wildcard[0]
                    got = got if got is not None else core_pb2.DECISION_DENIED
                    if expected is not None and got != expected:
                        failures.append(
                            f"{resource}#{permission.name}@{subject}: check {expected} vs lookup_subjects {got}"
                        )
    return failures
