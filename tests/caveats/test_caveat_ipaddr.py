from __future__ import annotations

import pytest

from authz_service.caveats import CaveatResult, compile_caveat
from authz_service.caveats.ipaddr import in_cidr, pack_ip_address


@pytest.mark.parametrize(
    ("address", "cidr", "inside"),
    [
        ("10.2.3.4", "10.0.0.0/8", True),
        ("1.2.3.4", "10.0.0.0/8", False),
        ("10.2.3.4", "10.1.0.0/16", False),
        ("10.2.3.4", "10.2.3.4/32", True),
        ("10.2.3.4", "0.0.0.0/0", True),
        ("10.2.3.4", "10.9.9.9/8", True),  # host bits in the cidr are ignored, as in Go
        ("2001:db8::1", "2001:db8::/32", True),
        ("2001:db9::1", "2001:db8::/32", False),
        ("::1", "::/0", True),
        # Families never mix, also not through IPv4-mapped IPv6 (netip semantics).
        ("10.2.3.4", "::/0", False),
        ("::ffff:10.2.3.4", "10.0.0.0/8", False),
        ("2001:db8::1", "0.0.0.0/0", False),
    ],
)
def test_in_cidr(address: str, cidr: str, inside: bool) -> None:
    assert in_cidr(pack_ip_address(address), cidr) is inside


def test_in_cidr_rejects_bad_operands() -> None:
    with pytest.raises(ValueError, match=r"`10\.0\.0\.0/33` is not a valid cidr"):
        in_cidr(pack_ip_address("10.0.0.1"), "10.0.0.0/33")
    with pytest.raises(TypeError):
        in_cidr("10.0.0.1", "10.0.0.0/8")
    with pytest.raises(TypeError):
        in_cidr(pack_ip_address("10.0.0.1"), 8)


@pytest.mark.parametrize("text", ["10.0.0.256", "10.0.0.0/8", "", "localhost", "1::2::3"])
def test_invalid_addresses_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        pack_ip_address(text)


def test_member_and_function_call_forms_both_work() -> None:
    parameters = [("user_ip", "ipaddress"), ("cidr", "string")]
    context = {"user_ip": "2001:db8::7", "cidr": "2001:db8::/64"}
    for expression in ("user_ip.in_cidr(cidr)", "in_cidr(user_ip, cidr)"):
        caveat = compile_caveat("ip", parameters, expression)
        assert caveat.evaluate(context) == CaveatResult(True)


def test_addresses_compare_by_value_not_as_strings() -> None:
    parameters = [("a", "ipaddress"), ("b", "ipaddress")]
    caveat = compile_caveat("ip", parameters, "a == b")
    assert caveat.evaluate({"a": "2001:db8::1", "b": "2001:DB8:0::1"}) == CaveatResult(True)
    as_string = compile_caveat("ip", [("a", "ipaddress")], "a == '10.0.0.1'")
    assert as_string.evaluate({"a": "10.0.0.1"}) == CaveatResult(False)


def test_literal_cidr_in_expression() -> None:
    caveat = compile_caveat("ip", [("user_ip", "ipaddress")], "user_ip.in_cidr('192.168.0.0/16')")
    assert caveat.evaluate({"user_ip": "192.168.10.1"}) == CaveatResult(True)
    assert caveat.evaluate({}) == CaveatResult(None, ("user_ip",))
