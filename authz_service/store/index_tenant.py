"""One tenant's relationships in memory, with their history from a base revision on.

Rows follow the stores' MVCC model: a row carries the revision that created it and the
one that deleted it, so a read at any revision in [floor, applied] sees exactly what the
store shows at that revision. Two hash indexes find candidate rows without scanning:

- by resource: (type, id) -> (relation, subject type, subject relation) -> rows, which
  answers the check reads (`doc:d#viewer@user:{u,*}`, `group:g#member@group:*#member`);
- by subject: (type, id) -> (subject relation, resource type, relation) -> rows, for the
  reverse reads of LookupResources and for a member check in a very large group.

A filter that pins neither side's ids is answered through the ids seen per type (the
status and role-binding reads of every decision) when the type has few objects, and
otherwise returns None: the caller asks the store, which has the index for it (a scan of
a million rows in memory would hold the event loop).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from authz_service.model import Relationship, RelationshipFilter, Revision, UpdateOp
from authz_service.store.memory import sort_key
from authz_service.store.protocol import Change

__all__ = ["TenantIndex"]

_Key = tuple[str, str, str, str, str, str]
_TYPE_SCAN_MAX = 4_096  # objects of one type read through the per-type ids
_SMALL = 32  # candidate rows few enough to scan without looking at the other side
_TRIM_STEP = 4_096  # rows one step of `trim_steps` looks at (an object's rows at once)
_Buckets = dict[tuple[str, str], dict[tuple[str, str, str], list["_Row"]]]


@dataclass(slots=True)
class _Row:
    rel: Relationship
    created: Revision
    deleted: Revision | None = None

    def live_at(self, revision: Revision) -> bool:
        return self.created <= revision and (self.deleted is None or self.deleted > revision)


@dataclass(slots=True)
class TenantIndex:
    """Mutated only by `add` (initial load) and `apply` (changes in revision order)."""

    floor: Revision  # oldest revision answered here; older reads go to the store
    applied: Revision  # every change up to here is applied
    rows: int = 0  # live and dead rows held
    dead: int = 0
    newest_dead: Revision = 0  # the revision of the newest deletion applied
    live: dict[_Key, _Row] = field(default_factory=dict)
    by_resource: _Buckets = field(default_factory=dict)
    by_subject: _Buckets = field(default_factory=dict)
    resource_ids: dict[str, set[str]] = field(default_factory=dict)  # per resource type
    subject_ids: dict[str, set[str]] = field(default_factory=dict)  # per subject type

    def add(self, rels: Iterable[Relationship], created: Revision) -> None:
        """Rows live at the base revision (their true creation revision does not matter:
        nothing older than `floor` is answered from here)."""
        for rel in rels:
            self._insert(_Row(rel, created))

    def _insert(self, row: _Row) -> None:
        rel = row.rel
        r, s = rel.resource, rel.subject
        self.live[sort_key(rel)] = row
        outer = self.by_resource.setdefault((r.type, r.id), {})
        outer.setdefault((rel.relation, s.type, s.relation), []).append(row)
        outer = self.by_subject.setdefault((s.type, s.id), {})
        outer.setdefault((s.relation, r.type, rel.relation), []).append(row)
        self.resource_ids.setdefault(r.type, set()).add(r.id)
        self.subject_ids.setdefault(s.type, set()).add(s.id)
        self.rows += 1

    def apply(self, changes: Iterable[Change], through: Revision) -> None:
        """Apply changes newer than `applied` (ordered by revision), then record that
        every change up to `through` is applied."""
        for change in changes:
            if change.revision <= self.applied:
                continue
            current = self.live.pop(sort_key(change.relationship), None)
            if current is not None:
                current.deleted = self.newest_dead = change.revision
                self.dead += 1
            if change.op is UpdateOp.TOUCH:
                self._insert(_Row(change.relationship, change.revision))
        self.applied = max(self.applied, through)

    def trim_steps(self, step: int = _TRIM_STEP) -> Iterator[None]:
        """Drop the rows deleted so far, yielding after each object once `step` rows were
        looked at since the last yield, so that the caller can let requests run (at a
        million rows a trim in one go held the event loop for over a second; in steps of
        4,096 rows a step takes a few milliseconds).

        The floor is raised first, to the newest deletion applied: reads older than it
        go to the store, and no read the index still answers can need a dropped row.
        `apply` may run between steps: its deletions are newer than that floor and stay
        until a later trim. Reads between steps are exact: a dead row not yet dropped is
        not live at any revision the index answers."""
        through = self.floor = max(self.floor, self.newest_dead)
        done = 0
        sides = ((self.by_resource, self.resource_ids), (self.by_subject, self.subject_ids))
        for side, (buckets, by_type) in enumerate(sides):
            for outer_key in list(buckets):
                outer = buckets.get(outer_key)
                if outer is None:
                    continue
                dropped = 0
                for inner_key in list(outer):
                    rows = outer[inner_key]
                    done += len(rows)
                    kept = [row for row in rows if row.deleted is None or row.deleted > through]
                    dropped += len(rows) - len(kept)
                    if kept:
                        outer[inner_key] = kept
                    else:
                        del outer[inner_key]
                if not outer:
                    del buckets[outer_key]
                    by_type[outer_key[0]].discard(outer_key[1])
                if side == 0:  # each row is in one bucket of each side: count it once
                    self.rows -= dropped
                    self.dead -= dropped
                if done >= step:
                    done = 0
                    yield

    def scan(
        self,
        revision: Revision,
        flt: RelationshipFilter,
        limit: int | None,
        after: Relationship | None,
    ) -> list[Relationship] | None:
        """The store's answer to `read`, or None when this filter is the store's job."""
        candidates = self._candidates(flt)
        if candidates is None:
            return None
        found = [
            row.rel
            for bucket in candidates
            for row in bucket
            if row.live_at(revision) and flt.matches(row.rel)
        ]
        found.sort(key=sort_key)
        if after is not None:
            cursor = sort_key(after)
            found = [rel for rel in found if sort_key(rel) > cursor]
        return found[:limit] if limit is not None else found

    def _candidates(self, flt: RelationshipFilter) -> list[list[_Row]] | None:
        forward: list[list[_Row]] | None = None
        if flt.resource_type is not None and flt.resource_ids is not None:
            forward = self._forward(flt, flt.resource_type, flt.resource_ids)
            if _size(forward) <= _SMALL:
                return forward  # the check reads: no need to look at the subject side
        reverse: list[list[_Row]] | None = None
        if flt.subject_type is not None and flt.subject_ids is not None:
            reverse = self._reverse(flt, flt.subject_type, flt.subject_ids)
        if forward is None and reverse is None:
            return self._by_type(flt)
        if forward is None or reverse is None:
            return forward if reverse is None else reverse
        return forward if _size(forward) <= _size(reverse) else reverse

    def _forward(
        self, flt: RelationshipFilter, kind: str, ids: Collection[str]
    ) -> list[list[_Row]]:
        wanted = (flt.relation, flt.subject_type, flt.subject_relation)
        return _buckets(self.by_resource, kind, ids, wanted)

    def _reverse(
        self, flt: RelationshipFilter, kind: str, ids: Collection[str]
    ) -> list[list[_Row]]:
        wanted = (flt.subject_relation, flt.resource_type, flt.relation)
        return _buckets(self.by_subject, kind, ids, wanted)

    def _by_type(self, flt: RelationshipFilter) -> list[list[_Row]] | None:
        """A filter that pins only types: through the ids seen for the type, if few."""
        if flt.resource_type is not None:
            ids = self.resource_ids.get(flt.resource_type, set())
            if len(ids) <= _TYPE_SCAN_MAX:
                return self._forward(flt, flt.resource_type, ids)
        if flt.subject_type is not None:
            ids = self.subject_ids.get(flt.subject_type, set())
            if len(ids) <= _TYPE_SCAN_MAX:
                return self._reverse(flt, flt.subject_type, ids)
        return None


def _buckets(
    index: _Buckets,
    kind: str,
    ids: Collection[str],
    wanted: tuple[str | None, str | None, str | None],
) -> list[list[_Row]]:
    found: list[list[_Row]] = []
    a, b, c = wanted
    # The check reads name all three: one lookup.
    exact = (a, b, c) if a is not None and b is not None and c is not None else None
    for object_id in ids:
        outer = index.get((kind, object_id))
        if outer is None:
            continue
        if exact is not None:
            rows = outer.get(exact)
            if rows is not None:
                found.append(rows)
            continue
        for (x, y, z), rows in outer.items():
            if (a is None or a == x) and (b is None or b == y) and (c is None or c == z):
                found.append(rows)
    return found


def _size(buckets: list[list[_Row]]) -> int:
    return sum(len(rows) for rows in buckets)
