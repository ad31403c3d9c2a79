"""The ``iem`` command: a thin shell over the library; each sub-command lives in its own module."""

from __future__ import annotations

import errno
from typing import Any

import click

from iem import __version__
from iem.cli.output import (
    RECEIVED_SIGNAL,
    OutputError,
    describe,
    flush_out,
    occupy_closed_standard_streams,
    signal_exit_code,
    signals_as_interrupts,
    stdout_failed,
)


class _Group(click.Group):
    """The ``iem`` group: commands end with one line, never a traceback, when a file or
    standard output cannot be written (:mod:`iem.cli.output`)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        occupy_closed_standard_streams()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        # Every command ends a Ctrl-C or SIGTERM with one line and the shell's status for the
        # signal (130, 143), not click's "Aborted!" and status 1; a command that reports more
        # (``iem segment``'s summary) reads the signal from ``ctx.meta[RECEIVED_SIGNAL]``.
        with signals_as_interrupts() as received:
            ctx.meta[RECEIVED_SIGNAL] = received
            try:
                try:
                    return super().invoke(ctx)
                finally:
                    flush_out()
            except OSError as err:
                if err.errno == errno.EPIPE and err.filename is None:
                    raise stdout_failed(err) from None
                raise OutputError(describe(err)) from None
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
                raise click.exceptions.Exit(signal_exit_code(received)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iem")
def main() -> None:
    """Unsupervised foreground segmentation by Inpainting Error Maximization (IEM).

    \b
    Examples:
      iem segment photos/ -o masks/
      iem eval masks/ ground_truth/
      iem bench ../shared/data/grabcut --methods paper,released,grabcut --out results/
      iem serve --port 8000
    """


# Each sub-command lives in its own module.
from iem.cli.bench import bench  # noqa: E402
from iem.cli.eval import eval_command  # noqa: E402
from iem.cli.export import export  # noqa: E402
from iem.cli.segment import segment  # noqa: E402
from iem.cli.serve import serve  # noqa: E402
from iem.cli.train import train  # noqa: E402

for _command in (segment, eval_command, bench, train, export, serve):
    main.add_command(_command)
