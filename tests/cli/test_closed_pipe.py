"""`authz ... | head` closes the pipe early: the CLI stops quietly, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VALIDATION = """\
schema: |-
  definition user {}
  definition document {
    relation viewer: user
    permission view = viewer
  }
relationships: |-
  document:readme#viewer@user:alice
assertions:
  assertTrue:
    - document:readme#view@user:bob
"""


def test_a_reader_that_went_away_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(VALIDATION)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "authz_service", "validate", str(path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.returncode == 141  # what a shell reports for a command ended by SIGPIPE
