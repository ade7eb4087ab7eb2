"""Every SpiceDB validation file in ../shared/conformance/spicedb passes `authz validate`'s
runner: schema, relationships, assertions, `validation` blocks and cross-API agreement.

The directory is found next to the repository (override with AUTHZ_CONFORMANCE_DIR).
A missing directory is a failure, not a skip: the suite must not pass by finding nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authz_service.validation import run_file

CONFORMANCE_DIR = Path(
    os.environ.get("AUTHZ_CONFORMANCE_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "spicedb"
)


def _files() -> list[Path]:
    if not CONFORMANCE_DIR.is_dir():
        return []
    # `self.yaml.skip` is skipped upstream (its harness cannot express `self`); ours can.
    return sorted([*CONFORMANCE_DIR.glob("*.yaml"), *CONFORMANCE_DIR.glob("*.yaml.skip")])


def test_conformance_directory_is_present() -> None:
    assert CONFORMANCE_DIR.is_dir(), f"conformance files not found at {CONFORMANCE_DIR}"
    assert len(list(CONFORMANCE_DIR.glob("*.yaml"))) >= 50


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
async def test_conformance_file(path: Path) -> None:
    report = await run_file(str(path))
    assert report.failures == []
    assert report.passed > 0
