"""Page cursors: opaque, versioned, and bound to the call that issued them.

A cursor is `base64url(canonical JSON) "." check`, the JSON holding

    v    1, the format version
    rpc  the full method name that issued it
    t    a tag of the tenant (12 hex digits of SHA-256, as in consistency tokens)
    f    a digest of the request without `cursor`, `limit` and `consistency`
    at   the snapshot of the first page: a revision, or for QueryDecisions the last
         sequence number of every stream when the first page was served
    k    the position: the key of the last item served

and `check` the first 16 hex digits of SHA-256 of the JSON, so that a cut or altered
cursor is refused rather than read as some other position. A cursor presented to
another method, in another tenant or with another request is INVALID_ARGUMENT on
`cursor`; the snapshot it names is read like `at_exact_snapshot`, so a revision that
has left the retention window is FAILED_PRECONDITION.

Cursors are not signed. Everything a forged cursor could ask for, a caller can already
ask for: consistency tokens are not signed either, so any revision inside the retention
window can be read with `at_exact_snapshot`; a position only skips items of the
caller's own request; the tenant is the request's, whose credential the server checks;
and a QueryDecisions cursor reaches only records the same query without a cursor
returns too. The check catches accidents, binding catches misuse; a secret would add
key management across replicas and guard nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, TypeGuard

from google.protobuf.message import Message

from authz_service.api.convert import consistency
from authz_service.api.gen.authz.v1 import core_pb2
from authz_service.errors import InvalidArgument, echo
from authz_service.model import Consistency, ConsistencyMode
from authz_service.surrogates import lone_surrogate

__all__ = ["CursorScope", "Resumed"]

_VERSION = 1
_KEYS = frozenset({"v", "rpc", "t", "f", "at", "k"})
_MAX_RPC = 100  # method names are short; a longer one is not ours (and is not echoed)
_UNBOUND = ("cursor", "limit", "consistency")  # what may differ between pages
_MARK = "\x00k"  # where a stamper's position goes (no key or id holds a NUL)


def _hex(data: bytes, digits: int) -> str:
    return hashlib.sha256(data).hexdigest()[:digits]


def _not_ours(token: str) -> InvalidArgument:
    return InvalidArgument(
        "`cursor` is not a cursor this service issued (malformed or altered)",
        field="cursor",
        value=token,
    )


@dataclass(frozen=True, slots=True)
class Resumed:
    """Where a page starts: the snapshot to read at and the key to continue after."""

    consistency: Consistency
    after: str | None


@dataclass(frozen=True, slots=True)
class CursorScope:
    """The call a cursor belongs to: method, tenant and request digest."""

    rpc: str
    tenant: str
    request: str

    @classmethod
    def of(cls, rpc: str, tenant: str, request: Message) -> CursorScope:
        bound = type(request)()
        bound.CopyFrom(request)
        for name in _UNBOUND:
            if name in bound.DESCRIPTOR.fields_by_name:  # QueryDecisions has no consistency
                bound.ClearField(name)
        return cls(rpc, tenant, _hex(bound.SerializeToString(deterministic=True), 16))

    def issue(self, at: object, after: object) -> core_pb2.Cursor:
        body = {"v": _VERSION, "rpc": self.rpc, "t": _tag(self.tenant), "f": self.request}
        body |= {"at": at, "k": after}
        raw = _json(body)
        return _cursor(raw, hashlib.sha256(raw))

    def stamper(self, at: object) -> Callable[[str], core_pb2.Cursor]:
        """`issue(at, after)` for many text positions at one snapshot (a stream's
        results), the same bytes for a fraction of the work: the JSON around `k` and the hash of
        what precedes it are made once."""
        body = {"v": _VERSION, "rpc": self.rpc, "t": _tag(self.tenant), "f": self.request}
        body |= {"at": at, "k": _MARK}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        # The last occurrence: only `rpc`, `t` and `v` (no NUL in any) follow `k`.
        head, tail = (part.encode() for part in text.rsplit(json.dumps(_MARK), 1))
        started = hashlib.sha256(head)

        def stamp(after: str) -> core_pb2.Cursor:
            rest = encode_basestring_ascii(after).encode() + tail
            digest = started.copy()
            digest.update(rest)
            return _cursor(head + rest, digest)

        return stamp

    def resume(self, cursor: core_pb2.Cursor, requested: core_pb2.Consistency) -> Resumed:
        """Where a page of a listing pinned to a revision and keyed by text starts: the
        first page at the requested consistency, later ones at the cursor's revision."""
        opened = self._open(cursor)
        if opened is None:
            return Resumed(consistency(requested, self.tenant), None)
        revision, after = opened
        if type(revision) is not int or revision < 0 or not isinstance(after, str):
            raise _not_ours(cursor.token)
        return Resumed(Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, revision), after)

    def resume_after(self, cursor: core_pb2.Cursor) -> str:
        """The key to continue after, for a listing that is not pinned to a snapshot
        (ListKeys: `at` is 0); "" for a first page."""
        opened = self._open(cursor)
        if opened is None:
            return ""
        at, after = opened
        if at != 0 or not isinstance(after, str):
            raise _not_ours(cursor.token)
        return after

    def resume_log(self, cursor: core_pb2.Cursor) -> tuple[dict[str, int], dict[str, int]] | None:
        """(through, after) of a decision-log query's cursor, each the seq number of every
        stream by name; None for a first page."""
        opened = self._open(cursor)
        if opened is None:
            return None
        through, after = opened
        if _seqs(through) and _seqs(after):
            return through, after
        raise _not_ours(cursor.token)

    def _open(self, cursor: core_pb2.Cursor) -> tuple[object, object] | None:
        """(snapshot, position) of a cursor issued for this scope; None if none was sent."""
        token = cursor.token
        if not token:
            return None
        text, _, check = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            # Only the form `issue` writes: base64 that decodes to the same bytes with
            # padding, whitespace or unused bits set, or JSON spaced otherwise, is not it.
            if _base64(raw) != text or _hex(raw, 16) != check:
                raise _not_ours(token)
            body = json.loads(raw)
            if _json(body) != raw:
                raise _not_ours(token)
        except (ValueError, binascii.Error, RecursionError):  # RecursionError: deep nesting
            raise _not_ours(token) from None
        if not isinstance(body, dict) or set(body) != _KEYS:
            raise _not_ours(token)
        if lone_surrogate(body, "cursor") is not None:
            # JSON may escape half a UTF-16 pair; no key or id holds one (surrogates.py),
            # and neither the database nor an error message could take one.
            raise _not_ours(token)
        issuer = body["rpc"]
        if body["v"] != _VERSION or not isinstance(issuer, str) or len(issuer) > _MAX_RPC:
            raise _not_ours(token)
        if issuer != self.rpc:
            raise InvalidArgument(
                f"`cursor` was issued by `{echo(issuer)}`, not by `{self.rpc}`", field="cursor"
            )
        if body["t"] != _tag(self.tenant):
            raise InvalidArgument(
                f"`cursor` was issued for another tenant, not `{echo(self.tenant)}`", field="cursor"
            )
        if body["f"] != self.request:
            raise InvalidArgument(
                "`cursor` was issued for another request: send the same request again, "
                "changing only `limit`",
                field="cursor",
            )
        position = body["k"]
        if isinstance(position, str) and "\x00" in position:
            # No key or id holds a NUL (see _MARK); the database could not compare one.
            raise _not_ours(token)
        return body["at"], position


def _json(body: object) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _base64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(raw: bytes, digest: Any) -> core_pb2.Cursor:
    return core_pb2.Cursor(token=f"{_base64(raw)}.{digest.hexdigest()[:16]}")


def _tag(tenant: str) -> str:
    return _hex(tenant.encode(), 12)


def _seqs(value: object) -> TypeGuard[dict[str, int]]:
    return isinstance(value, dict) and all(
        isinstance(k, str) and type(v) is int and v >= -1 for k, v in value.items()
    )
