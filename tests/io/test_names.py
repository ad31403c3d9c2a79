"""Names and messages that cannot forge lines: controls escaped, odd names quoted."""

from __future__ import annotations

import ast

import pytest

from iem.io.names import printable_line, quote_name


@pytest.mark.parametrize("name", ["a.jpg", "photos/été 2020/x.png", "it's.jpg", "back\\slash.jpg"])
def test_printable_names_are_unchanged(name):
    assert quote_name(name) == name
    assert printable_line(name) == name


@pytest.mark.parametrize(
    "name",
    ["a\nb.jpg", "a\rb.jpg", "tab\there.jpg", "esc\x1b[2J.jpg", "sep\u2028.jpg", "bad\udcff.jpg", "q'uo\"te\n.jpg"],
)
def test_odd_names_are_quoted_literals_that_read_back_to_the_name(name):
    shown = quote_name(name)
    assert shown.isprintable() and "\n" not in shown
    assert shown[0] in "'\"" and shown[-1] == shown[0]
    assert ast.literal_eval(shown) == name  # unambiguous: the exact name can be recovered


def test_lines_escape_controls_in_place():
    assert printable_line("x: cannot read\nforged: line\r") == "x: cannot read\\nforged: line\\r"
