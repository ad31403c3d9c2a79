"""Accuracy of bringing a working-resolution mask back to the photo: nearest, bilinear, guided.

The ground-truth mask of each photo is shrunk to the working size (shorter side ``--sizes``,
bilinear, threshold 0.5), brought back with each method of ``iem.io.upsample_mask``, and
compared with the full-resolution ground truth: mean IoU over the photos, in %. The mask is
then right at the working size, so the score measures the upsampling alone. This makes the
table of docs/cli.md ("Upsampling").

Example::

    python -m benchmarks.upsample_accuracy                       # 25 GrabCut + 25 horses, 128 and 64 px
    python -m benchmarks.upsample_accuracy --images 5 --sizes 128
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from benchmarks import common
from iem.imaging import working_size
from iem.io import read_image
from iem.io.upsample import UPSAMPLE_METHODS, upsample_mask


def shrunk_truth(truth: np.ndarray, size: int) -> np.ndarray:
    """The ground truth at the working size: bilinear on the 0/1 mask, then >= 0.5."""
    h, w = working_size(truth.shape[0], truth.shape[1], size)
    small = Image.fromarray(truth.astype(np.float32), "F").resize((w, h), Image.BILINEAR)
    return np.asarray(small) >= 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def measure(root: Path, images: int, sizes: List[int]) -> Dict[str, Dict[str, float]]:
    """``{size: {method: mean IoU in %}}`` over the first ``images`` photos of each data set."""
    scores: Dict[int, Dict[str, List[float]]] = {s: {m: [] for m in UPSAMPLE_METHODS} for s in sizes}
    for dataset in common.DATASETS:
        for path in common.image_paths(root, dataset)[:images]:
            photo = read_image(path).convert("RGB")
            truth = np.asarray(Image.open(root / dataset / "masks" / f"{path.stem}.png").convert("L")) > 127
            for size in sizes:
                low = shrunk_truth(truth, size)
                for method in UPSAMPLE_METHODS:
                    scores[size][method].append(iou(upsample_mask(low, photo, method), truth))
    return {str(s): {m: 100 * float(np.mean(v)) for m, v in by_method.items()} for s, by_method in scores.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.upsample_accuracy",
        description="Mean IoU of ground-truth masks shrunk to the working size and brought back by each upsampling.",
        epilog="Examples:\n  python -m benchmarks.upsample_accuracy\n"
        "  python -m benchmarks.upsample_accuracy --images 5 --sizes 128 --out /tmp/upsample.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=25, help="photos taken from each data set, in name order")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 64], help="working sizes (shorter side, px)")
    parser.add_argument("--data", help="folder holding grabcut/ and weizmann_horse/ (default: ../shared/data)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "upsample_accuracy.json")
    args = parser.parse_args(argv)
    root = common.data_dir(args.data)
    result = measure(root, args.images, args.sizes)
    table = common.Table(["upsampling", *(f"IoU at {s} px" for s in args.sizes)])
    for method in UPSAMPLE_METHODS:
        table.add(method, *(f"{result[str(s)][method]:.2f}" for s in args.sizes))
    print(f"{args.images} photos of each of {', '.join(common.DATASETS)}, mean IoU (%):\n{table}")
    common.write_json({"images_per_dataset": args.images, "iou": result, "environment": common.environment()}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
