"""`authz validate`: output format, failure lines, exit status, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from authz_service.cli import main
from authz_service.engine import Decision
from authz_service.validation import parse_file, run_file, run_loaded
from authz_service.validation.files import canonical_subject

GOOD = """
schema: |-
  definition user {}
  caveat over(x int) { x > 5 }
  definition group {
    relation member: user | user with over
  }
  definition doc {
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = viewer - banned
  }
relationships: |-
  // a comment line
  doc:d#viewer@group:g#member
  group:g#member@user:ann
  group:g#member@user:cat[over]
  doc:pub#viewer@user:*
  doc:pub#banned@user:eve
assertions:
  assertTrue:
    - doc:d#view@user:ann
    - 'doc:d#view@user:cat with {"x": 9}'
  assertCaveated:
    - doc:d#view@user:cat
  assertFalse:
    - doc:d#view@user:bob
    - doc:pub#view@user:eve
validation:
  doc:d#view:
    - "[user:ann] is <group:g#member>"
    - "[user:cat[...]] is <group:g#member>"
    - "[group:g#member] is <doc:d#viewer>"
  doc:pub#view:
    - "[user:* - {user:eve}] is <doc:pub#viewer>"
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_good_file_passes_everything(tmp_path: Path) -> None:
    report = await run_file(_write(tmp_path, "good.yaml", GOOD))
    assert report.failures == []
    assert report.passed > 5 + 2  # assertions, validation blocks, and agreement checks


async def test_failures_are_one_line_each(tmp_path: Path) -> None:
    bad = GOOD.replace(
        "assertFalse:\n    - doc:d#view@user:bob", "assertFalse:\n    - doc:d#view@user:ann"
    )
    bad = bad.replace('"[user:ann] is <group:g#member>"', '"[user:zed] is <group:g#member>"')
    path = _write(tmp_path, "bad.yaml", bad)
    report = await run_file(path)
    assert f"{path}: doc:d#view@user:ann: expected DENIED, got ALLOWED" in report.failures
    assert f"{path}: validation `doc:d#view`: expected subject `user:zed`, got none" in (
        report.failures
    )
    assert f"{path}: validation `doc:d#view`: unexpected subject `user:ann`" in report.failures
    assert len(report.failures) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema: [unclosed", "file: not valid YAML"),
        # SpiceDB's loader refuses a key given twice; YAML alone would keep the last one.
        (
            "schema: |-\n  definition user {}\nrelationships: ''\nschema: ''\n",
            "duplicate key `schema` on line 4 (first on line 1)",
        ),
        ("- just\n- a list\n", "file: expected a YAML mapping"),
        (
            "schema: |-\n  definition doc { relation viewer: nobody }\n",
            "schema 1:35: unknown definition `nobody`",
        ),
        (
            "schema: |-\n  definition user {}\n  definition doc { relation viewer: user }\n"
            "relationships: doc:d#editor@user:ann\n",
            "relationship `doc:d#editor@user:ann`: unknown relation `editor`",
        ),
        (
            "schema: |-\n  definition user {}\n  definition doc { relation viewer: user }\n"
            "relationships: |-\n  doc:d#viewer@user:ann\n  doc:d#viewer@user:ann\n",
            "relationships: relationship `doc:d#viewer@user:ann` appears twice",
        ),
        (
            "schema: |-\n  definition user {}\n  definition doc { relation viewer: user }\n"
            "assertions:\n  assertTrue:\n    - 'doc:d#viewer@user:ann with {nope'\n",
            "context is not valid JSON",
        ),
        (
            "schema: |-\n  definition user {}\n  definition doc { relation viewer: user }\n"
            "relationships: doc:d#viewer@user\n",
            "relationship `doc:d#viewer@user`: ",
        ),
    ],
)
async def test_broken_files_fail_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    report = await run_file(_write(tmp_path, "broken.yaml", text))
    assert report.failed >= 1
    assert any(message in line for line in report.failures), report.failures


def test_command_prints_summary_and_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good.yaml", GOOD)
    assert main(["validate", good]) == 0
    out = capsys.readouterr().out.splitlines()
    passed = int(out[-1].split()[0])
    assert out[-1] == f"{passed} passed, 0 failed"
    broken = _write(tmp_path, "broken.yaml", "schema: |-\n  definition doc {\n")
    assert main(["validate", good, broken]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{broken}: schema ")
    assert out[-1] == f"{passed} passed, 1 failed"


def test_a_file_that_cannot_be_read_is_bad_input_not_a_failure(tmp_path: Path) -> None:
    """Exit status 2 (an error: bad arguments or input), as `authz --help` says, and no
    traceback: status 1 would read as "the file's checks failed"."""
    good = _write(tmp_path, "good.yaml", GOOD)
    for unreadable in (str(tmp_path / "missing.yaml"), str(tmp_path)):
        done = subprocess.run(
            [sys.executable, "-m", "authz_service", "validate", good, unreadable],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr + done.stdout
        assert f"cannot read `{unreadable}`" in done.stderr
        assert done.stdout == ""  # nothing was run: no summary that counts it as a file


def test_a_file_that_does_not_parse_is_a_failure(tmp_path: Path) -> None:
    broken = _write(tmp_path, "broken.yaml", "schema: [unclosed\n")
    done = subprocess.run(
        [sys.executable, "-m", "authz_service", "validate", broken],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed"


async def test_null_and_empty_sections_are_accepted() -> None:
    text = "schema: |-\n  definition user {}\nrelationships: ''\nassertions: null\nvalidation: {}\n"
    report = await run_loaded(parse_file("inline.yaml", text))
    assert report.failures == []


def test_assertion_context_and_kinds_are_parsed() -> None:
    loaded = parse_file("inline.yaml", GOOD)
    kinds = {a.text: a.expected for a in loaded.assertions}
    assert kinds['doc:d#view@user:cat with {"x": 9}'] is Decision.ALLOWED
    assert kinds["doc:d#view@user:cat"] is Decision.CONDITIONAL
    cat = next(a for a in loaded.assertions if a.text.endswith("9}"))
    assert dict(cat.item.context) == {"x": 9}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("user:tom#...", "user:tom"),
        ("user:tom[...]", "user:tom[...]"),
        ("user:* - {user:b, user:a#...}", "user:* - {user:a, user:b}"),
        ("group:eng#member", "group:eng#member"),
    ],
)
def test_expected_subject_canonical_form(text: str, canonical: str) -> None:
    assert canonical_subject(text) == canonical
