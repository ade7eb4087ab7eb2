"""What a schema change would orphan: stored relationships the new schema no longer allows.

`WriteSchema` refuses such a change unless forced. Only the shape of stored data matters
here (resource type, relation, subject type, subject relation); caveats and expirations on
stored relationships are not considered.
"""

from __future__ import annotations

from collections.abc import Iterable

from authz_service.schema.compiled import CompiledSchema

__all__ = ["orphaned_relationships"]

_ELLIPSIS = "..."


def orphaned_relationships(
    new: CompiledSchema, kinds: Iterable[tuple[str, str, str, str]]
) -> list[str]:
    """One message per stored kind `(resource type, relation, subject type, subject
    relation)` that `new` would not allow, sorted. An empty subject relation (or `...`)
    means the subject object itself; a wildcard subject is allowed by `type:*` or `type`.
    """
    normalized = {(r, rel, s, "" if s_rel == _ELLIPSIS else s_rel) for r, rel, s, s_rel in kinds}
    messages: list[str] = []
    for resource_type, relation, subject_type, subject_relation in sorted(normalized):
        subject = f"{subject_type}#{subject_relation}" if subject_relation else subject_type
        stored = f"relationships `{resource_type}#{relation}@{subject}` exist"
        if resource_type not in new.definitions:
            messages.append(f"definition `{resource_type}` is removed but {stored}")
            continue
        allowed = new.relations.get((resource_type, relation))
        if allowed is None:
            what = "is now a permission" if new.member(resource_type, relation) else "is removed"
            messages.append(f"relation `{resource_type}#{relation}` {what} but {stored}")
            continue
        if not any(
            a.type == subject_type and a.relation == subject_relation for a in allowed.allowed
        ):
            messages.append(
                f"subject type `{subject}` is no longer allowed on "
                f"`{resource_type}#{relation}` but {stored}"
            )
    return messages
