"""`authz check RESOURCE PERMISSION SUBJECT --tenant T`: one Check from the shell.

Exit status 0 when ALLOWED, 1 when DENIED, 3 when CONDITIONAL, 2 on an error, so the
command can gate shell scripts. The API key comes from `--api-key`, else AUTHZ_API_KEY
(an environment variable keeps it out of the process list and shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, permissions_pb2_grpc
from authz_service.cli import client_tls
from authz_service.config import load_settings
from authz_service.errors import echo
from authz_service.model import parse_object, parse_subject

__all__ = ["register"]

_EXIT = {
    core_pb2.DECISION_ALLOWED: 0,
    core_pb2.DECISION_DENIED: 1,
    core_pb2.DECISION_CONDITIONAL: 3,
}


_CONSISTENCY = (
    "minimize_latency, fully_consistent, at_least_as_fresh:TOKEN or at_exact_snapshot:TOKEN"
)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="ask a running server one question",
        epilog="exit status: 0 ALLOWED, 1 DENIED, 3 CONDITIONAL, 2 error",
    )
    parser.add_argument("resource", help="type:id, e.g. document:readme")
    parser.add_argument("permission", help="e.g. view")
    parser.add_argument("subject", help="type:id[#relation], e.g. user:alice")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--server", default="127.0.0.1:50051", help="host:port")
    parser.add_argument(
        "--context", type=_context, default={}, help="caveat context as a JSON object"
    )
    parser.add_argument("--api-key", default=None, help="bearer API key (AUTHZ_API_KEY)")
    parser.add_argument(
        "--consistency",
        type=_consistency,
        default=None,
        help=f"{_CONSISTENCY} (default: the server's, minimize_latency)",
    )
    parser.add_argument("--explain", action="store_true", help="print the explanation")
    client_tls.add_arguments(parser)
    parser.set_defaults(handler=_check)


def _consistency(text: str) -> core_pb2.Consistency:
    name, _, token = text.partition(":")
    chosen = core_pb2.Consistency()
    if name in ("minimize_latency", "fully_consistent") and not token:
        setattr(chosen, name, True)
        return chosen
    if name in ("at_least_as_fresh", "at_exact_snapshot") and token:
        getattr(chosen, name).token = token
        return chosen
    raise argparse.ArgumentTypeError(f"`{_shown(text)}` is not one of {_CONSISTENCY}")


def _context(text: str) -> dict[str, Any]:
    """A JSON object; anything else is refused by argparse, naming `--context` (exit 2)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"`{_shown(text)}` is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"`{_shown(text)}` is not a JSON object")
    return value


def _shown(text: str) -> str:
    """`text` as an error message echoes it: escaped and capped."""
    return echo(text)


def _check(args: argparse.Namespace) -> int:
    return asyncio.run(_ask(args))


async def _ask(args: argparse.Namespace) -> int:
    request = permissions_pb2.CheckRequest(
        tenant=args.tenant,
        resource=convert.object_to_proto(parse_object(args.resource)),
        permission=args.permission,
        subject=convert.subject_to_proto(parse_subject(args.subject)),
        with_explanation=args.explain,
    )
    if args.context:
        request.context.update(args.context)
    if args.consistency is not None:
        request.consistency.CopyFrom(args.consistency)
    settings = load_settings()
    metadata = client_tls.api_key_metadata(args, settings) or None
    async with client_tls.from_args(args, settings).aio_channel(args.server) as channel:
        stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
        try:
            reply = await stub.Check(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as err:
            print(client_tls.failure(err), file=sys.stderr)
            return 2
    decision = core_pb2.Decision.Name(reply.decision).removeprefix("DECISION_")
    missing = f" missing {', '.join(reply.missing_context)}" if reply.missing_context else ""
    print(f"{decision}{missing} (decision {reply.decision_id})")
    if args.explain:
        from google.protobuf import json_format

        print(json_format.MessageToJson(reply.explanation))
    return _EXIT.get(reply.decision, 2)
