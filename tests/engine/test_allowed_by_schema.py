"""The engine's set lookup (`allowed_by_schema`) admits exactly the relationships that the
write rule (`schema.relationships.allows`) admits, expiration aside."""

from __future__ import annotations

import itertools
import pickle
from dataclasses import replace
from datetime import UTC, datetime

from authz_service.engine.check import allowed_by_schema
from authz_service.model import CaveatRef, ObjectRef, Relationship, RelationshipKind, SubjectRef
from authz_service.schema.ast import AllowedSubject, Relation
from authz_service.schema.relationships import allows

_TYPES = ("user", "group")
_RELATIONS = ("", "member")
_CAVEATS = (None, "ip_ok")

ALTERNATIVES = [
    AllowedSubject(type_, relation, wildcard, caveat, expiration)
    for type_, relation, wildcard, caveat, expiration in itertools.product(
        _TYPES, _RELATIONS, (False, True), _CAVEATS, (False, True)
    )
    if not (wildcard and relation)  # the parser never makes `user:*#member`
]

RELATIONSHIPS = [
    Relationship(
        ObjectRef("document", "d"),
        "viewer",
        SubjectRef(type_, id_, relation),
        CaveatRef(caveat) if caveat else None,
        datetime(2030, 1, 1, tzinfo=UTC) if expiring else None,
    )
    for type_, id_, relation, caveat, expiring in itertools.product(
        _TYPES, ("x", "*"), _RELATIONS, _CAVEATS, (False, True)
    )
]


def _by_rule(relation: Relation, rel: Relationship) -> bool:
    kind = replace(RelationshipKind.of(rel), expiring=False)
    return any(allows(allowed, kind) for allowed in relation.allowed)


def test_every_relationship_against_every_pair_of_alternatives() -> None:
    checked = admitted = 0
    for first, second in itertools.combinations_with_replacement(ALTERNATIVES, 2):
        relation = Relation("viewer", (first, second))
        for rel in RELATIONSHIPS:
            expected = _by_rule(relation, rel)
            assert allowed_by_schema(relation, rel) is expected, (relation.allowed, str(rel))
            checked += 1
            admitted += expected
    # The domain exercises both answers, so agreement is not agreement on "no".
    pairs = len(ALTERNATIVES) * (len(ALTERNATIVES) + 1) // 2
    assert checked == pairs * len(RELATIONSHIPS)
    assert 0 < admitted < checked


def test_the_set_survives_pickling_and_ignores_equality() -> None:
    relation = Relation("viewer", (AllowedSubject("user"), AllowedSubject("group", "member")))
    copy = pickle.loads(pickle.dumps(relation))
    assert copy == relation
    shapes = {("user", "", False, None), ("group", "member", False, None)}
    assert copy.admits == relation.admits == shapes
    assert Relation("viewer", relation.allowed, doc="other") == relation
