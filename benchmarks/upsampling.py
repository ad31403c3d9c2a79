"""Cost of bringing a working-size mask back to the photo (``iem.io.upsample_mask``).

Milliseconds per photo (wall clock and process CPU) of each method on the first GrabCut and
Weizmann Horse photos (sorted by name; ground truth shrunk to 128 px as in
``benchmarks.upsample_accuracy``, whose table gives the accuracy), and of the guided method on
synthetic 3 and 12 megapixel photos made from them at run time (bicubic resize), from masks of
128 px and of the size of the ``best`` preset's GrabCut pass on the photo (384 px), the mask
that the command upsamples by default.

Example::

    python -m benchmarks.upsampling                 # 25 + 25 photos, 3 large ones per size
    python -m benchmarks.upsampling --photos 4 --large 1 --out /tmp/up.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from benchmarks import common
from benchmarks.upsample_accuracy import shrunk_truth
from iem.config import IEMConfig
from iem.io.upsample import UPSAMPLE_METHODS, upsample_mask

#: Working size (shorter side) the ground truth is shrunk to.
WORKING_SIZE = 128
#: Synthetic photo sizes (width, height) for the cost of large photos: 3 and 12 megapixels.
LARGE_SIZES = ((2000, 1500), (4000, 3000))
#: Mask sizes upsampled to the large photos: the working size, and the size of ``best``'s pass.
LARGE_MASK_SIZES = (WORKING_SIZE, IEMConfig.best().grabcut_photo_size)


def photo_pairs(root: Path, count: int) -> List[Tuple[Path, Path]]:
    """The first ``count`` (photo, mask) pairs of each data set."""
    return [
        (path, root / dataset / "masks" / f"{path.stem}.png")
        for dataset in common.DATASETS
        for path in common.image_paths(root, dataset)[:count]
    ]


def _load(pair: Tuple[Path, Path], size: Optional[Tuple[int, int]] = None) -> Tuple[Image.Image, np.ndarray]:
    with Image.open(pair[0]) as image:
        photo = image.convert("RGB")
    with Image.open(pair[1]) as image:
        mask = image.convert("L")
    if size is not None:
        photo, mask = photo.resize(size, Image.BICUBIC), mask.resize(size, Image.NEAREST)
    return photo, np.asarray(mask) > 127


def cost(
    pairs: List[Tuple[Path, Path]], methods, size: Optional[Tuple[int, int]] = None, mask_size: int = WORKING_SIZE
) -> Dict[str, Dict[str, float]]:
    """Mean ms per photo (wall and CPU) of each method, from the truth shrunk to ``mask_size``."""
    totals = {m: [0.0, 0.0] for m in methods}
    for pair in pairs:
        photo, truth = _load(pair, size)
        low = shrunk_truth(truth, mask_size)
        for method in methods:
            with common.timed() as timing:
                upsample_mask(low, photo, method)
            totals[method][0] += timing.wall_s
            totals[method][1] += timing.cpu_s
    return {m: {"wall": round(1000 * w / len(pairs), 1), "cpu": round(1000 * c / len(pairs), 1)} for m, (w, c) in totals.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.upsampling",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=int, default=25, help="photos per data set (default 25)")
    parser.add_argument("--large", type=int, default=3, help="photos resized to each large size (default 3)")
    parser.add_argument("--data", help="folder holding grabcut/ and weizmann_horse/")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/upsampling.json)")
    args = parser.parse_args(argv)
    env = common.environment()
    pairs = photo_pairs(common.data_dir(args.data), args.photos)
    with common.timed() as whole:
        report: Dict[str, Any] = {"photos_ms": cost(pairs, UPSAMPLE_METHODS)}
        large = pairs[: args.large]
        report["large_photos_ms"] = {
            f"{w}x{h}" + ("" if m == WORKING_SIZE else f", {m} px mask"): cost(large, ("guided",), (w, h), m)["guided"]
            for w, h in LARGE_SIZES
            for m in LARGE_MASK_SIZES
            if large
        }
    report.update(photos=len(pairs), timing=whole.to_dict(), environment=env)
    for method, ms in report["photos_ms"].items():
        print(f"{method:>8s} on {len(pairs)} photos: {ms['wall']} ms wall, {ms['cpu']} ms CPU per photo")
    for size, ms in report["large_photos_ms"].items():
        print(f"  guided at {size}: {ms['wall']} ms wall, {ms['cpu']} ms CPU per photo")
    print(f"other load {100 * (whole.others_busy or 0):.0f}%")
    print(f"wrote {common.write_json(report, Path(args.out) if args.out else common.RESULTS_DIR / 'upsampling.json')}")
    return report


if __name__ == "__main__":
    main()
