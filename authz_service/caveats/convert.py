"""Conversion of JSON context values to the CEL value of a declared parameter type.

Context arrives as JSON (relationship context, or a protobuf Struct on the request, where
every number is a double), so each parameter is converted before evaluation:

- `int` / `uint`: integers, or doubles with no fractional part, within the 64-bit range.
  The CEL library maps Python ints up to 2**63-1 to CEL `int`, so a `uint` below that
  travels as an `int`. Comparisons with `uint` literals still work (CEL compares numbers
  across types); mixing it with `u` literals in arithmetic (`limit + 1u`) does not.
- `double`: any number. `bool`, `string`: only that JSON kind.
- `bytes`: a string, taken as its UTF-8 encoding (not base64), as SpiceDB does.
- `duration`: Go duration text (`1h30m`, `-1.5s`, `300ms`); nanoseconds are truncated
  to microseconds, the resolution of the CEL library's durations.
- `timestamp`: RFC 3339 text with `Z` or a numeric offset, normalised to UTC so that
  `getHours()` and friends answer in UTC as the CEL specification says.
- `ipaddress`: address text, packed as described in `ipaddr`.
- `list<T>`, `map<T>`: converted element by element; map keys must be strings.
- `any`: passed through unchanged.

Converters raise ValueError; the caller names the parameter and caveat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from authz_service.caveats.ipaddr import pack_ip_address
from authz_service.caveats.types import CaveatType

__all__ = ["Converter", "converter_for", "parse_duration", "parse_timestamp"]

Converter = Callable[[Any], Any]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1

_UNIT_NANOS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, accepted by Go
    "\u03bcs": 1_000,  # Greek mu, accepted by Go
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Longer units first so that `ms` is not read as `m` followed by junk.
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
# `[0-9]`, not `\d`, which would accept non-ASCII digits.
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> timedelta:
    """Parse Go `time.ParseDuration` syntax; ValueError when `text` is not a duration."""
    body = text
    negative = body[:1] == "-"
    if body[:1] in ("-", "+"):
        body = body[1:]
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f"invalid duration `{text}`")
    nanos = 0
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or not (match.group(1) or match.group(2)):
            raise ValueError(f"invalid duration `{text}`")
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        scale = _UNIT_NANOS[unit]
        nanos += int(whole or "0") * scale
        if fraction:
            nanos += int(fraction) * scale // 10 ** len(fraction)
        position = match.end()
    if nanos > (2**63 if negative else _INT64_MAX):
        raise ValueError(f"invalid duration `{text}`")
    micros = nanos // 1000
    return timedelta(microseconds=-micros if negative else micros)


@lru_cache(maxsize=4096)
def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339 text to an aware UTC datetime; ValueError when it is not one.

    Cached because the same instants (an expiry stored on a relationship) recur on
    every check, and datetimes are immutable.
    """
    if _TIMESTAMP.fullmatch(text) is None:
        raise ValueError(f"invalid timestamp `{text}`")
    try:
        # The pattern has already pinned the shape; fromisoformat does the calendar
        # checks, accepts the `Z`, and truncates digits past microseconds.
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"invalid timestamp `{text}`") from None


def _int(value: Any) -> int:
    # `type(...) is` rather than isinstance: JSON `true` must not pass as 1.
    if type(value) is int:
        result = value
    elif type(value) is float and value.is_integer():
        result = int(value)
    else:
        raise ValueError(value)
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise ValueError(value)
    return result


def _uint(value: Any) -> int:
    if type(value) is int:
        result = value
    elif type(value) is float and value.is_integer():
        result = int(value)
    else:
        raise ValueError(value)
    if not 0 <= result <= _UINT64_MAX:
        raise ValueError(value)
    return result


def _double(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise ValueError(value)


def _bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise ValueError(value)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(value)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(value)


def _duration(value: Any) -> timedelta:
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(value)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        return parse_timestamp(value)
    raise ValueError(value)


def _ipaddress(value: Any) -> bytes:
    if isinstance(value, str):
        return pack_ip_address(value)
    raise ValueError(value)


def _any(value: Any) -> Any:
    return value


_SCALAR_CONVERTERS: dict[str, Converter] = {
    "any": _any,
    "bool": _bool,
    "bytes": _bytes,
    "double": _double,
    "duration": _duration,
    "int": _int,
    "ipaddress": _ipaddress,
    "string": _string,
    "timestamp": _timestamp,
    "uint": _uint,
}


def _list_of(element: Converter) -> Converter:
    def convert(value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ValueError(value)
        return [element(item) for item in value]

    return convert


def _map_of(element: Converter) -> Converter:
    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError(value)
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(value)
            result[key] = element(item)
        return result

    return convert


@cache
def converter_for(caveat_type: CaveatType) -> Converter:
    """The converter for a type, built once per distinct type."""
    if caveat_type.name == "list":
        return _list_of(converter_for(caveat_type.args[0]))
    if caveat_type.name == "map":
        return _map_of(converter_for(caveat_type.args[0]))
    return _SCALAR_CONVERTERS[caveat_type.name]
