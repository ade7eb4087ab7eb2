"""The Check cache key: equal for the same question, different for any other input."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from authz_service.engine import CheckItem, Snapshot
from authz_service.model import FrozenContext, ObjectRef, SubjectRef
from authz_service.schema import compile_schema
from authz_service.service.bulk_items import check_item
from authz_service.service.permissions import _bulk_keys, _check_key

SCHEMA = compile_schema("definition user {}\ndefinition doc { relation viewer: user }")
OTHER = compile_schema("definition user {}\ndefinition doc { relation editor: user }")
SNAP = Snapshot("acme", 7, SCHEMA, datetime(2030, 1, 1, tzinfo=UTC))
ITEM = CheckItem(ObjectRef("doc", "d"), "viewer", SubjectRef("user", "u"))


def test_the_same_question_gives_the_same_key() -> None:
    later = replace(SNAP, now=datetime(2031, 1, 1, tzinfo=UTC))  # time is checked per entry
    same = CheckItem(ObjectRef("doc", "d"), "viewer", SubjectRef("user", "u"), FrozenContext())
    assert _check_key(SNAP, ITEM, None) == _check_key(later, same, None)
    assert hash(_check_key(SNAP, ITEM, None)) == hash(_check_key(later, same, None))


def test_every_input_of_the_answer_changes_the_key() -> None:
    base = _check_key(SNAP, ITEM, None)
    variants = [
        _check_key(replace(SNAP, tenant="globex"), ITEM, None),
        _check_key(replace(SNAP, revision=8), ITEM, None),
        _check_key(replace(SNAP, schema=OTHER), ITEM, None),
        _check_key(SNAP, replace(ITEM, resource=ObjectRef("doc", "e")), None),
        _check_key(SNAP, replace(ITEM, resource=ObjectRef("folder", "d")), None),
        _check_key(SNAP, replace(ITEM, permission="editor"), None),
        _check_key(SNAP, replace(ITEM, subject=SubjectRef("user", "v")), None),
        _check_key(SNAP, replace(ITEM, subject=SubjectRef("group", "u")), None),
        _check_key(SNAP, replace(ITEM, subject=SubjectRef("user", "u", "member")), None),
        _check_key(SNAP, replace(ITEM, context=FrozenContext({"ip": "10.0.0.1"})), None),
        _check_key(SNAP, ITEM, SubjectRef("user", "admin")),
        _check_key(SNAP, ITEM, SubjectRef("user", "admin", "member")),
    ]
    assert all(v != base for v in variants)
    assert len(set(variants)) == len(variants)


@pytest.mark.parametrize(
    ("actor", "agents"),
    [
        (None, ()),
        (SubjectRef("user", "admin"), ()),
        (None, (SubjectRef("agent", "a1"), SubjectRef("agent", "a2", "member"))),
    ],
)
def test_a_plain_bulk_item_has_the_key_of_its_check_item(
    actor: SubjectRef | None, agents: tuple[SubjectRef, ...]
) -> None:
    plain = ("doc", "d", "viewer", "user", "u", "")
    items = [plain, ITEM, replace(ITEM, context=FrozenContext({"ip": "10.0.0.1"}))]
    keys = _bulk_keys(SNAP, items, actor, agents)
    assert keys == [_check_key(SNAP, check_item(item), actor, agents) for item in items]
    assert keys[0] == keys[1]  # the same question as ITEM
    plain_only = [plain, ("folder", "f", "view", "group", "g", "")]  # keyed without a loop
    assert _bulk_keys(SNAP, plain_only, actor, agents) == [
        _check_key(SNAP, check_item(item), actor, agents) for item in plain_only
    ]
