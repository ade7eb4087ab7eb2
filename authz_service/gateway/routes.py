"""Path patterns and string templates for gateway routes.

    PathPattern.parse("/v1/docs/{id}")          matches /v1/docs/readme -> {"id": "readme"}
    PathPattern.parse("/v1/files/{rest...}")    matches /v1/files/a/b   -> {"rest": "a/b"}
    Template.parse("document:{id}").render({"id": "readme"}) == "document:readme"

A segment is either literal text or exactly one `{name}`; only the last segment may be
`{name...}`, which takes one or more remaining segments. Paths are matched as sent, without
percent-decoding (escapes.py refuses first the escapes an upstream would decode into
another path), and paths with empty, `.` or `..` segments match nothing: a gateway must
not judge `/v1/docs/../admin` by the rule for documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from authz_service.errors import InvalidArgument, echo

__all__ = ["PathPattern", "Template", "split_path"]

_NAME = r"[a-z_][a-z0-9_]*"
_CAPTURE_RE = re.compile(rf"\{{({_NAME})(\.\.\.)?\}}")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_NAME_RE = re.compile(rf"{_NAME}")


def split_path(path: str) -> tuple[str, ...] | None:
    """The segments of the path part of a request target, or None when it has empty, `.`
    or `..` segments (which would let one route stand for another)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    if path == "/":
        return ()
    segments = tuple(path[1:].split("/"))
    if any(s in ("", ".", "..") for s in segments):
        return None
    return segments


@dataclass(frozen=True, slots=True)
class PathPattern:
    text: str
    # (literal, None) or (None, capture name) per segment
    segments: tuple[tuple[str | None, str | None], ...]
    rest: str | None  # name of a trailing `{name...}`

    @classmethod
    def parse(cls, text: str, field: str = "path") -> PathPattern:
        if not isinstance(text, str) or not text.startswith("/"):
            raise InvalidArgument(f"path pattern `{echo(text)}` must start with `/`", field=field)
        raw = () if text == "/" else tuple(text[1:].split("/"))
        segments: list[tuple[str | None, str | None]] = []
        rest: str | None = None
        seen: set[str] = set()
        for index, seg in enumerate(raw):
            if seg in ("", ".", ".."):
                raise InvalidArgument(
                    f"path pattern `{echo(text)}` has an empty, `.` or `..` segment", field=field
                )
            match = _CAPTURE_RE.fullmatch(seg)
            if match is None:
                if "{" in seg or "}" in seg:
                    raise InvalidArgument(
                        f"segment `{echo(seg)}` of `{echo(text)}` must be literal or exactly one `{{name}}`",
                        field=field,
                    )
                segments.append((seg, None))
                continue
            name = match[1]
            if name in seen:
                raise InvalidArgument(f"`{{{name}}}` appears twice in `{echo(text)}`", field=field)
            seen.add(name)
            if match[2]:
                if index != len(raw) - 1:
                    raise InvalidArgument(
                        f"`{{{name}...}}` must be the last segment of `{echo(text)}`", field=field
                    )
                rest = name
            else:
                segments.append((None, name))
        return cls(text, tuple(segments), rest)

    @property
    def names(self) -> frozenset[str]:
        names = {name for _, name in self.segments if name is not None}
        if self.rest is not None:
            names.add(self.rest)
        return frozenset(names)

    def match(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        """Captured values when `segments` (from `split_path`) match, else None."""
        fixed = len(self.segments)
        if self.rest is None and len(segments) != fixed:
            return None
        if self.rest is not None and len(segments) <= fixed:
            return None
        captured: dict[str, str] = {}
        for (literal, name), seg in zip(self.segments, segments, strict=False):
            if literal is not None:
                if seg != literal:
                    return None
            elif name is not None:
                captured[name] = seg
        if self.rest is not None:
            captured[self.rest] = "/".join(segments[fixed:])
        return captured


@dataclass(frozen=True, slots=True)
class Template:
    """Text with `{name}` placeholders, checked against the names it may use at load time."""

    text: str
    parts: tuple[tuple[str, bool], ...]  # (literal text, False) or (placeholder name, True)

    @classmethod
    def parse(cls, text: object, field: str, allowed: frozenset[str]) -> Template:
        if not isinstance(text, str) or not text:
            raise InvalidArgument(f"`{field}` must be a non-empty string", field=field)
        parts: list[tuple[str, bool]] = []
        last = 0
        for match in _PLACEHOLDER_RE.finditer(text):
            if match.start() > last:
                parts.append((text[last : match.start()], False))
            name = match[1]
            if not _NAME_RE.fullmatch(name) or name not in allowed:
                known = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
                raise InvalidArgument(
                    f"`{{{name}}}` in `{echo(text)}` is not a known placeholder (known: {known})",
                    field=field,
                )
            parts.append((name, True))
            last = match.end()
        if last < len(text):
            parts.append((text[last:], False))
        if any(("{" in p or "}" in p) for p, is_name in parts if not is_name):
            raise InvalidArgument(f"unbalanced `{{` or `}}` in `{echo(text)}`", field=field)
        return cls(text, tuple(parts))

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(values[p] if is_name else p for p, is_name in self.parts)
