"""What the commands print, and how they end when printing or writing fails.

Standard output may be a full disk (``> /dev/full``), a closed descriptor (``>&-``) or a pipe
whose reader left (``| head``). Each ends the command with one line on stderr and exit status
1, never a traceback; so does any ``OSError`` a command did not handle itself (a file that
cannot be written names itself and the reason). Ctrl-C and SIGTERM end a command with the
shell's status for the signal: 130 and 143.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator

import click

from iem.io.names import printable_line, quote_name

if TYPE_CHECKING:
    import numpy

#: Exit status of a command stopped by a signal: 128 + its number, as shells report it.
EXIT_SIGNAL_BASE = 128
#: Key of ``click.Context.meta`` holding the dict of :func:`signals_as_interrupts` for the
#: running command.
RECEIVED_SIGNAL = "iem.received_signal"


class OutputError(click.ClickException):
    """A file or standard output could not be written: one line, exit status 1."""

    exit_code = 1

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def]
        click.echo(f"iem: {printable_line(self.format_message())}", err=True)


def describe(err: OSError) -> str:
    """``<path>: <reason>`` of an OSError, or just the reason when it names no file."""
    reason = err.strerror or str(err) or type(err).__name__
    return f"{quote_name(err.filename)}: {reason}" if err.filename is not None else reason


def _silence_stdout() -> None:
    """After a failed write, point descriptor 1 at /dev/null so that the interpreter's last
    flush at exit has nowhere to fail (a second message, status 120)."""
    try:
        if sys.stdout is not None and sys.stdout.fileno() != 1:
            return
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass  # not the process's real stdout (a test runner's capture): nothing to protect


def stdout_failed(err: OSError) -> OutputError:
    """The error that ends a command whose standard output cannot be written."""
    _silence_stdout()
    return OutputError(f"cannot write to standard output ({err.strerror or err})")


def echo_out(text: str) -> None:
    """``click.echo`` to standard output; a failure ends the command with one line."""
    try:
        click.echo(text)
    except OSError as err:
        raise stdout_failed(err) from None


def write_out(data: bytes) -> None:
    """Bytes to standard output (e.g. a PNG); a failure ends the command with one line."""
    try:
        # The binary layer under sys.stdout (click.get_binary_stream is deprecated); flushing
        # the text layer first keeps anything echoed before in order.
        sys.stdout.flush()
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    except OSError as err:
        raise stdout_failed(err) from None


def read_in() -> bytes:
    """All of standard input, as bytes (the binary layer under ``sys.stdin``)."""
    return sys.stdin.buffer.read()


def refuse_terminal_out(hint: str) -> None:
    """A usage error when standard output is a terminal: a PNG there would fill the screen."""
    if sys.stdout.isatty():
        raise click.UsageError(f"refusing to write a PNG to the terminal: {hint}")


def write_mask_out(mask: "numpy.ndarray") -> None:
    """A ``(H, W)`` bool mask as an 8-bit PNG to standard output."""
    from iem.io.render import mask_png

    write_out(mask_png(mask))


def flush_out() -> None:
    """Flush standard output before the command ends, so a late failure is still reported."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except OSError as err:
        raise stdout_failed(err) from None
    except ValueError:
        pass  # closed by the caller


def occupy_closed_standard_streams() -> None:
    """Give descriptors 0, 1, 2 that were closed at start a stand-in.

    Otherwise the next file opened would get the number and ``print`` would write into it.
    A closed stdin reads as empty, a closed stdout refuses writes (EBADF, reported as any
    failing stdout), a closed stderr discards.
    """
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError as err:
            if err.errno != errno.EBADF:
                continue
        null = os.open(os.devnull, flags)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if sys.stdout is None:
        sys.stdout = os.fdopen(1, "w", closefd=False)  # descriptor 1, not a file of ours
    if sys.stderr is None:
        sys.stderr = os.fdopen(2, "w", closefd=False)
    if sys.stdin is None:
        sys.stdin = os.fdopen(0, "r", closefd=False)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[dict]:
    """Within the block, SIGTERM (and SIGHUP) raise ``KeyboardInterrupt`` like Ctrl-C does,
    so runs wind down the same way; ``received["signal"]`` holds the last signal's number.

    Only the main thread can install handlers; elsewhere the block changes nothing.
    """
    received: dict = {"signal": signal.SIGINT}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: object) -> None:
        received["signal"] = signum
        raise KeyboardInterrupt

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, handler) for sig in wanted}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def signal_exit_code(received: dict) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_SIGNAL_BASE + int(received.get("signal", signal.SIGINT))

