"""What a box gives: IEM started from the ground truth's bounding box against GrabCut from the same box.

For every image of the chosen data sets the box is the ground truth's bounding box widened by
``--margin`` pixels on each side (clipped to the image). Methods, all at the photo's full
resolution, scored by strict IoU (foreground = foreground, no inversion):

- ``box``: the box itself as the mask (what the box alone already gives);
- ``iem``: IEM with no guidance (the preset's centered squares), as ``iem segment`` runs it;
- ``iem_box``: IEM started from the box (``iem.segment(..., box=...)``, guided upsampling);
- ``iem_box_pinned``: the same with every pixel outside the box pinned as background, the
  assumption GrabCut makes about its rectangle;
- ``grabcut_box``: OpenCV GrabCut from the same rectangle (``GC_INIT_WITH_RECT``, the
  iterations of the ``grabcut`` baseline of ``iem bench``). Where GrabCut cannot run (a box
  covering the whole image leaves it no background samples) the failure is counted and the
  box itself is scored.

    python benchmarks/box_guidance.py                       # every image of the three dev sets
    python benchmarks/box_guidance.py --every 3 --json out.json   # one image in three

Prints a Markdown table (mean strict IoU in %, seconds per image) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from iem.bench.methods import GRABCUT_ITERATIONS
from iem.config import IEMConfig
from iem.datasets.masks import read_mask
from iem.io.read import read_image
from iem.pipeline import segment_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import IMAGE_EXTENSIONS, data_dir  # noqa: E402

DATASETS = ("grabcut", "weizmann_horse", "flowers17")
METHODS = ("box", "iem", "iem_box", "iem_box_pinned", "grabcut_box")
#: Pixels added to each side of the ground truth's bounding box.
DEFAULT_MARGIN = 5

Box = Tuple[int, int, int, int]


def bounding_box(truth: np.ndarray, margin: int) -> Box:
    """``(x0, y0, x1, y1)``, ``x1, y1`` exclusive: the foreground's extent plus ``margin``, clipped."""
    rows, cols = np.nonzero(truth)
    h, w = truth.shape
    return (max(0, int(cols.min()) - margin), max(0, int(rows.min()) - margin),
            min(w, int(cols.max()) + 1 + margin), min(h, int(rows.max()) + 1 + margin))


def outside(box: Box, shape: Tuple[int, int]) -> np.ndarray:
    marks = np.ones(shape, bool)
    marks[box[1] : box[3], box[0] : box[2]] = False
    return marks


class GrabCutFailed(Exception):
    """GrabCut could not run (a box covering the whole image leaves no background samples)."""


def grabcut(rgb: np.ndarray, box: Box) -> np.ndarray:
    import cv2

    labels = np.zeros(rgb.shape[:2], np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    rect = (box[0], box[1], box[2] - box[0], box[3] - box[1])
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), labels, rect, *models, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    except cv2.error as err:
        raise GrabCutFailed(str(err).strip().splitlines()[-1]) from None
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def strict_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


def methods(config: IEMConfig) -> Dict[str, Callable[[bytes, np.ndarray, Box], np.ndarray]]:
    def box_only(data: bytes, rgb: np.ndarray, box: Box) -> np.ndarray:
        return ~outside(box, rgb.shape[:2])

    return {
        "box": box_only,
        "iem": lambda data, rgb, box: segment_bytes(data, config, device="cpu"),
        "iem_box": lambda data, rgb, box: segment_bytes(data, config, device="cpu", box=box),
        "iem_box_pinned": lambda data, rgb, box: segment_bytes(
            data, config, device="cpu", box=box, background=outside(box, rgb.shape[:2])
        ),
        "grabcut_box": lambda data, rgb, box: grabcut(rgb, box),
    }


def pairs(root: Path, every: int) -> List[Tuple[Path, Path]]:
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    found = [(p, root / "masks" / f"{p.stem}.png") for p in images]
    return [pair for pair in found if pair[1].is_file()][::every]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder holding the data sets (default: ../shared/data)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--every", type=int, default=1, help="keep one image in N (a subset when CPU time is short)")
    parser.add_argument("--margin", type=int, default=DEFAULT_MARGIN)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--json", type=Path, help="write per-data-set results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = IEMConfig.preset(args.preset)
    table = methods(config)
    results = {}
    for name in args.datasets.split(","):
        found = pairs(data_dir(args.data) / name, args.every)
        scores: Dict[str, List[float]] = {m: [] for m in METHODS}
        seconds: Dict[str, float] = {m: 0.0 for m in METHODS}
        failures: Dict[str, int] = {m: 0 for m in METHODS}
        for image_path, mask_path in found:
            data = image_path.read_bytes()
            rgb = np.asarray(read_image(data))
            truth = read_mask(mask_path)
            box = bounding_box(truth, args.margin)
            for method in METHODS:
                started = time.perf_counter()
                try:
                    pred = table[method](data, rgb, box)
                except GrabCutFailed:
                    # Counted, and scored as the box itself: what a user of GrabCut is left with.
                    failures[method] += 1
                    pred = ~outside(box, rgb.shape[:2])
                seconds[method] += time.perf_counter() - started
                scores[method].append(strict_iou(pred, truth))
        results[name] = {
            "images": len(found),
            "strict_iou": {m: round(100 * float(np.mean(v)), 2) for m, v in scores.items()},
            "seconds_per_image": {m: round(seconds[m] / max(1, len(found)), 3) for m in METHODS},
            "failures": {m: n for m, n in failures.items() if n},
        }
        print(name, json.dumps(results[name]), flush=True)
    print()
    print("| data | images | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for name, row in results.items():
        cells = " | ".join(f"{row['strict_iou'][m]:.2f}" for m in METHODS)
        print(f"| {name} | {row['images']} | {cells} |")
    if args.json:
        settings = {"preset": args.preset, "margin": args.margin, "every": args.every, "grabcut_iterations": GRABCUT_ITERATIONS}
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
