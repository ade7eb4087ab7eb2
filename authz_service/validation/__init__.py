"""SpiceDB validation files: load, run, and check cross-API agreement.

    load_file(path) -> ValidationFile      the YAML document, parsed
    run_file(path) -> FileReport           schema, relationships, assertions, `validation`
                                           blocks and cross-API agreement, in a fresh store
    run_files(paths) -> list[FileReport]

`authz validate FILE...` (authz_service.cli.validate) prints the reports.
"""

from __future__ import annotations

from authz_service.validation.files import (
    Assertion,
    ExpectedRelations,
    ValidationFile,
    ValidationFileError,
    assertion_item,
    load_file,
    parse_file,
)
from authz_service.validation.report import FileReport
from authz_service.validation.runner import TENANT, run_file, run_files, run_loaded

__all__ = [
    "TENANT",
    "Assertion",
    "ExpectedRelations",
    "FileReport",
    "ValidationFile",
    "ValidationFileError",
    "assertion_item",
    "load_file",
    "parse_file",
    "run_file",
    "run_files",
    "run_loaded",
]
