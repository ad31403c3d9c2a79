"""File names and messages made safe to print: one line each, whatever bytes a name holds.

A POSIX file name may contain newlines, carriage returns, escape sequences and bytes that are
not UTF-8 (Python holds them as lone surrogates). Printed raw, such a name would forge extra
lines in ``failures.log`` or on the terminal, or fail to encode. Names that print as they are
stay unchanged; the others are shown as a Python string literal (``'a\\nb.jpg'``), quoted and
escaped, so the reader sees exactly which bytes the name holds and where it ends.
"""

from __future__ import annotations

import os
from typing import Union


def _plain(text: str) -> bool:
    # str.isprintable is False for control and format characters, line and paragraph
    # separators, and the lone surrogates that stand for undecodable bytes.
    return text.isprintable()


def quote_name(name: Union[str, os.PathLike]) -> str:
    """``name`` itself when every character prints, else its quoted, escaped literal."""
    text = os.fspath(name)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text if _plain(text) else repr(text)


def printable_line(text: str) -> str:
    """``text`` with every character that does not print (newlines included) escaped in place."""
    if _plain(text):
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


__all__ = ["printable_line", "quote_name"]
