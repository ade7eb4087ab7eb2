"""Signed checkpoints and the Ed25519 keys that sign them.

The hash chain alone cannot reveal a cut tail: the remaining prefix is a valid chain.
A checkpoint is one signed statement about a whole writer root: "at `time` these were
all the streams, each with its head (`seq`, `hash`)". Because it names every stream, a
stream that was removed, emptied or cut contradicts every later checkpoint; because the
writer signs at start, every `interval_ms` (whether or not anything changed) and at
close, a log whose newest checkpoints are missing shows an unsigned tail (see
verify_tail.py). The writer holds the private key; an auditor needs only the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from authz_service.decisionlog.chain import ChainHead
from authz_service.decisionlog.record import canonical_json, format_time, parse_time
from authz_service.errors import AlreadyExists, InvalidArgument, NotFound

__all__ = [
    "CHECKPOINT_FORMAT",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "Checkpoint",
    "CheckpointEvent",
    "PublicKeys",
    "generate_keypair",
    "key_id",
    "keys_by_id",
    "load_private_key",
    "load_public_key",
]

PRIVATE_KEY_FILE = "decision-log-signing.key.pem"
PUBLIC_KEY_FILE = "decision-log-signing.pub.pem"
CHECKPOINT_FORMAT = 3
"""The format written. Format 2 is the same line, from writers that skipped an interval
when no stream had changed: read, never written, and its tail judged without the rule
that needs a checkpoint every interval (verify_tail.py). Format 1 was a checkpoint per
stream (see checkpoint_v1.py); it is read, never written."""
_READ_FORMATS = frozenset({2, CHECKPOINT_FORMAT})

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint naming the key in each checkpoint, for key rotation."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey]
"""What a verifier is given: the log's public key, or after key rotations each key it
was signed with."""


def keys_by_id(keys: PublicKeys) -> dict[str, Ed25519PublicKey]:
    """Each checkpoint names its key (`key_id`, which it signs), so each is verified with
    that key alone: one key of the set cannot vouch for another's checkpoints."""
    listed = [keys] if isinstance(keys, Ed25519PublicKey) else keys
    return {key_id(key): key for key in listed}


class CheckpointEvent(StrEnum):
    START = "start"
    """The writer opened the root: signs the heads it recovered, before any append."""
    INTERVAL = "interval"
    """Written every `interval_ms`, also when nothing changed (format 2: only if something had)."""
    CLOSE = "close"
    """The writer's last word: no record may follow until the next `start`."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    time: datetime
    event: CheckpointEvent
    interval_ms: int  # the writer's checkpoint interval: the longest a record stays unsigned
    heads: Mapping[str, ChainHead]  # tenant -> head, for every stream with a record
    key_id: str
    signature: str  # base64 of the Ed25519 signature over `payload()`
    format: int = CHECKPOINT_FORMAT  # signed like every other field, so it cannot be lowered

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", MappingProxyType(dict(sorted(self.heads.items()))))

    @property
    def every_interval(self) -> bool:
        """Its writer signed every `interval_ms` even when nothing had changed, so while
        it ran no record can be dated more than an interval after its newest checkpoint."""
        return self.format >= 3

    @classmethod
    def sign(
        cls,
        private_key: Ed25519PrivateKey,
        event: CheckpointEvent,
        heads: Mapping[str, ChainHead],
        time: datetime,
        interval_ms: int,
    ) -> Checkpoint:
        kid = key_id(private_key.public_key())
        unsigned = cls(time, event, interval_ms, heads, kid, "")
        signature = base64.b64encode(private_key.sign(unsigned.payload())).decode("ascii")
        return cls(time, event, interval_ms, heads, kid, signature)

    def _fields(self) -> dict[str, Any]:
        return {
            "event": self.event.value,
            "format": self.format,
            "interval_ms": self.interval_ms,
            "key_id": self.key_id,
            "streams": {t: {"hash": h.hash, "seq": h.seq} for t, h in self.heads.items()},
            "time": format_time(self.time),
        }

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON of every field except the signature."""
        return canonical_json(self._fields())

    def to_line(self) -> bytes:
        return canonical_json({**self._fields(), "signature": self.signature})

    @classmethod
    def from_line(cls, line: bytes) -> Checkpoint:
        try:
            data = json.loads(line)
            format_ = data.get("format")
            if format_ not in _READ_FORMATS:
                raise InvalidArgument("checkpoint format is not 2 or 3")
            checkpoint = cls(
                time=parse_time(data["time"]),
                event=CheckpointEvent(data["event"]),
                interval_ms=_positive_int(data["interval_ms"]),
                heads={t: _head(h) for t, h in data["streams"].items()},
                key_id=_key_id(data["key_id"]),
                signature=data["signature"],
                format=format_,
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"malformed checkpoint: {exc}") from exc
        if checkpoint.to_line() != line:
            raise InvalidArgument("checkpoint is not in canonical form")
        return checkpoint

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True


def _positive_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{value}` is not a positive integer")
    return value


def _key_id(value: object) -> str:
    # Looked up among the keys a verifier was given: it must be a string to be one.
    if not isinstance(value, str):
        raise ValueError("key_id is not text")
    return value


def _head(value: dict[str, Any]) -> ChainHead:
    seq, hash_ = value["seq"], value["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError(f"seq `{seq}` is not a non-negative integer")
    if not isinstance(hash_, str) or not _HASH_RE.fullmatch(hash_):
        raise ValueError("hash is not 64 lowercase hex digits")
    return ChainHead(seq, hash_)


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as PEM files into `directory`; return (private, public).

    The private key file is created 0600 and never overwritten: replacing a signing key
    by accident would make older checkpoints unverifiable with the new public key.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(
            f"cannot create key directory `{directory}`: {_reason(exc)}"
        ) from None
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise AlreadyExists(f"key file `{path}` already exists")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InvalidArgument(f"cannot write key file `{path}`: {_reason(exc)}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the PEM is encrypted
        raise InvalidArgument(f"`{path}` is not an unencrypted pem private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument(f"`{path}` is not an ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path))
    except ValueError as exc:
        raise InvalidArgument(f"`{path}` is not a pem public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgument(f"`{path}` is not an ed25519 public key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"key file `{path}` does not exist") from exc
    except OSError as exc:  # a directory, no permission, a device that fails
        raise InvalidArgument(f"cannot read key file `{path}`: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
