"""The ``iem`` command's entry point (``iem`` and ``python -m iem``).

Loading the command takes a second or more (torch). A Ctrl-C in that time would otherwise end
in a traceback, before :mod:`iem.cli` can handle signals; here it ends like a Ctrl-C later:
one line and the shell's status for SIGINT.
"""

from __future__ import annotations

import sys

#: Exit status after Ctrl-C (128 + SIGINT), as :mod:`iem.cli` gives once loaded.
INTERRUPTED_STATUS = 130


def main() -> None:
    try:
        from iem.cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(INTERRUPTED_STATUS) from None
    command(prog_name="iem")
