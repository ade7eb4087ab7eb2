"""The gateway configuration: how an HTTP request becomes (tenant, subject, action, resource).

Loaded once from YAML and validated completely at load time; every error names the field
(`routes[2].path`). Unknown fields are errors too: in a security configuration a typo
must not silently fall back to a default. So is a key given twice (authz_service/unique_yaml.py), which
YAML would otherwise settle by keeping the last. docs/gateway.md describes the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from authz_service.errors import InvalidArgument, echo
from authz_service.gateway.routes import PathPattern, Template, split_path
from authz_service.model import parse_object, validate_relation_name, validate_type_name
from authz_service.unique_yaml import load_unique

__all__ = [
    "ALGORITHMS",
    "HEADER_PLACEHOLDERS",
    "GatewayConfig",
    "JwtConfig",
    "Route",
    "TrustedHeadersConfig",
    "load_gateway_config",
    "parse_gateway_config",
]

ALGORITHMS = ("RS256", "ES256", "EdDSA")
HEADER_PLACEHOLDERS = frozenset(
    {"tenant", "subject", "subject_type", "subject_id", "resource", "action", "decision_id"}
)
DEFAULT_UPSTREAM_HEADERS = {
    "x-authz-tenant": "{tenant}",
    "x-authz-subject": "{subject}",
    "x-authz-decision-id": "{decision_id}",
}
_HEADER_RE = re.compile(r"[a-z0-9][a-z0-9\-_]*")
_METHOD_RE = re.compile(r"[A-Z]+")
_CLAIM_RE = re.compile(r"[A-Za-z0-9_.:/\-]{1,128}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class JwtConfig:
    issuer: str
    audiences: tuple[str, ...]
    jwks_file: Path | None
    jwks_url: str | None
    algorithms: tuple[str, ...]
    tenant_claim: str | None
    tenant: str | None
    subject_claim: str
    subject_type: str
    header: str
    leeway_s: float
    jwks_cache_s: float
    jwks_min_refresh_s: float


@dataclass(frozen=True, slots=True)
class TrustedHeadersConfig:
    tenant_header: str
    subject_header: str
    subject_type: str


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str] | None  # None: any method
    path: PathPattern
    resource: Template | None  # None only for public routes
    action: Template | None
    public: bool = False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    identity: JwtConfig | TrustedHeadersConfig
    routes: tuple[Route, ...]
    unmatched: Literal["deny", "allow"]
    upstream_headers: tuple[tuple[str, Template], ...]

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route matching, with its captured path values; None if none does."""
        segments = split_path(path)
        if segments is None:
            return None
        for route in self.routes:
            if route.methods is not None and method not in route.methods:
                continue
            captured = route.path.match(segments)
            if captured is not None:
                return route, captured
        return None


class _Section:
    """One YAML mapping being read: typed access by name, unknown names refused at the end."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"`{where or 'gateway config'}` must be a mapping", field=where)
        self._data = dict(data)
        self._where = where

    def field(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def names(self) -> list[str]:
        names = list(self._data)
        for name in names:
            if not isinstance(name, str):
                raise InvalidArgument(f"`{self.field(str(name))}`: names must be strings")
        return names

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str, default: Any = _REQUIRED) -> Any:
        if name not in self._data:
            if default is _REQUIRED:
                raise InvalidArgument(f"`{self.field(name)}` is required", field=self.field(name))
            return default
        return self._data.pop(name)

    def text(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.raw(name, default)
        if value is not default and (not isinstance(value, str) or not value):
            raise InvalidArgument(
                f"`{self.field(name)}` must be a non-empty string", field=self.field(name)
            )
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.raw(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise InvalidArgument(
                f"`{self.field(name)}` must be a number from {low:g} to {high:g}",
                field=self.field(name),
            )
        return float(value)

    def texts(self, name: str, default: Any = _REQUIRED) -> tuple[str, ...]:
        """A string or a non-empty list of strings."""
        value = self.raw(name, default)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise InvalidArgument(
                f"`{self.field(name)}` must be a string or a list of strings",
                field=self.field(name),
            )
        for item in items:
            if not isinstance(item, str) or not item:
                raise InvalidArgument(
                    f"`{self.field(name)}` must contain only non-empty strings",
                    field=self.field(name),
                )
        return tuple(items)

    def done(self) -> None:
        if self._data:
            name = self.field(str(sorted(self._data, key=str)[0]))
            raise InvalidArgument(f"unknown field `{echo(name)}`", field=name)


def _header_name(value: str, field: str) -> str:
    lowered = value.lower()
    if not _HEADER_RE.fullmatch(lowered) or lowered == "host":
        raise InvalidArgument(
            f"`{echo(value)}` is not a header name this gateway may set", field=field
        )
    return lowered


def _claim_name(section: _Section, name: str, default: Any = _REQUIRED) -> Any:
    value = section.text(name, default)
    if isinstance(value, str) and not _CLAIM_RE.fullmatch(value):
        raise InvalidArgument(
            f"`{echo(value)}` is not a valid claim name", field=section.field(name)
        )
    return value


def _subject_type(section: _Section) -> str:
    value: str = section.text("subject_type", "user")
    return validate_type_name(value, section.field("subject_type"))


def _jwks_url(section: _Section) -> str | None:
    url: str | None = section.text("jwks_url", None)
    if url is None:
        return None
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if not secure or not parts.hostname:
        raise InvalidArgument(
            f"`{echo(url)}` must be an https URL (plain http only on loopback)",
            field=section.field("jwks_url"),
        )
    return url


def _jwt(data: object, base: Path) -> JwtConfig:
    s = _Section(data, "identity.jwt")
    issuer = s.text("issuer")
    audiences = s.texts("audience")
    jwks_file: Path | None = None
    if s.has("jwks_file"):
        jwks_file = base / s.text("jwks_file")
        if not jwks_file.is_file():
            raise InvalidArgument(
                f"JWKS file `{jwks_file}` does not exist", field=s.field("jwks_file")
            )
    jwks_url = _jwks_url(s)
    if (jwks_file is None) == (jwks_url is None):
        raise InvalidArgument(
            "exactly one of `jwks_file` and `jwks_url` is required", field=s.field("jwks_file")
        )
    algorithms = s.texts("algorithms", list(ALGORITHMS))
    for alg in algorithms:
        if alg not in ALGORITHMS:
            raise InvalidArgument(
                f"algorithm `{echo(alg)}` is not one of {', '.join(ALGORITHMS)}",
                field=s.field("algorithms"),
            )
    tenant_claim = _claim_name(s, "tenant_claim", None)
    tenant: str | None = s.text("tenant", None)
    if (tenant_claim is None) == (tenant is None):
        raise InvalidArgument(
            "exactly one of `tenant_claim` (tenant from the token) and `tenant` (one fixed "
            "tenant) is required",
            field=s.field("tenant_claim"),
        )
    config = JwtConfig(
        issuer=issuer,
        audiences=audiences,
        jwks_file=jwks_file,
        jwks_url=jwks_url,
        algorithms=tuple(dict.fromkeys(algorithms)),
        tenant_claim=tenant_claim,
        tenant=tenant,
        subject_claim=_claim_name(s, "subject_claim", "sub"),
        subject_type=_subject_type(s),
        header=_header_name(s.text("header", "authorization"), s.field("header")),
        leeway_s=s.number("leeway_s", 30, low=0, high=300),
        jwks_cache_s=s.number("jwks_cache_s", 300, low=1, high=86_400),
        jwks_min_refresh_s=s.number("jwks_min_refresh_s", 10, low=0, high=3600),
    )
    s.done()
    return config


def _trusted_headers(data: object) -> TrustedHeadersConfig:
    s = _Section(data, "identity.trusted_headers")
    config = TrustedHeadersConfig(
        tenant_header=_header_name(s.text("tenant_header"), s.field("tenant_header")),
        subject_header=_header_name(s.text("subject_header"), s.field("subject_header")),
        subject_type=_subject_type(s),
    )
    s.done()
    return config


def _identity(data: object, base: Path) -> JwtConfig | TrustedHeadersConfig:
    s = _Section(data, "identity")
    if s.has("jwt") == s.has("trusted_headers"):
        raise InvalidArgument(
            "`identity` needs exactly one of `jwt` and `trusted_headers`", field="identity"
        )
    config = (
        _jwt(s.raw("jwt"), base) if s.has("jwt") else _trusted_headers(s.raw("trusted_headers"))
    )
    s.done()
    return config


def _methods(s: _Section) -> frozenset[str] | None:
    methods = s.texts("method", "*")
    if "*" in methods:
        return None
    upper = frozenset(m.upper() for m in methods)
    for method in upper:
        if not _METHOD_RE.fullmatch(method):
            raise InvalidArgument(
                f"`{echo(method)}` is not an HTTP method", field=s.field("method")
            )
    return upper


def _route(data: object, where: str) -> Route:
    s = _Section(data, where)
    methods = _methods(s)
    path = PathPattern.parse(s.text("path"), s.field("path"))
    public = s.raw("public", False)
    if not isinstance(public, bool):
        raise InvalidArgument(
            f"`{s.field('public')}` must be true or false", field=s.field("public")
        )
    if public:
        if s.has("resource") or s.has("action"):
            raise InvalidArgument(
                "a public route has no `resource` or `action`: nothing is checked",
                field=s.field("public"),
            )
        s.done()
        return Route(methods, path, None, None, public=True)
    resource = Template.parse(s.raw("resource"), s.field("resource"), path.names)
    action = Template.parse(s.raw("action"), s.field("action"), path.names)
    # Render with sample values so that a template which can never produce a valid
    # `type:id` or permission name fails now rather than on every request.
    parse_object(resource.render(dict.fromkeys(path.names, "abc")), s.field("resource"))
    validate_relation_name(action.render(dict.fromkeys(path.names, "abc")), s.field("action"))
    s.done()
    return Route(methods, path, resource, action)


def _upstream_headers(data: object) -> tuple[tuple[str, Template], ...]:
    s = _Section(data, "upstream_headers")
    headers: list[tuple[str, Template]] = []
    for name in s.names():
        field = s.field(name)
        header = _header_name(name, field)
        if any(header == seen for seen, _ in headers):
            raise InvalidArgument(f"header `{echo(header)}` is listed twice", field=field)
        headers.append((header, Template.parse(s.raw(name), field, HEADER_PLACEHOLDERS)))
    s.done()
    return tuple(headers)


def parse_gateway_config(data: object, base: Path = Path()) -> GatewayConfig:
    """Validate a decoded YAML document; relative file names are resolved from `base`.

    Every error message starts with the field it is about, as `authz serve` shows only
    the message."""
    try:
        return _parse(data, base)
    except InvalidArgument as exc:
        if not exc.field or f"`{exc.field}`" in exc.message:
            raise
        raise InvalidArgument(f"{exc.field}: {exc.message}", field=exc.field) from None


def _parse(data: object, base: Path) -> GatewayConfig:
    s = _Section(data, "")
    identity = _identity(s.raw("identity"), base)
    routes_data = s.raw("routes")
    if not isinstance(routes_data, list) or not routes_data:
        raise InvalidArgument("`routes` must be a non-empty list", field="routes")
    routes = tuple(_route(r, f"routes[{i}]") for i, r in enumerate(routes_data))
    unmatched = s.raw("unmatched", "deny")
    if unmatched not in ("deny", "allow"):
        raise InvalidArgument("`unmatched` must be `deny` or `allow`", field="unmatched")
    headers = _upstream_headers(s.raw("upstream_headers", DEFAULT_UPSTREAM_HEADERS) or {})
    s.done()
    return GatewayConfig(identity, routes, unmatched, headers)


def load_gateway_config(path: Path) -> GatewayConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read gateway config `{path}`: {exc.strerror}", field="gateway_config"
        ) from None
    try:
        data = load_unique(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(
            f"gateway config `{path}` is not valid YAML: {exc}", field="gateway_config"
        ) from None
    try:
        return parse_gateway_config(data, path.parent)
    except InvalidArgument as exc:
        raise InvalidArgument(f"gateway config `{path}`: {exc.message}", field=exc.field) from None
