"""`authz validate FILE...`: run SpiceDB validation files against the engine.

Prints one line per failed check (`FILE: WHAT: expected X, got Y`) and a final line
`N passed, M failed`, counting individual checks. Exit status 1 if anything failed,
including a file whose YAML or schema does not parse; 2, before anything runs, if a
file cannot be read at all (missing, a directory, no permission).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from authz_service.cli.files import unreadable
from authz_service.errors import PATH_CHARS, InvalidArgument, echo
from authz_service.validation import run_files

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="run SpiceDB validation files (schema, relationships, assertions)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="validation YAML files")
    parser.add_argument(
        "--no-agreement",
        action="store_true",
        help="skip the cross-API agreement checks (assertions and validation blocks only)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print a summary line per file"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    for path in args.files:
        _require_readable(path)
    reports = asyncio.run(run_files(args.files, agreement=not args.no_agreement))
    passed = failed = 0
    for report in reports:
        for line in report.failures:
            print(line)
        if args.verbose:
            print(f"{report.path}: {report.passed} passed, {report.failed} failed")
        passed += report.passed
        failed += report.failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _require_readable(path: str) -> None:
    """A file that cannot be opened is a wrong argument (exit 2), not a failed check."""
    problem = unreadable(path)
    if problem is not None:
        raise InvalidArgument(
            f"cannot read `{echo(path, PATH_CHARS)}`: {problem}", field="FILE", value=path
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read `{echo(path, PATH_CHARS)}`: {exc.strerror or exc}",
            field="FILE",
            value=path,
        ) from None
