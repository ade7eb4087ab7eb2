"""Format 1 checkpoints: one per stream, in the stream's own `checkpoints.jsonl`.

Writers before checkpoint format 2 wrote these. They are still read and checked (a
signed head is a signed head), but they cannot reveal a deleted stream or deleted
checkpoints, so a log signed only in format 1 does not verify with a public key until a
current writer has opened it once (its start checkpoint signs the whole root).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog.record import canonical_json, format_time, parse_time
from authz_service.errors import InvalidArgument

__all__ = ["StreamCheckpoint"]

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StreamCheckpoint:
    stream: str
    seq: int
    head_hash: str
    count: int
    time: datetime
    key_id: str
    signature: str  # base64 of the Ed25519 signature over `payload()`

    def _fields(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
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

    @classmethod
    def from_line(cls, line: bytes) -> StreamCheckpoint:
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
        signed = canonical_json({**checkpoint._fields(), "signature": checkpoint.signature})
        if data.get("format") != _FORMAT or signed != line:
            raise InvalidArgument("checkpoint is not in canonical form")
        if not isinstance(checkpoint.key_id, str):  # looked up among the given keys
            raise InvalidArgument("malformed checkpoint: `key_id` is not text")
        return checkpoint

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return self.count == self.seq + 1
