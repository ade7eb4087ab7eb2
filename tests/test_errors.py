"""errors.echo: the one cap on caller values quoted in error messages."""

from __future__ import annotations

from authz_service.errors import ECHO_CHARS, echo


def test_a_short_value_is_quoted_whole() -> None:
    assert echo("doc 1") == "doc 1"
    assert echo("x" * ECHO_CHARS) == "x" * ECHO_CHARS


def test_a_long_value_is_cut_and_sized_in_bytes() -> None:
    assert echo("x" * 10_000) == "x" * ECHO_CHARS + "…(10000 bytes)"
    assert echo("é" * 100) == "é" * ECHO_CHARS + "…(200 bytes)"


def test_a_value_that_is_not_text_is_shown_as_text() -> None:
    assert echo(42) == "42"
    assert echo("\ud800" * 70).endswith("…(210 bytes)")  # a lone surrogate does not raise


def test_control_characters_are_shown_escaped() -> None:
    # A caller's NUL, newline or terminal escape reached messages (and the terminal of
    # whoever read them) as is: `authz check` printed them raw.
    assert echo("a\x00b") == "a\\x00b"
    assert echo("line\nforged: OK") == "line\\nforged: OK"
    assert echo("\x1b[2J\x7f\t") == "\\x1b[2J\\x7f\\t"
    assert echo("\x1b" * 100).endswith("…(100 bytes)")
