"""Consistency tokens: opaque to callers, (tenant, revision) inside.

A token names the tenant it was issued for (by digest, so tokens do not spell tenant
names) and a revision. A token presented in another tenant is refused, since revisions
are per tenant and the number would mean something else there.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from authz_service.errors import FailedPrecondition, InvalidArgument, echo
from authz_service.model import Revision

__all__ = ["decode_token", "encode_token"]

_VERSION = "1"


@functools.lru_cache(maxsize=1024)
def _tenant_tag(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=4096)
def encode_token(tenant: str, revision: Revision) -> str:
    """Cached: every response carries a token, and most name one of a few hot revisions."""
    raw = f"{_VERSION}.{_tenant_tag(tenant)}.{revision}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, tenant: str, field: str = "consistency") -> Revision:
    try:
        padded = token + "=" * (-len(token) % 4)
        version, tag, revision = base64.urlsafe_b64decode(padded).decode().split(".")
        value = int(revision)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            f"`{echo(token)}` is not a consistency token", field=field, value=token
        ) from None
    if version != _VERSION or value < 0:
        raise InvalidArgument(
            f"`{echo(token)}` is not a consistency token", field=field, value=token
        )
    if tag != _tenant_tag(tenant):
        raise FailedPrecondition(
            f"consistency token was issued for another tenant, not `{echo(tenant)}`"
        )
    return value
