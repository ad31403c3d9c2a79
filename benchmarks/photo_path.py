"""End to end on photos: ``iem segment``'s images/s against ``segment_batch`` alone.

For each set of photos, one process times, side by side:

1. the engine alone: ``iem.segment_batch`` with the default preset (``IEMConfig.best``) on the
   working copies of the photos (made beforehand, untimed, exactly as the command makes them), grouped by working shape in
   batches of the command's batch size;
2. the whole photo path: :func:`iem.segment_files` on the folder (read, working copy, IEM,
   guided upsampling, PNG encoding, atomic writes), default settings, masks only;

and prints both rates and their ratio. The sets: the GrabCut photos as they are (the dev
photos, 0.1 to 0.4 megapixels) and synthetic photos made from them at run time (bicubic resize
to 0.4, 3 and 12 megapixels keeping each aspect ratio, JPEG quality 90, in a temporary folder).

Example::

    python -m benchmarks.photo_path                       # 16 photos per set
    python -m benchmarks.photo_path --photos 4 --sets dev,12 --out /tmp/photo.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from PIL import Image

import iem
from benchmarks import common
from iem.io import working_copy
from iem.pipeline import DEFAULT_BATCH_SIZE, DEFAULT_SIZE, _batch_tensor

#: Synthetic photo sizes, in megapixels, by set name.
MEGAPIXELS = {"0.4": 0.4, "3": 3.0, "12": 12.0}
SETS = ("dev",) + tuple(MEGAPIXELS)
JPEG_QUALITY = 90


def make_set(name: str, sources: List[Path], folder: Path) -> List[Path]:
    """Copies of ``sources`` (``dev``) or their resizes to ``MEGAPIXELS[name]``, in ``folder``."""
    folder.mkdir(parents=True)
    paths = []
    for source in sources:
        target = folder / f"{source.stem}.jpg"
        if name == "dev" and source.suffix.lower() == ".jpg":
            shutil.copy(source, target)
        elif name == "dev":
            with Image.open(source) as image:
                image.convert("RGB").save(target, quality=JPEG_QUALITY)
        else:
            with Image.open(source) as image:
                photo = image.convert("RGB")
            scale = (MEGAPIXELS[name] * 1e6 / (photo.width * photo.height)) ** 0.5
            photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC).save(target, quality=JPEG_QUALITY)
        paths.append(target)
    return paths


def engine_alone(paths: List[Path], batch_size: int) -> Dict[str, Any]:
    """Time ``segment_batch`` on the working copies, grouped by shape as the command groups them."""
    groups: Dict[tuple, List[torch.Tensor]] = {}
    for path in paths:
        working = working_copy(path, DEFAULT_SIZE)
        groups.setdefault(working.shape, []).append(working)
    batches = [
        _batch_tensor(arrays[start : start + batch_size]) for arrays in groups.values() for start in range(0, len(arrays), batch_size)
    ]
    with common.timed() as timing:
        for batch in batches:
            iem.segment_batch(batch, iem.IEMConfig.best(), "cpu")
    return {"images_per_s": len(paths) / timing.wall_s, "timing": timing.to_dict(), "shapes": len(groups)}


def photo_path(folder: Path, out: Path, count: int) -> Dict[str, Any]:
    """Time ``segment_files`` on ``folder`` with default settings."""
    with common.timed() as timing:
        summary = iem.segment_files(folder, out, device="cpu", progress=False)
    if summary.segmented != count:
        raise RuntimeError(f"segmented {summary.segmented} of {count} photos: {summary.failures[:3]}")
    return {"images_per_s": count / timing.wall_s, "timing": timing.to_dict(), "cpu_loop": summary.settings.get("cpu_loop")}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.photo_path",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=int, default=16, help="photos per set (default 16)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma list of {SETS}")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data", help="folder holding grabcut/")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/photo_path.json)")
    args = parser.parse_args(argv)
    sets = [name for name in args.sets.split(",") if name]
    unknown = [name for name in sets if name not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {SETS}")
    common.set_threads(args.threads)
    env = common.environment(args.threads)
    sources = common.image_paths(common.data_dir(args.data), "grabcut")[: args.photos]
    # Warm-up (compiled loop, thread pools, allocator), untimed.
    iem.segment_batch(_batch_tensor([working_copy(sources[0], DEFAULT_SIZE)]), iem.IEMConfig.best(iterations=3), "cpu")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="iem-photo-path-") as scratch:
        for name in sets:
            paths = make_set(name, sources, Path(scratch) / name)
            alone = engine_alone(paths, DEFAULT_BATCH_SIZE)
            whole = photo_path(Path(scratch) / name, Path(scratch) / f"{name}-out", len(paths))
            megapixels = sum(Image.open(p).width * Image.open(p).height for p in paths) / len(paths) / 1e6
            rows[name] = {
                "photos": len(paths),
                "mean_megapixels": round(megapixels, 2),
                "segment_batch": alone,
                "iem_segment": whole,
                "ratio": whole["images_per_s"] / alone["images_per_s"],
            }
            print(
                f"{name:>4s}: {len(paths)} photos, {megapixels:.2f} MP: segment_batch {alone['images_per_s']:.2f} images/s, "
                f"iem segment {whole['images_per_s']:.2f} images/s, ratio {rows[name]['ratio']:.2f} "
                f"(other load {100 * (whole['timing']['others_busy'] or 0):.0f}%)",
                flush=True,
            )
    result = {"sets": rows, "environment": env}
    print(f"wrote {common.write_json(result, Path(args.out) if args.out else common.RESULTS_DIR / 'photo_path.json')}")
    return result


if __name__ == "__main__":
    main()
