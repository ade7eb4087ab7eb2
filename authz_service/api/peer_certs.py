"""A tenant and scopes bound to a client certificate, as an alternative to an API key.

With a client CA configured (AUTHZ_TLS_CLIENT_CA), gRPC verifies every client's
certificate during the handshake. A certificate whose URI SAN reads

    spiffe://<trust domain>/tenant/<tenant>/scopes/<scope>[+<scope>...]

(tenant `*` for a platform operator) then stands for a key of that tenant and those
scopes, named `cert:<the URI>` in refusals and decision-log records. The trust domain is
not checked: the client CA is the trust anchor, so give the service a CA of its own.
A mapping file (api/cert_map.py) binds other certificates by subject or SAN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

from cryptography import x509

from authz_service.credentials import ApiKey, parse_scopes
from authz_service.errors import AuthzError

__all__ = ["CERT_PREFIX", "certificate_identity", "identity_from_uri"]

CERT_PREFIX: Final = "cert:"

_URI = re.compile(r"spiffe://[^/]+/tenant/(?P<tenant>[^/]+)/scopes/(?P<scopes>[a-z+]+)")


def identity_from_uri(uri: str) -> ApiKey | None:
    """The key a SPIFFE-style URI stands for; None if it is not of that form."""
    match = _URI.fullmatch(uri)
    if match is None:
        return None
    try:
        scopes = parse_scopes(match["scopes"].split("+"))
    except AuthzError:
        return None
    return ApiKey(
        key_id=f"{CERT_PREFIX}{uri}",
        tenant=match["tenant"],
        scopes=scopes,
        secret_hash=b"",  # never matches a bearer secret: this identity has none
        created_at=datetime.fromtimestamp(0, UTC),
    )


def _names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(URI SANs, every name a mapping may match: subject, URI and DNS SANs)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [cert.subject.rfc4514_string()]
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    dns = sans.get_values_for_type(x509.DNSName)
    return uris, [cert.subject.rfc4514_string(), *uris, *dns]


def certificate_identity(
    auth_context: Mapping[str, Iterable[bytes]], mapping: Mapping[str, ApiKey] | None = None
) -> ApiKey | None:
    """The identity of a verified peer certificate (grpc's `context.auth_context()`):
    from a SPIFFE-style URI SAN, or from `mapping` (certificate subject or SAN ->
    identity, AUTHZ_TLS_CLIENT_MAP). None without a certificate, or unless exactly one
    identity is found: two in one certificate are ambiguous, and neither is used."""
    pems = list(auth_context.get("x509_pem_cert") or ())
    if len(pems) != 1:
        return None
    try:
        uris, names = _names(x509.load_pem_x509_certificate(pems[0]))
    except ValueError:
        return None
    found = [i for i in map(identity_from_uri, uris) if i is not None]
    if mapping:
        found += [m for m in map(mapping.get, names) if m is not None]
    # A URI and a mapping entry matching it share their name (`cert:<uri>`): compare what
    # they grant too, so that one never silently replaces the other.
    distinct = {(i.key_id, i.tenant, i.scopes): i for i in found}
    return next(iter(distinct.values())) if len(distinct) == 1 else None
