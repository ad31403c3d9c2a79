"""Scoring a folder of predicted masks against a folder of ground-truth masks (``iem eval``).

Predictions and ground truth are matched by their path relative to their folder without the
suffix (``pred/a/b.png`` <-> ``gt/a/b.jpg``). Both are read with
:func:`iem.datasets.masks.read_mask` (foreground = value > 127, or 1 in 0/1 label files). A
prediction whose size differs from its ground truth is resized to it with nearest-neighbour
sampling and counted. Each image is scored in both conventions of :mod:`iem.metrics`.

A prediction folder written by ``iem segment`` names its masks ``<stem>.mask.png`` beside other
outputs (``.cutout.png``, ``.overlay.jpg``, ...): when some prediction file carries the ``.mask``
tag, only the tagged files are predictions, matched with the tag removed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from iem.io.write import PathLike, write_text
from iem.bench.runner import SCORE_KEYS, ImageScores, score_batch
from iem.datasets.folder import MASK_SUFFIXES, scan_by_stem
from iem.datasets.masks import read_mask
from iem.io import ImageReadError

#: Tag before the suffix of the mask files ``iem segment`` writes (``photo.mask.png``).
MASK_TAG = ".mask"


@dataclass
class EvalReport:
    """Outcome of :func:`evaluate_masks`.

    Attributes:
        rows: Per-image scores (fractions), in name order.
        resized: Names of predictions resized to their ground truth's size.
        problems: One line per file that could not be matched or read.
    """

    rows: List[ImageScores] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def mean(self, key: str) -> float:
        """Mean over images of one score (NaN when nothing was scored)."""
        if not self.rows:
            return float("nan")
        return sum(getattr(row, key) for row in self.rows) / len(self.rows)

    def summary(self) -> Dict[str, float]:
        """Means of the six scores."""
        return {key: self.mean(key) for key in SCORE_KEYS}


def match_masks(pred: PathLike, truth: PathLike) -> Tuple[List[Tuple[str, Path, Path]], List[str]]:
    """Pair predicted and ground-truth files by relative path stem.

    ``pred`` and ``truth`` are two folders, or two files (one pair named after the prediction).

    Returns:
        ``(pairs, problems)``: ``(name, prediction, ground truth)`` triples in name order, and one
        line for each file without a partner (or ambiguous).
    """
    pred, truth = Path(pred), Path(truth)
    if pred.is_file() and truth.is_file():
        return [(pred.stem, pred, truth)], []
    problems: List[str] = []
    for path, what in ((pred, "prediction"), (truth, "ground-truth")):
        if not path.is_dir():
            problems.append(f"{path}: {what} folder not found")
    if problems:
        return [], problems
    predictions, pred_problems = scan_by_stem(pred, MASK_SUFFIXES)
    predictions = _tagged_masks_only(predictions)
    truths, truth_problems = scan_by_stem(truth, MASK_SUFFIXES)
    problems = pred_problems + truth_problems
    pairs = [(key, path, truths[key]) for key, path in predictions.items() if key in truths]
    problems.extend(f"{path}: no ground truth (expected {truth / key}.*)" for key, path in predictions.items() if key not in truths)
    problems.extend(f"{path}: no prediction (expected {pred / key}.*)" for key, path in truths.items() if key not in predictions)
    return pairs, problems


def _tagged_masks_only(predictions: Dict[str, Path]) -> Dict[str, Path]:
    """Keep only ``*.mask.*`` files (tag removed from the key) when there are any."""
    tagged = {key[: -len(MASK_TAG)]: path for key, path in predictions.items() if key.endswith(MASK_TAG)}
    return tagged if tagged else predictions


def _resize_nearest(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(image.resize((shape[1], shape[0]), Image.NEAREST)) > 0


def evaluate_masks(pred: PathLike, truth: PathLike, progress: bool = False) -> EvalReport:
    """Score every matched prediction; unmatched or unreadable files become ``problems``."""
    pairs, problems = match_masks(pred, truth)
    report = EvalReport(problems=problems)
    for name, pred_path, truth_path in tqdm(pairs, desc="eval", unit="img", disable=not progress, leave=False):
        try:
            predicted = read_mask(pred_path)
            expected = read_mask(truth_path)
        except ImageReadError as err:
            report.problems.append(str(err))
            continue
        if predicted.shape != expected.shape:
            predicted = _resize_nearest(predicted, expected.shape)
            report.resized.append(name)
        scores = score_batch([name], torch.from_numpy(predicted)[None], torch.from_numpy(expected)[None])
        report.rows.extend(scores)
    return report


def eval_csv(report: EvalReport) -> str:
    """Per-image CSV: ``name,acc,iou,dice,strict_acc,strict_iou,strict_dice,resized``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *SCORE_KEYS, "resized"])
    resized = set(report.resized)
    for row in report.rows:
        writer.writerow([row.name, *(f"{getattr(row, key):.6f}" for key in SCORE_KEYS), int(row.name in resized)])
    return buffer.getvalue()


def write_eval_csv(report: EvalReport, path: PathLike) -> None:
    """Write the per-image CSV atomically."""
    write_text(path, eval_csv(report))


__all__ = ["EvalReport", "evaluate_masks", "eval_csv", "match_masks", "write_eval_csv"]
