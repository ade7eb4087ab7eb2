"""Path patterns and templates: what matches, what is captured, what is refused."""

from __future__ import annotations

import pytest

from authz_service.errors import InvalidArgument
from authz_service.gateway.routes import PathPattern, Template, split_path


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/v1/docs/{id}", "/v1/docs/readme", {"id": "readme"}),
        ("/v1/docs/{id}", "/v1/docs/readme?x=1&y=2", {"id": "readme"}),
        ("/v1/docs/{id}", "/v1/docs", None),
        ("/v1/docs/{id}", "/v1/docs/a/b", None),
        ("/v1/docs/{id}", "/v1/docs/", None),
        ("/v1/docs/{id}", "/v1/docs//readme", None),
        ("/v1/docs/{id}", "/v1/docs/../admin", None),
        ("/v1/docs/{id}", "/v1/docs/./readme", None),
        ("/v1/{kind}/{id}", "/v1/docs/readme", {"kind": "docs", "id": "readme"}),
        ("/v1/files/{rest...}", "/v1/files/a/b/c", {"rest": "a/b/c"}),
        ("/v1/files/{rest...}", "/v1/files/a", {"rest": "a"}),
        ("/v1/files/{rest...}", "/v1/files", None),
        ("/", "/", {}),
        ("/", "/x", None),
        ("/healthz", "/healthz", {}),
        ("/healthz", "/HEALTHZ", None),
    ],
)
def test_match(pattern: str, path: str, expected: dict[str, str] | None) -> None:
    segments = split_path(path)
    got = None if segments is None else PathPattern.parse(pattern).match(segments)
    assert got == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("v1/docs", "must start with `/`"),
        ("/v1//docs", "empty"),
        ("/v1/../docs", "`..`"),
        ("/v1/doc-{id}", "exactly one `{name}`"),
        ("/v1/{id}/{id}", "appears twice"),
        ("/v1/{rest...}/x", "must be the last segment"),
        ("/v1/{Id}", "exactly one `{name}`"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        PathPattern.parse(pattern, "routes[3].path")
    assert info.value.field == "routes[3].path"


def test_split_path_needs_an_absolute_path() -> None:
    assert split_path("*") is None
    assert split_path("http://x/y") is None


def test_template_renders_placeholders() -> None:
    t = Template.parse("document:{id}", "f", frozenset({"id"}))
    assert t.render({"id": "readme"}) == "document:readme"
    assert (
        Template.parse("{a}-{b}", "f", frozenset({"a", "b"})).render({"a": "1", "b": "2"}) == "1-2"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("document:{nope}", "not a known placeholder"),
        ("document:{id", "unbalanced"),
        ("document:id}", "unbalanced"),
        ("", "non-empty string"),
    ],
)
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Template.parse(text, "routes[0].resource", frozenset({"id"}))
