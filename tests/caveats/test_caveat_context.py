"""Conversion of JSON context to parameter types, and failures at evaluation time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authz_service.caveats import CaveatResult, compile_caveat
from authz_service.caveats.convert import parse_duration, parse_timestamp
from authz_service.errors import CaveatError


def holds(parameter_type: str, expression: str, value: Any) -> bool | None:
    caveat = compile_caveat("probe", [("p", parameter_type)], expression)
    return caveat.evaluate({"p": value}).value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10s", timedelta(seconds=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("-1m30s", -timedelta(seconds=90)),
        ("+2ms", timedelta(milliseconds=2)),
        ("0", timedelta(0)),
        ("300us", timedelta(microseconds=300)),
        ("300\u00b5s", timedelta(microseconds=300)),
        ("1500ns", timedelta(microseconds=1)),
        (".5s", timedelta(milliseconds=500)),
        ("1h1m1s1ms1us", timedelta(hours=1, minutes=1, seconds=1, milliseconds=1, microseconds=1)),
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "10", "1d", "s", ".s", "1h 30m", "-", "1S", "9999999h", "\u0661s"]
)
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-03T07:16:28Z", datetime(2024, 10, 3, 7, 16, 28, tzinfo=UTC)),
        ("2024-10-03T07:16:28.068632-07:00", datetime(2024, 10, 3, 14, 16, 28, 68632, tzinfo=UTC)),
        ("2024-10-03t07:16:28.5+01:30", datetime(2024, 10, 3, 5, 46, 28, 500000, tzinfo=UTC)),
        ("2024-10-03T07:16:28.123456789Z", datetime(2024, 10, 3, 7, 16, 28, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2024-10-03",
        "2024-10-03 07:16:28Z",
        "2024-10-03T07:16:28",
        "2024-13-03T07:16:28Z",
        "2024-10-03T07:16:28+24:00",
        "2024-10-03T07:16:28+01:60",
        "2024-10-03T07:16:28.Z",
        "0001-01-01T00:00:00+01:00",
        "\u0662024-10-03T07:16:28Z",
        "20241003T071628Z",
        "yesterday",
    ],
)
def test_non_rfc3339_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_timestamp(text)


def test_timestamp_accessors_answer_in_utc() -> None:
    # CEL's getHours() without a zone argument is UTC; 07:16-07:00 is 14:16Z.
    assert holds("timestamp", "p.getHours() == 14", "2024-10-03T07:16:28-07:00") is True


def test_durations_and_timestamps_combine() -> None:
    caveat = compile_caveat(
        "grace",
        [("granted", "timestamp"), ("grace", "duration"), ("now", "timestamp")],
        "now < granted + grace",
    )
    context = {"granted": "2024-01-01T00:00:00Z", "grace": "1h30m"}
    assert caveat.evaluate({**context, "now": "2024-01-01T01:29:59Z"}) == CaveatResult(True)
    assert caveat.evaluate({**context, "now": "2024-01-01T01:30:00Z"}) == CaveatResult(False)


@pytest.mark.parametrize(
    ("parameter_type", "expression", "value", "expected"),
    [
        ("int", "p == 42", 42.0, True),  # protobuf Struct numbers are doubles
        ("int", "p == -9223372036854775808", -(2**63), True),
        ("uint", "uint(p) == 18446744073709551615u", 2**64 - 1, True),
        ("uint", "p < 4", 3, True),
        ("double", "p == 2.0", 2, True),
        ("double", "p > 0.5", 0.75, True),
        ("bytes", "p == b'h\\xc3\\xa9'", "h\u00e9", True),  # UTF-8 of the string, not base64
        ("bytes", "size(p) == 4", "aGk=", True),
        ("list<list<int>>", "p[1][0] == 3", [[1, 2], [3]], True),
        ("map<list<string>>", "'b' in p.a", {"a": ["b"]}, True),
        ("map<duration>", "p.x > duration('1m')", {"x": "90s"}, True),
        ("any", "p.a[0] == 1", {"a": [1]}, True),
        ("any", "p == null", None, True),
    ],
)
def test_values_convert_to_declared_types(
    parameter_type: str, expression: str, value: Any, expected: bool
) -> None:
    assert holds(parameter_type, expression, value) is expected
    caveat = compile_caveat("probe", [("p", parameter_type)], expression)
    caveat.check_context({"p": value}, "relationship.caveat.context")  # a write takes it


@pytest.mark.parametrize(
    ("parameter_type", "value", "shown"),
    [
        ("uint", -1, "-1"),
        ("uint", 2**64, str(2**64)),
        ("int", 2**63, str(2**63)),
        ("int", 1.5, "1.5"),
        ("int", True, "true"),
        ("int", "42", '"42"'),
        ("int", None, "null"),
        ("double", "1.0", '"1.0"'),
        ("bool", 1, "1"),
        ("string", 7, "7"),
        ("bytes", [1], "[1]"),
        ("timestamp", "2024-10-03", '"2024-10-03"'),
        ("timestamp", 1700000000, "1700000000"),
        ("duration", 10, "10"),
        ("duration", "10", '"10"'),
        ("ipaddress", "10.0.0.256", '"10.0.0.256"'),
        ("ipaddress", "10.0.0.0/8", '"10.0.0.0/8"'),
        ("list<int>", [1, "a"], '[1, "a"]'),
        ("list<int>", {"a": 1}, '{"a": 1}'),
        ("map<int>", {"a": "b"}, '{"a": "b"}'),
        ("map<int>", [1], "[1]"),
    ],
)
def test_values_that_do_not_fit_name_parameter_and_value(
    parameter_type: str, value: Any, shown: str
) -> None:
    caveat = compile_caveat("write_limit", [("limit", parameter_type)], "true")
    with pytest.raises(CaveatError) as raised:
        caveat.evaluate({"limit": value})
    message = f"parameter `limit` of caveat `write_limit` expects {parameter_type}, got `{shown}`"
    assert (raised.value.message, raised.value.field) == (message, "context")
    # A write checks the context it stores by the same rules, naming the value's field.
    with pytest.raises(CaveatError) as raised:
        caveat.check_context({"limit": value, "other": 1}, "updates[2].relationship.caveat.context")
    assert raised.value.message == message
    assert raised.value.field == "updates[2].relationship.caveat.context.limit"


def test_long_values_are_shortened_in_messages() -> None:
    caveat = compile_caveat("c", [("p", "int")], "p == 1")
    with pytest.raises(CaveatError) as raised:
        caveat.evaluate({"p": "x" * 500})
    assert len(raised.value.message) < 150
    assert raised.value.message.endswith("…(502 bytes)`")  # errors.echo: json adds quotes


def test_unused_parameters_are_still_type_checked() -> None:
    caveat = compile_caveat("c", [("a", "int"), ("b", "int")], "a == 1")
    with pytest.raises(CaveatError, match="parameter `b` of caveat `c` expects int"):
        caveat.evaluate({"a": 1, "b": "x"})


@pytest.mark.parametrize(
    ("parameters", "expression", "context", "message"),
    [
        (
            [("m", "map<int>")],
            "m.bar == 1",
            {"m": {}},
            "caveat `c` failed: no such key `bar`",
        ),
        (
            [("l", "list<int>")],
            "l[3] == 1",
            {"l": [1]},
            "caveat `c` failed: index out of bounds: 3",
        ),
        ([("x", "int")], "10 / x == 1", {"x": 0}, "caveat `c` failed: division by zero"),
        (
            [("x", "any")],
            "x > 1",
            {"x": "a"},
            "caveat `c` failed: no such overload: the operation is not defined for the given "
            "operand types",
        ),
        ([("x", "any")], "x", {"x": 1}, "caveat `c` failed: expression evaluated to int, not bool"),
        (
            [("x", "any"), ("y", "bool")],
            "x || y",
            {"x": "s", "y": False},
            "caveat `c` failed: no such overload",
        ),
        (
            [("ip", "ipaddress"), ("cidr", "string")],
            "ip.in_cidr(cidr)",
            {"ip": "10.0.0.1", "cidr": "10.0.0.0/33"},
            "caveat `c` failed: in_cidr: `10.0.0.0/33` is not a valid cidr",
        ),
        # 0.0 / 0.0 is NaN, which has no order: an error, as in SpiceDB ("NaN values
        # cannot be ordered"), negated or not, so it never allows.
        (
            [("used", "double"), ("quota", "double")],
            "used / quota < 0.9",
            {"used": 0, "quota": 0},
            "caveat `c` failed: no such overload: the operation is not defined for the given "
            "operand types (NaN, as from 0.0 / 0.0, cannot be ordered)",
        ),
        (
            [("used", "double"), ("quota", "double")],
            "!(used / quota >= 0.9)",
            {"used": 0, "quota": 0},
            "caveat `c` failed: no such overload",
        ),
        (
            [("used", "double"), ("quota", "double"), ("admin", "bool")],
            "used / quota < 0.9 && admin",
            {"used": 0, "quota": 0, "admin": True},
            "caveat `c` failed: no such overload",
        ),
    ],
)
def test_runtime_failures_raise_and_never_allow(
    parameters: list[tuple[str, str]], expression: str, context: dict[str, Any], message: str
) -> None:
    caveat = compile_caveat("c", parameters, expression)
    with pytest.raises(CaveatError) as raised:
        caveat.evaluate(context)
    assert raised.value.message.startswith(message)
    assert "Check" not in raised.value.message


def test_an_operand_that_decides_alone_still_decides_beside_a_nan() -> None:
    caveat = compile_caveat(
        "c",
        [("used", "double"), ("quota", "double"), ("admin", "bool")],
        "used / quota < 0.9 || admin",
    )
    assert caveat.evaluate({"used": 0, "quota": 0, "admin": True}).value is True
    assert caveat.evaluate({"used": 0, "quota": 0}) == CaveatResult(None, ("admin",))
