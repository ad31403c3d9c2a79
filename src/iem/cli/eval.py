"""``iem eval``: score predicted masks against ground-truth masks."""

from __future__ import annotations

import os
import sys

import click

from iem.bench.evaluate import EvalReport, evaluate_masks, write_eval_csv
from iem.cli.output import echo_out
from iem.io.names import printable_line, quote_name

#: Exit status when some file could not be matched or read.
EXIT_INPUT_FAILED = 1

#: Summary rows: label, prefix of the score names.
_CONVENTIONS = (("inverse-max (paper's tables)", ""), ("strict (polarity as given)", "strict_"))


def summary_text(report: EvalReport) -> str:
    """The summary block printed by ``iem eval``: both conventions, in %."""
    width = max(len(label) for label, _ in _CONVENTIONS)
    lines = [f"{'convention':<{width}}  {'acc':>6}  {'IoU':>6}  {'DICE':>6}"]
    for label, prefix in _CONVENTIONS:
        values = "  ".join(f"{100 * report.mean(prefix + key):6.2f}" for key in ("acc", "iou", "dice"))
        lines.append(f"{label:<{width}}  {values}")
    return "\n".join(lines)


def _check_pair(pred: str, gt: str) -> None:
    """PRED and GT must be two different folders or two different files.

    Raises:
        click.UsageError: the same path twice (every mask would score 100 % against itself),
            or a file against a folder.
    """
    if os.path.realpath(pred) == os.path.realpath(gt):
        raise click.UsageError(
            f"PRED and GT are the same {'folder' if os.path.isdir(pred) else 'file'} ({quote_name(pred)}): "
            "every mask would be scored against itself"
        )
    if os.path.isdir(pred) != os.path.isdir(gt):
        kinds = ("a folder", "a file") if os.path.isdir(pred) else ("a file", "a folder")
        raise click.UsageError(
            f"PRED is {kinds[0]} and GT is {kinds[1]}: give two folders, or a prediction file and its ground-truth file"
        )


@click.command("eval")
@click.argument("pred", type=click.Path(exists=True, path_type=str))
@click.argument("gt", type=click.Path(exists=True, path_type=str))
@click.option(
    "--csv",
    "csv_path",
    default="eval.csv",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Where to write the per-image scores.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def eval_command(pred: str, gt: str, csv_path: str, quiet: bool) -> None:
    """Score predicted masks PRED against ground-truth masks GT.

    PRED and GT are folders (searched recursively) or two single files. A prediction and a
    ground truth belong together when their relative paths without suffix are equal
    (pred/a/b.png <-> gt/a/b.jpg); in a folder written by 'iem segment' only the
    *.mask.png files count, matched without their '.mask' tag. Foreground is value > 127 (or 1 in 0/1 label files);
    .npy arrays are accepted. Predictions of another size are resized (nearest) to their
    ground truth and counted in a warning.

    Prints accuracy, IoU and DICE (mean over images, %) in both conventions: inverse-max, the
    paper's (each image scored with the better of the mask and its inverse), and strict.
    Writes one CSV line per image. Unmatched or unreadable files are reported one line each and
    make the exit status 1.

    \b
    Examples:
      iem segment ../shared/data/grabcut/images -o out/
      iem eval out/ ../shared/data/grabcut/masks
      iem eval masks/ gt/ --csv scores.csv
      iem eval horse001_pred.png horse001_gt.png
    """
    _check_pair(pred, gt)
    report = evaluate_masks(pred, gt, progress=not quiet)
    for problem in report.problems:
        click.echo(f"error: {printable_line(problem)}", err=True)
    if report.resized:
        click.echo(
            f"warning: {len(report.resized)} prediction(s) resized (nearest) to their ground truth's size", err=True
        )
    if not report.rows:
        click.echo("error: no prediction could be scored", err=True)
        sys.exit(EXIT_INPUT_FAILED)
    try:
        write_eval_csv(report, csv_path)
    except OSError as err:
        click.echo(f"error: {csv_path}: cannot write ({err.strerror or err})", err=True)
        sys.exit(EXIT_INPUT_FAILED)
    echo_out(f"images: {len(report.rows)}")
    echo_out(summary_text(report))
    echo_out(f"per-image scores: {csv_path}")
    if report.problems:
        sys.exit(EXIT_INPUT_FAILED)
