"""`authz audit ...`: the auditor's tools over a decision log directory.

    authz audit keygen DIR                         Ed25519 key pair for checkpoints
    authz audit verify --public-key PEM...         chain + checkpoints of every stream
    authz audit query [filters] [--json]           matching records, as a table or JSON lines
    authz audit explain DECISION_ID                one decision and its granting path
    authz audit replay [filters] [--schema-version V]   re-evaluate and compare

They read the files directly (never through a server, which an auditor need not
trust), so they work on a copy of the log. Exit status: 0 fine, 1 something failed
verification / differs / could not be replayed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.cli import audit_replay
from authz_service.cli.audit_args import (
    add_filters,
    add_log_dir,
    at_least,
    log_dir,
    record_filter,
)
from authz_service.decisionlog import (
    format_jsonl,
    format_table,
    generate_keypair,
    load_public_key,
)
from authz_service.decisionlog.verify_report import VerifyReport
from authz_service.errors import AuthzError
from authz_service.service.log_reader import Stream, iter_log, verify_log

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="verify, query, explain and replay the decision log")
    audit = parser.add_subparsers(dest="audit_command", required=True)

    keygen = audit.add_parser("keygen", help="create an Ed25519 key pair for checkpoints")
    keygen.add_argument("directory", type=Path)
    keygen.set_defaults(handler=_keygen)

    verify = audit.add_parser("verify", help="verify every stream of a decision log")
    add_log_dir(verify)
    keys = verify.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--public-key",
        type=_public_key,
        action="append",
        help="a checkpoint signing key's public PEM; after a key rotation, give each key the "
        "log was signed with (each checkpoint names its key)",
    )
    keys.add_argument(
        "--no-signatures",
        action="store_true",
        help="check the chains only (the log has no signing key): a cut tail goes unseen",
    )
    verify.set_defaults(handler=_verify)

    query = audit.add_parser("query", help="print matching records")
    add_log_dir(query)
    add_filters(query)
    query.add_argument("--json", action="store_true", help="the stored JSON lines, as hashed")
    query.add_argument("--limit", type=at_least(0), default=None, help="print at most this many")
    query.set_defaults(handler=_query)

    audit_replay.register(audit)


def _keygen(args: argparse.Namespace) -> int:
    private, public = generate_keypair(args.directory)
    print(f"private key: {private}  (AUTHZ_LOG_SIGNING_KEY for the server; keep it secret)")
    print(f"public key:  {public}  (give it to auditors: authz audit verify --public-key)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    root = log_dir(args)
    results = verify_log(root, None if args.no_signatures else args.public_key)
    if not results:
        print(f"no decision log streams in {root}")
        return 0
    width = max(len(stream.name) for stream, _ in results)
    for stream, report in results:
        print(format_verify(stream, report, width, root))
    failed = sum(1 for _, report in results if not report.ok)
    print(f"{len(results)} streams verified, {failed} failed")
    return 1 if failed else 0


def _public_key(text: str) -> Ed25519PublicKey:
    """An argparse type: a key file that cannot be read or is no key is bad input, named
    with the option (exit 2)."""
    try:
        return load_public_key(Path(text))
    except AuthzError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def format_verify(stream: Stream, report: VerifyReport, width: int, root: Path) -> str:
    """One status line per stream; for a failed stream, where its first bad record is."""
    name = stream.name.ljust(width)
    if report.ok:
        lines = [
            f"OK      {name}  {report.records} records, {report.segments} segments, "
            f"{report.checkpoints} checkpoints, signed up to seq {report.covered_seq}"
        ]
    else:
        first = report.first
        assert first is not None  # a failed report has findings
        if first.line is None and first.seq is None:  # a file is the problem, not a record
            lines = [f"FAILED  {name}  {first.problem}: {first.message}"]
        else:
            where = "-"
            if first.segment is not None:
                where = f"{_relative(first.segment, root)}:{first.line}"
            lines = [
                f"FAILED  {name}  first bad record: {where} seq {first.seq} "
                f"decision {first.decision_id or '-'}: {first.problem}: {first.message}"
            ]
    lines.extend(f"        {' ' * width}  warning: {w}" for w in report.warnings)
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _query(args: argparse.Namespace) -> int:
    found = islice(iter_log(log_dir(args), record_filter(args)), args.limit)
    stored = (f.stored for f in found)
    if args.json:
        for line in format_jsonl(stored):
            print(line)
    else:
        sys.stdout.write(format_table(stored))
    return 0
