"""Every SpiceDB validation file (tests/conformance/spicedb, or AUTHZ_CONFORMANCE_DIR)
passes `authz validate`'s runner: schema, relationships, assertions, `validation` blocks
and cross-API agreement.

A missing directory is a failure, not a skip: the suite must not pass by finding nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.validation import run_file
from tests.conformance.corpus import CORPUS as CONFORMANCE_DIR
from tests.conformance.corpus import corpus_files as _files


def test_conformance_directory_is_present() -> None:
    assert CONFORMANCE_DIR.is_dir(), f"conformance files not found at {CONFORMANCE_DIR}"
    assert len(list(CONFORMANCE_DIR.glob("*.yaml"))) >= 50


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
async def test_conformance_file(path: Path) -> None:
    report = await run_file(str(path))
    assert report.failures == []
    assert report.passed > 0
