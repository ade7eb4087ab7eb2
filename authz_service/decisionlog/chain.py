"""The per-stream hash chain.

Each stored line is the canonical JSON of the record's fields plus `seq`, `prev_hash`
and `hash`, where

    hash = hex(SHA-256(prev_hash_hex_ascii || canonical(body)))
    body = the line's object without `prev_hash` and `hash` (so it includes `seq`)

and the first entry of a stream has `prev_hash` = 64 zeros. Hashing the hex text of
`prev_hash` (not its raw bytes) lets an auditor recompute a link with standard tools.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from authz_service.decisionlog.check_record import EncodedCheck
from authz_service.decisionlog.record import DecisionRecord, canonical_json
from authz_service.errors import InvalidArgument, echo

__all__ = [
    "GENESIS_HASH",
    "ChainHead",
    "LogEntry",
    "chain_hash",
    "entry_from_line",
    "parse_line",
    "recompute_hash",
]

GENESIS_HASH = "0" * 64
_CHAIN_FIELDS = ("prev_hash", "hash")


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """The link hash of `body` (which must already hold `seq` and no chain fields)."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(body))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of a stream: `seq` -1 and the genesis hash for an empty stream."""

    seq: int = -1
    hash: str = GENESIS_HASH

    @property
    def count(self) -> int:
        return self.seq + 1


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A record placed in its stream: position, link to the previous entry, own hash.

    `line` is the exact stored bytes (without the newline), computed once at append
    time so the writer thread only does I/O.
    """

    tenant: str
    seq: int
    prev_hash: str
    hash: str
    line: bytes
    # None when the entry was linked from an `EncodedCheck`: `record` then reads it back
    # from `line` on first use (a mirror, a failure report), off the Check's path.
    _record: DecisionRecord | None = field(default=None, compare=False, repr=False)

    @property
    def record(self) -> DecisionRecord:
        record = self._record
        if record is None:
            record = DecisionRecord.from_dict(json.loads(self.line))
            object.__setattr__(self, "_record", record)  # a cache; the entry is unchanged
        return record

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.hash)

    @classmethod
    def link(cls, record: DecisionRecord | EncodedCheck, head: ChainHead) -> LogEntry:
        """The entry that follows `head` in the record's stream.

        Splices the record's encoded fields with the chain's members instead of encoding
        again: the result is byte for byte `canonical_json` of the line (tests check it).
        `head.hash` is a hex digest (ours, or one verified against its line on recovery),
        so it needs no escaping.
        """
        seq = head.seq + 1
        prev = head.hash.encode("ascii")
        # The record's runs lie around the chain's keys, in sorted order: hash, prev_hash,
        # seq. None of them is empty (each starts with its first key).
        a, b, c, d = record.segments
        # The hash covers the previous hash's text, then the body (the line without
        # `hash` and `prev_hash`): one buffer, one SHA-256 call.
        digest = hashlib.sha256(b'%s{%s,%s,%s,"seq":%d,%s}' % (prev, a, b, c, seq, d)).hexdigest()
        line = b'{%s,"hash":"%s",%s,"prev_hash":"%s",%s,"seq":%d,%s}' % (
            a,
            digest.encode("ascii"),
            b,
            prev,
            c,
            seq,
            d,
        )
        kept = record if isinstance(record, DecisionRecord) else None
        return cls(record.tenant, seq, head.hash, digest, line, kept)


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one stored line and check it is in canonical form.

    Canonical form is checked byte for byte, so an edit that leaves the JSON meaning
    unchanged (whitespace, escapes, key order, duplicate keys) is still reported.
    """
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"line is not json: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("line is not a json object")
    if canonical_json(data) != line:
        raise InvalidArgument("line is not in canonical form")
    for name in _CHAIN_FIELDS:
        if not isinstance(data.get(name), str):
            raise InvalidArgument(f"line lacks `{echo(name)}`")
    if not isinstance(data.get("seq"), int) or isinstance(data.get("seq"), bool):
        raise InvalidArgument("line lacks an integer `seq`")
    return data


def recompute_hash(data: dict[str, Any]) -> str:
    """The hash a parsed line should carry, given its own `prev_hash`."""
    body = {k: v for k, v in data.items() if k not in _CHAIN_FIELDS}
    return chain_hash(data["prev_hash"], body)


def entry_from_line(line: bytes) -> LogEntry:
    """Parse and self-check one stored line (not its link to the previous entry)."""
    data = parse_line(line)
    if recompute_hash(data) != data["hash"]:
        raise InvalidArgument(f"entry seq {data['seq']} does not match its hash")
    record = DecisionRecord.from_dict(data)
    return LogEntry(record.tenant, data["seq"], data["prev_hash"], data["hash"], line, record)
