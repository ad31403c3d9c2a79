"""Accuracy of IEM settings beyond the paper on the three dev sets, paired against ``paper``.

Every method runs on the paper-protocol tensors (nearest resize of the shorter side to 128,
center crop) of GrabCut-50, Weizmann Horse-327 and Flowers-17 (846), or on one half of each
(even or odd indices: decide on one half, confirm on the other). For each set it prints the
mean strict IoU and, in brackets, the paper's inverse-max IoU, the strict difference to
``paper`` on the same images with its paired standard error, and the process CPU seconds
per image (all threads; the cost budget of ``best`` is 3x ``paper``). The table and every
per-method figure are written as JSON (``--out``, by default under ``benchmarks/results/``).

Small-object checks (no new data): ``--zoom S`` shrinks every photo and its ground truth by
``S`` (area averaging; nearest for the mask), centres them in the 128 px frame and fills the
rest of the frame from the photo's own edge with OpenCV's Telea inpainting, so that the
object covers about ``S**2`` of its former share of the frame; ``--small F`` keeps only the
images whose ground truth covers less than ``F`` of the frame.

IEM's masks before a refinement (the ``grabcut*`` fields) depend only on the other fields:
they are computed once per set and settings and shared by every method that refines them,
and with ``--cache DIR`` kept between runs. A refining method's CPU time is the time of its
IEM masks (as measured when they were computed) plus the time of its refinement.

A method is a name of ``iem bench`` (``paper``, ``best``, ``grabcut``...), ``grabcut@M``
(OpenCV GrabCut from a rectangle ``floor(M * side)`` inside the border, e.g. ``grabcut@0.015625``
for 2 px at 128), or ``LABEL=PRESET:field=value;field=value`` (an IEM preset with changes).

Examples::

    python -m benchmarks.quality --methods best --half even
    python -m benchmarks.quality --methods best,'nogc=best:grabcut=false;grabcut_border=0',grabcut@0.015625 --half all
    python -m benchmarks.quality --methods best,grabcut@0.015625 --half odd --zoom 0.5 --cache .quality-cache
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from benchmarks import common
from iem import metrics
from iem.bench.methods import GrabCutMethod, IEMMethod, Method, MethodContext, build_method
from iem.config import IEMConfig
from iem.core.engine import refine_masks
from iem.datasets import open_dataset
from iem.imaging import to_tensor, to_uint8

#: The dev sets, by folder under the data directory, and their short names in the table.
DEV_SETS = (("grabcut", "GrabCut-50"), ("weizmann_horse", "Horse-327"), ("flowers17", "Flowers-17"))
#: The method every other is paired against.
BASELINE = "paper"
#: Images per call of a method (IEM chunks further inside).
BATCH = 128
#: Images each method segments once, untimed, before the timed run.
WARMUP = 2
#: Radius of OpenCV's Telea inpainting that fills the frame around a zoomed-out photo.
FILL_RADIUS = 3
#: The fields of a refinement after IEM: IEM's own masks do not depend on them.
REFINEMENT_FIELDS = tuple(f.name for f in dataclasses.fields(IEMConfig) if f.name.startswith("grabcut"))


def load_set(
    root: Path, folder: str, half: str, zoom: float = 1.0, small: Optional[float] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Paper-protocol images ``(N, 3, 128, 128)`` and masks ``(N, 128, 128)`` of a set or a half
    of it, zoomed out by ``zoom`` (:func:`zoom_out`) and restricted to the images whose mask
    covers less than ``small`` of the frame."""
    data = open_dataset(root / folder)
    indices = range(len(data))
    if half != "all":
        indices = indices[0 if half == "even" else 1 :: 2]
    samples = [data[i] for i in indices]
    images, truths = torch.stack([s[1] for s in samples]), torch.stack([s[2].bool() for s in samples])
    if zoom != 1.0:
        images, truths = zoom_out(images, truths, zoom)
    if small is not None:
        keep = truths.flatten(1).double().mean(1) < small
        images, truths = images[keep], truths[keep]
    return images, truths


def zoom_out(images: torch.Tensor, truths: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The same scenes seen from further away: a small-object check made from the dev sets.

    Each ``(3, H, W)`` photo is shrunk by ``scale`` (area averaging), centred in an ``H x W``
    frame, and the frame around it is filled from the photo's own edge by OpenCV's Telea
    inpainting (colours carried outward, no new objects). Its mask is shrunk with nearest
    neighbour and placed alike; the fill is background.

    Args:
        images: ``(N, 3, H, W)`` float in [-1, 1].
        truths: ``(N, H, W)`` bool.
        scale: in (0, 1].

    Returns:
        ``(images (N, 3, H, W) float in [-1, 1], truths (N, H, W) bool)``.
    """
    import cv2

    if not 0 < scale <= 1:
        raise ValueError(f"zoom must be in (0, 1], got {scale}")
    height, width = images.shape[2:]
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (height - small_h) // 2, (width - small_w) // 2
    hole = np.full((height, width), 255, np.uint8)
    hole[top : top + small_h, left : left + small_w] = 0
    out_images, out_truths = [], []
    for image, truth in zip(images, truths):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[top : top + small_h, left : left + small_w] = cv2.resize(to_uint8(image), (small_w, small_h), interpolation=cv2.INTER_AREA)
        out_images.append(to_tensor(cv2.inpaint(frame, hole, FILL_RADIUS, cv2.INPAINT_TELEA)))
        mask = np.zeros((height, width), bool)
        mask[top : top + small_h, left : left + small_w] = cv2.resize(
            truth.numpy().astype(np.uint8), (small_w, small_h), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        out_truths.append(torch.from_numpy(mask))
    return torch.stack(out_images), torch.stack(out_truths)


def _value(text: str) -> object:
    """A field value from the command line: ``true``/``false``, a Python literal, else the string."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_method(spec: str, device: str) -> Method:
    """A method from its command-line spelling (see the module docstring)."""
    if spec.startswith("grabcut@"):
        margin = float(spec.split("@", 1)[1])
        return GrabCutMethod(spec, margin)
    if "=" in spec.split(":", 1)[0]:
        label, rest = spec.split("=", 1)
        preset, _, changes = rest.partition(":")
        values = dict(item.split("=", 1) for item in filter(None, changes.split(";")))
        return IEMMethod(label, IEMConfig.preset(preset, **{k.strip(): _value(v) for k, v in values.items()}), device)
    return build_method(spec, MethodContext(device=device))


def _segment(method: Method, images: torch.Tensor) -> Tuple[torch.Tensor, float]:
    with common.timed() as timing:
        masks = torch.cat([method.segment(images[i : i + BATCH]) for i in range(0, images.shape[0], BATCH)])
    return masks, timing.cpu_s


class IEMMasks:
    """IEM's masks before any refinement, computed once per image and settings.

    Kept in memory, and under ``folder`` when one is given (one file per settings, named by a
    hash of them, holding each image's mask by a hash of the image), with the CPU seconds per
    image of the batch that computed them.
    """

    def __init__(self, folder: Optional[Path] = None, device: str = "cpu") -> None:
        self.folder = folder
        self.device = device
        self.memory: Dict[str, Dict[str, Tuple[torch.Tensor, float]]] = {}

    def get(self, images: torch.Tensor, config: IEMConfig) -> Tuple[torch.Tensor, float]:
        """``(masks (N, H, W) bool, CPU seconds)`` of IEM with ``config`` less its refinement."""
        plain = config.replace(**{name: getattr(IEMConfig(), name) for name in REFINEMENT_FIELDS})
        key = hashlib.sha256(json.dumps(plain.to_dict(), sort_keys=True).encode()).hexdigest()[:24]
        path = None if self.folder is None else self.folder / f"{key}.pt"
        if key not in self.memory:
            self.memory[key] = torch.load(path)["masks"] if path is not None and path.is_file() else {}
        known = self.memory[key]
        names = [hashlib.sha256(image.numpy().tobytes()).hexdigest()[:32] for image in images]
        missing = sorted({i for i, name in enumerate(names) if name not in known})
        if missing:
            masks, cpu = _segment(IEMMethod("iem", plain, self.device), images[missing])
            known.update({names[i]: (mask, cpu / len(missing)) for i, mask in zip(missing, masks)})
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"masks": known, "config": plain.to_dict()}, path)
        return torch.stack([known[name][0] for name in names]), sum(known[name][1] for name in names)


def run(method: Method, images: torch.Tensor, iem_masks: Optional[IEMMasks] = None) -> Tuple[torch.Tensor, float]:
    """Masks ``(N, H, W)`` of ``method`` and the process CPU seconds it took.

    An IEM method takes IEM's masks from ``iem_masks`` (their recorded CPU time counts) and
    refines them here.
    """
    if iem_masks is None or not isinstance(method, IEMMethod):
        return _segment(method, images)
    plain, cpu = iem_masks.get(images, method.config)
    if not method.config.grabcut:
        return plain, cpu
    with common.timed() as timing:
        refined = torch.cat([
            refine_masks(images[i : i + BATCH], plain[i : i + BATCH, None], method.config)[:, 0]
            for i in range(0, images.shape[0], BATCH)
        ])
    return refined, cpu + timing.cpu_s


def paired(values: torch.Tensor, baseline: torch.Tensor) -> Tuple[float, float]:
    """Mean difference and its standard error over images (in points)."""
    diff = (values - baseline).double() * 100
    se = float(diff.std()) / math.sqrt(diff.numel()) if diff.numel() > 1 else float("nan")
    return float(diff.mean()), se


#: Views of ``--half split``: every image is segmented once, and each half reported apart.
SPLIT_VIEWS = ("even", "odd", "all")


def view_of(count: int, view: str) -> slice:
    """The images of ``view`` (``even``, ``odd`` or ``all``) among ``count``."""
    return slice(None) if view == "all" else slice(0 if view == "even" else 1, count, 2)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", default="best", help="comma-separated methods (paper is always run)")
    parser.add_argument("--half", choices=("even", "odd", "all", "split"), default="even",
                        help="images to run; split: all of them, reported for the even half, the odd half and all")
    parser.add_argument("--sets", default=",".join(f for f, _ in DEV_SETS), help="comma-separated set folders")
    parser.add_argument("--data", default=None, help="data directory (default: ../shared/data)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--zoom", type=float, default=1.0, help="small-object check: shrink every photo by this factor in its frame")
    parser.add_argument("--small", type=float, default=None, help="keep only images whose ground truth covers less than this share")
    parser.add_argument("--cache", default=None, help="folder keeping IEM's masks between runs")
    parser.add_argument("--out", default=None, help="JSON results (default: benchmarks/results/quality-HALF[-zoomS][-smallF].json)")
    args = parser.parse_args(argv)
    root = common.data_dir(args.data)
    specs = [BASELINE] + [m for m in args.methods.split(",") if m and m != BASELINE]
    methods = [parse_method(spec, args.device) for spec in specs]
    iem_masks = IEMMasks(None if args.cache is None else Path(args.cache), args.device)
    names = dict(DEV_SETS)
    folders = args.sets.split(",")
    views = SPLIT_VIEWS if args.half == "split" else (args.half,)
    suffix = args.half + (f"-zoom{args.zoom:g}" if args.zoom != 1.0 else "") + (f"-small{args.small:g}" if args.small is not None else "")
    out = Path(args.out) if args.out else common.RESULTS_DIR / f"quality-{suffix}.json"
    scores: Dict[str, Dict[str, Tuple[torch.Tensor, torch.Tensor, float]]] = {}
    for folder in folders:
        images, truths = load_set(root, folder, "all" if args.half == "split" else args.half, args.zoom, args.small)
        for method in methods:  # untimed: compiled kernels load and caches fill before timing
            method.segment(images[:WARMUP])
        scores[folder] = {}
        for method in methods:
            masks, cpu = run(method, images, iem_masks)
            strict = metrics.binary_scores(masks, truths, convention="strict")["iou"]
            inverse = metrics.binary_scores(masks, truths, convention="inverse_max")["iou"]
            scores[folder][method.name] = (strict, inverse, cpu / images.shape[0])
            print(f"{names.get(folder, folder)} ({images.shape[0]} images) {method.name}: "
                  f"{100 * float(strict.mean()):.1f} ({100 * float(inverse.mean()):.1f}), {1000 * cpu / images.shape[0]:.0f} ms", flush=True)
        # Written after each set, marked incomplete, so that a stopped run leaves what it measured.
        common.write_json({**summarize(scores, methods, names, views, args.half == "split"), "incomplete": True}, out)
    title = (f", zoom {args.zoom:g}" if args.zoom != 1.0 else "") + (
        f", ground truth under {args.small:g} of the frame" if args.small is not None else "")
    report = summarize(scores, methods, names, views, args.half == "split")
    for view in views:
        print(f"\nstrict IoU (inverse-max) difference to {BASELINE} ± paired SE, CPU ms/image (all images); half: {view}{title}\n")
        print("\n".join(report["views"][view]["table"]))
    report["environment"] = common.environment()
    common.write_json(report, out)
    return report


def summarize(
    scores: Dict[str, Dict[str, Tuple[torch.Tensor, torch.Tensor, float]]],
    methods: Sequence[Method],
    names: Dict[str, str],
    views: Sequence[str],
    split: bool,
) -> Dict[str, Any]:
    """The report of the sets scored so far: per view, set and method the means, the paired
    difference to :data:`BASELINE` and the CPU time, and a Markdown table per view."""
    report: Dict[str, Any] = {"methods": [m.name for m in methods], "descriptions": {m.name: m.description for m in methods}, "views": {}}
    for view in views:
        results: Dict[str, Any] = {}
        rows: Dict[str, List[str]] = {m.name: [] for m in methods}
        for folder in scores:
            base = scores[folder][BASELINE][0]
            part = view_of(base.numel(), view) if split else slice(None)
            results[folder] = {"images": int(base[part].numel()), "methods": {}}
            for name, (strict, inverse, cpu) in scores[folder].items():
                record = {"strict": 100 * float(strict[part].mean()), "inverse_max": 100 * float(inverse[part].mean()),
                          "cpu_ms_per_image": 1000 * cpu}
                cell = f"{record['strict']:.1f} ({record['inverse_max']:.1f})"
                if name != BASELINE:
                    record["delta"], record["se"] = paired(strict[part], base[part])
                    cell += f" {record['delta']:+.1f} ± {record['se']:.1f}"
                results[folder]["methods"][name] = record
                rows[name].append(f"{cell}, {record['cpu_ms_per_image']:.0f} ms")
        header = "| method | " + " | ".join(f"{names.get(f, f)} ({results[f]['images']})" for f in scores) + " |"
        lines = [header, "|" + "---|" * (len(scores) + 1)] + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
        report["views"][view] = {"sets": results, "table": lines}
    return report


if __name__ == "__main__":
    main()
