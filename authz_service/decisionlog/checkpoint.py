"""Signed checkpoints and the Ed25519 keys that sign them.

The hash chain alone cannot reveal a cut tail: the remaining prefix is a valid chain.
A checkpoint states "stream S had `count` entries ending in `head_hash`", signed with
a key the log writer holds and an auditor does not need (the public key suffices).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from authz_service.decisionlog.chain import ChainHead
from authz_service.decisionlog.record import (
    FORMAT_VERSION,
    canonical_json,
    format_time,
    parse_time,
)
from authz_service.errors import AlreadyExists, InvalidArgument, NotFound

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "Checkpoint",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
]

PRIVATE_KEY_FILE = "decision-log-signing.key.pem"
PUBLIC_KEY_FILE = "decision-log-signing.pub.pem"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint naming the key in each checkpoint, for key rotation."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    seq: int
    head_hash: str
    count: int
    time: datetime
    key_id: str
    signature: str  # base64 of the Ed25519 signature over `payload()`

    @classmethod
    def sign(
        cls, private_key: Ed25519PrivateKey, stream: str, head: ChainHead, time: datetime
    ) -> Checkpoint:
        unsigned = cls(
            stream, head.seq, head.hash, head.count, time, key_id(private_key.public_key()), ""
        )
        signature = base64.b64encode(private_key.sign(unsigned.payload())).decode("ascii")
        return cls(stream, head.seq, head.hash, head.count, time, unsigned.key_id, signature)

    def _fields(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "stream": self.stream,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "count": self.count,
            "time": format_time(self.time),
            "key_id": self.key_id,
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
            checkpoint = cls(
                stream=data["stream"],
                seq=data["seq"],
                head_hash=data["head_hash"],
                count=data["count"],
                time=parse_time(data["time"]),
                key_id=data["key_id"],
                signature=data["signature"],
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"malformed checkpoint: {exc}") from exc
        if data.get("format") != FORMAT_VERSION or checkpoint.to_line() != line:
            raise InvalidArgument("checkpoint is not in canonical form")
        return checkpoint

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return self.count == self.seq + 1


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as PEM files into `directory`; return (private, public).

    The private key file is created 0600 and never overwritten: replacing a signing key
    by accident would make older checkpoints unverifiable with the new public key.
    """
    directory.mkdir(parents=True, exist_ok=True)
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


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
