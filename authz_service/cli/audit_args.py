"""Arguments shared by the `authz audit` commands: where the log is, which records."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from authz_service.config import load_settings
from authz_service.decisionlog import Decision, DecisionKind, RecordFilter
from authz_service.errors import echo

__all__ = ["add_filters", "add_log_dir", "at_least", "log_dir", "record_filter"]


def add_log_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="decision log directory (AUTHZ_LOG_DIR; default: DATA_DIR/decisions)",
    )


def log_dir(args: argparse.Namespace) -> Path:
    return Path(args.log_dir) if args.log_dir is not None else load_settings().decision_log_dir


# Fractional seconds past the microsecond, which a record's time never has.
_FINER = re.compile(r"[.,][0-9]{6}([0-9]+)")


def _time(text: str) -> datetime:
    """A time bound, in UTC. Given more finely than a microsecond it is rounded up to the
    next one, which selects exactly the records the bound itself does (`since` inclusive,
    `until` exclusive; record times are whole microseconds). fromisoformat would cut the
    extra digits off, and a `since` cut down takes in a record dated before it."""
    finer = _FINER.search(text)
    parsed = text if finer is None else text[: finer.start(1)] + text[finer.end(1) :]
    try:
        value = datetime.fromisoformat(parsed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{echo(text)}` is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        # In UTC now, as record times are: a time that is not representable there would
        # otherwise fail later, in the comparison with the first record.
        value = value.astimezone(UTC)
        if finer is not None and finer[1].strip("0"):
            value += timedelta(microseconds=1)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"`{echo(text)}` is outside the years 1 to 9999 in UTC"
        ) from None
    return value


def at_least(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `least`, and no larger than a
    count can be (sys.maxsize). Anything else is bad input, refused naming the option and
    the value (exit 2), rather than failing later with a traceback (`--limit -1`, or a
    limit too large to slice with) or meaning nothing (`--concurrency 0`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(
                f"`{echo(text)}` is not a whole number of {least} or more"
            )
        if value > sys.maxsize:
            raise argparse.ArgumentTypeError(f"`{echo(text)}` is too large (at most {sys.maxsize})")
        return value

    return parse


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant")
    parser.add_argument("--subject", help="type:id[#relation], e.g. user:alice")
    parser.add_argument("--actor", help="who acted on the subject's behalf")
    parser.add_argument("--resource", help="type:id")
    parser.add_argument("--action", help="the permission (or admin action)")
    parser.add_argument("--decision", choices=[d.value for d in Decision])
    parser.add_argument("--kind", choices=[k.value for k in DecisionKind])
    parser.add_argument("--since", type=_time, help="ISO 8601, inclusive (UTC if no zone)")
    parser.add_argument("--until", type=_time, help="ISO 8601, exclusive (UTC if no zone)")


def record_filter(args: argparse.Namespace) -> RecordFilter:
    return RecordFilter(
        tenant=args.tenant,
        subject=args.subject,
        actor=args.actor,
        resource=args.resource,
        action=args.action,
        decision=Decision(args.decision) if args.decision else None,
        kind=DecisionKind(args.kind) if args.kind else None,
        since=args.since,
        until=args.until,
    )
