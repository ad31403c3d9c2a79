"""The phase-2 experiment on a labelled folder: IEM vs IEM+SegNet vs IEM+SegNet+refine.

The images of an ``images/`` + ``masks/`` dataset are split once (sorted names, seeded shuffle,
``--test-size`` held out). The network is trained on the training images **without their
labels** (IEM pseudo-labels only); the three methods are then scored on the held-out images in
both metric conventions. The ground truth of the training images is read only to report how
good the pseudo-labels were, never to choose anything.

With ``--train-on`` the network instead learns from another, unlabelled collection (the
paper's setting: IEM over thousands of photos of one category, evaluated on a labelled set),
and every image of the labelled folder is scored, in two fixed halves besides the whole: the
even-numbered images (in name order) are the half any choice may be made on, the odd-numbered
ones the half that is only reported.

Run::

    python -m iem.segnet.experiment ../shared/data/weizmann_horse --out runs/horse-phase2
    python -m iem.segnet.experiment ../shared/data/flowers17 --train-on ../shared/data/flowers102/images \
        --out runs/flowers-phase2
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import click
import torch

from iem import IEMConfig, metrics
from iem.api import resolve_config
from iem.io.write import write_text
from iem.bench.methods import IEMMethod, MethodContext
from iem.bench.report import markdown_table, write_per_image_csv, write_results_json
from iem.bench.runner import SCORE_KEYS, BenchResult, MethodResult, run_benchmark
from iem.datasets.base import PairDataset
from iem.datasets.folder import open_folder_pair
from iem.segnet.checkpoint import slim_checkpoint
from iem.segnet.data import collect_image_paths, split_paths
from iem.segnet.methods import SegNetMethod, SegNetRefineMethod
from iem.segnet.pipeline import PipelineReport, train_from_files
from iem.segnet.predict import load_model
from iem.segnet.select import SELECTIONS
from iem.config import PRESETS
from iem.segnet.train import PRECISIONS, SCHEDULES, TrainSettings, mean_epoch_seconds

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
    collection: Optional[str] = None


#: The halves of a labelled set scored as a whole (``--train-on``): choices are made on
#: ``even`` (the 0th, 2nd, ... image in name order), ``odd`` is only reported.
HALVES = ("even", "odd")


def half_results(bench: BenchResult, half: str) -> List[MethodResult]:
    """The per-method results restricted to one half of the images (``"even"`` or ``"odd"``).

    Seconds are shared out in proportion to the images kept.
    """
    parity = HALVES.index(half)
    out = []
    for result in bench.results:
        rows = [row for i, row in enumerate(result.rows) if i % 2 == parity]
        share = len(rows) / max(1, len(result.rows))
        out.append(dataclasses.replace(result, rows=rows, seconds=result.seconds * share, failures=[]))
    return out


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
    iem_name: str = "paper",
) -> ExperimentResult:
    """Split, train on the training part (labels unused), score the three methods on the test part.

    With ``transductive`` the network learns from every image, the test images included (their
    labels are never read for training either): the use of phase 2 on one collection, where
    ``iem train`` and ``iem segment --model`` see the same images. ``iem_name`` names IEM's
    row (the preset of ``iem_config``).

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

    bench = _score(test_set, out_dir / MODEL_FILE, iem_config, device, f"{Path(root).name} (test split)", progress, iem_name)
    write_results_json(bench, out_dir / "results.json")
    write_per_image_csv(bench.results, out_dir / "per_image.csv")
    return ExperimentResult(bench, report, pseudo, fit_set.names, test_set.names, seconds, transductive)


def _score(
    dataset: PairDataset,
    model_path: Path,
    iem_config: IEMConfig,
    device: str,
    name: str,
    progress: bool,
    iem_name: str = "paper",
) -> BenchResult:
    """IEM (the row ``iem_name``), the network and the network refined by IEM, scored on ``dataset``."""
    model = load_model(model_path, device=device)
    context = MethodContext(device=device, model=model_path)
    methods = [
        IEMMethod(iem_name, iem_config, device),
        SegNetMethod(model, context.model),
        SegNetRefineMethod(model, context, iem_config),
    ]
    return run_benchmark(dataset, methods, name, progress=progress)


def run_collection_experiment(
    root: PathLike,
    collection: PathLike,
    out_dir: PathLike,
    settings: Optional[TrainSettings] = None,
    iem_config: Optional[IEMConfig] = None,
    device: str = "auto",
    progress: bool = False,
    iem_name: str = "paper",
) -> ExperimentResult:
    """Train on an unlabelled collection, score the three methods on every image of ``root``.

    The paper's setting (section 4.2): IEM runs over ``collection`` (image files, folders or
    patterns, e.g. the 8,189 Flowers-102 photos), the masks with the highest inpainting error
    train the network, and IEM, the network and the refined network are scored on the labelled
    ``images/`` + ``masks/`` folder ``root`` (e.g. Flowers-17). No label of ``root`` is used
    for training; :func:`half_results` splits the scores into the decision and report halves.

    Everything is written to ``out_dir``: ``model.pt`` (and its IEM cache ``model.iem.npz``,
    reused and resumed by a second run), ``results.json``, ``per_image.csv``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    iem_config = resolve_config(iem_config)
    paths, problems = collect_image_paths([collection])
    if problems or not paths:
        raise click.UsageError("; ".join(problems) or f"{collection}: no image found")
    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    report = train_from_files(paths, out_dir / MODEL_FILE, settings, iem_config, device=device, progress=progress)
    seconds["train_pipeline"] = time.perf_counter() - start
    start = time.perf_counter()
    bench = score_model(root, out_dir, iem_config, device, progress, iem_name)
    seconds["score"] = time.perf_counter() - start
    names = [str(p) for p in report.paths]
    test_names = open_folder_pair(root, protocol="paper").names
    return ExperimentResult(bench, report, {}, names, test_names, seconds, collection=str(collection))


def score_model(
    root: PathLike,
    run_dir: PathLike,
    iem_config: Optional[IEMConfig] = None,
    device: str = "auto",
    progress: bool = False,
    iem_name: str = "paper",
) -> BenchResult:
    """Score IEM, the network of ``run_dir`` and the refined network on every image of ``root``.

    The scoring half of :func:`run_collection_experiment`, for a network trained elsewhere:
    ``run_dir`` holds its ``model.pt``; ``results.json`` and ``per_image.csv`` are written
    beside it, so :mod:`iem.segnet.summary` reads the run like any other.
    """
    run_dir = Path(run_dir)
    dataset = open_folder_pair(root, protocol="paper")
    bench = _score(dataset, run_dir / MODEL_FILE, resolve_config(iem_config), device, Path(root).name, progress, iem_name)
    write_results_json(bench, run_dir / "results.json")
    write_per_image_csv(bench.results, run_dir / "per_image.csv")
    return bench


def experiment_markdown(result: ExperimentResult, command: str) -> str:
    """The report: command, split, test table, pseudo-label quality, training details."""
    if result.collection is not None:
        return _collection_markdown(result, command)
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
        values = " | ".join(f"{100 * row[k]:.1f}" for k in SCORE_KEYS)
        lines.append(f"| {group} | {int(row['images'])} | {values} |")
    lines += ["", *_training_lines(result)]
    return "\n".join(lines) + "\n"


def _training_lines(result: ExperimentResult) -> List[str]:
    train = result.pipeline.train
    losses = ", ".join(f"{x:.3f}" for x in train.losses[:: max(1, len(train.losses) // 10)])
    return [
        f"Training: batch {train.batch_size}, {len(train.losses)} epochs, loss every few epochs: {losses}"
        f" (last {train.losses[-1]:.3f})." if train.losses else "Training: no epoch run.",
        f"Wall time of IEM + training: {result.seconds['train_pipeline']:.0f} s.",
        *([epoch_time_text(train.epoch_seconds)] if train.epoch_seconds else []),
    ]


def epoch_time_text(epoch_seconds: Sequence[Mapping[str, float]]) -> str:
    """One line on the time of an epoch: mean wall and CPU seconds over the timed epochs."""
    wall, cpu = mean_epoch_seconds(epoch_seconds)
    return f"Time per epoch (mean of {len(epoch_seconds)}): {wall:.0f} s wall, {cpu:.0f} s of CPU."


def _collection_markdown(result: ExperimentResult, command: str) -> str:
    """The report of :func:`run_collection_experiment`: the whole labelled set and its halves."""
    report = result.pipeline
    lines = [
        f"Command:\n\n```\n{command}\n```\n",
        f"Network trained on {len(report.selected)} of the {len(report.paths)} IEM masks of {result.collection} "
        f"(no label); scored on the {len(result.test_names)} labelled images of {result.bench.dataset}.\n",
        "Scores in %, mean over images; `acc`/`IoU`/`DICE` in the paper's inverse-max convention, "
        "`strict` with the foreground taken as predicted.\n",
    ]
    parts = [("all images", result.bench.results)] + [
        (f"{half} half (" + ("choices made here" if half == HALVES[0] else "reported only") + ")",
         half_results(result.bench, half))
        for half in HALVES
    ]
    for title, rows in parts:
        lines += [f"{title[0].upper()}{title[1:]}:\n", markdown_table(rows)]
    lines += [*_training_lines(result), f"Wall time of scoring: {result.seconds['score']:.0f} s."]
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--test-size", default=DEFAULT_TEST_SIZE, show_default=True, help="Images held out for testing.")
@click.option("--split-seed", default=0, show_default=True, help="Seed of the train/test shuffle.")
@click.option("--transductive", is_flag=True, help="Train on every image, the test images included (no label used).")
@click.option(
    "--train-on",
    "collection",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Train on this unlabelled collection (folder or file) instead, and score every image of ROOT.",
)
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True, help="IEM settings (pseudo-labels, baseline, refinement).")
@click.option("--epochs", type=int, default=None, help="Training epochs. [default: 50]")
@click.option("--batch-size", type=int, default=None, help="Largest mini-batch. [default: 128]")
@click.option("--min-steps", type=int, default=None, help="Floor on optimiser steps per epoch. [default: 16]")
@click.option("--top-fraction", type=float, default=None, help="Share of IEM masks kept. [default: 0.8]")
@click.option("--select", "selection", type=click.Choice(SELECTIONS), default=None, help="Ranking of IEM's masks. [default: error]")
@click.option("--seed", type=int, default=None, help="Training seed. [default: 0]")
@click.option("--lr", type=float, default=None, help="Adam learning rate (the peak with onecycle). [default: 0.001]")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None, help="Learning-rate schedule. [default: constant]")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Forward-pass arithmetic. [default: fp32]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to compute.")
@click.option(
    "--ship",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the trained network without optimiser state or file lists (e.g. src/iem/segnet/models/NAME.pt).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def main(
    root: Path,
    out_dir: Path,
    test_size: int,
    split_seed: int,
    transductive: bool,
    collection: Optional[Path],
    preset: str,
    epochs: Optional[int],
    batch_size: Optional[int],
    min_steps: Optional[int],
    top_fraction: Optional[float],
    selection: Optional[str],
    seed: Optional[int],
    lr: Optional[float],
    schedule: Optional[str],
    precision: Optional[str],
    device: str,
    ship: Optional[Path],
    quiet: bool,
) -> None:
    """Phase-2 experiment on an images/ + masks/ folder; writes OUT/results.md.

    \b
    Examples:
      python -m iem.segnet.experiment ../shared/data/weizmann_horse --out runs/horse-phase2
      python -m iem.segnet.experiment ../shared/data/flowers17 --train-on ../shared/data/flowers102/images \\
          --out runs/flowers-phase2 --schedule onecycle --lr 0.004 --epochs 2 --precision bf16
    """
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "min_steps_per_epoch": min_steps,
        "top_fraction": top_fraction,
        "selection": selection,
        "seed": seed,
        "learning_rate": lr,
        "schedule": schedule,
        "precision": precision,
    }
    try:
        settings = TrainSettings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    iem_config = IEMConfig.preset(preset)
    if collection is not None:
        if transductive:
            raise click.UsageError("--transductive and --train-on exclude each other")
        result = run_collection_experiment(root, collection, out_dir, settings, iem_config, device, not quiet, preset)
    else:
        result = run_experiment(
            root, out_dir, test_size, split_seed, settings, iem_config, device, not quiet, transductive, preset
        )
    command = "python -m iem.segnet.experiment " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = experiment_markdown(result, command)
    if ship is not None:
        scores = {r.method: {k: round(r.mean(k), 4) for k in SCORE_KEYS} for r in result.bench.results}
        slim_checkpoint(out_dir / MODEL_FILE, ship, command=command, scores=scores, scored_on=result.bench.dataset)
    write_text(out_dir / REPORT_FILE, text)
    click.echo(text)


if __name__ == "__main__":
    main()
