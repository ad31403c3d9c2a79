"""The ``iem`` command: a thin shell over the library; each sub-command lives in its own module."""

from __future__ import annotations

import click

from iem import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iem")
def main() -> None:
    """Unsupervised foreground segmentation by Inpainting Error Maximization (IEM).

    \b
    Examples:
      iem segment photos/ -o masks/
      iem eval masks/ ground_truth/
      iem bench ../shared/data/grabcut --methods paper,released,grabcut --out results/
    """


# Each sub-command lives in its own module.
from iem.cli.bench import bench  # noqa: E402
from iem.cli.eval import eval_command  # noqa: E402
from iem.cli.export import export  # noqa: E402
from iem.cli.segment import segment  # noqa: E402
from iem.cli.train import train  # noqa: E402

for _command in (segment, eval_command, bench, train, export):
    main.add_command(_command)
