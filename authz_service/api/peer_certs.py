"""A tenant and scopes bound to a client certificate, as an alternative to an API key.

With a client CA configured (AUTHZ_TLS_CLIENT_CA), gRPC verifies every client's
certificate during the handshake. A certificate whose URI SAN reads

    spiffe://<trust domain>/tenant/<tenant>/scopes/<scope>[+<scope>...]

(tenant `*` for a platform operator) then stands for a key of that tenant and those
scopes, named `cert:<the URI>` in refusals and decision-log records. The trust domain is
not checked: the client CA is the trust anchor, so give the service a CA of its own.
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


def certificate_identity(auth_context: Mapping[str, Iterable[bytes]]) -> ApiKey | None:
    """The identity of a verified peer certificate (grpc's `context.auth_context()`);
    None without a certificate or without exactly one identity URI in it."""
    pems = list(auth_context.get("x509_pem_cert") or ())
    if len(pems) != 1:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    found = [
        i
        for i in map(identity_from_uri, names.get_values_for_type(x509.UniformResourceIdentifier))
        if i
    ]
    # Two identities in one certificate are ambiguous: neither is used.
    return found[0] if len(found) == 1 else None
