"""Who is asking, and in which tenant: from a verified JWT or from trusted headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from authz_service.errors import InvalidArgument, Unauthenticated, echo
from authz_service.gateway.tokens import JwtVerifier, MissingCredentials, bearer_token
from authz_service.model import SubjectRef, validate_object_id

__all__ = ["HeaderIdentity", "IdentitySource", "JwtIdentity", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    subject: SubjectRef


class IdentitySource(Protocol):
    """Turns request headers (lowercase names) into a principal, or raises
    `Unauthenticated` (`MissingCredentials` when there were no credentials at all)."""

    @property
    def bearer(self) -> bool:
        """True when a 401 should carry `www-authenticate: Bearer`."""
        ...

    async def principal(self, headers: Mapping[str, str]) -> Principal: ...


def _subject(subject_type: str, value: object, source: str) -> SubjectRef:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Unauthenticated(f"{source} is not a string")
    try:
        return SubjectRef(subject_type, validate_object_id(value, source))
    except InvalidArgument:
        raise Unauthenticated(f"{source} is not a valid subject id") from None


@dataclass(frozen=True, slots=True)
class JwtIdentity:
    verifier: JwtVerifier
    header: str
    subject_type: str
    subject_claim: str
    tenant_claim: str | None  # None: every request belongs to `tenant`
    tenant: str | None
    bearer: bool = True

    async def principal(self, headers: Mapping[str, str]) -> Principal:
        claims = await self.verifier.verify(bearer_token(headers, self.header))
        if self.tenant_claim is None:
            tenant = self.tenant or ""
        else:
            tenant = _claim_text(claims, self.tenant_claim)
        subject = _subject(
            self.subject_type,
            _claim(claims, self.subject_claim),
            f"claim `{self.subject_claim}`",
        )
        return Principal(tenant, subject)


def _claim(claims: Mapping[str, Any], name: str) -> object:
    if name not in claims:
        raise Unauthenticated(f"token lacks the `{echo(name)}` claim")
    return claims[name]


def _claim_text(claims: Mapping[str, Any], name: str) -> str:
    value = _claim(claims, name)
    if not isinstance(value, str) or not value:
        raise Unauthenticated(f"claim `{echo(name)}` is not a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class HeaderIdentity:
    """Identity asserted by a trusted proxy in front of Envoy. Safe only when nothing
    else can reach Envoy, or Envoy strips these headers from outside requests."""

    tenant_header: str
    subject_header: str
    subject_type: str
    bearer: bool = False

    async def principal(self, headers: Mapping[str, str]) -> Principal:
        tenant = headers.get(self.tenant_header, "")
        subject = headers.get(self.subject_header, "")
        if not tenant or not subject:
            raise MissingCredentials(
                f"missing `{self.tenant_header}` or `{self.subject_header}` header"
            )
        return Principal(tenant, _subject(self.subject_type, subject, f"`{self.subject_header}`"))
