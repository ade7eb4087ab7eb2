"""A log whose signing key was rotated verifies with the public keys of both: each
checkpoint with the key it names. A checkpoint naming a key that was not given, or not
signed by the key it names, still fails (docs/decision-log.md, "Key rotation")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authz_service.decisionlog import (
    Checkpoint,
    DecisionLogConfig,
    Problem,
    canonical_json,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    verify_all,
)
from authz_service.decisionlog.checkpoint import CheckpointEvent
from authz_service.decisionlog.layout import CHECKPOINT_FILE

from .helpers import make_record, write_records


@pytest.fixture
async def rotated(tmp_path: Path, keys: tuple[Path, Path]) -> tuple[Path, Path, Path]:
    """A log written with the first key, then (after a restart) with a second one:
    (root, first public key, second public key)."""
    root = tmp_path / "log"
    await write_records(DecisionLogConfig(root=root, signing_key_path=keys[0]), 3)
    second_private, second_public = generate_keypair(tmp_path / "keys2")
    await write_records(DecisionLogConfig(root=root, signing_key_path=second_private), 3)
    return root, keys[1], second_public


def _checkpoint_lines(root: Path) -> list[bytes]:
    return (root / CHECKPOINT_FILE).read_bytes().splitlines()


def test_a_rotated_log_verifies_with_both_keys(rotated: tuple[Path, Path, Path]) -> None:
    root, first, second = rotated
    (report,) = verify_all(root, [load_public_key(first), load_public_key(second)])
    assert report.ok, report.findings
    assert report.checkpoints == 3  # the first start preceded the stream; then close, start, close


@pytest.mark.parametrize(("given", "missing", "line"), [(1, 2, 3), (2, 1, 1)])
def test_a_checkpoint_of_a_key_not_given_fails_naming_it(
    rotated: tuple[Path, Path, Path], given: int, missing: int, line: int
) -> None:
    root, *public = rotated
    (report,) = verify_all(root, load_public_key(public[given - 1]))
    first = report.first
    assert first is not None
    assert (first.problem, first.segment, first.line) == (
        Problem.BAD_SIGNATURE,
        root / CHECKPOINT_FILE,
        line,
    )
    absent = key_id(load_public_key(public[missing - 1]))
    assert f"signed by key `{absent}`, which is not one of the public keys given" in first.message


def test_a_checkpoint_signed_with_an_unknown_key_fails(rotated: tuple[Path, Path, Path]) -> None:
    root, first, second = rotated
    keys = [load_public_key(first), load_public_key(second)]
    stranger = Ed25519PrivateKey.generate()
    (report,) = verify_all(root, keys)
    head = report.head
    forged = Checkpoint.sign(
        stranger, CheckpointEvent.INTERVAL, {"acme": head}, make_record().time, 60_000
    )
    with (root / CHECKPOINT_FILE).open("ab") as file:
        file.write(forged.to_line() + b"\n")
    (report,) = verify_all(root, keys)
    assert report.first is not None
    assert (report.first.problem, report.first.line) == (Problem.BAD_SIGNATURE, 5)
    assert f"key `{key_id(stranger.public_key())}`, which is not one" in report.first.message


def test_a_checkpoint_naming_a_given_key_must_be_signed_by_it(
    rotated: tuple[Path, Path, Path], keys: tuple[Path, Path]
) -> None:
    root, first, second = rotated
    lines = _checkpoint_lines(root)
    # The second writer's close, re-signed by the first key but still naming the second.
    data = json.loads(lines[3])
    forged = Checkpoint.from_line(lines[3])
    signed = Checkpoint.sign(
        load_private_key(keys[0]), forged.event, forged.heads, forged.time, forged.interval_ms
    )
    data["signature"] = signed.signature
    lines[3] = canonical_json(data)
    (root / CHECKPOINT_FILE).write_bytes(b"".join(x + b"\n" for x in lines))
    (report,) = verify_all(root, [load_public_key(first), load_public_key(second)])
    assert report.first is not None
    assert (report.first.problem, report.first.line) == (Problem.BAD_SIGNATURE, 4)
    assert "signature does not verify" in report.first.message


def test_a_checkpoint_whose_key_id_is_not_text_is_malformed(
    rotated: tuple[Path, Path, Path],
) -> None:
    root, first, second = rotated
    lines = _checkpoint_lines(root)
    data = json.loads(lines[0])
    data["key_id"] = [data["key_id"]]
    lines[0] = canonical_json(data)
    (root / CHECKPOINT_FILE).write_bytes(b"".join(x + b"\n" for x in lines))
    (report,) = verify_all(root, [load_public_key(first), load_public_key(second)])
    assert report.first is not None
    assert (report.first.problem, report.first.line) == (Problem.BAD_CHECKPOINT, 1)
