"""Accuracy of IEM settings beyond the paper on the three dev sets, paired against ``paper``.

Every method runs on the paper-protocol tensors (nearest resize of the shorter side to 128,
center crop) of GrabCut-50, Weizmann Horse-327 and Flowers-17 (846), or on one half of each
(even or odd indices: decide on one half, confirm on the other). For each set it prints the
mean strict IoU and, in brackets, the paper's inverse-max IoU, the strict difference to
``paper`` on the same images with its paired standard error, and the process CPU seconds
per image (all threads; the cost budget of ``best`` is 3x ``paper``).

A method is a name of ``iem bench`` (``paper``, ``best``, ``grabcut``...), ``grabcut@M``
(OpenCV GrabCut from a rectangle ``floor(M * side)`` inside the border, e.g. ``grabcut@0.015625``
for 2 px at 128), or ``LABEL=PRESET:field=value;field=value`` (an IEM preset with changes).

Examples::

    python -m benchmarks.quality --methods best --half even
    python -m benchmarks.quality --methods best,'nogc=best:grabcut=false;grabcut_border=0',grabcut@0.015625 --half all
"""

from __future__ import annotations

import argparse
import ast
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from benchmarks import common
from iem import metrics
from iem.bench.methods import GrabCutMethod, IEMMethod, Method, MethodContext, build_method
from iem.config import IEMConfig
from iem.datasets import open_dataset

#: The dev sets, by folder under the data directory, and their short names in the table.
DEV_SETS = (("grabcut", "GrabCut-50"), ("weizmann_horse", "Horse-327"), ("flowers17", "Flowers-17"))
#: The method every other is paired against.
BASELINE = "paper"
#: Images per call of a method (IEM chunks further inside).
BATCH = 128
#: Images each method segments once, untimed, before the timed run.
WARMUP = 2


def load_set(root: Path, folder: str, half: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Paper-protocol images ``(N, 3, 128, 128)`` and masks ``(N, 128, 128)`` of a set or a half of it."""
    data = open_dataset(root / folder)
    indices = range(len(data))
    if half != "all":
        indices = indices[0 if half == "even" else 1 :: 2]
    samples = [data[i] for i in indices]
    return torch.stack([s[1] for s in samples]), torch.stack([s[2].bool() for s in samples])


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


def run(method: Method, images: torch.Tensor) -> Tuple[torch.Tensor, float]:
    """Masks ``(N, H, W)`` of ``method`` and the process CPU seconds it took."""
    with common.timed() as timing:
        masks = torch.cat([method.segment(images[i : i + BATCH]) for i in range(0, images.shape[0], BATCH)])
    return masks, timing.cpu_s


def paired(values: torch.Tensor, baseline: torch.Tensor) -> Tuple[float, float]:
    """Mean difference and its standard error over images (in points)."""
    diff = (values - baseline).double() * 100
    se = float(diff.std()) / math.sqrt(diff.numel()) if diff.numel() > 1 else float("nan")
    return float(diff.mean()), se


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", default="best", help="comma-separated methods (paper is always run)")
    parser.add_argument("--half", choices=("even", "odd", "all"), default="even")
    parser.add_argument("--sets", default=",".join(f for f, _ in DEV_SETS), help="comma-separated set folders")
    parser.add_argument("--data", default=None, help="data directory (default: ../shared/data)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    root = common.data_dir(args.data)
    specs = [BASELINE] + [m for m in args.methods.split(",") if m and m != BASELINE]
    methods = [parse_method(spec, args.device) for spec in specs]
    names = dict(DEV_SETS)
    rows: Dict[str, List[str]] = {m.name: [] for m in methods}
    for folder in args.sets.split(","):
        images, truths = load_set(root, folder, args.half)
        base_strict: Optional[torch.Tensor] = None
        for method in methods:  # untimed: compiled kernels load and caches fill before timing
            method.segment(images[:WARMUP])
        for method in methods:
            masks, cpu = run(method, images)
            strict = metrics.binary_scores(masks, truths, convention="strict")["iou"]
            inverse = metrics.binary_scores(masks, truths, convention="inverse_max")["iou"]
            cell = f"{100 * float(strict.mean()):.1f} ({100 * float(inverse.mean()):.1f})"
            if base_strict is None:
                base_strict = strict
            else:
                delta, se = paired(strict, base_strict)
                cell += f" {delta:+.1f} ± {se:.1f}"
            rows[method.name].append(f"{cell}, {1000 * cpu / images.shape[0]:.0f} ms")
            print(f"{names.get(folder, folder)} ({images.shape[0]} images) {method.name}: {rows[method.name][-1]}", flush=True)
    header = "| method | " + " | ".join(names.get(f, f) for f in args.sets.split(",")) + " |"
    print(f"\nstrict IoU (inverse-max) difference to {BASELINE} ± paired SE, CPU ms/image; half: {args.half}\n")
    print(header)
    print("|" + "---|" * (len(args.sets.split(",")) + 1))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
