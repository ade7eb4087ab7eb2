"""`authz import`'s progress total: the lines of the file, whatever its last byte."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.cli import import_


def _reference(data: bytes) -> int:
    """What iterating the file line by line counts."""
    return sum(1 for _ in io.BytesIO(data))


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
@given(data=st.binary(max_size=64) | st.text("ab\n\r").map(str.encode))
def test_counts_what_reading_line_by_line_counts(block: int, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.ndjson"
        path.write_bytes(data)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(import_, "_COUNT_BLOCK", block)
            assert import_._count_lines(path) == _reference(data)


def test_a_last_line_without_a_newline_counts(tmp_path: Path) -> None:
    path = tmp_path / "rows.ndjson"
    path.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert import_._count_lines(path) == 2
    path.write_bytes(b"")
    assert import_._count_lines(path) == 0
