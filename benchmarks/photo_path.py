"""End to end on photos: ``iem segment``'s images/s against ``segment_batch`` alone.

For each set of photos, one process times, side by side:

1. the engine alone: ``iem.segment_batch`` with the chosen preset (default ``best``, the
   command's default) on the working copies of the photos (made beforehand, untimed, exactly
   as the command makes them), grouped by working shape in batches of the command's batch size;
2. the masks alone: the same, plus what the photo path adds to the mask's computation with
   that preset (``best``: the second GrabCut pass, :func:`iem.core.refine.refine_on_photo`)
   on the photos already reduced as that pass reads them (untimed) -- every step that decides the
   mask, with no decoding, resizing, upsampling or encoding; for ``paper`` it is the engine;
3. the whole photo path: :func:`iem.segment_files` on the folder (read, working copy, IEM,
   guided upsampling, PNG encoding, atomic writes), the chosen preset, masks only;

and prints the rates and the ratios of the photo path to each, by wall clock and by process
CPU time. With ``--stages`` it also times each stage of the photo path on its own, one photo
at a time (CPU milliseconds per photo): what bounds the ratio on a machine whose cores the
engine keeps busy. The sets: the GrabCut photos as they are (the dev photos, 0.1 to 0.4 megapixels) and
synthetic photos made from them at run time (bicubic resize to 0.4, 3 and 12 megapixels keeping
each aspect ratio, JPEG quality 90, in a temporary folder).

Example::

    python -m benchmarks.photo_path                       # 16 photos per set, best preset
    python -m benchmarks.photo_path --photos 4 --sets dev,12 --preset paper --out /tmp/photo.json
    python -m benchmarks.photo_path --photos 4 --sets 0.4,3,12 --stages
    python -m benchmarks.photo_path --photos 4 --device cuda --threads 8
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from PIL import Image

import iem
from benchmarks import common
from iem.api import pass_photo, photo_pass
from iem.config import PRESETS
from iem.core.refine import refine_on_photo
from iem.io import read_image, upsample_mask, working_copy
from iem.io.outputs import output_paths, write_outputs
from iem.pipeline import DEFAULT_BATCH_SIZE, DEFAULT_SIZE, _batch_tensor, count_render_processes

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


def engine_alone(
    paths: List[Path], batch_size: int, config: iem.IEMConfig, device: str = "cpu", masks_alone: bool = True
) -> Dict[str, Any]:
    """Time ``segment_batch`` on the working copies, grouped by shape as the command groups them;
    then, with ``masks_alone``, the same plus the photo path's own mask step
    (:func:`refine_on_photo`) on the photos reduced as that step reads them
    (:func:`iem.api.pass_photo`), if ``config`` has one.

    Returns:
        ``{"segment_batch": {...}, "masks": {...}}``, each with ``images_per_s`` and ``timing``
        (``"masks"`` None without ``masks_alone``).
    """
    groups: Dict[tuple, List[Any]] = {}
    for path in paths:
        working = working_copy(path, DEFAULT_SIZE)
        groups.setdefault(working.shape, []).append((working, _pass_photo(path, config)))
    batches = [
        members[start : start + batch_size] for members in groups.values() for start in range(0, len(members), batch_size)
    ]
    tensors = [_batch_tensor([working for working, _ in batch]) for batch in batches]
    # Each batch's masks are brought to the CPU, as the photo path needs them (on CUDA this
    # also waits for the batch to finish).
    with common.timed() as engine:
        for tensor in tensors:
            iem.segment_batch(tensor, config, device).masks.cpu()
    alone = {"images_per_s": len(paths) / engine.wall_s, "timing": engine.to_dict(), "shapes": len(groups)}
    if not masks_alone:
        return {"segment_batch": alone, "masks": None}
    with common.timed() as masks:
        for batch, tensor in zip(batches, tensors):
            result = iem.segment_batch(tensor, config, device)
            for (_, photo), mask in zip(batch, result.masks[:, 0].float().cpu().numpy()):
                if photo is not None:
                    refine_on_photo(photo, mask, config)
    return {"segment_batch": alone, "masks": {"images_per_s": len(paths) / masks.wall_s, "timing": masks.to_dict()}}


def _pass_photo(path: Path, config: iem.IEMConfig) -> Optional[np.ndarray]:
    """The photo as the photo path's GrabCut pass reads it (:func:`iem.api.pass_photo`), or None
    when ``config`` has no such pass."""
    with Image.open(path) as image:
        return pass_photo(image.convert("RGB"), DEFAULT_SIZE, config)


def photo_path(
    folder: Path, out: Path, count: int, config: iem.IEMConfig, device: str = "cpu", render_processes: int = 0
) -> Dict[str, Any]:
    """Time ``segment_files`` on ``folder`` with ``config`` and the other settings at their defaults."""
    with common.timed() as timing:
        summary = iem.segment_files(folder, out, config, device=device, progress=False, render_processes=render_processes)
    if summary.segmented != count:
        raise RuntimeError(f"segmented {summary.segmented} of {count} photos: {summary.failures[:3]}")
    return {"images_per_s": count / timing.wall_s, "timing": timing.to_dict(), "cpu_loop": summary.settings.get("cpu_loop")}


#: The stages :func:`stage_costs` times, in the photo path's order.
STAGES = ("working copy", "IEM", "full decode", "photo GrabCut pass", "guided upsampling", "mask PNG")


def stage_costs(paths: List[Path], config: iem.IEMConfig, out: Path) -> Dict[str, float]:
    """CPU milliseconds per photo of each stage of :func:`iem.segment_files`'s work, one photo
    at a time (IEM: ``segment_batch`` on that photo alone; reading the file is left out)."""
    totals = dict.fromkeys(STAGES, 0.0)

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.process_time()
        yield
        totals[name] += time.process_time() - started

    for path in paths:
        data = path.read_bytes()
        with stage("working copy"):
            working = working_copy(data, DEFAULT_SIZE)
        with stage("IEM"):
            soft = iem.segment_batch(_batch_tensor([working]), config, "cpu").masks[0, 0].float().numpy()
        with stage("full decode"):
            photo = read_image(data)
        with stage("photo GrabCut pass"):
            refined = photo_pass(photo, soft, config)
        with stage("guided upsampling"):
            mask = upsample_mask(refined, photo)
        with stage("mask PNG"):
            write_outputs(output_paths(out, Path(path.name), ("mask",)), photo, mask)
    return {name: round(1000 * seconds / len(paths), 1) for name, seconds in totals.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.photo_path",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=int, default=16, help="photos per set (default 16)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma list of {SETS}")
    parser.add_argument("--preset", default="best", choices=sorted(PRESETS), help="IEM settings (default best, the command's)")
    parser.add_argument("--stages", action="store_true", help="also time each stage on its own, photo by photo")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", help="where IEM runs: cpu (default) or cuda")
    parser.add_argument(
        "--render-processes", type=int, help="processes rendering the outputs (default: as iem segment chooses)"
    )
    parser.add_argument(
        "--no-masks-alone", action="store_true", help="skip timing the masks alone (best's GrabCut pass is slow)"
    )
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
    config = iem.IEMConfig.preset(args.preset)
    processes = count_render_processes(torch.device(args.device)) if args.render_processes is None else args.render_processes
    # Warm-up (compiled loop, thread pools, allocator), untimed.
    iem.segment_batch(_batch_tensor([working_copy(sources[0], DEFAULT_SIZE)]), config.replace(iterations=3), args.device)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="iem-photo-path-") as scratch:
        for name in sets:
            paths = make_set(name, sources, Path(scratch) / name)
            timed = engine_alone(paths, DEFAULT_BATCH_SIZE, config, args.device, not args.no_masks_alone)
            alone, masks = timed["segment_batch"], timed["masks"]
            whole = photo_path(Path(scratch) / name, Path(scratch) / f"{name}-out", len(paths), config, args.device, processes)
            megapixels = sum(Image.open(p).width * Image.open(p).height for p in paths) / len(paths) / 1e6
            # The ratios also by this process's CPU time (all threads): the work each does, which
            # other jobs on a shared machine change far less than the wall clock. Not with render
            # processes, whose time is not this process's.
            row = rows[name] = {
                "photos": len(paths),
                "mean_megapixels": round(megapixels, 2),
                "segment_batch": alone,
                "masks": masks,
                "iem_segment": whole,
                "ratio": whole["images_per_s"] / alone["images_per_s"],
                "ratio_to_masks": None if masks is None else whole["images_per_s"] / masks["images_per_s"],
                "cpu_ratio": None if processes else alone["timing"]["cpu_s"] / whole["timing"]["cpu_s"],
                "cpu_ratio_to_masks": None if processes or masks is None else masks["timing"]["cpu_s"] / whole["timing"]["cpu_s"],
            }
            parts = [f"segment_batch {alone['images_per_s']:.2f} images/s"]
            parts += [] if masks is None else [f"masks alone {masks['images_per_s']:.2f}"]
            parts += [f"iem segment {whole['images_per_s']:.2f}; ratio {row['ratio']:.2f} to segment_batch"]
            parts += [] if masks is None else [f"{row['ratio_to_masks']:.2f} to the masks alone"]
            if processes:
                parts += [f"{processes} render processes"]
            else:
                parts += ["by CPU time " + " and ".join(f"{row[k]:.2f}" for k in ("cpu_ratio", "cpu_ratio_to_masks") if row[k] is not None)]
            print(
                f"{name:>4s}: {len(paths)} photos, {megapixels:.2f} MP, {args.preset}: " + ", ".join(parts)
                + f" (other load {100 * (whole['timing']['others_busy'] or 0):.0f}%)",
                flush=True,
            )
            if args.stages:
                rows[name]["stages_cpu_ms"] = costs = stage_costs(paths, config, Path(scratch) / f"{name}-stages")
                print("      CPU ms per photo: " + ", ".join(f"{stage} {ms:.0f}" for stage, ms in costs.items()), flush=True)
    result = {"sets": rows, "preset": args.preset, "device": args.device, "render_processes": processes, "environment": env}
    print(f"wrote {common.write_json(result, Path(args.out) if args.out else common.RESULTS_DIR / 'photo_path.json')}")
    return result


if __name__ == "__main__":
    main()
