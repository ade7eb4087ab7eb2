"""The caveats of SpiceDB's conformance files, expressions verbatim."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.caveats import CaveatResult, compile_caveat

CASES: list[tuple[list[tuple[str, str]], str, dict[str, Any], CaveatResult]] = [
    ([("somecondition", "int")], "somecondition == 42", {"somecondition": 42}, CaveatResult(True)),
    ([("somecondition", "int")], "somecondition == 42", {"somecondition": 41}, CaveatResult(False)),
    (
        [("somecondition", "int")],
        "somecondition == 42",
        {},
        CaveatResult(None, ("somecondition",)),
    ),
    (
        [("anothercondition", "string")],
        "anothercondition == 'hello world'",
        {"anothercondition": "hello world"},
        CaveatResult(True),
    ),
    (
        [("anothercondition", "string")],
        "anothercondition == 'hello world'",
        {"anothercondition": "hello"},
        CaveatResult(False),
    ),
    ([("thirdcondition", "bool")], "thirdcondition", {"thirdcondition": True}, CaveatResult(True)),
    (
        [("thirdcondition", "bool")],
        "thirdcondition",
        {"thirdcondition": False},
        CaveatResult(False),
    ),
    ([("thirdcondition", "bool")], "thirdcondition", {}, CaveatResult(None, ("thirdcondition",))),
    (
        [("current_time", "timestamp"), ("expiration", "timestamp")],
        "current_time < expiration",
        {"current_time": "2024-10-03T07:16:28.068632-07:00", "expiration": "2024-10-03T15:00:00Z"},
        CaveatResult(True),
    ),
    (
        [("current_time", "timestamp"), ("expiration", "timestamp")],
        "current_time < expiration",
        # 07:16:28-07:00 is 14:16:28Z: the offset must be honoured, not dropped.
        {"current_time": "2024-10-03T07:16:28.068632-07:00", "expiration": "2024-10-03T10:00:00Z"},
        CaveatResult(False),
    ),
    (
        [("current_time", "timestamp"), ("expiration", "timestamp")],
        "current_time < expiration",
        {"expiration": "2024-10-03T10:00:00Z"},
        CaveatResult(None, ("current_time",)),
    ),
    (
        [("now", "timestamp"), ("expires_at", "timestamp")],
        "now < expires_at",
        {"now": "2023-01-01T00:00:00Z", "expires_at": "2024-01-01T00:00:00Z"},
        CaveatResult(True),
    ),
    (
        [("now", "timestamp"), ("expires_at", "timestamp")],
        "now < expires_at",
        {"now": "2025-01-01T00:00:00.5Z", "expires_at": "2024-01-01T00:00:00Z"},
        CaveatResult(False),
    ),
    (
        [("me", "string"), ("admin_teams", "list<string>")],
        "me in admin_teams",
        {"me": "tom", "admin_teams": ["ops", "tom"]},
        CaveatResult(True),
    ),
    (
        [("me", "string"), ("admin_teams", "list<string>")],
        "me in admin_teams",
        {"me": "sarah", "admin_teams": ["ops", "tom"]},
        CaveatResult(False),
    ),
    (
        [("me", "string"), ("admin_teams", "list<string>")],
        "me in admin_teams",
        {"me": "sarah"},
        CaveatResult(None, ("admin_teams",)),
    ),
    (
        [("user_ip", "ipaddress"), ("cidr", "string")],
        "user_ip.in_cidr(cidr)",
        {"user_ip": "10.2.3.4", "cidr": "10.0.0.0/8"},
        CaveatResult(True),
    ),
    (
        [("user_ip", "ipaddress"), ("cidr", "string")],
        "user_ip.in_cidr(cidr)",
        {"user_ip": "1.2.3.4", "cidr": "10.0.0.0/8"},
        CaveatResult(False),
    ),
    (
        [("user_ip", "ipaddress"), ("cidr", "string")],
        "user_ip.in_cidr(cidr)",
        {"user_ip": "10.2.3.4", "cidr": "10.1.0.0/16"},
        CaveatResult(False),
    ),
    (
        [("user_ip", "ipaddress"), ("cidr", "string")],
        "user_ip.in_cidr(cidr)",
        {"cidr": "10.1.0.0/16"},
        CaveatResult(None, ("user_ip",)),
    ),
    *[
        (
            [("somelist", "list<int>")],
            "somelist.all(i, i >= 42)",
            {"somelist": values},
            CaveatResult(expected),
        )
        for values, expected in [
            ([42, 43], True),
            ([], True),
            ([56], True),
            ([42, 41], False),
            ([12], False),
        ]
    ],
    *[
        (
            [("somemap", "map<any>")],
            "somemap.foo == 42 && somemap.bar < 56",
            {"somemap": values},
            CaveatResult(expected),
        )
        for values, expected in [
            ({"foo": 42, "bar": 10}, True),
            ({"foo": 42, "bar": -2}, True),
            ({"foo": 42, "bar": 57}, False),
            ({"foo": 41}, False),  # `&&` stops at false: no error for the absent `bar`
            ({"foo": 42, "bar": 56}, False),
            # A protobuf Struct carries every number as a double.
            ({"foo": 42.0, "bar": 10.0}, True),
        ]
    ],
    (
        [("count", "uint"), ("limit", "uint")],
        "count < limit",
        {"limit": 4, "count": 3},
        CaveatResult(True),
    ),
    (
        [("count", "uint"), ("limit", "uint")],
        "count < limit",
        {"limit": 2, "count": 3},
        CaveatResult(False),
    ),
    (
        [("count", "uint"), ("limit", "uint")],
        "count < limit",
        {"limit": 2.0, "count": 3.0},
        CaveatResult(False),
    ),
    (
        [("actual", "string"), ("required", "string")],
        "actual == required",
        {"actual": "x", "required": "x"},
        CaveatResult(True),
    ),
    (
        [("actual", "string"), ("required", "string")],
        "actual == required",
        {"actual": "x", "required": "y"},
        CaveatResult(False),
    ),
    (
        [("actual", "string"), ("required", "string")],
        "actual == required",
        {},
        CaveatResult(None, ("actual", "required")),
    ),
    ([("memberparam", "int")], "memberparam >= 42", {"memberparam": 42}, CaveatResult(True)),
    ([("memberparam", "int")], "memberparam >= 42", {"memberparam": 41}, CaveatResult(False)),
    ([("teamparam", "int")], "teamparam < 42", {"teamparam": 41}, CaveatResult(True)),
    ([("teamparam", "int")], "teamparam < 42", {"teamparam": 42}, CaveatResult(False)),
    ([("teamparam", "int")], "teamparam < 42", {}, CaveatResult(None, ("teamparam",))),
]


@pytest.mark.parametrize(
    ("parameters", "expression", "context", "expected"),
    CASES,
    ids=[f"{case[1]}|{case[2]}" for case in CASES],
)
def test_spicedb_caveat(
    parameters: list[tuple[str, str]],
    expression: str,
    context: dict[str, Any],
    expected: CaveatResult,
) -> None:
    caveat = compile_caveat("test", parameters, expression)
    assert caveat.evaluate(context) == expected


def test_request_and_relationship_context_arrive_merged() -> None:
    # The engine merges (relationship values win); extra keys must not matter.
    caveat = compile_caveat("test", [("somecondition", "int")], "somecondition == 42")
    assert caveat.evaluate({"somecondition": 42, "unrelated": "x"}) == CaveatResult(True)
