"""``iem train``: phase 2 of IEM, a thin shell over :func:`iem.segnet.train_from_files`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import click

from iem.cli.segment import config_from_options, config_options
from iem.config import PRESETS
from iem.io.names import printable_line, quote_name
from iem.segnet.select import SELECTIONS
from iem.segnet.train import PRECISIONS, SCHEDULES

#: Exit statuses: some input failed; a usage error.
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2
_DEVICES = ("auto", "cpu", "cuda")


@click.command("train", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Checkpoint to write (.pt)."
)
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Passes over the pseudo-labels. [default: 50]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Largest mini-batch. [default: 128]")
@click.option(
    "--min-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Floor on optimiser steps per epoch: the batch shrinks on small collections "
    "(1 = always --batch-size). [default: 16]",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate. [default: 0.001]")
@click.option(
    "--top-k", type=click.IntRange(min=1), default=None, help="Keep the K masks ranked first (see --select)."
)
@click.option(
    "--top-fraction",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Keep this share of the masks instead. [default: 0.8]",
)
@click.option(
    "--select",
    "selection",
    type=click.Choice(SELECTIONS),
    default=None,
    help="Rank the masks by inpainting error (the paper) or by their IoU with GrabCut from the box "
    "(agreement). [default: error]",
)
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips while training. [default: flip]")
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=None,
    help="Learning rate: the paper's constant one, or one cycle peaking at --lr. [default: constant]",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="Forward pass in float32, or bfloat16 autocast (about twice as fast on CPUs with AVX-512 BF16). [default: fp32]",
)
@click.option("--seed", type=int, default=None, help="Seed of the weights, shuffling and flips. [default: 0]")
@click.option("--device", type=click.Choice(_DEVICES), default="auto", show_default=True, help="Where to compute.")
@click.option("--fresh", is_flag=True, help="Start over, ignoring (and replacing) an existing checkpoint.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the IEM mask cache (OUT stem + .iem.npz).")
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Compute IEM's masks on a Dask cluster: tcp://host:8786, or local:N worker processes.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no summary line.")
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True, help="IEM settings of phase 1.")
@config_options
@click.pass_context
def train(
    ctx: click.Context,
    inputs: Sequence[str],
    out: Path,
    epochs: Optional[int],
    batch_size: Optional[int],
    min_steps: Optional[int],
    lr: Optional[float],
    top_k: Optional[int],
    top_fraction: Optional[float],
    selection: Optional[str],
    flip: Optional[bool],
    schedule: Optional[str],
    precision: Optional[str],
    seed: Optional[int],
    device: str,
    fresh: bool,
    no_cache: bool,
    cluster: Optional[str],
    quiet: bool,
    preset: str,
    **config_values: Any,
) -> None:
    """Train the phase-2 segmentation network on a collection, without labels.

    IEM segments every image (128x128, the paper protocol); the masks with the highest
    inpainting error (or, with --select agreement, those closest to GrabCut's cut from the box)
    become pseudo-labels for the network (per-pixel BCE, Adam; paper section 3.3 and 4.2).
    INPUTS are image files, folders (recursive) and glob patterns.

    IEM's masks are cached beside OUT (OUT stem + .iem.npz) and the checkpoint is written
    after every epoch, so running the same command again resumes an interrupted run; a
    larger --epochs continues a finished one. Use the model with 'iem segment --model OUT
    [--refine]' or 'iem bench --model OUT --methods paper,segnet,segnet+refine'. Exit status:
    0 done, 1 some inputs could not be read, 2 usage error.

    \b
    Examples:
      iem train ../shared/data/weizmann_horse/images --out horse.pt
      iem train photos/ --out model.pt --epochs 20 --top-k 200 --device cuda
      iem train flowers/ --out flowers.pt --schedule onecycle --lr 0.003 --epochs 1 --batch-size 16 --precision bf16
      iem train flowers/ --out flowers.pt --preset best --select agreement
      iem train 'birds/**/*.jpg' --out birds.pt --preset released --iterations 100
      iem train photos/ --out model.pt --cluster tcp://scheduler:8786
    """
    from iem.segnet import CheckpointError, NothingToTrain, TrainSettings, train_from_files
    from iem.segnet.data import collect_image_paths

    config = config_from_options(preset, config_values)
    if top_k is not None and top_fraction is not None:
        raise click.UsageError("give --top-k or --top-fraction, not both")
    changes = {
        "epochs": epochs,
        "batch_size": batch_size,
        "min_steps_per_epoch": min_steps,
        "learning_rate": lr,
        "top_k": top_k,
        "top_fraction": top_fraction,
        "selection": selection,
        "flip": flip,
        "seed": seed,
        "schedule": schedule,
        "precision": precision,
    }
    try:
        settings = TrainSettings(**{k: v for k, v in changes.items() if v is not None})
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA was requested but no CUDA GPU is available", param_hint="'--device'")

    paths, problems = collect_image_paths(inputs)
    for line in problems:
        click.echo(printable_line(line), err=True)
    if not paths:
        raise click.UsageError("no image found among the inputs")
    try:
        with _on_cluster(ctx, cluster, config, device) as segment_chunks:
            report = train_from_files(
                paths,
                out,
                settings,
                config,
                device=device,
                resume=not fresh,
                cache=not no_cache,
                progress=not quiet,
                segment_chunks=segment_chunks,
            )
    except NothingToTrain as err:
        for line in err.errors:
            click.echo(printable_line(line), err=True)
        click.echo(f"iem train: {err}", err=True)
        ctx.exit(EXIT_INPUT_FAILED)
    except CheckpointError as err:
        raise click.BadParameter(f"{err} (use --fresh to replace it)", param_hint="'--out'") from None
    except OSError as err:  # the checkpoint or the mask cache beside it
        where = err.filename if err.filename is not None else out
        click.echo(f"{quote_name(where)}: cannot write ({err.strerror or err})", err=True)
        ctx.exit(EXIT_INPUT_FAILED)
    for line in report.errors:
        click.echo(printable_line(line), err=True)
    if not quiet:
        result = report.train
        loss = f", final loss {result.losses[-1]:.4f}" if result.losses else ""
        resumed = f" (resumed after epoch {result.start_epoch})" if result.start_epoch else ""
        click.echo(
            f"{out}: trained on {len(report.selected)} of {len(report.paths)} IEM masks, "
            f"{len(result.losses)} epochs, batch {result.batch_size}{loss}{resumed}",
            err=True,
        )
    failed = bool(report.errors or problems)
    ctx.exit(EXIT_INPUT_FAILED if failed else 0)



@contextlib.contextmanager
def _on_cluster(ctx: click.Context, address: Optional[str], config: Any, device: str) -> Iterator[Any]:
    """With --cluster, IEM's chunks go to the cluster; an unreachable one is one line, exit 2."""
    if address is None:
        yield None
        return
    from iem.distributed import ClusterError, chunk_runner, connect

    try:
        with connect(address) as client:
            yield chunk_runner(client, config, device)
    except ClusterError as err:
        click.echo(str(err), err=True)
        ctx.exit(EXIT_USAGE)
