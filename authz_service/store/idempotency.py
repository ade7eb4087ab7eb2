"""What an idempotency key stands for: a digest of the request it was first used with.

A retry must be the same request, not merely the same key: otherwise a revocation sent
under the key of an earlier grant would be answered "already applied" and dropped. The
digest covers everything that changes what a write does (each update's operation and
relationship, caveat and expiration included, and every precondition) and nothing that
does not: the order of updates and preconditions, the order of ids in a filter and the
key order of a caveat context. Both stores keep it next to the key, per tenant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from authz_service.errors import FailedPrecondition, echo
from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp
from authz_service.store.protocol import Precondition

__all__ = ["key_reused", "request_digest"]


def request_digest(
    updates: Sequence[RelationshipUpdate], preconditions: Sequence[Precondition]
) -> bytes:
    """SHA-256 of the canonical form of one write request."""
    canonical = {
        "updates": sorted(_update(u) for u in updates),
        "preconditions": sorted(
            json.dumps([p.must_exist, _filter(p.filter)]) for p in preconditions
        ),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def _update(update: RelationshipUpdate) -> str:
    rel = update.relationship
    # A delete uses only the relationship's identity; str() of a relationship holds its
    # caveat (with canonical JSON context) and expiration.
    shown = f"{rel.resource}#{rel.relation}@{rel.subject}" if update.op is UpdateOp.DELETE else rel
    return f"{update.op.value} {shown}"


def _filter(flt: RelationshipFilter) -> list[object]:
    return [
        flt.resource_type,
        sorted(flt.resource_ids) if flt.resource_ids is not None else None,
        flt.relation,
        flt.subject_type,
        sorted(flt.subject_ids) if flt.subject_ids is not None else None,
        flt.subject_relation,
        flt.spare_resource_prefix,
    ]


def key_reused(key: str) -> FailedPrecondition:
    """The error for a key first used with another request."""
    return FailedPrecondition(
        f"idempotency key `{echo(key)}` was already used for a different request; "
        "use a new key for a new request",
        field="idempotency_key",
    )
