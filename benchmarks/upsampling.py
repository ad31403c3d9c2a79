"""Quality and cost of bringing a working-size mask back to the photo (``iem.io.upsample_mask``).

Quality: for the first 25 GrabCut and first 25 Weizmann Horse photos (sorted by name), the
ground-truth mask is shrunk to the working size (shorter side 128 px, or 64 px: bilinear,
antialiased, thresholded at 0.5, as IEM's binary masks are) and brought back with each method;
the score is the mean IoU with the ground truth at full resolution. Cost: milliseconds per
photo (wall clock and process CPU) for those photos and for synthetic 3 and 12 megapixel
photos made from them at run time (bicubic resize).

Example::

    python -m benchmarks.upsampling                 # 50 photos, both working sizes
    python -m benchmarks.upsampling --photos 4 --out /tmp/up.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from benchmarks import common
from iem.io.upsample import UPSAMPLE_METHODS, upsample_mask

#: Working sizes (shorter side) the ground truth is shrunk to.
WORKING_SIZES = (128, 64)
#: Synthetic photo sizes (width, height) for the cost of large photos: 3 and 12 megapixels.
LARGE_SIZES = ((2000, 1500), (4000, 3000))


def photo_pairs(root: Path, count: int) -> List[Tuple[Path, Path]]:
    """The first ``count`` (photo, mask) pairs of GrabCut, then as many of Weizmann Horse."""
    pairs = []
    for dataset in ("grabcut", "weizmann_horse"):
        for path in common.image_paths(root, dataset)[:count]:
            pairs.append((path, root / dataset / "masks" / f"{path.stem}.png"))
    return pairs


def shrink(truth: np.ndarray, short_side: int) -> np.ndarray:
    """A ``(H, W)`` bool mask at shorter side ``short_side``: bilinear (antialiased), >= 0.5."""
    height, width = truth.shape
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    plane = Image.fromarray(truth.astype(np.float32), "F").resize(size, Image.BILINEAR)
    return np.asarray(plane) >= 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def quality(pairs: List[Tuple[Path, Path]]) -> Dict[str, Dict[str, float]]:
    """Mean IoU (%) per working size and method, and the time of each method per photo."""
    scores: Dict[str, Dict[str, List[float]]] = {str(s): {m: [] for m in UPSAMPLE_METHODS} for s in WORKING_SIZES}
    timings = {m: common.Timing() for m in UPSAMPLE_METHODS}
    for photo_path, mask_path in pairs:
        with Image.open(photo_path) as image:
            photo = image.convert("RGB")
        with Image.open(mask_path) as image:
            truth = np.asarray(image.convert("L")) > 127
        for size in WORKING_SIZES:
            small = shrink(truth, size)
            for method in UPSAMPLE_METHODS:
                with common.timed() as timing:
                    mask = upsample_mask(small, photo, method)
                if size == WORKING_SIZES[0]:
                    timings[method].wall_s += timing.wall_s
                    timings[method].cpu_s += timing.cpu_s
                scores[str(size)][method].append(iou(mask, truth))
    result: Dict[str, Any] = {
        size: {method: round(100 * float(np.mean(values)), 2) for method, values in by_method.items()}
        for size, by_method in scores.items()
    }
    result["ms_per_photo"] = {
        method: {"wall": round(1000 * t.wall_s / len(pairs), 1), "cpu": round(1000 * t.cpu_s / len(pairs), 1)}
        for method, t in timings.items()
    }
    return result


def large_photo_cost(pairs: List[Tuple[Path, Path]], repeats: int) -> Dict[str, Dict[str, float]]:
    """Guided upsampling time per photo on photos resized to :data:`LARGE_SIZES`."""
    result = {}
    for width, height in LARGE_SIZES:
        wall = cpu = 0.0
        count = 0
        for photo_path, mask_path in pairs[:repeats]:
            with Image.open(photo_path) as image:
                photo = image.convert("RGB").resize((width, height), Image.BICUBIC)
            with Image.open(mask_path) as image:
                truth = np.asarray(image.convert("L").resize((width, height), Image.NEAREST)) > 127
            small = shrink(truth, WORKING_SIZES[0])
            with common.timed() as timing:
                upsample_mask(small, photo, "guided")
            wall, cpu, count = wall + timing.wall_s, cpu + timing.cpu_s, count + 1
        result[f"{width}x{height}"] = {"wall": round(1000 * wall / count, 1), "cpu": round(1000 * cpu / count, 1)}
    return result


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=25, help="photos per data set (default 25)")
    parser.add_argument("--large", type=int, default=3, help="photos resized to each large size (default 3)")
    parser.add_argument("--data", help="folder holding grabcut/ and weizmann_horse/")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/upsampling.json)")
    args = parser.parse_args(argv)
    env = common.environment()
    pairs = photo_pairs(common.data_dir(args.data), args.photos)
    with common.timed() as whole:
        report = {"quality_iou_percent": quality(pairs), "large_photos_ms": large_photo_cost(pairs, args.large)}
    report["photos"] = len(pairs)
    report["timing"] = whole.to_dict()
    report["environment"] = env
    print(f"Upsampling {len(pairs)} photos (GrabCut + Weizmann Horse), ground truth shrunk and brought back; mean IoU %:")
    print("| method | " + " | ".join(f"at {s} px" for s in WORKING_SIZES) + " | ms per photo (wall / CPU) |")
    print("|---|" + "---|" * len(WORKING_SIZES) + "---|")
    q = report["quality_iou_percent"]
    for method in UPSAMPLE_METHODS:
        cost = q["ms_per_photo"][method]
        print(f"| {method} | " + " | ".join(f"{q[str(s)][method]:.2f}" for s in WORKING_SIZES) + f" | {cost['wall']} / {cost['cpu']} |")
    for size, cost in report["large_photos_ms"].items():
        print(f"guided at {size}: {cost['wall']} ms wall, {cost['cpu']} ms CPU per photo")
    print(f"other load {100 * (whole.others_busy or 0):.0f}%")
    print(f"wrote {common.write_json(report, Path(args.out) if args.out else common.RESULTS_DIR / 'upsampling.json')}")
    return report


if __name__ == "__main__":
    main()
