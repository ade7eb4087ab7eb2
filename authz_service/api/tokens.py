"""Consistency tokens: opaque to callers, (tenant, revision[, schema seq]) inside.

A token names the tenant it was issued for (by digest, so tokens do not spell tenant
names) and a revision. A token presented in another tenant is refused, since revisions
are per tenant and the number would mean something else there.

The token of a write also carries the `seq` of the schema the write was checked against
(format 2), so a read at least as fresh as the write never decides with an older schema,
on any replica. WriteSchema's token carries only a schema seq and no tenant (`*`): every
tenant accepts it as at_least_as_fresh, and nothing else accepts it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from authz_service.errors import FailedPrecondition, InvalidArgument, echo
from authz_service.model import Revision

__all__ = ["decode_fresh", "decode_token", "encode_schema_token", "encode_token"]

_REVISION_ONLY = "1"  # 1.<tenant tag>.<revision>
_WITH_SCHEMA = "2"  # 2.<tenant tag or *>.<revision>.<schema seq>
_ANY_TENANT = "*"
# What `_encode` writes: a tag of 12 hex digits (`*`: any tenant) and plain numbers.
_NUMBER = "0|[1-9][0-9]*"
_FORM = re.compile(
    rf"1\.(?P<tag>[0-9a-f]{{12}})\.(?P<rev>{_NUMBER})"
    rf"|2\.(?P<tag2>[0-9a-f]{{12}}|\*)\.(?P<rev2>{_NUMBER})\.(?P<seq>{_NUMBER})"
)


@functools.lru_cache(maxsize=1024)
def _tenant_tag(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@functools.lru_cache(maxsize=4096)
def encode_token(tenant: str, revision: Revision, schema_seq: int = 0) -> str:
    """Cached: every response carries a token, and most name one of a few hot revisions."""
    if schema_seq:
        return _encode(f"{_WITH_SCHEMA}.{_tenant_tag(tenant)}.{revision}.{schema_seq}")
    return _encode(f"{_REVISION_ONLY}.{_tenant_tag(tenant)}.{revision}")


def encode_schema_token(schema_seq: int) -> str:
    """WriteSchema's token: "decide with this schema or a newer one", in any tenant."""
    return _encode(f"{_WITH_SCHEMA}.{_ANY_TENANT}.0.{schema_seq}")


def decode_fresh(
    token: str, tenant: str, field: str = "consistency", *, schema_token: bool = True
) -> tuple[Revision, int]:
    """(revision, schema seq) that a read must reach; a schema token gives revision 0.
    With `schema_token=False` (exact snapshots, Watch positions, which need a revision)
    a schema token is refused."""
    tag, revision, schema_seq = _decode(token, field)
    if tag == _ANY_TENANT and not schema_token:
        raise InvalidArgument(
            "a WriteSchema token names no revision; use it as at_least_as_fresh",
            field=field,
            value=token,
        )
    if tag != _ANY_TENANT and tag != _tenant_tag(tenant):
        raise FailedPrecondition(
            f"consistency token was issued for another tenant, not `{echo(tenant)}`"
        )
    return revision, schema_seq


def decode_token(token: str, tenant: str, field: str = "consistency") -> Revision:
    """The revision of a tenant's token (a WriteSchema token is refused)."""
    return decode_fresh(token, tenant, field, schema_token=False)[0]


def _decode(token: str, field: str) -> tuple[str, Revision, int]:
    """(tag, revision, schema seq) of a token in exactly the form `_encode` gives it.

    Anything else is refused, rather than read as the token it resembles: padding, the
    standard alphabet, whitespace or unused bits set in the base64; a sign, `_`, a
    leading zero or a non-ASCII digit (all of which int() accepts) in a number."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        form = _FORM.fullmatch(raw)
        if form is not None and _encode(raw) == token:
            if form["rev"] is not None:
                return form["tag"], int(form["rev"]), 0
            return form["tag2"], int(form["rev2"]), int(form["seq"])
    except ValueError:  # not base64, not ASCII, or a number past int()'s 4300 digits
        pass
    raise InvalidArgument(f"`{echo(token)}` is not a consistency token", field=field, value=token)
