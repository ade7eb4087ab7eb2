"""What a schema change would orphan: stored relationships the new schema no longer allows.

`WriteSchema` refuses such a change unless forced. The shape of stored data is compared
with the same rule writes obey (schema/relationships.py): resource type, relation,
subject type and subject relation, and whether the relationships use a wildcard subject,
which caveat they carry, and whether they expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from authz_service.model import RelationshipKind
from authz_service.schema.compiled import CompiledSchema
from authz_service.schema.relationships import allows

__all__ = ["orphaned_kinds", "orphaned_relationships"]

_ELLIPSIS = "..."


def _subject(kind: RelationshipKind) -> str:
    """The subject as an allowed subject type is written: `user:* with cav and expiration`."""
    subject = kind.subject_type
    if kind.wildcard:
        subject += ":*"
    elif kind.subject_relation:
        subject += f"#{kind.subject_relation}"
    extras = [c for c in (kind.caveat, "expiration" if kind.expiring else None) if c]
    return f"{subject} with {' and '.join(extras)}" if extras else subject


def _sort_key(kind: RelationshipKind) -> tuple[str, str, str, str, bool, str, bool]:
    return (
        kind.resource_type,
        kind.relation,
        kind.subject_type,
        kind.subject_relation,
        kind.wildcard,
        kind.caveat or "",
        kind.expiring,
    )


def _orphans(
    new: CompiledSchema, kinds: Iterable[RelationshipKind]
) -> Iterator[tuple[RelationshipKind, str]]:
    """(kind, why) for each stored kind `new` would not allow, sorted by kind."""
    normalized = {
        replace(k, subject_relation="") if k.subject_relation == _ELLIPSIS else k for k in kinds
    }
    for kind in sorted(normalized, key=_sort_key):
        subject = _subject(kind)
        stored = f"relationships `{kind.resource_type}#{kind.relation}@{subject}` exist"
        if kind.resource_type not in new.definitions:
            yield kind, f"definition `{kind.resource_type}` is removed but {stored}"
            continue
        allowed = new.relations.get((kind.resource_type, kind.relation))
        if allowed is None:
            now = "is now a permission" if new.member(kind.resource_type, kind.relation) else None
            yield (
                kind,
                (
                    f"relation `{kind.resource_type}#{kind.relation}` {now or 'is removed'} "
                    f"but {stored}"
                ),
            )
            continue
        if not any(allows(a, kind) for a in allowed.allowed):
            yield (
                kind,
                (
                    f"subject type `{subject}` is no longer allowed on "
                    f"`{kind.resource_type}#{kind.relation}` but {stored}"
                ),
            )


def orphaned_relationships(new: CompiledSchema, kinds: Iterable[RelationshipKind]) -> list[str]:
    """One message per stored kind that `new` would not allow, sorted. A subject relation
    of `...` means the subject object itself, like `""`."""
    return [why for _, why in _orphans(new, kinds)]


def orphaned_kinds(new: CompiledSchema, kinds: Iterable[RelationshipKind]) -> list[str]:
    """The same kinds, each as `resource_type#relation@subject` with the subject written
    as an allowed subject type (`user`, `user:*`, `group#member`, `user with cav`)."""
    return [
        f"{kind.resource_type}#{kind.relation}@{_subject(kind)}" for kind, _ in _orphans(new, kinds)
    ]
