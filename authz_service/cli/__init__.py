"""The `authz` command. Each subcommand lives in its own module with a `register`
function that adds its parser; this module only assembles them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from authz_service.errors import AuthzError

__all__ = ["EXIT_STATUS", "main"]

# Each command and its module under authz_service.cli, which defines register(subparsers)
# -> None and sets `handler` on its parser (a callable taking the parsed args, returning
# an exit status). Only the module of the command being run is imported: several import
# gRPC, the engine and CEL at the top, about 0.5 s of CPU that `authz import` (timed as a
# whole) has no use for.
_COMMANDS: dict[str, str] = {
    "serve": "serve",
    "check": "check",
    "validate": "validate",
    "migrate": "migrate",
    "import": "import_",
    "audit": "audit",
    "keys": "keys",
    "scim": "scim",
    "service-accounts": "service_accounts",
}

Handler = Callable[[argparse.Namespace], int]


EXIT_STATUS = """\
exit status:
  0    success; `check`: ALLOWED; `audit verify`: every stream verified
  1    a negative answer: `check` DENIED, `validate` or `audit verify` found failures,
       `audit replay` found differences, `audit explain` has no explanation or its
       replay differs, `scim status` found drift, `service-accounts report` flagged
       an account
  2    an error: bad arguments or input, the server refused or could not be reached,
       the server cannot start (address in use, database unavailable), or `serve`
       stopped because its decision log failed
  3    `check`: CONDITIONAL (caveat context missing)
  130  interrupted (Ctrl-C); `serve` instead stops gracefully on Ctrl-C or SIGTERM
       (drains its calls) and exits 0
  141  the reader of the output went away (`authz ... | head`)
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command` alone if it names one, else of every command."""
    parser = argparse.ArgumentParser(
        prog="authz",
        description="Authorization decision service.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    modules = [_COMMANDS[command]] if command in _COMMANDS else _COMMANDS.values()
    for name in modules:
        importlib.import_module(f"authz_service.cli.{name}").register(sub)
    return parser


# 128 + SIGPIPE: the status a shell reports for a command ended by a closed pipe.
_SIGPIPE_STATUS = 141


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # Building the parser imports the command's module (gRPC, the engine: about 2 s
        # on a cold start): a Ctrl-C in there is an interruption like any other.
        args = build_parser(argv[0] if argv else None).parse_args(argv)
    except KeyboardInterrupt:
        return 130
    handler: Handler = args.handler
    try:
        return handler(args)
    except AuthzError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`authz ... | head`): stop quietly, as a command ended by
        # SIGPIPE does. stdout now points at /dev/null, so the interpreter's final flush
        # of what is still buffered cannot fail again and print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _SIGPIPE_STATUS
