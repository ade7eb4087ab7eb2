"""A command imports what it uses: `authz import` is timed as a whole by users and the
import benchmark, and the other commands' modules pull in gRPC, the engine and CEL at
import (about 0.5 s of CPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from authz_service.cli import _COMMANDS, build_parser, main

HEAVY = ("grpc", "authz_service.engine", "cel")


def test_the_import_command_loads_neither_grpc_nor_the_engine() -> None:
    script = (
        "import sys\n"
        "from authz_service.cli import build_parser\n"
        "args = build_parser('import').parse_args(['import', 'x.ndjson', '--tenant', 't'])\n"
        f"print(args.tenant, [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["t", "[]"]


def test_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    for command in _COMMANDS:
        assert command in listed


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_each_command_parses_with_its_module_alone(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(command).parse_args([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: authz {command}" in capsys.readouterr().out
