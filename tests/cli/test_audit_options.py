"""`authz audit` refuses a bad number for an option at once, naming the option and the
value (exit 2, bad input), before it reads the log or the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.cli import main


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("query", "--limit", "-1"),
        ("query", "--limit", "many"),
        ("replay", "--concurrency", "0"),
        ("replay", "--concurrency", "-4"),
    ],
)
def test_a_bad_number_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", command, "--log-dir", str(tmp_path), option, value])
    assert exited.value.code == 2
    assert f"argument {option}: `{value}` is not a whole number of" in capsys.readouterr().err


def test_a_limit_of_zero_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--log-dir", str(tmp_path), "--json", "--limit", "0"]) == 0
    assert capsys.readouterr().out == ""
