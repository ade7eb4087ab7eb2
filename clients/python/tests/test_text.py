"""Text forms: parse and format are inverse, and malformed input fails before a call."""

from __future__ import annotations

import pytest
from authz_client import TextFormError, format_relationship, parse_relationship
from authz_client.text import format_subject, parse_object, parse_subject


@pytest.mark.parametrize(
    "text",
    [
        "document:readme#viewer@user:alice",
        "group:staff#member@group:eng#member",
        "document:public#viewer@user:*",
        'document:vpn#viewer@user:dave[ip_allowlist:{"cidr":"10.0.0.0/8"}]',
        'document:x#viewer@user:d[c:{"list":["a]","b"],"n":{"k":true}}]',
        "document:tmp#viewer@user:erin[expiration:2030-01-01T00:00:00Z]",
        'document:tmp#viewer@user:erin[c:{"a":"b"}][expiration:2030-01-01T12:30:00Z]',
        "document:x#viewer@user:erin[bare_caveat]",
    ],
)
def test_round_trip(text: str) -> None:
    assert format_relationship(parse_relationship(text)) == text


def test_parse_fields() -> None:
    rel = parse_relationship('doc:1#viewer@group:eng#member[c:{"x":1}]')
    assert (rel.resource.object_type, rel.resource.object_id) == ("doc", "1")
    assert rel.relation == "viewer"
    assert (rel.subject.object.object_id, rel.subject.relation) == ("eng", "member")
    assert rel.caveat.name == "c"
    assert rel.caveat.context["x"] == 1
    assert format_subject(parse_subject("user:alice#...")) == "user:alice"
    assert parse_object(" folder:a/b ").object_id == "a/b"


@pytest.mark.parametrize(
    "text",
    [
        "document:readme",
        "document#viewer@user:alice",
        "document:readme#viewer@user alice",
        "document:readme#viewer@user:alice[c:{oops}]",
        "document:readme#viewer@user:alice[c:[1]]",
        "document:readme#viewer@user:alice[c",
        "document:readme#viewer@user:alice junk",
        "document:readme#viewer@user:alice[expiration:tomorrow]",
        "document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00]",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(TextFormError) as caught:
        parse_relationship(text)
    assert isinstance(caught.value, ValueError)  # callers may catch it as one
