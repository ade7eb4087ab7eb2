"""AUTHZ_TLS_CLIENT_MAP: client certificates bound to a tenant and scopes by name.

For certificates that cannot carry the SPIFFE-style URI (api/peer_certs.py), a YAML
file lists which certificate name stands for which tenant and scopes:

    - match: "CN=billing,O=Example Corp"        # the subject, RFC 4514 form
      tenant: acme
      scopes: [check]
    - match: "spiffe://example.org/ns/ops/sa/admin"   # or a URI or DNS SAN
      tenant: "*"
      scopes: [admin, write]

It is read once at start; a bad file stops the server with an error naming the entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from authz_service.api.peer_certs import CERT_PREFIX
from authz_service.credentials import ApiKey, parse_scopes
from authz_service.errors import AuthzError, InvalidArgument, echo
from authz_service.unique_yaml import load_unique

__all__ = ["load_certificate_map"]

_FIELD = "AUTHZ_TLS_CLIENT_MAP"


def _refuse(path: Path, where: str, problem: str, value: object = None) -> InvalidArgument:
    return InvalidArgument(
        f"{_FIELD} `{echo(str(path))}`{where}: {problem}", field=_FIELD, value=value
    )


def _entry(path: Path, index: int, raw: Any) -> ApiKey:
    where = f" entry {index + 1}"
    if not isinstance(raw, dict) or set(raw) != {"match", "tenant", "scopes"}:
        raise _refuse(path, where, "needs exactly `match`, `tenant` and `scopes`", raw)
    match, tenant, scopes = raw["match"], raw["tenant"], raw["scopes"]
    for name, value in (("match", match), ("tenant", tenant)):
        if not isinstance(value, str) or not value:
            raise _refuse(path, where, f"`{name}` must be a non-empty string", value)
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise _refuse(path, where, "`scopes` must be a list of scope names", scopes)
    try:
        granted = parse_scopes(scopes)
    except AuthzError as exc:
        raise _refuse(path, where, exc.message, scopes) from None
    return ApiKey(
        key_id=f"{CERT_PREFIX}{match}",
        tenant=tenant,
        scopes=granted,
        secret_hash=b"",  # never matches a bearer secret: this identity has none
        created_at=datetime.fromtimestamp(0, UTC),
    )


def load_certificate_map(path: Path) -> dict[str, ApiKey]:
    """Certificate name -> the identity it stands for."""
    try:
        data = load_unique(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _refuse(path, "", f"cannot be read: {exc.strerror}", str(path)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _refuse(path, "", f"is not YAML ({exc})", str(path)) from None
    if not isinstance(data, list):
        raise _refuse(path, "", "must be a list of entries", str(path))
    mapping: dict[str, ApiKey] = {}
    for index, raw in enumerate(data):
        identity = _entry(path, index, raw)
        name = identity.key_id.removeprefix(CERT_PREFIX)
        if name in mapping:
            raise _refuse(path, f" entry {index + 1}", f"`{echo(name)}` is mapped twice", name)
        mapping[name] = identity
    return mapping
