"""The phase-2 experiment on a labelled folder: IEM vs IEM+SegNet vs IEM+SegNet+refine.

The images of an ``images/`` + ``masks/`` dataset are split once (sorted names, seeded shuffle,
``--test-size`` held out). The network is trained on the training images **without their
labels** (IEM pseudo-labels only); the three methods are then scored on the held-out images in
both metric conventions. The ground truth of the training images is read only to report how
good the pseudo-labels were, never to choose anything.

Run::

    python -m iem.segnet.experiment ../shared/data/weizmann_horse --out runs/horse-phase2
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import click
import torch

from iem import IEMConfig, metrics
from iem.api import resolve_config
from iem.io.write import write_text
from iem.bench.methods import IEMMethod, MethodContext
from iem.bench.report import markdown_table, write_per_image_csv, write_results_json
from iem.bench.runner import BenchResult, run_benchmark
from iem.datasets.folder import open_folder_pair
from iem.segnet.data import split_paths
from iem.segnet.methods import SegNetMethod, SegNetRefineMethod
from iem.segnet.pipeline import PipelineReport, train_from_files
from iem.segnet.predict import load_model
from iem.segnet.train import TrainSettings

PathLike = Union[str, os.PathLike]

#: Images held out for testing on Weizmann Horse (327 images: 227 train / 100 test).
DEFAULT_TEST_SIZE = 100
MODEL_FILE = "model.pt"
SPLIT_FILE = "split.json"
REPORT_FILE = "results.md"


@dataclass
class ExperimentResult:
    """Scores on the test images and what the pseudo-labels were worth on the training images."""

    bench: BenchResult
    pipeline: PipelineReport
    pseudo: Dict[str, Dict[str, float]]
    train_names: List[str]
    test_names: List[str]
    seconds: Dict[str, float]
    transductive: bool = False


def pseudo_label_quality(report: PipelineReport, truths: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """Mean scores of IEM's masks on the training images: all of them and the selected ones.

    Args:
        report: What :func:`train_from_files` returned.
        truths: ``(N, H, W)`` bool ground truth of ``report.paths``, in order.
    """
    out: Dict[str, Dict[str, float]] = {}
    groups = {"all": torch.arange(len(report.paths)), "selected": report.selected}
    for group, index in groups.items():
        row: Dict[str, float] = {"images": float(len(index))}
        for convention, prefix in (("inverse_max", ""), ("strict", "strict_")):
            scores = metrics.mean_scores(report.labels.masks[index], truths[index], convention=convention)
            row.update({prefix + k: float(v) for k, v in scores.items()})
        out[group] = row
    return out


def run_experiment(
    root: PathLike,
    out_dir: PathLike,
    test_size: int = DEFAULT_TEST_SIZE,
    split_seed: int = 0,
    settings: Optional[TrainSettings] = None,
    iem_config: Optional[IEMConfig] = None,
    device: str = "auto",
    progress: bool = False,
    transductive: bool = False,
) -> ExperimentResult:
    """Split, train on the training part (labels unused), score the three methods on the test part.

    With ``transductive`` the network learns from every image, the test images included (their
    labels are never read for training either): the use of phase 2 on one collection, where
    ``iem train`` and ``iem segment --model`` see the same images.

    Everything is written to ``out_dir``: ``model.pt`` (and its IEM cache), ``split.json``,
    ``results.json``, ``per_image.csv``. Re-running resumes the training and reuses the cache.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    iem_config = resolve_config(iem_config)
    dataset = open_folder_pair(root, protocol="paper")
    by_path = {record.image_path: i for i, record in enumerate(dataset.records)}
    train_paths, test_paths = split_paths(list(by_path), test_size, seed=split_seed)
    train_set = dataset.subset([by_path[p] for p in train_paths])
    test_set = dataset.subset([by_path[p] for p in test_paths])
    fit_paths = sorted(train_paths + test_paths, key=lambda p: (p.name, str(p))) if transductive else train_paths
    fit_set = dataset.subset([by_path[p] for p in fit_paths])
    split = {"seed": split_seed, "transductive": transductive, "train": train_set.names, "test": test_set.names}
    write_text(out_dir / SPLIT_FILE, json.dumps(split, indent=1) + "\n")

    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    report = train_from_files(fit_paths, out_dir / MODEL_FILE, settings, iem_config, device=device, progress=progress)
    seconds["train_pipeline"] = time.perf_counter() - start

    read = {Path(p): i for i, p in enumerate(fit_paths)}
    truths = torch.stack([fit_set[read[p]].mask for p in report.paths])
    pseudo = pseudo_label_quality(report, truths)

    model = load_model(out_dir / MODEL_FILE, device=device)
    context = MethodContext(device=device, model=out_dir / MODEL_FILE)
    methods = [
        IEMMethod("paper", iem_config, device),
        SegNetMethod(model, context.model),
        SegNetRefineMethod(model, context, iem_config),
    ]
    bench = run_benchmark(test_set, methods, f"{Path(root).name} (test split)", progress=progress)
    write_results_json(bench, out_dir / "results.json")
    write_per_image_csv(bench.results, out_dir / "per_image.csv")
    return ExperimentResult(bench, report, pseudo, fit_set.names, test_set.names, seconds, transductive)


def experiment_markdown(result: ExperimentResult, command: str) -> str:
    """The report: command, split, test table, pseudo-label quality, training details."""
    train = result.pipeline.train
    lines = [
        f"Command:\n\n```\n{command}\n```\n",
        (
            f"Network trained on all {len(result.train_names)} images, the {len(result.test_names)} test images "
            "included (transductive; no label used); scored on the test images.\n"
            if result.transductive
            else f"Split: {len(result.train_names)} training images (labels unused), {len(result.test_names)} test images.\n"
        ),
        "Test images (scores in %, mean over images; `acc`/`IoU`/`DICE` in the paper's inverse-max "
        "convention, `strict` with the foreground taken as predicted):\n",
        markdown_table(result.bench.results),
        "IEM pseudo-labels on the images the network learnt from (ground truth read for this table only):\n",
        "| IEM masks | images | acc | IoU | DICE | strict acc | strict IoU | strict DICE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, row in result.pseudo.items():
        values = " | ".join(
            f"{100 * row[k]:.1f}" for k in ("acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice")
        )
        lines.append(f"| {group} | {int(row['images'])} | {values} |")
    losses = ", ".join(f"{x:.3f}" for x in train.losses[:: max(1, len(train.losses) // 10)])
    lines += [
        "",
        f"Training: batch {train.batch_size}, {len(train.losses)} epochs, loss every few epochs: {losses}"
        f" (last {train.losses[-1]:.3f})." if train.losses else "Training: no epoch run.",
        f"Wall time of IEM + training: {result.seconds['train_pipeline']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--test-size", default=DEFAULT_TEST_SIZE, show_default=True, help="Images held out for testing.")
@click.option("--split-seed", default=0, show_default=True, help="Seed of the train/test shuffle.")
@click.option("--transductive", is_flag=True, help="Train on every image, the test images included (no label used).")
@click.option("--epochs", type=int, default=None, help="Training epochs. [default: 50]")
@click.option("--batch-size", type=int, default=None, help="Largest mini-batch. [default: 128]")
@click.option("--min-steps", type=int, default=None, help="Floor on optimiser steps per epoch. [default: 16]")
@click.option("--top-fraction", type=float, default=None, help="Share of IEM masks kept. [default: 0.8]")
@click.option("--seed", type=int, default=None, help="Training seed. [default: 0]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to compute.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def main(
    root: Path,
    out_dir: Path,
    test_size: int,
    split_seed: int,
    transductive: bool,
    epochs: Optional[int],
    batch_size: Optional[int],
    min_steps: Optional[int],
    top_fraction: Optional[float],
    seed: Optional[int],
    device: str,
    quiet: bool,
) -> None:
    """Phase-2 experiment on an images/ + masks/ folder; writes OUT/results.md.

    \b
    Example:
      python -m iem.segnet.experiment ../shared/data/weizmann_horse --out runs/horse-phase2
    """
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "min_steps_per_epoch": min_steps,
        "top_fraction": top_fraction,
        "seed": seed,
    }
    try:
        settings = TrainSettings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    result = run_experiment(
        root, out_dir, test_size, split_seed, settings, device=device, progress=not quiet, transductive=transductive
    )
    command = "python -m iem.segnet.experiment " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = experiment_markdown(result, command)
    write_text(out_dir / REPORT_FILE, text)
    click.echo(text)


if __name__ == "__main__":
    main()
